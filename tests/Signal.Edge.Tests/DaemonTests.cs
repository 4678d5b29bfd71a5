using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Signal.Engine.Data;
using Signal.Engine.Mqtt;
using Signal.Engine.Payloads;
using Xunit;

namespace Signal.Edge.Tests;

/// <summary>The daemon as users run it: a child process, a real mosquitto, HTTP from outside.</summary>
public sealed partial class DaemonTests
{
    private static readonly HttpClient s_http = new() { Timeout = TimeSpan.FromSeconds(5) };

    private static string DemoModelFile(string folder, string name)
    {
        string path = Path.Combine(folder, name + ".sigm");
        File.WriteAllBytes(path, Demo.DemoModel.Bundled());
        return path;
    }

    /// <summary>Messages of one simulated sensor: the generator the bundled model was trained on, other seeds.</summary>
    private static List<byte[]> Messages(int seed, BearingFault? fault, int count, long startNs, ulong firstSequence = 0, VibrationSource? source = null)
    {
        source ??= new VibrationSource(12_000, seed);
        var messages = new List<byte[]>();
        var samples = new float[600];
        for (int i = 0; i < count; i++)
        {
            source.Next(samples, fault);
            ulong n = firstSequence + (ulong)i;
            var payload = new byte[BinaryPayload.HeaderLength + (4 * samples.Length)];
            BinaryPayload.Write(payload, n, startNs + (long)Math.Round(n * 600 * 1e9 / 12_000), 12_000, 1, samples);
            messages.Add(payload);
        }

        return messages;
    }

    private static async Task Publish(string broker, params (string Topic, List<byte[]> Messages)[] streams)
    {
        var options = new MqttOptions { ClientId = "test-publisher-" + Guid.NewGuid().ToString("N")[..8], CleanSession = true }.WithAddress(broker);
        await using var connection = new MosquittoConnection(options);
        await connection.ConnectAsync(TimeSpan.FromSeconds(10));
        for (int i = 0; i < streams.Max(s => s.Messages.Count); i++)
        {
            foreach ((string topic, List<byte[]> messages) in streams)
            {
                if (i < messages.Count)
                {
                    Assert.True(connection.Publish(topic, messages[i], 1));
                }
            }
        }

        await Task.Delay(500);
    }

    private static async Task<JsonElement[]> Streams(string url, string? token = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url + "api/streams");
        if (token is not null)
        {
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        }

        using HttpResponseMessage response = await s_http.SendAsync(request);
        response.EnsureSuccessStatusCode();
        return [.. JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.EnumerateArray()];
    }

    private static JsonElement? Find(JsonElement[] streams, string id) => streams.Cast<JsonElement?>().FirstOrDefault(s => s!.Value.GetProperty("stream").GetString() == id);

    /// <summary>The value of one sample of <c>/metrics</c>, or null when absent.</summary>
    private static double? Metric(string text, string nameAndLabels)
    {
        foreach (string line in text.Split('\n'))
        {
            if (line.StartsWith(nameAndLabels + " ", StringComparison.Ordinal))
            {
                return double.Parse(line[(nameAndLabels.Length + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return null;
    }

    [GeneratedRegex("""^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? (-?[0-9.eE+-]+|\+Inf|-Inf|NaN)$""")]
    private static partial Regex SampleLine();

    [Fact]
    public async Task The_daemon_routes_two_models_serves_health_and_metrics_and_keeps_stream_context_across_a_restart()
    {
        using var broker = new LocalMosquitto();
        string folder = Directory.CreateTempSubdirectory("signal-daemon-").FullName;
        string state = Path.Combine(folder, "state");
        string bearing = DemoModelFile(folder, "bearing");
        string lab = DemoModelFile(folder, "lab-copy");
        string config = Path.Combine(folder, "edge.json");
        int port = EdgeProcess.FreePort();
        File.WriteAllText(config, $$"""
            {
              "models": [
                { "path": "{{bearing}}", "topicTemplate": "sensors/{device}/{sensor}" },
                { "path": "{{lab}}", "name": "lab", "topicTemplate": "lab/{device}/{sensor}" }
              ],
              "mqtt": "{{broker.Address}}",
              "topic": "#",
              "engine": { "maxWait": "00:00:00.002" },
              "http": { "address": "127.0.0.1:{{port}}" },
              "state": { "folder": "{{state}}" },
              "logging": { "format": "json" }
            }
            """);
        string url = $"http://127.0.0.1:{port}/";
        string[] args = ["run", "--config", config, "--quiet"];
        long start = 1_790_000_000_000_000_000;
        BearingFault outer = BearingFault.Known.Single(f => f.Name == "outer");
        var faulty = new VibrationSource(12_000, 502);
        using (var daemon = new EdgeProcess(null, args))
        {
            await daemon.WaitUntil(async () => (await s_http.GetAsync(url + "readyz")).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "/readyz");
            Assert.Equal(HttpStatusCode.OK, (await s_http.GetAsync(url + "healthz")).StatusCode);

            // Without a "cluster" section nothing of Orleans is loaded, and without an accelerator setting nothing of
            // ILGPU: neither assembly is mapped into the process (checked again after the streams have been stepped).
            string maps = File.ReadAllText($"/proc/{daemon.Id}/maps");
            Assert.Contains("signal-edge.dll", maps, StringComparison.Ordinal);
            Assert.Contains("Signal.Models.dll", maps, StringComparison.Ordinal);
            Assert.DoesNotContain("Orleans.", maps, StringComparison.Ordinal);
            Assert.DoesNotContain("StackExchange.Redis", maps, StringComparison.Ordinal);
            Assert.DoesNotContain("ILGPU", maps, StringComparison.Ordinal);
            await Publish(broker.Address,
                ("sensors/m1/vib", Messages(501, null, 40, start)),
                ("sensors/m2/vib", Messages(502, outer, 40, start, source: faulty)),
                ("lab/rig/vib", Messages(503, null, 40, start)));
            await daemon.WaitUntil(async () => (await Streams(url)).Count(s => s.GetProperty("steps").GetInt64() >= 40) == 3, TimeSpan.FromSeconds(20), "three streams with 40 steps");
            Assert.DoesNotContain("ILGPU", File.ReadAllText($"/proc/{daemon.Id}/maps"), StringComparison.Ordinal);

            JsonElement[] streams = await Streams(url);
            Assert.Equal("normal", Find(streams, "m1/vib")!.Value.GetProperty("label").GetString());
            Assert.Equal("outer", Find(streams, "m2/vib")!.Value.GetProperty("label").GetString());
            Assert.Contains("class:outer", Find(streams, "m2/vib")!.Value.GetProperty("alerts").EnumerateArray().Select(a => a.GetProperty("rule").GetString()));
            Assert.DoesNotContain(Find(streams, "m1/vib")!.Value.GetProperty("alerts").EnumerateArray(), a => true);
            Assert.Equal("bearing", Find(streams, "m1/vib")!.Value.GetProperty("model").GetString());
            Assert.Equal("lab", Find(streams, "rig/vib")!.Value.GetProperty("model").GetString());

            HttpResponseMessage metricsResponse = await s_http.GetAsync(url + "metrics");
            Assert.StartsWith("text/plain; version=0.0.4", metricsResponse.Content.Headers.ContentType!.ToString(), StringComparison.Ordinal);
            string metrics = await metricsResponse.Content.ReadAsStringAsync();
            foreach (string line in metrics.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith('#')))
            {
                Assert.Matches(SampleLine(), line);
            }

            Assert.Equal(80, Metric(metrics, "signal_messages_total{model=\"bearing\"}"));
            Assert.Equal(40, Metric(metrics, "signal_messages_total{model=\"lab\"}"));
            Assert.True(Metric(metrics, "signal_steps_total{model=\"bearing\"}") >= 80);
            Assert.Equal(1, Metric(metrics, "signal_alerts_raised_total{severity=\"warning\"}"));
            Assert.Equal(1, Metric(metrics, "signal_mqtt_connected"));
            Assert.Equal(120, Metric(metrics, "signal_message_latency_seconds_count"));
            double[] buckets = [.. metrics.Split('\n').Where(l => l.StartsWith("signal_message_latency_seconds_bucket", StringComparison.Ordinal)).Select(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture))];
            Assert.Equal(buckets.Order(), buckets);
            Assert.Equal(120, buckets[^1]);
            Assert.True(Metric(metrics, "signal_batch_size_count{model=\"bearing\"}") > 0);
            Assert.Null(Metric(metrics, "signal_resets_total{model=\"bearing\",reason=\"time_gap\"}"));

            Assert.Equal(0, daemon.Terminate(TimeSpan.FromSeconds(30)));
            Assert.Contains("shutdown checkpoint of model bearing: 2 streams", daemon.Output, StringComparison.Ordinal);
            Assert.Contains("\"LogLevel\":\"Information\"", daemon.Output, StringComparison.Ordinal); // JSON logs
        }

        Assert.True(File.Exists(Path.Combine(state, "bearing.ckpt")));
        Assert.True(File.Exists(Path.Combine(state, "lab.ckpt")));

        // The restarted daemon continues every stream: the next messages follow without a reset, and the faulty
        // bearing is recognised from its first step after the restart (its context came back from the checkpoint).
        using (var daemon = new EdgeProcess(null, args))
        {
            await daemon.WaitUntil(async () => (await s_http.GetAsync(url + "readyz")).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "/readyz after the restart");
            Assert.Contains("model bearing: restored 2 streams from the checkpoint (2 continue where they were, 0 start afresh)", daemon.Output, StringComparison.Ordinal);
            await Publish(broker.Address, ("sensors/m2/vib", Messages(502, outer, 10, start, firstSequence: 40, source: faulty)));
            await daemon.WaitUntil(async () => Find(await Streams(url), "m2/vib") is { } s && s.GetProperty("steps").GetInt64() >= 10, TimeSpan.FromSeconds(20), "steps after the restart");
            string metrics = await s_http.GetStringAsync(url + "metrics");
            Assert.DoesNotContain("signal_resets_total", metrics, StringComparison.Ordinal);
            Assert.Equal(0, Metric(metrics, "signal_duplicates_total{model=\"bearing\"}"));
            Assert.Equal("outer", Find(await Streams(url), "m2/vib")!.Value.GetProperty("label").GetString());
            Assert.Equal(0, daemon.Terminate(TimeSpan.FromSeconds(30)));
        }

        Directory.Delete(folder, recursive: true);
    }
}

[Collection("console")]
public sealed class ReplayAndInfoTests
{
    [Fact]
    public async Task Replay_publishes_a_recording_as_numbered_timestamped_messages_that_add_up_to_it()
    {
        using var broker = new LocalMosquitto();
        string folder = Directory.CreateTempSubdirectory("signal-replay-").FullName;
        string csv = Path.Combine(folder, "pump 1.csv");
        var rng = new Random(3);
        float[][] rows = [.. Enumerable.Range(0, 1_000).Select(_ => new[] { (float)rng.NextDouble(), (float)rng.NextDouble() })];
        File.WriteAllLines(csv, ["x,y", .. rows.Select(r => string.Create(CultureInfo.InvariantCulture, $"{r[0]:R},{r[1]:R}"))]);

        var options = new MqttOptions { ClientId = "replay-listener", CleanSession = true }.WithAddress(broker.Address);
        await using var listener = new MosquittoConnection(options);
        listener.Subscribe("plant/#", 1);
        await listener.ConnectAsync(TimeSpan.FromSeconds(10));
        string output = Cli.Output("replay", "--data", folder, "--mqtt", broker.Address, "--speed", "0", "--rate", "100", "--chunk", "64", "--topic", "plant/{name}/vib");
        Assert.Contains("published 16 messages (1,000 samples, 10 s of data)", output, StringComparison.Ordinal);

        var decoder = new PayloadDecoder();
        var samples = new List<float>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long? previous = null;
        while (samples.Count < 2_000 && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            if (!listener.TryRead(out MqttMessage m))
            {
                await listener.WaitToReadAsync(new CancellationTokenSource(TimeSpan.FromSeconds(1)).Token).AsTask().ContinueWith(_ => { });
                continue;
            }

            Assert.Equal("plant/pump_1/vib", m.Topic);
            Assert.True(decoder.TryDecode(m.Payload, PayloadFormat.Auto, out DecodedPayload data, out string error), error);
            Assert.Equal(2, data.Width);
            Assert.Equal(100, data.Rate);
            Assert.Equal(samples.Count / 128, data.Sequence);
            if (previous is long p)
            {
                Assert.Equal(640_000_000, data.TimestampNs!.Value - p); // 64 samples at 100 Hz
            }

            previous = data.TimestampNs;
            samples.AddRange(data.Values.ToArray());
            m.Release();
        }

        Assert.Equal(rows.SelectMany(r => r), samples);
        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public void Info_names_the_runtime_and_the_instruction_sets_in_use()
    {
        using var json = JsonDocument.Parse(Cli.Output("info", "--json"));
        JsonElement info = json.RootElement;
        Assert.StartsWith(".NET 10", info.GetProperty("runtime").GetString(), StringComparison.Ordinal);
        Assert.Equal(System.Runtime.Intrinsics.Vector128.IsHardwareAccelerated, info.GetProperty("vector128").GetBoolean());
        string path = info.GetProperty("kernel_path").GetString()!;
        Assert.Contains(path, new[] { "Scalar", "Vector128", "Vector256", "Vector512" });
        Assert.Equal(path == "Scalar" ? 1 : int.Parse(path[6..], CultureInfo.InvariantCulture) / 32, info.GetProperty("kernel_floats_per_vector").GetInt32());
        Assert.Matches(@"^\d+\.\d+\.\d+$", info.GetProperty("libmosquitto").GetString());
    }
}
