using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Signal.Edge.Daemon;
using Signal.Engine.Data;
using Signal.Engine.Live;
using Signal.Engine.Mqtt;
using Signal.Engine.Payloads;

namespace Signal.Edge.Commands;

/// <summary><c>signal-edge run</c> and <c>signal-edge simulate</c>: the live engine over MQTT.</summary>
internal static class LiveCommands
{
    public static Command CreateRun()
    {
        var model = new Option<FileInfo>("--model", "-m") { Description = "The model file (.sigm); or \"model\"/\"models\" in the config file." };
        var mqtt = new Option<string>("--mqtt") { Description = "Broker address, mqtt://host:port or mqtts://host:port. Default mqtt://127.0.0.1:1883." };
        var topic = new Option<string>("--topic", "-t") { Description = "Subscription filter, e.g. 'sensors/#'. Default: the filter of each model's topic template." };
        var template = new Option<string>("--template") { Description = "Topic → stream id template. Default sensors/{device}/{sensor}." };
        var publish = new Option<string>("--publish") { Description = "When class results are published: every, change, or a number N (every N steps and on change). Default every." };
        var prefix = new Option<string>("--prefix") { Description = "Topic prefix of results. Default signal/." };
        var deadLetter = new Option<string>("--dead-letter") { Description = "Topic for rejected payloads with the reason (none by default)." };
        var config = new Option<FileInfo>("--config", "-c") { Description = "A JSON configuration file (see docs/daemon.md); SIGNAL__SECTION__KEY environment variables and flags override it." };
        var duration = new Option<double?>("--duration") { Description = "Stop after this many seconds (default: until Ctrl-C or SIGTERM)." };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Do not log every class change (alerts and the periodic summary are still logged)." };
        var influx = new Option<string>("--influx") { Description = "Store everything in InfluxDB: http://host:8086/<database> (1.x), file:///path.lp for a line-protocol file, or configure \"influx\" in the config file (2.x/3.x, spool, batching)." };
        var spool = new Option<string>("--spool") { Description = "Folder of the InfluxDB disk spool (kept across restarts)." };
        var http = new Option<string>("--http") { Description = "Where the health, metrics, API and dashboard listen: ip:port (port 0: any free port) or none. Default 127.0.0.1:8080." };
        var state = new Option<string>("--state") { Description = "Folder for checkpoints of every stream's state (restored at start). Default: $STATE_DIRECTORY under systemd, else none." };
        var logFormat = new Option<string>("--log-format") { Description = "plain or json (one object per line, for journald/Loki)." };
        var accelerator = new Option<string>("--accelerator") { Description = "Where batched steps run: cpu (default), cuda, opencl, auto or ilgpu-cpu (engine.accelerator; docs/accelerators.md)." };
        var command = new Command("run", """
            Runs the edge daemon: subscribes to sensor topics, classifies every stream step by step with one or more
            models, publishes classes, anomaly scores and alerts on MQTT, stores them in InfluxDB, and serves
            /healthz, /readyz, /metrics, /api/streams and a live dashboard. SIGTERM or Ctrl-C drains the pipeline,
            flushes storage and checkpoints every stream; SIGHUP or a changed model file reloads the models.

            Example:
              signal-edge run --model bearing.sigm --mqtt mqtt://127.0.0.1:1883 --topic 'sensors/#' --publish change
              signal-edge run --config /etc/signal/edge.json
            """)
        {
            model, mqtt, topic, template, publish, prefix, deadLetter, config, duration, quiet, influx, spool, http, state, logFormat, accelerator,
        };
        command.SetAction(parse => CommandErrors.Run(() =>
        {
            var flags = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
            void Flag<T>(Option<T> option, string key, Func<T, string?> value)
            {
                if (parse.GetResult(option) is { Implicit: false } && parse.GetValue(option) is { } v)
                {
                    flags[key] = value(v);
                }
            }

            NoPasswordIn("--mqtt", parse.GetValue(mqtt), "credentials.mqttPasswordFile (a file) or SIGNAL__BROKER__PASSWORD");
            NoPasswordIn("--influx", parse.GetValue(influx), "credentials.influxPasswordFile (a file) or SIGNAL__INFLUX__PASSWORD");
            Flag(model, "model", f => f.FullName);
            Flag(mqtt, "mqtt", v => v);
            Flag(topic, "topic", v => v);
            Flag(template, "engine:topicTemplate", v => v);
            Flag(prefix, "publish:prefix", v => v);
            Flag(deadLetter, "publish:deadLetterTopic", v => v);
            Flag(http, "http:address", v => v);
            Flag(state, "state:folder", v => v);
            Flag(logFormat, "logging:format", v => v);
            Flag(accelerator, "engine:accelerator", v => v);
            if (parse.GetValue(quiet))
            {
                flags["logging:classChanges"] = "false";
            }

            if (parse.GetValue(publish) is { } mode)
            {
                if (mode is "every" or "change")
                {
                    flags["publish:mode"] = mode;
                }
                else if (int.TryParse(mode, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0)
                {
                    (flags["publish:mode"], flags["publish:everyN"]) = ("everyN", mode);
                }
                else
                {
                    throw new ArgumentException($"--publish: '{mode}' is not every, change or a positive number of steps.");
                }
            }

            IConfigurationRoot configuration = EdgeSettings.Configuration(parse.GetValue(config)?.FullName, flags);
            EdgeSettings settings = EdgeSettings.Load(configuration);
            if (parse.GetValue(influx) is { } influxUrl)
            {
                settings.Influx = (settings.Influx ?? new Signal.Engine.Storage.InfluxOptions()).WithAddress(influxUrl);
            }

            if (parse.GetValue(spool) is { } spoolFolder)
            {
                (settings.Influx ?? throw new ArgumentException("--spool: no InfluxDB is configured (--influx or \"influx\" in the config file).")).SpoolFolder = spoolFolder;
            }

            settings.Influx?.Validate();

            // An embedded broker starts first; the daemon then subscribes to it as its own user.
            using EmbeddedBroker? embedded = settings.EmbeddedBroker is { } embeddedSettings ? EmbeddedBroker.Start(embeddedSettings) : null;
            if (embedded is not null)
            {
                settings.Mqtt = embedded.ClientAddress;
                (settings.Broker.Username, settings.Broker.Password) = (EmbeddedBroker.OwnUser, embedded.OwnPassword);
                Console.Error.WriteLine($"embedded MQTT broker listening on {embedded.EndPoint}{(embedded.UsesTls ? " with TLS" : string.Empty)}{(settings.EmbeddedBroker!.UsersFile is null ? " (anyone may connect)" : " (users from " + settings.EmbeddedBroker.UsersFile + ")")}");
            }

            MqttOptions broker = settings.Broker.WithAddress(settings.Mqtt);
            broker.WillTopic ??= settings.Publish.StatusTopic;
            double? seconds = parse.GetValue(duration);
            return EdgeHost.Run(settings, configuration, logs => MqttConnections.Create(broker, logs.CreateLogger("signal-edge.mqtt")),
                new HostRun { Duration = seconds is { } s ? TimeSpan.FromSeconds(s) : null });
        }));
        return command;
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

    /// <summary>
    /// Refuses a password inside an address flag: the command line is readable by every user of the machine (ps,
    /// /proc) and lands in shell histories and unit files. A user name alone is fine.
    /// </summary>
    private static void NoPasswordIn(string flag, string? address, string instead)
    {
        if (address is not null && Uri.TryCreate(address, UriKind.Absolute, out Uri? uri) && uri.UserInfo.Contains(':', StringComparison.Ordinal))
        {
            throw new ArgumentException($"{flag}: the address holds a password, which the command line would show to every user of this machine; give it through {instead} instead.");
        }
    }
}
