using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;

namespace Signal.Edge.Cluster;

/// <summary>
/// A private Debian <c>redis-server</c> on a free 127.0.0.1 port, its data in a temp folder (an append-only file synced
/// on every write, so a restart, even after SIGKILL, keeps membership and checkpoints), stopped by process id; for tests
/// and <c>bench e2e --cluster</c>. It never listens beyond loopback.
/// </summary>
internal sealed class LocalRedis : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("signal-redis-").FullName;
    private Process? _process;

    /// <summary>Starts the server.</summary>
    /// <exception cref="InvalidOperationException">redis-server is not installed or did not listen within 10 s.</exception>
    public LocalRedis()
    {
        Port = Signal.Engine.LocalServer.FreePort();
        Start();
    }

    /// <summary>The loopback port it listens on.</summary>
    public int Port { get; }

    /// <summary>A StackExchange.Redis configuration string.</summary>
    public string Address => string.Create(CultureInfo.InvariantCulture, $"127.0.0.1:{Port}");

    /// <summary>Starts the server (again, after <see cref="Stop"/>) on the same port and data.</summary>
    public void Start()
    {
        if (!File.Exists("/usr/bin/redis-server"))
        {
            throw new InvalidOperationException("Debian's redis-server is not installed: apt-get install redis-server (scripts/test.sh does this).");
        }

        var start = new ProcessStartInfo("/usr/bin/redis-server") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { "--port", Port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--dir", _folder, "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no", "--logfile", Path.Combine(_folder, "redis.log") })
        {
            start.ArgumentList.Add(a);
        }

        _process = Process.Start(start)!;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            try
            {
                using var client = new TcpClient();
                client.Connect("127.0.0.1", Port);
                return;
            }
            catch (SocketException)
            {
                Thread.Sleep(50);
            }
        }

        throw new InvalidOperationException($"redis-server did not listen on {Port} within 10 s: {File.ReadAllText(Path.Combine(_folder, "redis.log"))}");
    }

    /// <summary>Kills the server (SIGKILL; the append-only file holds every write) and waits for it.</summary>
    public void Stop()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: false);
            _process.WaitForExit();
        }

        _process = null;
    }

    /// <summary>Stops the server and deletes its folder.</summary>
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
