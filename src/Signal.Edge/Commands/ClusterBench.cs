using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Serialization;
using Signal.Edge.Cluster;
using Signal.Engine.Data;
using Signal.Engine.Mqtt;
using Signal.Engine.Payloads;

namespace Signal.Edge.Commands;

/// <summary>
/// <c>signal-edge bench e2e --cluster 1,2,3</c>: the same messages through clusters of 1, 2, 3… silos (child
/// <c>signal-edge run</c> processes of this build) with a private redis-server and mosquitto on loopback: messages per
/// second from the first publish to the last message processed, the share forwarded between silos, and the silos' CPU
/// per message.
/// </summary>
internal static class ClusterBench
{
    private const int Samples = 600;
    private const double Rate = 12_000;
    private static readonly HttpClient s_http = new() { Timeout = TimeSpan.FromSeconds(5) };

    /// <summary>Runs every cluster size and returns the report.</summary>
    /// <param name="sizes">Silo counts to measure.</param>
    /// <param name="streams">Sensor streams.</param>
    /// <param name="messages">Messages of the measured run (after a warm-up of two per stream).</param>
    /// <param name="shards">Shards of the model.</param>
    public static ClusterReport Run(int[] sizes, int streams, int messages, int shards)
    {
        ArgumentNullException.ThrowIfNull(sizes);
        if (sizes.Length == 0 || sizes.Any(n => n < 1 || n > 16) || streams < 1 || messages < streams || shards < 1)
        {
            throw new ArgumentException("bench e2e --cluster: silo counts 1-16 (e.g. 1,2,3), --streams ≥ 1, --messages ≥ streams, --shards ≥ 1.");
        }

        Console.Error.WriteLine($"generating {streams * 2 + messages:N0} messages of {Samples} samples from {streams:N0} simulated sensors …");
        List<(string Topic, byte[] Payload)> warmup = Messages(streams, 2, 0);
        List<(string Topic, byte[] Payload)> load = Messages(streams, (messages + streams - 1) / streams, 2);
        load = load[..messages];
        var runs = new List<ClusterRun>();
        foreach (int n in sizes)
        {
            runs.Add(RunOnce(n, streams, shards, warmup, load));
            Console.Error.WriteLine($"  {n} silo(s): {runs[^1].MessagesPerSecond:N0} messages/s, {runs[^1].ForwardedShare:P0} forwarded, {runs[^1].CpuMicrosecondsPerMessage:0} µs CPU per message");
        }

        double? scaling = runs.Count > 1 ? Math.Round(runs[^1].MessagesPerSecond / runs[0].MessagesPerSecond, 2) : null;
        return new ClusterReport(Environment.ProcessorCount, streams, Samples, shards, [.. runs], scaling);
    }

    private static List<(string, byte[])> Messages(int streams, int perStream, ulong firstSequence)
    {
        var sources = Enumerable.Range(0, streams).Select(i => new VibrationSource(Rate, 11_000 + i)).ToArray();
        var samples = new float[Samples];
        var list = new List<(string, byte[])>(streams * perStream);
        for (int k = 0; k < perStream; k++)
        {
            ulong sequence = firstSequence + (ulong)k;
            for (int s = 0; s < streams; s++)
            {
                // The warm-up and the run continue each other: the sources restart from their seed, which only
                // changes the noise, not the stream's continuity in sequence and time.
                sources[s].Next(samples, null);
                var payload = new byte[BinaryPayload.HeaderLength + (4 * Samples)];
                BinaryPayload.Write(payload, sequence, 1_790_000_000_000_000_000 + (long)Math.Round(sequence * Samples * 1e9 / Rate), Rate, 1, samples);
                list.Add(($"bench/s{s:D6}/vib", payload));
            }
        }

        return list;
    }

    private static ClusterRun RunOnce(int silos, int streams, int shards, List<(string Topic, byte[] Payload)> warmup, List<(string Topic, byte[] Payload)> load)
    {
        string folder = Directory.CreateTempSubdirectory("signal-cluster-bench-").FullName;
        string model = Path.Combine(folder, "bearing.sigm");
        File.WriteAllBytes(model, Demo.DemoModel.Bundled());
        using var redis = new LocalRedis();
        using var broker = new LocalMosquitto(logAll: false);
        var processes = new List<(Process Process, string Url)>();
        var tail = new System.Collections.Concurrent.ConcurrentQueue<string>();
        void Keep(string? line)
        {
            // The silos' last lines, for the error when one fails.
            if (line is not null)
            {
                tail.Enqueue(line);
                while (tail.Count > 40 && tail.TryDequeue(out _))
                {
                }
            }
        }

        try
        {
            for (int n = 1; n <= silos; n++)
            {
                int http = Signal.Engine.LocalServer.FreePort(), port = Signal.Engine.LocalServer.FreePort();
                string config = Path.Combine(folder, $"silo{n}.json");
                File.WriteAllText(config, string.Create(CultureInfo.InvariantCulture, $$"""
                    {
                      "models": [ { "path": "{{model}}", "name": "bench", "topicTemplate": "bench/{device}/{sensor}" } ],
                      "mqtt": "{{broker.Address}}",
                      "broker": { "clientId": "bench-silo-{{n}}", "cleanSession": true },
                      "engine": { "maxStreams": {{streams + 1000}} },
                      "publish": { "mode": "change" },
                      "http": { "address": "127.0.0.1:{{http}}" },
                      "cluster": { "redis": "{{redis.Address}}", "clusterId": "bench", "siloPort": {{port}}, "shards": {{shards}} }
                    }
                    """));
                var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
                start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "signal-edge.dll"));
                foreach (string a in new[] { "run", "--config", config, "--quiet" })
                {
                    start.ArgumentList.Add(a);
                }

                Process p = Process.Start(start) ?? throw new InvalidOperationException("signal-edge run did not start");
                p.OutputDataReceived += (_, e) => Keep(e.Data);
                p.ErrorDataReceived += (_, e) => Keep(e.Data);
                p.BeginOutputReadLine();
                p.BeginErrorReadLine();
                processes.Add((p, $"http://127.0.0.1:{http}/"));
            }

            Until(() => processes.All(p => Get(p.Url + "readyz") is not null) && Get(processes[0].Url + "api/cluster") is { } c && Silos(c) == silos,
                TimeSpan.FromSeconds(90), $"{silos} silo(s) ready", processes, tail);
            using var publisher = new MosquittoConnection(new MqttOptions { ClientId = "bench-cluster-pub", CleanSession = true, ReceiveCapacity = 100 }.WithAddress(broker.Address));
            publisher.ConnectAsync(TimeSpan.FromSeconds(10)).GetAwaiter().GetResult();
            Publish(publisher, warmup);
            Until(() => Sum(processes, "signal_messages_total") >= warmup.Count, TimeSpan.FromSeconds(120), "the warm-up processed", processes, tail);
            double received0 = Sum(processes, "signal_cluster_received_total"), forwarded0 = Sum(processes, "signal_cluster_forwarded_total");
            TimeSpan cpu0 = Cpu(processes);
            long t0 = Stopwatch.GetTimestamp();
            Publish(publisher, load);
            Until(() => Sum(processes, "signal_messages_total") >= warmup.Count + load.Count, TimeSpan.FromSeconds(600), "the run processed", processes, tail, poll: 50);
            double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            TimeSpan cpu = Cpu(processes) - cpu0;
            double received = Sum(processes, "signal_cluster_received_total") - received0, forwarded = Sum(processes, "signal_cluster_forwarded_total") - forwarded0;
            return new ClusterRun(silos, load.Count, Math.Round(seconds, 2), Math.Round(load.Count / seconds), Math.Round(forwarded / Math.Max(1, received), 3),
                Math.Round(cpu.TotalMicroseconds / load.Count, 1), Math.Round(Sum(processes, "signal_steps_total")));
        }
        finally
        {
            foreach ((Process p, _) in processes)
            {
                if (!p.HasExited)
                {
                    p.Kill(entireProcessTree: true);
                    p.WaitForExit();
                }

                p.Dispose();
            }

            try
            {
                Directory.Delete(folder, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static int Silos(string clusterJson)
    {
        int at = clusterJson.IndexOf("\"silos\":[", StringComparison.Ordinal);
        int end = at < 0 ? -1 : clusterJson.IndexOf(']', at);
        return at < 0 || end < 0 ? 0 : clusterJson[(at + 9)..end].Split(',', StringSplitOptions.RemoveEmptyEntries).Length;
    }

    private static void Publish(MosquittoConnection publisher, List<(string Topic, byte[] Payload)> messages)
    {
        foreach ((string topic, byte[] payload) in messages)
        {
            while (!publisher.Publish(topic, payload, 1))
            {
                Thread.Sleep(5);
            }
        }
    }

    private static TimeSpan Cpu(List<(Process Process, string Url)> processes)
    {
        TimeSpan total = TimeSpan.Zero;
        foreach ((Process p, _) in processes)
        {
            p.Refresh();
            total += p.TotalProcessorTime;
        }

        return total;
    }

    private static double Sum(List<(Process Process, string Url)> processes, string metric)
    {
        double total = 0;
        foreach ((_, string url) in processes)
        {
            string? text = Get(url + "metrics");
            foreach (string line in (text ?? string.Empty).Split('\n'))
            {
                if (line.StartsWith(metric, StringComparison.Ordinal) && line.Length > metric.Length && line[metric.Length] is ' ' or '{')
                {
                    total += double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
                }
            }
        }

        return total;
    }

    private static string? Get(string url)
    {
        try
        {
            using HttpResponseMessage response = s_http.GetAsync(url).GetAwaiter().GetResult();
            return response.IsSuccessStatusCode ? response.Content.ReadAsStringAsync().GetAwaiter().GetResult() : null;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    private static void Until(Func<bool> condition, TimeSpan timeout, string what, List<(Process Process, string Url)> processes, IEnumerable<string> tail, int poll = 100)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (processes.FirstOrDefault(p => p.Process.HasExited) is { Process: not null } dead)
            {
                throw new IOException($"bench e2e --cluster: a silo exited ({dead.Process.ExitCode}) while waiting for {what}; the silos' last lines:\n{string.Join('\n', tail)}");
            }

            if (clock.Elapsed > timeout)
            {
                throw new IOException($"bench e2e --cluster: timed out after {timeout.TotalSeconds} s waiting for {what}; the silos' last lines:\n{string.Join('\n', tail)}");
            }

            Thread.Sleep(poll);
        }
    }
}

/// <summary>One cluster size's run.</summary>
/// <param name="Silos">Silo processes.</param>
/// <param name="Messages">Messages of the measured run.</param>
/// <param name="Seconds">First publish to the last message processed.</param>
/// <param name="MessagesPerSecond">Messages processed per second.</param>
/// <param name="ForwardedShare">Share of the messages delivered to a shard on another silo than the one the broker gave them to.</param>
/// <param name="CpuMicrosecondsPerMessage">The silos' CPU time (user + system) per message, in µs.</param>
/// <param name="Steps">Network steps of the whole run, warm-up included.</param>
internal sealed record ClusterRun(int Silos, int Messages, double Seconds, double MessagesPerSecond, double ForwardedShare, double CpuMicrosecondsPerMessage, double Steps);

/// <summary>The report of <c>bench e2e --cluster</c>.</summary>
/// <param name="Cores">Logical cores of this machine (the silos share them).</param>
/// <param name="Streams">Streams.</param>
/// <param name="SamplesPerMessage">Samples per message (12 kHz, the bundled bearing model).</param>
/// <param name="Shards">Shards.</param>
/// <param name="Runs">One per cluster size.</param>
/// <param name="Scaling">The last size's rate over the first's.</param>
internal sealed record ClusterReport(int Cores, int Streams, int SamplesPerMessage, int Shards, IReadOnlyList<ClusterRun> Runs, double? Scaling);

/// <summary>The report's JSON, source-generated.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
[JsonSerializable(typeof(ClusterReport))]
internal sealed partial class ClusterBenchJson : JsonSerializerContext;
