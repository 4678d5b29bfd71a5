using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Signal.Engine;

/// <summary>What the private loopback servers (<see cref="Mqtt.LocalMosquitto"/>, <see cref="Storage.LocalInfluxDb"/>) share.</summary>
public static class LocalServer
{
    /// <summary>
    /// A TCP port on 127.0.0.1 that was free a moment ago, taken below the system's ephemeral range (Linux:
    /// <c>/proc/sys/net/ipv4/ip_local_port_range</c>) so that no outgoing connection's local port takes it before the
    /// server binds it.
    /// </summary>
    /// <returns>The port.</returns>
    /// <remarks>
    /// Seen in a test under load: a port the OS handed out for a listener that was closed at once became, a second
    /// later, the local end of another process's outgoing connection, and the server started there failed with
    /// "address already in use" (and its metrics URL answered for a different process). Ports below the ephemeral range
    /// are only ever taken by an explicit bind; one is picked at random and checked by binding it.
    /// </remarks>
    public static int FreePort()
    {
        int low = EphemeralLow();
        if (low > 10_001)
        {
            for (int attempt = 0; attempt < 50; attempt++)
            {
                int port = Random.Shared.Next(10_000, low);
                try
                {
                    using var probe = new TcpListener(IPAddress.Loopback, port);
                    probe.Start();
                    return port;
                }
                catch (SocketException)
                {
                    // taken: try another
                }
            }
        }

        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>The first port of the ephemeral range (0 when it cannot be read).</summary>
    private static int EphemeralLow()
    {
        try
        {
            string[] range = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            return range.Length > 0 && int.TryParse(range[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out int low) ? low : 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
    }

    /// <summary>Stops a server by PID (SIGTERM, or SIGKILL when <paramref name="kill"/>), waits, and disposes the handle.</summary>
    /// <param name="process">The server process, or null.</param>
    /// <param name="kill">Kill at once.</param>
    /// <param name="wait">How long to wait for it to exit.</param>
    public static void Stop(Process? process, bool kill, TimeSpan wait)
    {
        if (process is null)
        {
            return;
        }

        if (!process.HasExited)
        {
            if (kill)
            {
                process.Kill();
            }
            else
            {
                using Process term = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)])!;
                term.WaitForExit();
            }

            process.WaitForExit((int)wait.TotalMilliseconds);
        }

        process.Dispose();
    }
}
