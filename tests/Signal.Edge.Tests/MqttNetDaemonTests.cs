using System.Net;
using System.Text.Json;
using Signal.Engine.Data;
using Signal.Engine.Mqtt;
using Xunit;

namespace Signal.Edge.Tests;

/// <summary>The daemon on its second MQTT client.</summary>
public sealed partial class DaemonTests
{
    /// <summary>A config of the demo model on sensors/{device}/{sensor} with the given MQTT lines; returns it and the daemon's URL.</summary>
    private static (string Config, string Url) BearingConfig(string folder, string mqttLines)
    {
        string model = DemoModelFile(folder, "bearing");
        string config = Path.Combine(folder, "edge.json");
        int port = EdgeProcess.FreePort();
        File.WriteAllText(config, $$"""
            {
              "models": [ { "path": "{{model}}", "topicTemplate": "sensors/{device}/{sensor}" } ],
              {{mqttLines}},
              "engine": { "maxWait": "00:00:00.002" },
              "http": { "address": "127.0.0.1:{{port}}" }
            }
            """);
        return (config, $"http://127.0.0.1:{port}/");
    }

    /// <summary>A healthy stream (m1) and an outer-race fault (m2), 40 messages each.</summary>
    private static (List<byte[]> Healthy, List<byte[]> Faulty) TwoBearings(int seed) =>
        (Messages(seed, null, 40, 1_790_000_000_000_000_000),
         Messages(seed + 1, BearingFault.Known.Single(f => f.Name == "outer"), 40, 1_790_000_000_000_000_000, source: new VibrationSource(12_000, seed + 1)));

    /// <summary>Waits for both streams' 40 steps and checks their classes: normal and outer race.</summary>
    private static async Task ExpectNormalAndOuter(EdgeProcess daemon, string url)
    {
        await daemon.WaitUntil(async () => (await Streams(url)).Count(s => s.GetProperty("steps").GetInt64() >= 40) == 2, TimeSpan.FromSeconds(20), "two streams with 40 steps");
        JsonElement[] streams = await Streams(url);
        Assert.Equal("normal", Find(streams, "m1/vib")!.Value.GetProperty("label").GetString());
        Assert.Equal("outer", Find(streams, "m2/vib")!.Value.GetProperty("label").GetString());
    }

    [Fact]
    public async Task On_the_mqttnet_client_the_daemon_classifies_what_mosquitto_delivers()
    {
        using var broker = new LocalMosquitto();
        string folder = Directory.CreateTempSubdirectory("signal-mqttnet-").FullName;
        (string config, string url) = BearingConfig(folder, $$"""
            "mqtt": "{{broker.Address}}",
              "broker": { "client": "mqttnet", "clientId": "edge-mqttnet" }
            """);
        (List<byte[]> healthy, List<byte[]> faulty) = TwoBearings(601);
        using (var daemon = new EdgeProcess(null, "run", "--config", config, "--quiet"))
        {
            await daemon.WaitUntil(async () => (await s_http.GetAsync(url + "readyz")).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "/readyz");
            await Publish(broker.Address, ("sensors/m1/vib", healthy), ("sensors/m2/vib", faulty));
            await ExpectNormalAndOuter(daemon, url);
            Assert.Equal(0, daemon.Terminate(TimeSpan.FromSeconds(30)));
            Assert.Contains("MQTT (MQTTnet): connected", daemon.Output, StringComparison.Ordinal);
        }

        Directory.Delete(folder, recursive: true);
    }
}

/// <summary>The daemon's embedded broker, with Debian's mosquitto_pub as the sensors.</summary>
public sealed partial class DaemonTests
{
    private static (int Code, string Error) MosquittoPub(int port, string user, string password, string topic, byte[] payload, string? caFile = null)
    {
        string file = Path.GetTempFileName();
        File.WriteAllBytes(file, payload);
        try
        {
            using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("mosquitto_pub",
                ["-h", "127.0.0.1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-i", "sensor-" + topic.Replace('/', '-'), "-u", user, "-P", password, "-q", "1", "-t", topic, "-f", file,
                    .. caFile is null ? Array.Empty<string>() : ["--cafile", caFile]])
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            })!;
            string error = process.StandardError.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, error);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task An_embedded_broker_takes_mosquitto_pub_from_its_users_and_the_daemon_classifies_it()
    {
        string folder = Directory.CreateTempSubdirectory("signal-embedded-").FullName;
        string users = Path.Combine(folder, "users");
        File.WriteAllLines(users, ["# sensors", "pump:s3cret"]);
        int brokerPort = EdgeProcess.FreePort();
        (string config, string url) = BearingConfig(folder, $$"""
            "embeddedBroker": { "address": "127.0.0.1:{{brokerPort}}", "usersFile": "{{users}}" }
            """);
        (List<byte[]> healthy, List<byte[]> faulty) = TwoBearings(701);
        using (var daemon = new EdgeProcess(null, "run", "--config", config, "--quiet"))
        {
            await daemon.WaitUntil(async () => (await s_http.GetAsync(url + "readyz")).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "/readyz");

            // A wrong password is refused by the broker; the user of the file publishes.
            (int refused, string why) = MosquittoPub(brokerPort, "pump", "wrong", "sensors/m1/vib", [1, 2, 3]);
            Assert.NotEqual(0, refused);
            Assert.Contains("bad user name or password", why, StringComparison.Ordinal);
            for (int i = 0; i < 40; i++)
            {
                Assert.Equal(0, MosquittoPub(brokerPort, "pump", "s3cret", "sensors/m1/vib", healthy[i]).Code);
                Assert.Equal(0, MosquittoPub(brokerPort, "pump", "s3cret", "sensors/m2/vib", faulty[i]).Code);
            }

            await ExpectNormalAndOuter(daemon, url);
            Assert.Equal(0, daemon.Terminate(TimeSpan.FromSeconds(30)));
            Assert.Contains($"embedded MQTT broker listening on 127.0.0.1:{brokerPort}", daemon.Output, StringComparison.Ordinal);
        }

        // A users file with a bad line is refused at start, naming the file and the line.
        File.WriteAllLines(users, ["pump:s3cret", "nocolon"]);
        using (var bad = new EdgeProcess(null, "run", "--config", config, "--quiet"))
        {
            Assert.True(bad.WaitForExit(TimeSpan.FromSeconds(20)), bad.Output);
            Assert.Equal(1, bad.ExitCode);
            Assert.Contains("line 2 is not user:password", bad.Output, StringComparison.Ordinal);
        }

        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public async Task An_embedded_broker_with_tls_takes_mosquitto_pub_over_tls_only()
    {
        string folder = Directory.CreateTempSubdirectory("signal-embedded-tls-").FullName;
        using var certificates = new Signal.Engine.Tests.TestCertificates();
        string users = Path.Combine(folder, "users");
        File.WriteAllLines(users, ["pump:s3cret"]);
        int brokerPort = EdgeProcess.FreePort();
        (string config, string url) = BearingConfig(folder, $$"""
            "embeddedBroker": { "address": "127.0.0.1:{{brokerPort}}", "usersFile": "{{users}}", "certFile": "{{certificates.ServerCert}}", "keyFile": "{{certificates.ServerKey}}" }
            """);
        (List<byte[]> healthy, List<byte[]> faulty) = TwoBearings(703);
        using (var daemon = new EdgeProcess(null, "run", "--config", config, "--quiet"))
        {
            await daemon.WaitUntil(async () => (await s_http.GetAsync(url + "readyz")).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "/readyz");

            // Plain MQTT to the TLS port is refused; Debian's mosquitto_pub with the CA publishes over TLS.
            Assert.NotEqual(0, MosquittoPub(brokerPort, "pump", "s3cret", "sensors/m1/vib", [1, 2, 3]).Code);
            for (int i = 0; i < 40; i++)
            {
                Assert.Equal(0, MosquittoPub(brokerPort, "pump", "s3cret", "sensors/m1/vib", healthy[i], certificates.Ca).Code);
                Assert.Equal(0, MosquittoPub(brokerPort, "pump", "s3cret", "sensors/m2/vib", faulty[i], certificates.Ca).Code);
            }

            await ExpectNormalAndOuter(daemon, url);
            Assert.Equal(0, daemon.Terminate(TimeSpan.FromSeconds(30)));
            Assert.Contains($"embedded MQTT broker listening on 127.0.0.1:{brokerPort} with TLS", daemon.Output, StringComparison.Ordinal);
        }

        // Half a TLS setting is refused at start, naming the key.
        File.WriteAllText(config, File.ReadAllText(config).Replace($", \"keyFile\": \"{certificates.ServerKey}\"", string.Empty, StringComparison.Ordinal));
        using (var bad = new EdgeProcess(null, "run", "--config", config, "--quiet"))
        {
            Assert.True(bad.WaitForExit(TimeSpan.FromSeconds(20)), bad.Output);
            Assert.Equal(1, bad.ExitCode);
            Assert.Contains("embeddedBroker:keyFile: TLS needs both certFile and keyFile", bad.Output, StringComparison.Ordinal);
        }

        Directory.Delete(folder, recursive: true);
    }
}
