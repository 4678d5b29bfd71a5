using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Signal.Edge.Daemon;

/// <summary>
/// systemd's notification protocol (<c>sd_notify</c>): one datagram per state change on the Unix socket named by
/// <c>$NOTIFY_SOCKET</c> (a leading <c>@</c> names an abstract socket). A process without the variable sends nothing.
/// </summary>
/// <remarks>
/// A few lines of our own rather than Microsoft.Extensions.Hosting.Systemd: that package sends READY=1 when the host
/// has started, not when the daemon is ready (broker connected, subscriptions granted), and sends no WATCHDOG=1.
/// Safe to call from any thread.
/// </remarks>
internal sealed class SystemdNotifier : IDisposable
{
    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _endPoint;
    private readonly Lock _gate = new();

    /// <summary>Reads <c>$NOTIFY_SOCKET</c> and <c>$WATCHDOG_USEC</c>/<c>$WATCHDOG_PID</c>.</summary>
    public SystemdNotifier()
    {
        string? path = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        if (string.IsNullOrEmpty(path))
        {
            return;
        }

        _endPoint = new UnixDomainSocketEndPoint(path[0] == '@' ? "\0" + path[1..] : path);
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        if (long.TryParse(Environment.GetEnvironmentVariable("WATCHDOG_USEC"), NumberStyles.None, CultureInfo.InvariantCulture, out long usec) && usec > 0
            && (!int.TryParse(Environment.GetEnvironmentVariable("WATCHDOG_PID"), NumberStyles.None, CultureInfo.InvariantCulture, out int pid) || pid == Environment.ProcessId))
        {
            WatchdogInterval = TimeSpan.FromTicks(usec * 10);
        }
    }

    /// <summary>True when systemd (or a test) listens.</summary>
    public bool Enabled => _socket is not null;

    /// <summary>The watchdog timeout systemd set (<c>WatchdogSec=</c>), or null when there is none.</summary>
    public TimeSpan? WatchdogInterval { get; }

    /// <summary>Sends one notification, such as <c>READY=1</c> or <c>WATCHDOG=1</c>; false when nobody listens or the send failed.</summary>
    /// <param name="state">Newline-separated <c>KEY=value</c> assignments.</param>
    public bool Notify(string state)
    {
        if (_socket is null)
        {
            return false;
        }

        try
        {
            lock (_gate)
            {
                _socket.SendTo(Encoding.UTF8.GetBytes(state), _endPoint!);
            }

            return true;
        }
        catch (SocketException)
        {
            return false; // systemd went away (or a test closed its socket): nothing to tell
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _socket?.Dispose();
}
