using System.Net;
using System.Net.Sockets;
using System.Text;
using Signal.Engine.Data;
using Signal.Engine.Mqtt;
using Xunit;

namespace Signal.Edge.Tests;

/// <summary>The daemon as an attacker and a crash meet it: a child process and a real mosquitto.</summary>
public sealed partial class DaemonTests
{
    private static (string Folder, string Config, string Url) Daemon(LocalMosquitto broker, string extra = "")
    {
        string folder = Directory.CreateTempSubdirectory("signal-hostile-").FullName;
        string model = DemoModelFile(folder, "bearing");
        int port = EdgeProcess.FreePort();
        string config = Path.Combine(folder, "edge.json");
        File.WriteAllText(config, $$"""
            {
              "models": [ { "path": "{{model}}", "topicTemplate": "sensors/{device}/{sensor}" } ],
              "mqtt": "{{broker.Address}}",
              "engine": { "maxWait": "00:00:00.002" },
              "http": { "address": "127.0.0.1:{{port}}" },
              "state": { "folder": "{{Path.Combine(folder, "state")}}" {{extra}} }
            }
            """);
        return (folder, config, $"http://127.0.0.1:{port}/");
    }

    [Fact]
    public async Task Malformed_senml_at_qos_1_is_dead_lettered_and_the_daemon_keeps_classifying()
    {
        using var broker = new LocalMosquitto();
        (string folder, string config, string url) = Daemon(broker);
        using var daemon = new EdgeProcess(null, "run", "--config", config, "--quiet", "--dead-letter", "signal/dead");
        await daemon.WaitUntil(async () => (await s_http.GetAsync(url + "readyz")).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "/readyz");
        string[] crashers = ["""[{"n":"x","v":"1"}]""", """[{"bn":5,"n":"x","v":1}]""", """[{"n":1,"v":1}]""", """[{"n":"x","v":1,"t":"x"}]""", """[{"n":"x","v":null}]""", """[{"bt":true,"n":"x","v":1}]"""];
        await Publish(broker.Address, ("sensors/p/vib", [.. crashers.Select(Encoding.UTF8.GetBytes)]));
        await Publish(broker.Address, ("sensors/m1/vib", Messages(501, null, 20, 1_790_000_000_000_000_000)));
        await daemon.WaitUntil(async () => Find(await Streams(url), "m1/vib") is { } s && s.GetProperty("steps").GetInt64() >= 20, TimeSpan.FromSeconds(20), "steps after the malformed messages");
        string metrics = await s_http.GetStringAsync(url + "metrics");
        Assert.Equal(6, Metric(metrics, "signal_rejected_total{model=\"bearing\",reason=\"undecodable\"}"));
        Assert.Null(Metric(metrics, "signal_rejected_total{model=\"bearing\",reason=\"internal_error\"}"));
        Assert.Equal(0, Metric(metrics, "signal_internal_errors_total"));
        Assert.Equal(HttpStatusCode.OK, (await s_http.GetAsync(url + "healthz")).StatusCode);
        Assert.Equal(0, daemon.Terminate(TimeSpan.FromSeconds(30)));
        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public async Task After_sigkill_the_restarted_daemon_continues_its_streams_and_keeps_their_alerts()
    {
        using var broker = new LocalMosquitto();
        (string folder, string config, string url) = Daemon(broker, """, "checkpointInterval": "00:00:01" """);
        string[] args = ["run", "--config", config, "--quiet"];
        long start = 1_790_000_000_000_000_000;
        BearingFault outer = BearingFault.Known.Single(f => f.Name == "outer");
        var faulty = new VibrationSource(12_000, 502);
        List<byte[]> messages = Messages(502, outer, 120, start, source: faulty);
        using (var daemon = new EdgeProcess(null, args))
        {
            await daemon.WaitUntil(async () => (await s_http.GetAsync(url + "readyz")).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "/readyz");
            await Publish(broker.Address, ("sensors/m2/vib", messages[..40]));
            await daemon.WaitUntil(async () => Metric(await s_http.GetStringAsync(url + "metrics"), "signal_alerts_active") >= 1, TimeSpan.FromSeconds(20), "the fault's alert");
            await daemon.WaitUntil(() => Task.FromResult(daemon.Output.Contains("periodic checkpoint of model bearing: 1 streams", StringComparison.Ordinal)), TimeSpan.FromSeconds(20), "a periodic checkpoint");
            await Task.Delay(1500); // the checkpoint after the last message
            await Publish(broker.Address, ("sensors/m2/vib", messages[40..60])); // taken after the last checkpoint: lost with the crash
            daemon.Kill();
        }

        using (var daemon = new EdgeProcess(null, args))
        {
            await daemon.WaitUntil(async () => (await s_http.GetAsync(url + "readyz")).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "/readyz after SIGKILL");
            Assert.Contains("(1 continue where they were, 0 start afresh)", daemon.Output, StringComparison.Ordinal);
            await Publish(broker.Address, ("sensors/m2/vib", messages[70..]));
            await daemon.WaitUntil(async () => Metric(await s_http.GetStringAsync(url + "metrics"), "signal_steps_total{model=\"bearing\"}") >= 40, TimeSpan.FromSeconds(20), "steps after the restart");
            string metrics = await s_http.GetStringAsync(url + "metrics");
            Assert.DoesNotContain("signal_resets_total", metrics, StringComparison.Ordinal);
            Assert.Equal(1, Metric(metrics, "signal_restore_gaps_total{model=\"bearing\"}"));
            // The fault's alert was raised before the crash and came back with the checkpoint: not raised again.
            Assert.Null(Metric(metrics, "signal_alerts_raised_total{severity=\"warning\"}"));
            Assert.Equal("outer", Find(await Streams(url), "m2/vib")!.Value.GetProperty("label").GetString());
            Assert.Equal(0, daemon.Terminate(TimeSpan.FromSeconds(30)));
        }

        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public async Task Systemd_hears_ready_once_subscribed_then_watchdog_pings_then_stopping()
    {
        using var broker = new LocalMosquitto();
        (string folder, string config, string url) = Daemon(broker);
        string socketPath = Path.Combine(folder, "notify.sock");
        using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(socketPath));
        var heard = new List<string>();
        var environment = new Dictionary<string, string> { ["NOTIFY_SOCKET"] = socketPath, ["WATCHDOG_USEC"] = "900000" };
        using var listening = new CancellationTokenSource();

        // Read the socket all along, as systemd does (a reader that lags fills the queue; see the notifier's own test).
        Task listener = Task.Run(async () =>
        {
            var buffer = new byte[4096];
            try
            {
                while (true)
                {
                    int n = await socket.ReceiveAsync(buffer, SocketFlags.None, listening.Token);
                    lock (heard)
                    {
                        heard.Add(Encoding.UTF8.GetString(buffer, 0, n));
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        });
        string[] Heard()
        {
            lock (heard)
            {
                return [.. heard];
            }
        }

        using (var daemon = new EdgeProcess(environment, "run", "--config", config, "--quiet"))
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (Heard().SkipWhile(h => !h.StartsWith("READY=1", StringComparison.Ordinal)).Count(h => h == "WATCHDOG=1") < 3 && clock.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(50);
            }

            Assert.Equal(HttpStatusCode.OK, (await s_http.GetAsync(url + "readyz")).StatusCode);
            Assert.Equal(0, daemon.Terminate(TimeSpan.FromSeconds(30)));
            clock.Restart();
            while (!Heard().Any(h => h.StartsWith("STOPPING=1", StringComparison.Ordinal)) && clock.Elapsed < TimeSpan.FromSeconds(5))
            {
                await Task.Delay(50);
            }
        }

        await listening.CancelAsync();
        await listener;
        int ready = heard.FindIndex(h => h.StartsWith("READY=1", StringComparison.Ordinal));
        Assert.True(ready >= 0, "no READY=1 among: " + string.Join(" | ", heard));
        Assert.Single(heard, h => h.StartsWith("READY=1", StringComparison.Ordinal));
        Assert.True(heard.Skip(ready).Count(h => h == "WATCHDOG=1") >= 3, string.Join(" | ", heard));
        Assert.StartsWith("STOPPING=1", heard[^1], StringComparison.Ordinal);
        Directory.Delete(folder, recursive: true);
    }
}
