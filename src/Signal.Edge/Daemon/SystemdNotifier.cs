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
/// Safe to call from any thread, and it never blocks for long: a Unix datagram socket whose reader lags holds only
/// <c>net.unix.max_dgram_qlen</c> (10) datagrams, and a blocking send to a full queue would stall the caller until
/// the reader catches up (once, a daemon hung in shutdown on STOPPING=1 that way). Sends are non-blocking and wait at
/// most <see cref="SendPatience"/> for room; a notification that still finds no room is dropped (false).
/// </remarks>
internal sealed class SystemdNotifier : IDisposable
{
    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _endPoint;
    private readonly Lock _gate = new();

    /// <summary>Reads <c>$NOTIFY_SOCKET</c> and <c>$WATCHDOG_USEC</c>/<c>$WATCHDOG_PID</c>.</summary>
    public SystemdNotifier()
        : this(Environment.GetEnvironmentVariable("NOTIFY_SOCKET"), Environment.GetEnvironmentVariable("WATCHDOG_USEC"), Environment.GetEnvironmentVariable("WATCHDOG_PID"))
    {
    }

    /// <summary>A notifier for the given socket path and watchdog settings (the environment's, or a test's).</summary>
    /// <param name="path">The socket (<c>$NOTIFY_SOCKET</c>); null or empty: nobody listens.</param>
    /// <param name="watchdogUsec">The watchdog timeout in microseconds (<c>$WATCHDOG_USEC</c>), or null.</param>
    /// <param name="watchdogPid">The process the watchdog is meant for (<c>$WATCHDOG_PID</c>), or null for this one.</param>
    internal SystemdNotifier(string? path, string? watchdogUsec, string? watchdogPid)
    {
        if (string.IsNullOrEmpty(path))
        {
            return;
        }

        _endPoint = new UnixDomainSocketEndPoint(path[0] == '@' ? "\0" + path[1..] : path);
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { Blocking = false };
        if (long.TryParse(watchdogUsec, NumberStyles.None, CultureInfo.InvariantCulture, out long usec) && usec > 0
            && (!int.TryParse(watchdogPid, NumberStyles.None, CultureInfo.InvariantCulture, out int pid) || pid == Environment.ProcessId))
        {
            WatchdogInterval = TimeSpan.FromTicks(usec * 10);
        }
    }

    /// <summary>True when systemd (or a test) listens.</summary>
    public bool Enabled => _socket is not null;

    /// <summary>The watchdog timeout systemd set (<c>WatchdogSec=</c>), or null when there is none.</summary>
    public TimeSpan? WatchdogInterval { get; }

    /// <summary>The longest a notification waits for room in a full socket queue before it is dropped.</summary>
    public static readonly TimeSpan SendPatience = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Sends one notification, such as <c>READY=1</c> or <c>WATCHDOG=1</c>; false when nobody listens, the send
    /// failed, or the listener's queue stayed full for <see cref="SendPatience"/> (the caller may try again later).
    /// </summary>
    /// <param name="state">Newline-separated <c>KEY=value</c> assignments.</param>
    public bool Notify(string state)
    {
        if (_socket is null)
        {
            return false;
        }

        byte[] datagram = Encoding.UTF8.GetBytes(state);
        long deadline = Environment.TickCount64 + (long)SendPatience.TotalMilliseconds;
        try
        {
            lock (_gate)
            {
                while (true)
                {
                    try
                    {
                        _socket.SendTo(datagram, _endPoint!);
                        return true;
                    }
                    catch (SocketException e) when (e.SocketErrorCode == SocketError.WouldBlock && Environment.TickCount64 < deadline)
                    {
                        Thread.Sleep(10); // the queue is full: give the reader a moment
                    }
                }
            }
        }
        catch (SocketException)
        {
            return false; // systemd went away, a test closed its socket, or the queue stayed full: nothing to tell
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _socket?.Dispose();
}
