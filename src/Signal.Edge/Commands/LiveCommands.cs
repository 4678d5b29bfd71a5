using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using Signal.Engine.Data;
using Signal.Engine.Live;
using Signal.Engine.Mqtt;
using Signal.Engine.Payloads;

namespace Signal.Edge.Commands;

/// <summary>The configuration file of <c>signal-edge run</c> (<c>edge.json</c>); flags override it.</summary>
internal sealed class EdgeConfig
{
    public string? Model { get; set; }

    public string? Mqtt { get; set; }

    public string? Topic { get; set; }

    public int Qos { get; set; } = 1;

    public MqttOptions Broker { get; set; } = new();

    public EngineOptions Engine { get; set; } = new();

    public PublishOptions Publish { get; set; } = new();

    /// <summary>InfluxDB storage, or null for none.</summary>
    public Signal.Engine.Storage.InfluxOptions? Influx { get; set; }

    private static readonly JsonSerializerOptions s_json = new()
    {
        PropertyNameCaseInsensitive = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    public static EdgeConfig Load(string? path)
    {
        if (path is null)
        {
            return new EdgeConfig();
        }

        try
        {
            return JsonSerializer.Deserialize<EdgeConfig>(File.ReadAllText(path), s_json) ?? new EdgeConfig();
        }
        catch (JsonException e)
        {
            // The message names the JSON path of the bad field, e.g. $.engine.maxBatch.
            throw new ArgumentException($"config '{path}': {e.Path}: {e.Message}", e);
        }
    }
}

/// <summary><c>signal-edge run</c> and <c>signal-edge simulate</c>: the live engine over MQTT.</summary>
internal static class LiveCommands
{
    public static Command CreateRun()
    {
        var model = new Option<FileInfo>("--model", "-m") { Description = "The model file (.sigm)." };
        var mqtt = new Option<string>("--mqtt") { Description = "Broker address, mqtt://host:port or mqtts://host:port. Default mqtt://127.0.0.1:1883." };
        var topic = new Option<string>("--topic", "-t") { Description = "Subscription filter, e.g. 'sensors/#'. Default: the filter of the topic template." };
        var template = new Option<string>("--template") { Description = "Topic → stream id template. Default sensors/{device}/{sensor}." };
        var publish = new Option<string>("--publish") { Description = "When class results are published: every, change, or a number N (every N steps and on change). Default every." };
        var prefix = new Option<string>("--prefix") { Description = "Topic prefix of results. Default signal/." };
        var deadLetter = new Option<string>("--dead-letter") { Description = "Topic for rejected payloads with the reason (none by default)." };
        var config = new Option<FileInfo>("--config", "-c") { Description = "A JSON configuration file (see docs/engine.md); flags override it." };
        var duration = new Option<double?>("--duration") { Description = "Stop after this many seconds (default: until Ctrl-C or SIGTERM)." };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "No per-stream lines on the console, only the periodic summary." };
        var influx = new Option<string>("--influx") { Description = "Store everything in InfluxDB: http://host:8086/<database> (1.x), file:///path.lp for a line-protocol file, or configure \"influx\" in the config file (2.x/3.x, spool, batching)." };
        var spool = new Option<string>("--spool") { Description = "Folder of the InfluxDB disk spool (kept across restarts). Default: none, or the config file's influx.spoolFolder." };
        var command = new Command("run", """
            Runs the live engine: subscribes to sensor topics, classifies every stream step by step and publishes
            classes, anomaly scores and alerts on MQTT (and prints class changes and alerts here).

            Example:
              signal-edge run --model bearing.sigm --mqtt mqtt://127.0.0.1:1883 --topic 'sensors/#' --publish change
            """)
        {
            model, mqtt, topic, template, publish, prefix, deadLetter, config, duration, quiet, influx, spool,
        };
        command.SetAction(parse => CommandErrors.Run(() =>
        {
            EdgeConfig cfg = EdgeConfig.Load(parse.GetValue(config)?.FullName);
            cfg.Model = parse.GetValue(model)?.FullName ?? cfg.Model ?? throw new ArgumentException("--model: no model given (flag or \"model\" in the config file).");
            cfg.Mqtt = parse.GetValue(mqtt) ?? cfg.Mqtt ?? "mqtt://127.0.0.1:1883";
            cfg.Topic = parse.GetValue(topic) ?? cfg.Topic;
            cfg.Engine.TopicTemplate = parse.GetValue(template) ?? cfg.Engine.TopicTemplate;
            cfg.Publish.Prefix = parse.GetValue(prefix) ?? cfg.Publish.Prefix;
            cfg.Publish.DeadLetterTopic = parse.GetValue(deadLetter) ?? cfg.Publish.DeadLetterTopic;
            if (parse.GetValue(publish) is { } mode)
            {
                (cfg.Publish.Mode, cfg.Publish.EveryN) = mode switch
                {
                    "every" => (PublishMode.Every, cfg.Publish.EveryN),
                    "change" => (PublishMode.Change, cfg.Publish.EveryN),
                    _ when int.TryParse(mode, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0 => (PublishMode.EveryN, n),
                    _ => throw new ArgumentException($"--publish: '{mode}' is not every, change or a positive number of steps."),
                };
            }

            if (parse.GetValue(influx) is { } influxUrl)
            {
                cfg.Influx = (cfg.Influx ?? new Signal.Engine.Storage.InfluxOptions()).WithAddress(influxUrl);
            }

            if (parse.GetValue(spool) is { } spoolFolder)
            {
                (cfg.Influx ?? throw new ArgumentException("--spool: no InfluxDB is configured (--influx or \"influx\" in the config file).")).SpoolFolder = spoolFolder;
            }

            cfg.Influx?.Validate();
            double? seconds = parse.GetValue(duration);
            return Run(cfg, seconds is { } s ? TimeSpan.FromSeconds(s) : null, parse.GetValue(quiet));
        }));
        return command;
    }

    private static int Run(EdgeConfig cfg, TimeSpan? duration, bool quiet)
    {
        using ILoggerFactory logs = LoggerFactory.Create(b => b.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; }).SetMinimumLevel(LogLevel.Information));
        ILogger logger = logs.CreateLogger("signal-edge");
        EngineModel model = EngineModel.Load(cfg.Model!);
        using var engine = new SignalEngine(model, cfg.Engine, logger: logger);
        MqttOptions broker = cfg.Broker.WithAddress(cfg.Mqtt!);
        broker.WillTopic ??= cfg.Publish.StatusTopic;
        cfg.Publish.Validate();
        using var stop = new CancellationTokenSource();
        if (duration is { } d)
        {
            stop.CancelAfter(d);
        }

        void OnCancel(object? sender, ConsoleCancelEventArgs e)
        {
            e.Cancel = true;
            stop.Cancel();
        }

        Console.CancelKeyPress += OnCancel;
        using PosixSignalRegistration sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            stop.Cancel();
        });
        try
        {
            RunAsync(cfg, model, engine, broker, logger, quiet, stop.Token).GetAwaiter().GetResult();
        }
        finally
        {
            Console.CancelKeyPress -= OnCancel;
        }

        EngineCounters c = engine.Counters;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"stopped: {c.Messages:N0} messages, {c.Steps:N0} steps in {c.Batches:N0} batches, {c.Alerts:N0} alert changes, {c.RejectedTotal:N0} rejected ({Reasons(c.Rejected)}), {c.Duplicates:N0} duplicates, resets: {Reasons(c.Resets)}"));
        return 0;
    }

    private static async Task RunAsync(EdgeConfig cfg, EngineModel model, SignalEngine engine, MqttOptions broker, ILogger logger, bool quiet, CancellationToken stop)
    {
        await using var connection = new MosquittoConnection(broker, logger);
        string filter = cfg.Topic ?? engine.TopicFilter;
        connection.Subscribe(filter, cfg.Qos);
        ResultPublisher publisher = new(engine, connection, cfg.Publish);
        Signal.Engine.Storage.InfluxWriter? influx = cfg.Influx is null ? null : new Signal.Engine.Storage.InfluxWriter(cfg.Influx, logger);
        using Signal.Engine.Storage.InfluxSink? sink = influx is null ? null : new Signal.Engine.Storage.InfluxSink(engine, influx, e => Console.Error.WriteLine("influx: " + e.Message));
        var lastLabel = new Dictionary<string, string>(StringComparer.Ordinal);
        using IDisposable changes = engine.Classifications.Subscribe(c =>
        {
            if (!quiet && (!lastLabel.TryGetValue(c.Stream, out string? last) || last != c.Label))
            {
                lastLabel[c.Stream] = c.Label;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{Time(c.TimestampNs)} {c.Stream}: {c.Label} ({c.Confidence:P0})"));
            }
        });
        using IDisposable alerts = engine.Alerts.Subscribe(a =>
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{Time(a.TimestampNs)} {a.Stream}: ALERT {a.Rule} {a.State.ToString().ToUpperInvariant()} [{a.Severity}] {a.Reason}{(a.DominantBand is null ? "" : ", dominant band " + a.DominantBand)}")));
        Console.WriteLine($"model {model.Name}: {model.Network.Architecture.Layers.Count} layer(s), {model.Labels.Count} classes ({string.Join(", ", model.Labels)}), {(model.Pipeline is null ? $"{model.Channels} raw input(s) per step" : $"{model.Pipeline.OutputLength} features per {model.Pipeline.Spec.FrameLength}-sample frame")}");
        Console.WriteLine($"subscribing to '{filter}' on {broker} (stream id from '{cfg.Engine.TopicTemplate}'); results under {cfg.Publish.Prefix}{(cfg.Influx is null ? "" : $"; storing in InfluxDB {cfg.Influx}")}");
        try
        {
            await connection.ConnectAsync(TimeSpan.FromSeconds(10), stop).ConfigureAwait(false);
        }
        catch (MqttException e)
        {
            Console.Error.WriteLine("warning: " + e.Message);
        }
        catch (OperationCanceledException)
        {
        }

        Task loop = EngineRunner.RunAsync(engine, connection, stop);
        var clock = Stopwatch.StartNew();
        long lastSteps = 0;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(10), stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            EngineCounters c = engine.Counters;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{clock.Elapsed:hh\\:mm\\:ss}] {(connection.IsConnected ? "connected" : "DISCONNECTED")}, {engine.StreamCount:N0} streams, {(c.Steps - lastSteps) / 10.0:N0} steps/s, {c.Messages:N0} messages, {c.RejectedTotal:N0} rejected, {c.Alerts:N0} alert changes{(influx is null ? "" : $", influx {influx.Counters.Written:N0} written, {influx.SpoolPoints:N0} spooled")}"));
            lastSteps = c.Steps;
        }

        await loop.ConfigureAwait(false);
        engine.Flush();
        await publisher.DisposeAsync().ConfigureAwait(false);
        if (influx is not null)
        {
            sink?.Dispose();
            await influx.DisposeAsync().ConfigureAwait(false);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"influx: {influx.Counters.Written:N0} points written, {influx.Counters.Retries:N0} retries, {influx.Counters.DeadLettered:N0} dead-lettered, {influx.Counters.Dropped:N0} dropped, {influx.SpoolPoints:N0} left in the spool"));
        }

        // A clean disconnect suppresses the last will, so say "offline" ourselves.
        connection.Publish(cfg.Publish.StatusTopic, "offline"u8, 1, retain: true);
        await Task.Delay(100, CancellationToken.None).ConfigureAwait(false);
    }

    public static Command CreateSimulate()
    {
        var mqtt = new Option<string>("--mqtt") { Description = "Broker address. Default mqtt://127.0.0.1:1883." };
        var streams = new Option<int>("--streams", "-n") { Description = "Number of simulated sensors.", DefaultValueFactory = _ => 4 };
        var rate = new Option<double>("--rate") { Description = "Sample rate in Hz.", DefaultValueFactory = _ => 12_000 };
        var chunk = new Option<int>("--chunk") { Description = "Samples per message.", DefaultValueFactory = _ => 600 };
        var faults = new Option<string>("--faults") { Description = "Fault schedule: kind@start-end[:streams], comma-separated, seconds; kinds inner, outer, ball. Example: 'outer@10-20:0-1,inner@30-40'." };
        var duration = new Option<double?>("--duration") { Description = "Stop after this many seconds (default: until Ctrl-C)." };
        var prefix = new Option<string>("--topic-prefix") { Description = "Messages go to {prefix}/sim{i}/vib.", DefaultValueFactory = _ => "sensors" };
        var format = new Option<string>("--format") { Description = "binary or json.", DefaultValueFactory = _ => "binary" };
        var qos = new Option<int>("--qos") { Description = "QoS of the sensor messages.", DefaultValueFactory = _ => 1 };
        var seed = new Option<int>("--seed") { Description = "Random seed.", DefaultValueFactory = _ => 1 };
        var command = new Command("simulate", """
            Publishes synthetic bearing vibration from N sensors in real time, with faults switched on and off by a
            schedule; for demos and load tests. Each message carries a sequence number, timestamp and rate.

            Example:
              signal-edge simulate --mqtt mqtt://127.0.0.1:1883 --streams 8 --rate 12000 --chunk 600 --faults 'outer@10-20:0-3' --duration 60
            """)
        {
            mqtt, streams, rate, chunk, faults, duration, prefix, format, qos, seed,
        };
        command.SetAction(parse => CommandErrors.Run(() =>
        {
            int n = parse.GetValue(streams), size = parse.GetValue(chunk), q = parse.GetValue(qos);
            double hz = parse.GetValue(rate);
            string fmt = parse.GetValue(format)!;
            if (n < 1 || size < 1 || !(hz > 0) || q is < 0 or > 2 || fmt is not ("binary" or "json"))
            {
                throw new ArgumentException("simulate: need --streams ≥ 1, --chunk ≥ 1, --rate > 0, --qos 0-2 and --format binary or json.");
            }

            IReadOnlyList<FaultWindow> schedule = parse.GetValue(faults) is { } f ? FaultWindow.ParseSchedule(f) : [];
            var options = new MqttOptions { ClientId = $"signal-simulate-{Environment.ProcessId}", CleanSession = true }.WithAddress(parse.GetValue(mqtt) ?? "mqtt://127.0.0.1:1883");
            using var stop = new CancellationTokenSource();
            if (parse.GetValue(duration) is { } d)
            {
                stop.CancelAfter(TimeSpan.FromSeconds(d));
            }

            void OnCancel(object? sender, ConsoleCancelEventArgs e)
            {
                e.Cancel = true;
                stop.Cancel();
            }

            Console.CancelKeyPress += OnCancel;
            try
            {
                long sent = Simulate(options, n, hz, size, schedule, parse.GetValue(prefix)!, fmt == "json", q, parse.GetValue(seed), stop.Token).GetAwaiter().GetResult();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"published {sent:N0} messages ({sent * size:N0} samples) from {n} sensors"));
            }
            finally
            {
                Console.CancelKeyPress -= OnCancel;
            }

            return 0;
        }));
        return command;
    }

    private static async Task<long> Simulate(MqttOptions options, int streams, double rate, int chunk, IReadOnlyList<FaultWindow> schedule, string prefix, bool json, int qos, int seed, CancellationToken stop)
    {
        await using var connection = new MosquittoConnection(options);
        await connection.ConnectAsync(TimeSpan.FromSeconds(10), stop).ConfigureAwait(false);
        VibrationSource[] sources = [.. Enumerable.Range(0, streams).Select(i => new VibrationSource(rate, seed + i))];
        string[] topics = [.. Enumerable.Range(0, streams).Select(i => $"{prefix}/sim{i}/vib")];
        var samples = new float[chunk];
        var payload = new byte[BinaryPayload.HeaderLength + (4 * chunk)];
        long startNs = (DateTimeOffset.UtcNow.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100;
        var clock = Stopwatch.StartNew();
        long sent = 0;
        string?[] state = new string?[streams];
        for (ulong message = 0; !stop.IsCancellationRequested; message++)
        {
            TimeSpan due = TimeSpan.FromSeconds((double)message * chunk / rate);
            if (due > clock.Elapsed)
            {
                try
                {
                    await Task.Delay(due - clock.Elapsed, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }

            for (int s = 0; s < streams; s++)
            {
                BearingFault? fault = schedule.FirstOrDefault(w => due >= w.Start && due < w.End && (w.Streams is null || w.Streams.Contains(s)))?.Fault;
                if (state[s] != fault?.Name)
                {
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{due.TotalSeconds,7:0.0} s  sim{s}: {fault?.Name ?? "normal"}"));
                    state[s] = fault?.Name;
                }

                sources[s].Next(samples, fault);
                long ts = startNs + (long)Math.Round((double)message * chunk * 1e9 / rate);
                ReadOnlyMemory<byte> body = json
                    ? System.Text.Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{{\"ts\":{ts / 1_000_000},\"rate\":{rate},\"seq\":{message},\"values\":[{string.Join(",", samples.Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}]}}"))
                    : payload.AsMemory(0, BinaryPayload.Write(payload, message, ts, rate, 1, samples));

                // Publish refuses while the broker is away; keep the message and retry so the stream has no gap.
                while (!connection.Publish(topics[s], body.Span, qos) && !stop.IsCancellationRequested)
                {
                    await Task.Delay(100, CancellationToken.None).ConfigureAwait(false);
                }

                sent++;
            }
        }

        return sent;
    }

    private static string Time(long ns) => DateTimeOffset.FromUnixTimeMilliseconds(ns / 1_000_000).ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture);

    private static string Reasons(IReadOnlyDictionary<string, long> counts) =>
        counts.Count == 0 ? "none" : string.Join(", ", counts.Select(kv => $"{kv.Key} {kv.Value:N0}"));

    public static Command CreateStreamsBench()
    {
        var counts = new Option<string>("--streams") { Description = "Comma-separated stream counts.", DefaultValueFactory = _ => "10000,100000" };
        var command = new Command("streams", """
            Measures the memory of idle streams in the live engine: a 2-layer LSTM (hidden 64) behind the default
            feature pipeline on 1024-sample frames; each stream gets one 512-sample message (state created, framer
            half full), then the managed heap and the process RSS are read after a full collection. Prints JSON.
            """)
        {
            counts,
        };
        command.SetAction(parse => CommandErrors.Run(() =>
        {
            int[] ns = [.. parse.GetValue(counts)!.Split(',').Select(t => int.Parse(t, CultureInfo.InvariantCulture))];
            EngineModel model = BenchModel(12_000, 1024, 512);
            var results = new List<string>();
            var payload = new byte[BinaryPayload.HeaderLength + (4 * 512)];
            var samples = new float[512];
            new VibrationSource(12_000, 1).Next(samples, null);
            foreach (int n in ns)
            {
                (long heap0, long rss0) = Memory();
                var engine = new SignalEngine(model, new EngineOptions { MaxStreams = n });
                for (int i = 0; i < n; i++)
                {
                    BinaryPayload.Write(payload, 0, 1_700_000_000_000_000_000, 12_000, 1, samples);
                    engine.Process(string.Create(CultureInfo.InvariantCulture, $"sensors/s{i}/vib"), payload);
                }

                (long heap1, long rss1) = Memory();
                results.Add(string.Create(CultureInfo.InvariantCulture, $"{{\"streams\":{n},\"heap_bytes_per_stream\":{(heap1 - heap0) / (double)n:0},\"rss_bytes_per_stream\":{(rss1 - rss0) / (double)n:0},\"rss_mb\":{rss1 / 1048576.0:0.0}}}"));
                GC.KeepAlive(engine);
                engine.Dispose();
            }

            Console.WriteLine("[" + string.Join(",\n ", results) + "]");
            return 0;
        }));
        return command;
    }

    /// <summary>
    /// The benchmarks' model: a randomly initialised 2-layer LSTM (hidden 64, 4 classes) behind the default feature
    /// pipeline on frames of <paramref name="frame"/> samples.
    /// </summary>
    internal static EngineModel BenchModel(double rate, int frame, int hop)
    {
        var spec = new Signal.Features.Pipeline.FeatureSpec { SampleRate = rate, FrameLength = frame, Hop = hop, Features = Signal.Features.Pipeline.FeatureRequest.ParseList(FeatureSequences.DefaultFeatures) };
        var pipeline = new Signal.Features.Pipeline.FeaturePipeline(spec);
        var architecture = new Signal.Models.Networks.ModelArchitecture
        {
            InputSize = pipeline.OutputLength,
            Classes = 4,
            Layers = [new() { Kind = Signal.Models.Networks.CellKind.Lstm, HiddenSize = 64 }, new() { Kind = Signal.Models.Networks.CellKind.Lstm, HiddenSize = 64 }],
        };
        var network = Signal.Models.Networks.RecurrentModel.CreateRandom(architecture, 1, ["normal", "inner", "outer", "ball"])
            .WithMetadata(new Dictionary<string, string> { [FeatureSequences.MetadataKey] = spec.ToJson() });
        return EngineModel.From(network, "bench");
    }

    private static (long Heap, long Rss) Memory()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        using var process = Process.GetCurrentProcess();
        return (GC.GetTotalMemory(false), process.WorkingSet64);
    }
}
