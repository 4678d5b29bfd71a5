using System.Diagnostics;
using System.Globalization;
using Signal.Engine.Mqtt;

namespace Signal.Engine.Tests;

/// <summary>
/// The tests' broker: a <see cref="LocalMosquitto"/> (Debian's mosquitto on a free 127.0.0.1 port, stopped by PID)
/// plus Debian's own command-line clients as an independent peer.
/// </summary>
public sealed class MosquittoBroker : IDisposable
{
    private readonly LocalMosquitto _broker;

    public MosquittoBroker(TlsFiles? tls = null) => _broker = new LocalMosquitto(tls);

    public int Port => _broker.Port;

    public string Address => _broker.Address;

    public int ProcessId => _broker.ProcessId;

    public void Start() => _broker.Start();

    public void Stop(bool kill = false) => _broker.Stop(kill);

    public string Log() => _broker.Log();

    /// <summary>Runs Debian's mosquitto_pub (an independent client) and fails on a non-zero exit.</summary>
    public void PublishWithClient(string topic, string file, int qos = 1, params string[] extra)
    {
        using Process pub = Process.Start(new ProcessStartInfo("mosquitto_pub", ["-h", "127.0.0.1", "-p", Port.ToString(CultureInfo.InvariantCulture), "-t", topic, "-q", qos.ToString(CultureInfo.InvariantCulture), "-f", file, .. extra])
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

    public void Dispose() => _broker.Dispose();
}
