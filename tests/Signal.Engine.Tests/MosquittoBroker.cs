using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Signal.Engine.Tests;

/// <summary>
/// A private Debian <c>mosquitto</c> on a free 127.0.0.1 port, with its config and persistence file in a temp folder,
/// stopped by process id. Restartable on the same port (the persistent sessions survive a graceful stop).
/// </summary>
public sealed class MosquittoBroker : IDisposable
{
    private readonly string _folder;
    private Process? _process;

    public MosquittoBroker()
    {
        _folder = Directory.CreateTempSubdirectory("signal-mosquitto-").FullName;

        // Started as root, mosquitto drops to the 'mosquitto' user: it must be able to write its log and sessions here.
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(_folder, (UnixFileMode)0x1FF);
        }
        Port = FreePort();
        File.WriteAllText(Path.Combine(_folder, "mosquitto.conf"), $"""
            listener {Port} 127.0.0.1
            allow_anonymous true
            persistence true
            persistence_location {_folder}/
            autosave_interval 1
            max_queued_messages 1000000
            max_inflight_messages 100
            log_dest file {_folder}/mosquitto.log
            log_type all
            """.Replace("            ", "", StringComparison.Ordinal));
        Start();
    }

    public int Port { get; }

    public string Address => $"mqtt://127.0.0.1:{Port}";

    public int ProcessId => _process?.Id ?? 0;

    public static string Executable =>
        new[] { "/usr/sbin/mosquitto", "/usr/bin/mosquitto" }.FirstOrDefault(File.Exists)
        ?? throw new InvalidOperationException("Debian's mosquitto is not installed: apt-get install mosquitto mosquitto-clients (scripts/test.sh does this).");

    public void Start()
    {
        _process = Process.Start(new ProcessStartInfo(Executable, ["-c", Path.Combine(_folder, "mosquitto.conf")])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        }) ?? throw new InvalidOperationException("mosquitto did not start");
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException("mosquitto exited: " + _process.StandardError.ReadToEnd() + Log());
            }

            try
            {
                using var probe = new TcpClient();
                probe.Connect(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException)
            {
                Thread.Sleep(20);
            }
        }

        throw new InvalidOperationException("mosquitto did not listen within 10 s: " + Log());
    }

    /// <summary>Stops the broker by PID: SIGTERM (it saves its sessions), or SIGKILL when <paramref name="kill"/>.</summary>
    public void Stop(bool kill = false)
    {
        if (_process is null || _process.HasExited)
        {
            return;
        }

        if (kill)
        {
            _process.Kill();
        }
        else
        {
            Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!.WaitForExit();
        }

        _process.WaitForExit(10_000);
        _process.Dispose();
        _process = null;
    }

    public string Log()
    {
        string path = Path.Combine(_folder, "mosquitto.log");
        return File.Exists(path) ? File.ReadAllText(path) : string.Empty;
    }

    /// <summary>Runs Debian's mosquitto_pub (an independent client) and fails on a non-zero exit.</summary>
    public void PublishWithClient(string topic, string file, int qos = 1)
    {
        using Process pub = Process.Start(new ProcessStartInfo("mosquitto_pub", ["-h", "127.0.0.1", "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-t", topic, "-q", qos.ToString(System.Globalization.CultureInfo.InvariantCulture), "-f", file])
        {
            RedirectStandardError = true,
        })!;
        string error = pub.StandardError.ReadToEnd();
        pub.WaitForExit();
        if (pub.ExitCode != 0)
        {
            throw new InvalidOperationException($"mosquitto_pub exited {pub.ExitCode}: {error}");
        }
    }

    public void Dispose()
    {
        Stop();
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
