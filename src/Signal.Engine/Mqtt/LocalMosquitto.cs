using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Signal.Engine.Mqtt;


/// <summary>
/// A private Debian <c>mosquitto</c> broker on a free 127.0.0.1 port, with its config, log and persistence file in a
/// temp folder, stopped by process id; for tests, benchmarks and demos. It never listens beyond loopback.
/// Restartable on the same port; persistent sessions survive a graceful stop.
/// </summary>
/// <remarks>Not thread-safe: start, stop and dispose from one thread.</remarks>
public sealed class LocalMosquitto : IDisposable
{
    private static readonly string[] s_executables = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"];
    private readonly string _folder;
    private Process? _process;

    /// <summary>Writes the config and starts the broker.</summary>
    /// <param name="tls">A TLS listener instead of plain TCP, or null.</param>
    /// <param name="logAll">Whether the broker logs every packet (for debugging tests; slows it down).</param>
    /// <exception cref="InvalidOperationException">mosquitto is not installed, exited, or did not listen within 10 s.</exception>
    public LocalMosquitto(TlsFiles? tls = null, bool logAll = true)
    {
        _folder = Directory.CreateTempSubdirectory("signal-mosquitto-").FullName;

        // Started as root, mosquitto drops to the 'mosquitto' user: it must be able to write its log and sessions here.
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(_folder, (UnixFileMode)0x1FF);
        }

        Port = LocalServer.FreePort();
        var config = new StringBuilder();
        config.Append(CultureInfo.InvariantCulture, $"listener {Port} 127.0.0.1\n")
            .Append("allow_anonymous true\n")
            .Append("persistence true\n")
            .Append(CultureInfo.InvariantCulture, $"persistence_location {_folder}/\n")
            .Append("autosave_interval 1\n")
            .Append("max_queued_messages 1000000\n")
            .Append("max_inflight_messages 100\n")
            .Append(CultureInfo.InvariantCulture, $"log_dest file {_folder}/mosquitto.log\n")
            .Append(logAll ? "log_type all\n" : "log_type error\nlog_type warning\nlog_type notice\n");
        if (tls is not null)
        {
            config.Append(CultureInfo.InvariantCulture, $"cafile {tls.CaFile}\ncertfile {tls.CertFile}\nkeyfile {tls.KeyFile}\n")
                .Append(CultureInfo.InvariantCulture, $"require_certificate {(tls.RequireClientCertificate ? "true" : "false")}\n");
        }

        File.WriteAllText(ConfigFile, config.ToString());
        Start();
    }

    /// <summary>The loopback port it listens on.</summary>
    public int Port { get; }

    /// <summary>The broker's address, <c>mqtt://127.0.0.1:port</c> (plain TCP; with TLS, use <see cref="MqttOptions.UseTls"/>).</summary>
    public string Address => string.Create(CultureInfo.InvariantCulture, $"mqtt://127.0.0.1:{Port}");

    /// <summary>The broker's process id while it runs, else 0.</summary>
    public int ProcessId => _process?.Id ?? 0;

    /// <summary>The temp folder holding config, log and persistence file.</summary>
    public string Folder => _folder;

    private string ConfigFile => Path.Combine(_folder, "mosquitto.conf");

    /// <summary>The path of Debian's broker executable.</summary>
    /// <exception cref="InvalidOperationException">It is not installed.</exception>
    public static string Executable =>
        s_executables.FirstOrDefault(File.Exists)
        ?? throw new InvalidOperationException("Debian's mosquitto is not installed: apt-get install mosquitto mosquitto-clients (scripts/test.sh does this).");

    /// <summary>Whether the broker executable is installed.</summary>
    public static bool IsInstalled => s_executables.Any(File.Exists);

    /// <summary>
    /// Starts the broker again after <see cref="Stop"/>, on <see cref="Port"/>, and waits until it accepts connections;
    /// nothing while it runs (the constructor starts it).
    /// </summary>
    /// <exception cref="InvalidOperationException">It exited or did not listen within 10 s.</exception>
    public void Start()
    {
        if (_process is { HasExited: false })
        {
            // A second broker could not bind the port, and the first would be left running with no one to stop it.
            return;
        }

        _process = Process.Start(new ProcessStartInfo(Executable, ["-c", ConfigFile])
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
    /// <param name="kill">Kill without letting it save anything.</param>
    public void Stop(bool kill = false)
    {
        LocalServer.Stop(_process, kill, TimeSpan.FromSeconds(10));
        _process = null;
    }

    /// <summary>The broker's log so far.</summary>
    /// <returns>The log text, or empty.</returns>
    public string Log()
    {
        string path = Path.Combine(_folder, "mosquitto.log");
        return File.Exists(path) ? File.ReadAllText(path) : string.Empty;
    }

    /// <summary>Stops the broker and deletes its folder.</summary>
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
}
