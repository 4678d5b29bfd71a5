using System.Text.Json.Serialization;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Signal.Engine.Data;
using Signal.Engine.Mqtt;
using Signal.Engine.Payloads;

namespace Signal.Edge.Commands;

/// <summary>
/// <c>signal-edge bench daemon</c>: the daemon's resource goals as users meet them. Each round starts
/// <c>signal-edge run</c> as a child process against a private mosquitto, times process start to the first 200 from
/// <c>/readyz</c>, feeds N streams one second of data each, lets it go idle and reads its resident set from /proc.
/// </summary>
internal static partial class DaemonBench
{

    public static Command Create()
    {
        var streams = new Option<int>("--streams") { Description = "Streams fed before the idle RSS is read.", DefaultValueFactory = _ => 100 };
        var rounds = new Option<int>("--rounds") { Description = "Daemon starts measured.", DefaultValueFactory = _ => 3 };
        var idle = new Option<double>("--idle") { Description = "Seconds of idleness before RSS is read.", DefaultValueFactory = _ => 5 };
        var env = new Option<string[]>("--env") { Description = "NAME=VALUE set in the daemon's environment, to try a runtime knob (e.g. DOTNET_GCgen0size=0x400000); repeatable." };
        var soakOption = new Option<double>("--soak") { Description = "After the idle reading, feed every stream in real time (12 kHz, a message per 50 ms) for this many seconds and report RSS every 5 s, its peak and its growth per hour after the first minute. Default 0: off." };
        var aot = new Option<FileInfo?>("--aot") { Description = "A NativeAOT build of signal-edge (scripts/publish.sh linux-x64-aot): every round starts it too, right after this build, and the report gives both (goals for it: ready ≤ 0.2 s, idle RSS ≤ 40 MB)." };
        var breakdown = new Option<bool>("--breakdown") { Description = "Also report where the idle resident set lies: the largest mappings of /proc/PID/smaps (files, GC heap and other anonymous memory, JIT code)." };
        var command = new Command("daemon", """
            Measures the edge daemon against its goals (idle RSS with a model and 100 streams ≤ 80 MB, start to ready
            ≤ 1.5 s) as shipped (the runtime settings in signal-edge.runtimeconfig.json; DOTNET_* variables of this
            shell are not passed on, --env adds some): starts 'signal-edge run' with the bundled demo model against a
            private mosquitto, times process start → /readyz 200, feeds every stream one second of 12 kHz vibration,
            waits, and reads VmRSS. --soak S then keeps every stream fed in real time for S seconds and reports the
            resident set under traffic and once idle again. Prints JSON.

            Example:
              signal-edge bench daemon
              signal-edge bench daemon --rounds 1 --soak 600 --env DOTNET_GCgen0size=0x1000000 --breakdown
              signal-edge bench daemon --aot dist/linux-x64-aot/signal-edge
            """)
        {
            streams, rounds, idle, env, breakdown, soakOption, aot,
        };
        command.SetAction(parse => CommandErrors.Run(() =>
        {
            int n = parse.GetValue(streams), r = parse.GetValue(rounds);
            double quiet = parse.GetValue(idle);
            if (n < 1 || r < 1 || quiet < 0 || !(parse.GetValue(soakOption) >= 0))
            {
                throw new ArgumentException("bench daemon: need --streams ≥ 1, --rounds ≥ 1, --idle ≥ 0, --soak ≥ 0.");
            }

            string[] variables = parse.GetValue(env) ?? [];
            if (variables.FirstOrDefault(v => v.IndexOf('=', StringComparison.Ordinal) < 1) is { } bad)
            {
                throw new ArgumentException($"bench daemon: --env '{bad}' is not NAME=VALUE.");
            }

            if (!LocalMosquitto.IsInstalled)
            {
                throw new ArgumentException("bench daemon: mosquitto is not installed (apt install mosquitto).");
            }

            string? aotBinary = parse.GetValue(aot)?.FullName;
            if (aotBinary is not null && !File.Exists(aotBinary))
            {
                throw new ArgumentException($"bench daemon: --aot '{aotBinary}' does not exist (build it with scripts/publish.sh linux-x64-aot).");
            }

            var results = new List<Round>();
            var aotResults = new List<Round>();
            for (int i = 0; i < r; i++)
            {
                // Interleaved: this build, then the AOT one, so both see the same machine load.
                results.Add(RunRound(null, n, quiet, variables, parse.GetValue(breakdown), parse.GetValue(soakOption)).GetAwaiter().GetResult());
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"round {i + 1}: ready in {results[^1].StartToReadySeconds:0.000} s, idle RSS {results[^1].IdleRssMb:0.0} MB"));
                if (aotBinary is not null)
                {
                    aotResults.Add(RunRound(aotBinary, n, quiet, variables, parse.GetValue(breakdown), parse.GetValue(soakOption)).GetAwaiter().GetResult());
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"round {i + 1} (AOT): ready in {aotResults[^1].StartToReadySeconds:0.000} s, idle RSS {aotResults[^1].IdleRssMb:0.0} MB"));
                }
            }

            Console.WriteLine(JsonSerializer.Serialize(new Summary(
                n,
                variables.Length == 0 ? "as shipped (signal-edge.runtimeconfig.json)" : "as shipped, with " + string.Join(' ', variables),
                results,
                results.Min(x => x.StartToReadySeconds),
                Median(results.Select(x => x.StartToReadySeconds)),
                Median(results.Select(x => x.IdleRssMb)),
                GoalStartToReadyS: 1.5,
                GoalIdleRssMb: 80,
                aotBinary is null ? null : new AotSummary(aotBinary, aotResults, Median(aotResults.Select(x => x.StartToReadySeconds)), Median(aotResults.Select(x => x.IdleRssMb)),
                    Median(aotResults.Select(x => x.StartToReadySeconds)) / Median(results.Select(x => x.StartToReadySeconds)), Median(aotResults.Select(x => x.IdleRssMb)) / Median(results.Select(x => x.IdleRssMb)),
                    GoalStartToReadyS: 0.2, GoalIdleRssMb: 40)), DaemonBenchJson.Default.Summary));
            return 0;
        }));
        return command;
    }

    private static double Median(IEnumerable<double> values)
    {
        double[] v = [.. values.Order()];
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[(v.Length / 2) - 1] + v[v.Length / 2]) / 2;
    }

    private static async Task<Round> RunRound(string? executable, int streams, double idle, string[] variables, bool breakdown, double soak)
    {
        using var broker = new LocalMosquitto(logAll: false);
        string folder = Directory.CreateTempSubdirectory("signal-bench-daemon-").FullName;
        string model = Path.Combine(folder, "demo-bearing.sigm");
        File.WriteAllBytes(model, Demo.DemoModel.Bundled());
        int port = Signal.Engine.LocalServer.FreePort();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var start = new ProcessStartInfo(executable ?? Environment.ProcessPath!) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        if (executable is null && Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet")
        {
            start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "signal-edge.dll"));
        }

        foreach (string a in new[] { "run", "--model", model, "--mqtt", broker.Address, "--http", $"127.0.0.1:{port}", "--quiet", "--publish", "change" })
        {
            start.ArgumentList.Add(a);
        }

        foreach (string key in start.Environment.Keys.Where(k => k.StartsWith("DOTNET_", StringComparison.Ordinal) || k.StartsWith("COMPlus_", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(key);
        }

        foreach (string variable in variables)
        {
            int eq = variable.IndexOf('=', StringComparison.Ordinal);
            start.Environment[variable[..eq]] = variable[(eq + 1)..];
        }

        var clock = Stopwatch.StartNew();
        using Process daemon = Process.Start(start)!;
        daemon.BeginOutputReadLine();
        daemon.BeginErrorReadLine();
        try
        {
            double ready = await Until(async () => (await http.GetAsync($"http://127.0.0.1:{port}/readyz").ConfigureAwait(false)).StatusCode == HttpStatusCode.OK, clock, daemon).ConfigureAwait(false);
            long rssReady = Rss(daemon.Id);

            // One second of data for every stream, then quiet.
            var options = new MqttOptions { ClientId = "bench-daemon-feed", CleanSession = true }.WithAddress(broker.Address);
            await using var feed = new MosquittoConnection(options);
            await feed.ConnectAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            var samples = new float[600];
            var payload = new byte[BinaryPayload.HeaderLength + (4 * samples.Length)];
            VibrationSource[] sources = [.. Enumerable.Range(0, streams).Select(s => new VibrationSource(12_000, s))];
            long t0 = (DateTimeOffset.UtcNow.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100;
            async Task Send(ulong m)
            {
                // Message m of every stream: 600 samples, 50 ms of 12 kHz vibration.
                for (int s = 0; s < streams; s++)
                {
                    sources[s].Next(samples, null);
                    BinaryPayload.Write(payload, m, t0 + (long)(m * 50_000_000), 12_000, 1, samples);
                    while (!feed.Publish($"sensors/bench{s}/vib", payload, 1))
                    {
                        await Task.Delay(10).ConfigureAwait(false);
                    }
                }
            }

            for (ulong m = 0; m < 20; m++)
            {
                await Send(m).ConfigureAwait(false);
            }

            async Task<string> Metrics() => await http.GetStringAsync($"http://127.0.0.1:{port}/metrics").ConfigureAwait(false);
            static double Metric(string metrics, string prefix) => double.Parse(metrics.Split('\n').First(l => l.StartsWith(prefix, StringComparison.Ordinal)).Split(' ')[1], CultureInfo.InvariantCulture);
            await Until(async () => Metric(await Metrics().ConfigureAwait(false), "signal_messages_total{") >= 20 * streams, clock, daemon).ConfigureAwait(false);
            await Task.Delay(TimeSpan.FromSeconds(idle)).ConfigureAwait(false);
            string metrics = await Metrics().ConfigureAwait(false);
            long rss = Rss(daemon.Id);
            var round = new Round(ready, rssReady / 1048576.0, rss / 1048576.0, (int)Metric(metrics, "signal_streams{"), Metric(metrics, "signal_managed_heap_bytes ") / 1048576.0,
                Metric(metrics, "signal_gc_committed_bytes ") / 1048576.0, breakdown ? Mappings(daemon.Id) : null);
            if (soak <= 0)
            {
                return round;
            }

            // Steady traffic in real time (every stream one message per 50 ms), the resident set sampled every 5 s.
            string before = await Metrics().ConfigureAwait(false);
            var samplesMb = new List<(double Seconds, double Mb)>();
            var paced = Stopwatch.StartNew();
            ulong next = 20;
            double lastSample = 0;
            while (paced.Elapsed.TotalSeconds < soak)
            {
                await Send(next++).ConfigureAwait(false);
                double due = (next - 20) * 0.05;
                if (due > paced.Elapsed.TotalSeconds)
                {
                    await Task.Delay(TimeSpan.FromSeconds(due - paced.Elapsed.TotalSeconds)).ConfigureAwait(false);
                }

                if (paced.Elapsed.TotalSeconds - lastSample >= 5)
                {
                    lastSample = paced.Elapsed.TotalSeconds;
                    samplesMb.Add((lastSample, Rss(daemon.Id) / 1048576.0));
                }
            }

            long sent = (long)next * streams;
            await Until(async () => Metric(await Metrics().ConfigureAwait(false), "signal_messages_total{") >= sent, clock, daemon).ConfigureAwait(false);
            metrics = await Metrics().ConfigureAwait(false);

            // Growth: the least-squares slope of the samples after the first minute (start-up and JIT done), MB per hour.
            (double Seconds, double Mb)[] settled = [.. samplesMb.Where(x => x.Seconds >= Math.Min(60, soak / 2))];
            double? slope = null;
            if (settled.Length >= 3)
            {
                double mt = settled.Average(x => x.Seconds), mr = settled.Average(x => x.Mb);
                slope = settled.Sum(x => (x.Seconds - mt) * (x.Mb - mr)) / settled.Sum(x => (x.Seconds - mt) * (x.Seconds - mt)) * 3600;
            }

            // Traffic stops: after the idle collection, what is still resident is what the daemon keeps (a leak would stay).
            await Task.Delay(TimeSpan.FromSeconds(Math.Max(idle, 5))).ConfigureAwait(false);
            string after = await Metrics().ConfigureAwait(false);
            double rssAfter = Rss(daemon.Id) / 1048576.0, heapAfter = Metric(after, "signal_managed_heap_bytes ") / 1048576.0, committedAfter = Metric(after, "signal_gc_committed_bytes ") / 1048576.0;
            return round with
            {
                Soak = new SoakResult(soak, sent - (20L * streams), (sent - (20L * streams)) / soak, Metric(metrics, "signal_steps_total{"),
                    [.. samplesMb.Select(x => Math.Round(x.Mb, 1))], samplesMb.Max(x => x.Mb), slope, Metric(metrics, "signal_managed_heap_bytes ") / 1048576.0,
                    (Metric(metrics, "signal_gc_allocated_bytes_total ") - Metric(before, "signal_gc_allocated_bytes_total ")) / (sent - (20L * streams)),
                    Metric(metrics, "signal_gc_collections_total{generation=\"0\"}") - Metric(before, "signal_gc_collections_total{generation=\"0\"}"),
                    Metric(metrics, "signal_gc_collections_total{generation=\"2\"}") - Metric(before, "signal_gc_collections_total{generation=\"2\"}"),
                    rssAfter, heapAfter, committedAfter, breakdown ? Mappings(daemon.Id) : null),
            };
        }
        finally
        {
            daemon.Kill(entireProcessTree: true);
            await daemon.WaitForExitAsync().ConfigureAwait(false);
            Directory.Delete(folder, recursive: true);
        }
    }

    private static async Task<double> Until(Func<Task<bool>> condition, Stopwatch clock, Process daemon)
    {
        TimeSpan deadline = clock.Elapsed + TimeSpan.FromSeconds(60);
        while (clock.Elapsed < deadline)
        {
            if (daemon.HasExited)
            {
                throw new InvalidOperationException($"the daemon exited with {daemon.ExitCode}.");
            }

            try
            {
                if (await condition().ConfigureAwait(false))
                {
                    return clock.Elapsed.TotalSeconds;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }

            await Task.Delay(10).ConfigureAwait(false);
        }

        throw new TimeoutException("the daemon did not get there within 60 s.");
    }

    /// <summary>VmRSS of a process, from /proc (Linux).</summary>
    private static long Rss(int pid)
    {
        string line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>
    /// The resident set of a process by mapping (file name, <c>[heap]</c>, <c>[anon]</c>, the JIT's
    /// <c>memfd:doublemapper</c>), in MB, the largest 15 and the rest, from /proc/PID/smaps (Linux).
    /// </summary>
    private static Dictionary<string, double> Mappings(int pid)
    {
        var kb = new Dictionary<string, long>(StringComparer.Ordinal);
        string name = "[anon]";
        foreach (string line in File.ReadLines($"/proc/{pid}/smaps"))
        {
            string[] parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length >= 5 && parts[0].Contains('-', StringComparison.Ordinal) && !parts[0].EndsWith(':'))
            {
                name = parts.Length > 5 ? Path.GetFileName(string.Join(' ', parts[5..])) : "[anon]";
            }
            else if (parts.Length >= 2 && parts[0] == "Rss:")
            {
                kb[name] = kb.GetValueOrDefault(name) + long.Parse(parts[1], CultureInfo.InvariantCulture);
            }
        }

        KeyValuePair<string, long>[] sorted = [.. kb.OrderByDescending(p => p.Value)];
        var top = sorted.Take(15).ToDictionary(p => p.Key, p => Math.Round(p.Value / 1024.0, 2), StringComparer.Ordinal);
        top["(the rest)"] = Math.Round(sorted.Skip(15).Sum(p => p.Value) / 1024.0, 2);
        return top;
    }

    private sealed record Round(double StartToReadySeconds, double ReadyRssMb, double IdleRssMb, int Streams, double IdleManagedHeapMb, double IdleGcCommittedMb, Dictionary<string, double>? IdleRssByMapping)
    {
        public SoakResult? Soak { get; init; }
    }

    /// <summary>
    /// Steady traffic after the idle reading: messages, steps, RSS every 5 s, its peak and its growth after the first
    /// minute, allocation and collections; then RSS and managed heap once idle again.
    /// </summary>
    private sealed record SoakResult(double Seconds, long Messages, double MessagesPerSecond, double StepsTotal, double[] RssMbEvery5S, double PeakRssMb, double? RssGrowthMbPerHour, double ManagedHeapMb, double AllocatedBytesPerMessage, double Gen0Collections, double Gen2Collections, double IdleRssAfterMb, double IdleManagedHeapAfterMb, double IdleGcCommittedAfterMb, Dictionary<string, double>? IdleRssAfterByMapping);

    private sealed record Summary(int Streams, string Environment, List<Round> Rounds, double BestStartToReadyS, double MedianStartToReadyS, double MedianIdleRssMb, double GoalStartToReadyS, double GoalIdleRssMb, AotSummary? Aot);

    private sealed record AotSummary(string Binary, List<Round> Rounds, double MedianStartToReadyS, double MedianIdleRssMb, double StartToReadyOfJit, double IdleRssOfJit, double GoalStartToReadyS, double GoalIdleRssMb);

    /// <summary>The report's JSON, source-generated (snake_case, indented): works in the NativeAOT build too.</summary>
    [JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
    [JsonSerializable(typeof(Summary))]
    private sealed partial class DaemonBenchJson : JsonSerializerContext;
}
