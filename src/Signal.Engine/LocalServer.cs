using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Signal.Engine;

/// <summary>What the private loopback servers (<see cref="Mqtt.LocalMosquitto"/>, <see cref="Storage.LocalInfluxDb"/>) share.</summary>
public static class LocalServer
{
    /// <summary>A TCP port on 127.0.0.1 that was free a moment ago.</summary>
    /// <returns>The port.</returns>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
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
