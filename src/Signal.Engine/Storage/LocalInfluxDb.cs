using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Signal.Engine.Storage;

/// <summary>
/// A private Debian <c>influxd</c> (1.x; v1 HTTP API) on a free 127.0.0.1 port, with its meta, data and WAL folders in
/// a temp folder, stopped by process id; for tests, benchmarks and demos. It never listens beyond loopback.
/// Restartable on the same port with the same data.
/// </summary>
/// <remarks>Not thread-safe: start, stop and dispose from one thread.</remarks>
public sealed class LocalInfluxDb : IDisposable
{
    private static readonly string[] s_executables = ["/usr/bin/influxd", "/usr/sbin/influxd"];
    private readonly string _folder;
    private readonly TlsFiles? _https;
    private Process? _process;

    /// <summary>Writes the config and starts the server.</summary>
    /// <param name="https">Serve https with these files instead of http.</param>
    /// <exception cref="InvalidOperationException">influxd is not installed, exited, or did not answer /ping within 30 s.</exception>
    public LocalInfluxDb(TlsFiles? https = null)
    {
        _https = https;
        _folder = Directory.CreateTempSubdirectory("signal-influxd-").FullName;
        Port = LocalServer.FreePort();
        int rpc = LocalServer.FreePort();
        File.WriteAllText(ConfigFile, string.Create(CultureInfo.InvariantCulture, $"""
            reporting-disabled = true
            bind-address = "127.0.0.1:{rpc}"
            [meta]
              dir = "{_folder}/meta"
            [data]
              dir = "{_folder}/data"
              wal-dir = "{_folder}/wal"
              query-log-enabled = false
            [http]
              enabled = true
              bind-address = "127.0.0.1:{Port}"
              log-enabled = false
              max-body-size = 0
              https-enabled = {(https is null ? "false" : "true")}
              https-certificate = "{https?.CertFile}"
              https-private-key = "{https?.KeyFile}"
            [monitor]
              store-enabled = false
            [continuous_queries]
              enabled = false
            [subscriber]
              enabled = false
            """));
        Start();
    }

    /// <summary>The loopback HTTP port.</summary>
    public int Port { get; }

    /// <summary>The server's address, <c>http://127.0.0.1:port</c> (<c>https://</c> when started with TLS files).</summary>
    public Uri Address => new(string.Create(CultureInfo.InvariantCulture, $"{(_https is null ? "http" : "https")}://127.0.0.1:{Port}"));

    /// <summary>The server's process id while it runs, else 0.</summary>
    public int ProcessId => _process?.Id ?? 0;

    private string ConfigFile => Path.Combine(_folder, "influxdb.conf");

    /// <summary>Whether Debian's influxd is installed.</summary>
    public static bool IsInstalled => s_executables.Any(File.Exists);

    /// <summary>Starts the server again after <see cref="Stop"/> and waits until <c>/ping</c> answers; nothing while it runs.</summary>
    /// <exception cref="InvalidOperationException">It exited or did not answer within 30 s.</exception>
    public void Start()
    {
        if (_process is { HasExited: false })
        {
            return;
        }

        string executable = s_executables.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("Debian's influxd is not installed: apt-get install influxdb (scripts/test.sh does this).");
        _process = Process.Start(new ProcessStartInfo(executable, ["-config", ConfigFile])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        }) ?? throw new InvalidOperationException("influxd did not start");
        _process.BeginErrorReadLine();
        _process.BeginOutputReadLine();
        using HttpClient http = CreateClient();
        http.Timeout = TimeSpan.FromSeconds(1);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"influxd exited with {_process.ExitCode}");
            }

            try
            {
                using HttpResponseMessage ping = http.GetAsync(new Uri(Address, "/ping")).GetAwaiter().GetResult();
                if (ping.StatusCode == HttpStatusCode.NoContent)
                {
                    return;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or SocketException)
            {
            }

            Thread.Sleep(50);
        }

        throw new InvalidOperationException("influxd did not answer /ping within 30 s");
    }

    /// <summary>An HTTP client for queries that trusts this server (its CA when it serves https).</summary>
    /// <returns>A new client; the caller disposes it.</returns>
    public HttpClient CreateClient()
    {
        return new HttpClient(PrivateCa.Trusting(new SocketsHttpHandler(), _https?.CaFile), disposeHandler: true);
    }

    /// <summary>Stops the server by PID: SIGTERM, or SIGKILL when <paramref name="kill"/>.</summary>
    /// <param name="kill">Kill it at once.</param>
    public void Stop(bool kill = false)
    {
        LocalServer.Stop(_process, kill, TimeSpan.FromSeconds(30));
        _process = null;
    }

    /// <summary>Stops the server and deletes its folder.</summary>
    public void Dispose()
    {
        Stop(kill: true);
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
