using System.Text.Json.Serialization;
using System.Buffers;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Signal.Engine.Data;
using Signal.Engine.Live;
using Signal.Engine.Mqtt;
using Signal.Engine.Payloads;

namespace Signal.Edge.Commands;

/// <summary>
/// <c>signal-edge bench e2e</c>: the live engine through a real broker, beside the broker's own pass-through ceiling
/// for the same messages measured in the same run.
/// </summary>
internal static partial class EndToEndBench
{
    private const string Prefix = "bench";


    public static Command Create()
    {
        var mqtt = new Option<string>("--mqtt") { Description = "Use this broker instead of starting a private mosquitto on a free loopback port." };
        var streams = new Option<int>("--streams", "-n") { Description = "Sensor streams.", DefaultValueFactory = _ => 10_000 };
        var rate = new Option<double>("--rate") { Description = "Sample rate of each stream in Hz (paced case).", DefaultValueFactory = _ => 100 };
        var chunk = new Option<int>("--chunk") { Description = "Samples per message (binary float32 payload).", DefaultValueFactory = _ => 50 };
        var messages = new Option<int>("--messages") { Description = "Messages per saturation run.", DefaultValueFactory = _ => 200_000 };
        var duration = new Option<double>("--duration") { Description = "Seconds of the paced (latency) case; 0 skips it.", DefaultValueFactory = _ => 20 };
        var qos = new Option<string>("--qos") { Description = "QoS levels of the saturation runs, comma-separated.", DefaultValueFactory = _ => "0,1" };
        var rounds = new Option<int>("--rounds") { Description = "Rounds of the saturation runs; the best of each consumer is compared.", DefaultValueFactory = _ => 3 };
        var brokerOption = new Option<string>("--broker") { Description = "The private broker to start when no --mqtt is given: mosquitto (Debian's) or embedded (the daemon's MQTTnet.Server broker).", DefaultValueFactory = _ => "mosquitto" };
        var client = new Option<string>("--client") { Description = "The engine's MQTT clients to measure, comma-separated: libmosquitto, mqttnet (each beside the same ceiling in every round).", DefaultValueFactory = _ => "libmosquitto" };
        var cluster = new Option<string?>("--cluster") { Description = "Instead of the cases above: clusters of these many silos, comma-separated (e.g. 1,2,3), each with a private redis-server and mosquitto (docs/cluster.md)." };
        var shards = new Option<int>("--shards") { Description = "Shards of the model in --cluster runs.", DefaultValueFactory = _ => 64 };
        var publish = new Option<string>("--publish") { Description = "Results the engine publishes back: none, change or every.", DefaultValueFactory = _ => "change" };
        var command = new Command("e2e", """
            Load test through a real MQTT broker (a private Debian mosquitto on a free 127.0.0.1 port unless --mqtt is
            given). Every case uses the same messages: binary float32 payloads of --chunk samples from --streams
            streams, and a 2-layer LSTM (hidden 64) behind the default features on 100-sample frames with a hop of one
            message, so every message after the first completes a frame and is one network step.

            Saturation, per QoS: the messages are published as fast as possible, to Debian's mosquitto_sub (the
            broker's pass-through ceiling) and to the engine, alternating for --rounds rounds; each rate is messages
            received per second between the first publish and the last arrival, and the best rounds are compared.
            Debian's mosquitto_pub → mosquitto_sub with same-size text lines is shown for reference. Paced: every stream at --rate Hz for --duration seconds
            (10,000 streams at 100 Hz in 50-sample messages = 20,000 messages/s), with the latency from the publish of
            the message that completes a frame to that frame's classification (p50, p99, max). Prints JSON.
            """)
        {
            mqtt, streams, rate, chunk, messages, duration, qos, publish, rounds, client, brokerOption, cluster, shards,
        };
        command.SetAction(parse => CommandErrors.Run(() =>
        {
            if (parse.GetValue(cluster) is { } sizes)
            {
#if SIGNAL_NO_CLUSTER
                throw new ArgumentException("bench e2e --cluster: this build (NativeAOT) has no cluster; run the JIT build.");
#else
                int[] counts = [.. sizes.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(t => int.Parse(t, CultureInfo.InvariantCulture))];
                ClusterReport clusterReport = ClusterBench.Run(counts, parse.GetValue(streams), parse.GetValue(messages), parse.GetValue(shards));
                Console.WriteLine(JsonSerializer.Serialize(clusterReport, ClusterBenchJson.Default.ClusterReport));
                return 0;
#endif
            }

            var settings = new Settings(parse.GetValue(streams), parse.GetValue(rate), parse.GetValue(chunk), parse.GetValue(messages), parse.GetValue(duration), parse.GetValue(publish)!, parse.GetValue(rounds));
            int[] levels = [.. parse.GetValue(qos)!.Split(',').Select(t => int.Parse(t, CultureInfo.InvariantCulture))];
            string[] clients = [.. parse.GetValue(client)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)];
            if (clients.Length == 0 || clients.Any(c => c is not ("libmosquitto" or "mqttnet")))
            {
                throw new ArgumentException($"bench e2e: --client takes libmosquitto and/or mqttnet (got '{parse.GetValue(client)}').");
            }

            if (settings.Streams < 1 || settings.Chunk < 1 || !(settings.Rate > 0) || settings.Messages < settings.Streams * 2 || settings.Duration < 0 || settings.Rounds < 1
                || levels.Any(q => q is < 0 or > 2) || settings.Publish is not ("none" or "change" or "every"))
            {
                throw new ArgumentException("bench e2e: need --streams ≥ 1, --chunk ≥ 1, --rate > 0, --messages ≥ 2 × streams, --duration ≥ 0, --rounds ≥ 1, --qos levels 0-2 and --publish none, change or every.");
            }

            string brokerKind = parse.GetValue(brokerOption)!;
            if (brokerKind is not ("mosquitto" or "embedded"))
            {
                throw new ArgumentException($"bench e2e: --broker is mosquitto or embedded (got '{brokerKind}').");
            }

            bool start = parse.GetValue(mqtt) is null;
            using LocalMosquitto? local = start && brokerKind == "mosquitto" ? new LocalMosquitto(logAll: false) : null;
            using Daemon.EmbeddedBroker? embedded = start && brokerKind == "embedded"
                ? Daemon.EmbeddedBroker.Start(new Daemon.EmbeddedBrokerSettings { Address = $"127.0.0.1:{Signal.Engine.LocalServer.FreePort()}" })
                : null;
            string address = parse.GetValue(mqtt) ?? local?.Address ?? embedded!.ClientAddress;
            Console.Error.WriteLine($"broker {address}{(local is null ? "" : $" (private mosquitto, pid {local.ProcessId})")}{(embedded is null ? "" : " (embedded MQTTnet.Server in this process)")}; libmosquitto {MosquittoConnection.LibraryVersion}");
            var report = new Report(address, settings.Streams, settings.Chunk, BinaryPayload.HeaderLength + (4 * settings.Chunk), settings.Publish, Environment.ProcessorCount);
            var load = new LoadMessages(settings.Streams, settings.Rate, settings.Chunk);
            Console.Error.WriteLine("engine alone, no broker (a first pass warms up the JIT) …");
            InProcess(load, settings);
            report.EngineInProcess = InProcess(load, settings);
            foreach (int q in levels)
            {
                // This kind of machine drifts a lot between runs: alternate the three consumers for some rounds and
                // compare the best of each.
                var rounds = new List<(Rate Reference, Rate Ceiling, Rate Engine, EngineFigures Figures)>();
                var byClient = clients.ToDictionary(c => c, _ => new List<(Rate Rate, double Bytes)>());
                for (int r = 1; r <= settings.Rounds; r++)
                {
                    Console.Error.WriteLine($"QoS {q}, round {r}/{settings.Rounds}: mosquitto_pub → mosquitto_sub, our publisher → mosquitto_sub, our publisher → engine ({string.Join(", ", clients)}) …");
                    Rate reference = PassThroughWithDebianClients(address, settings.Messages, BinaryPayload.HeaderLength + (4 * settings.Chunk), q);
                    Rate ceiling = Ceiling(address, load, settings.Messages, q);
                    (Rate engine, EngineFigures figures, double bytes) = Engine(address, load, settings, q, clients[0]);
                    byClient[clients[0]].Add((engine, bytes));
                    foreach (string other in clients.Skip(1))
                    {
                        (Rate otherRate, _, double otherBytes) = Engine(address, load, settings, q, other);
                        byClient[other].Add((otherRate, otherBytes));
                    }

                    rounds.Add((reference, ceiling, engine, figures));
                }

                Rate bestCeiling = rounds.Select(x => x.Ceiling).MaxBy(x => x.MessagesPerSecond)!;
                var bestEngine = rounds.MaxBy(x => x.Engine.MessagesPerSecond);
                report.Saturation.Add(new Saturation(
                    q,
                    rounds.Select(x => x.Reference).MaxBy(x => x.MessagesPerSecond)!,
                    bestCeiling,
                    bestEngine.Engine,
                    bestEngine.Figures,
                    Math.Round(bestEngine.Engine.MessagesPerSecond / bestCeiling.MessagesPerSecond, 3),
                    [.. rounds.Select(x => x.Ceiling.MessagesPerSecond)],
                    [.. rounds.Select(x => x.Engine.MessagesPerSecond)])
                {
                    // Each client's best round, against the ceiling and against the first client, with the managed bytes
                    // the whole process allocated per message in that round (publisher and engine included).
                    Clients = [.. clients.Select(c =>
                    {
                        (Rate best, double bytes) = byClient[c].MaxBy(x => x.Rate.MessagesPerSecond);
                        double first = byClient[clients[0]].Max(x => x.Rate.MessagesPerSecond);
                        return new ClientRate(c, best, Math.Round(best.MessagesPerSecond / bestCeiling.MessagesPerSecond, 3), Math.Round(best.MessagesPerSecond / first, 3), Math.Round(bytes));
                    })],
                });
            }

            if (settings.Duration > 0)
            {
                Console.Error.WriteLine($"paced: {settings.Streams:N0} streams at {settings.Rate} Hz for {settings.Duration} s …");
                report.Paced = RunPaced(address, load, settings, qos: levels.Contains(1) ? 1 : levels[0]);
            }

            Console.WriteLine(JsonSerializer.Serialize(report, EndToEndBenchJson.Default.Report));
            return 0;
        }));
        return command;
    }

    /// <summary>The engine's own ceiling: the same messages handed to <see cref="SignalEngine.Process(string, ReadOnlySpan{byte})"/> on one thread, no broker.</summary>
    private static Rate InProcess(LoadMessages load, Settings settings)
    {
        using var engine = new SignalEngine(LiveCommands.BenchModel(settings.Rate, 2 * settings.Chunk, settings.Chunk), new EngineOptions { TopicTemplate = Prefix + "/{device}/{sensor}", MaxStreams = settings.Streams });
        long start = Stopwatch.GetTimestamp();
        load.Blast((payload, topic) => engine.Process(topic, payload), settings.Messages);
        engine.Flush();
        return Rate.Of(engine.Counters.Messages, settings.Messages, start, Stopwatch.GetTimestamp());
    }

    /// <summary>Debian's clients alone: mosquitto_pub -l (one message per stdin line, same size) → mosquitto_sub.</summary>
    private static Rate PassThroughWithDebianClients(string address, int count, int size, int qos)
    {
        var uri = new Uri(address);
        using var sub = Subscriber.Start(uri, qos, count);
        string lines = Path.GetTempFileName();
        try
        {
            string line = new('x', size - 1);
            using (var writer = new StreamWriter(lines))
            {
                for (int i = 0; i < count; i++)
                {
                    writer.Write(line);
                    writer.Write('\n');
                }
            }

            using var pub = Process.Start(new ProcessStartInfo("mosquitto_pub", ["-h", uri.Host, "-p", uri.Port.ToString(CultureInfo.InvariantCulture), "-i", $"bench-mosquitto-pub-{Environment.ProcessId}", "-t", $"{Prefix}/pub/line", "-q", qos.ToString(CultureInfo.InvariantCulture), "-l"])
            {
                RedirectStandardInput = true,
                RedirectStandardError = true,
            }) ?? throw new InvalidOperationException("mosquitto_pub did not start");
            long start = Stopwatch.GetTimestamp();
            using (FileStream input = File.OpenRead(lines))
            {
                input.CopyTo(pub.StandardInput.BaseStream);
            }

            // mosquitto_pub -l drops what it still holds when stdin closes; close it only when everything arrived.
            Rate rate = sub.Wait(start, count);
            pub.StandardInput.Close();
            pub.WaitForExit();
            return rate;
        }
        finally
        {
            File.Delete(lines);
        }
    }

    /// <summary>Our publisher → broker → Debian's mosquitto_sub: the pass-through ceiling for exactly the engine's messages.</summary>
    private static Rate Ceiling(string address, LoadMessages load, int count, int qos)
    {
        using var sub = Subscriber.Start(new Uri(address), qos, count);
        using MosquittoConnection publisher = Publisher(address);
        long start = Stopwatch.GetTimestamp();
        load.Blast(publisher, count, qos);
        return sub.Wait(start, count);
    }

    private static (Rate Rate, EngineFigures Figures, double BytesPerMessage) Engine(string address, LoadMessages load, Settings settings, int qos, string client = "libmosquitto")
    {
        using var run = new EngineUnderLoad(address, load, settings, qos, client);
        using MosquittoConnection publisher = Publisher(address);
        TimeSpan cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        long allocated0 = GC.GetTotalAllocatedBytes(precise: true);
        long start = Stopwatch.GetTimestamp();
        load.Blast(publisher, settings.Messages, qos);
        Rate rate = run.WaitForMessages(start, settings.Messages);
        double bytes = (GC.GetTotalAllocatedBytes(precise: true) - allocated0) / (double)Math.Max(1, rate.Received);
        TimeSpan cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu0;
        return (rate, run.Figures(cpu), bytes);
    }

    private static Paced RunPaced(string address, LoadMessages load, Settings settings, int qos)
    {
        using var run = new EngineUnderLoad(address, load, settings, qos);
        using MosquittoConnection publisher = Publisher(address);
        TimeSpan cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        long start = Stopwatch.GetTimestamp();
        long total = load.Pace(publisher, settings.Duration, qos, run.Latency);
        Rate rate = run.WaitForMessages(start, total);
        TimeSpan cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu0;
        double offered = settings.Streams * settings.Rate / settings.Chunk;
        LatencyRecorder l = run.Latency;
        return new Paced(qos, Math.Round(offered), rate, run.Figures(cpu), l.Count, l.Unmatched, l.Percentile(0.5), l.Percentile(0.99), l.Percentile(1.0), Math.Round(load.MaxLagMs, 1));
    }

    private static MosquittoConnection Publisher(string address)
    {
        var connection = new MosquittoConnection(new MqttOptions { ClientId = $"bench-pub-{Environment.ProcessId}", CleanSession = true, ReceiveCapacity = 100 }.WithAddress(address));
        connection.ConnectAsync(TimeSpan.FromSeconds(10)).GetAwaiter().GetResult();
        return connection;
    }

    private sealed record Settings(int Streams, double Rate, int Chunk, int Messages, double Duration, string Publish, int Rounds);

    /// <summary>A measured rate: messages that arrived and the seconds from the first publish to the last arrival.</summary>
    private sealed record Rate(long Received, long Sent, double Seconds, double MessagesPerSecond)
    {
        public static Rate Of(long received, long sent, long start, long end)
        {
            double seconds = Stopwatch.GetElapsedTime(start, end).TotalSeconds;
            return new Rate(received, sent, Math.Round(seconds, 3), Math.Round(received / seconds));
        }
    }

    private sealed record EngineFigures(long Steps, long Batches, double MeanBatch, long Rejected, long Duplicates, long Resets, double ProcessCpuSeconds, double CpuMicrosecondsPerMessage);

    private sealed record Saturation(int Qos, Rate MosquittoPubToSub, Rate Ceiling, Rate Engine, EngineFigures EngineDetail, double EngineOfCeiling, double[] CeilingRounds, double[] EngineRounds)
    {
        public List<ClientRate> Clients { get; init; } = [];
    }

    private sealed record ClientRate(string Client, Rate Engine, double OfCeiling, double OfFirstClient, double AllocatedBytesPerMessage);

    private sealed record Paced(int Qos, double OfferedMessagesPerSecond, Rate Engine, EngineFigures EngineDetail, long LatencySamples, long LatencyUnmatched, double P50Ms, double P99Ms, double MaxMs, double PublisherMaxLagMs);

    private sealed record Report(string Broker, int Streams, int SamplesPerMessage, int PayloadBytes, string EnginePublishes, int Cores)
    {
        public List<Saturation> Saturation { get; } = [];

        public Rate? EngineInProcess { get; set; }

        public Paced? Paced { get; set; }
    }

    /// <summary>Debian's mosquitto_sub printing only each message's length; counts lines as they come.</summary>
    private sealed class Subscriber : IDisposable
    {
        private readonly Process _process;
        private readonly Thread _reader;
        private long _count, _last;

        private Subscriber(Process process)
        {
            _process = process;
            _reader = new Thread(Read) { IsBackground = true, Name = "mosquitto_sub reader" };
            _reader.Start();
        }

        public static Subscriber Start(Uri broker, int qos, int count)
        {
            var process = Process.Start(new ProcessStartInfo("mosquitto_sub", ["-h", broker.Host, "-p", broker.Port.ToString(CultureInfo.InvariantCulture), "-i", $"bench-mosquitto-sub-{Environment.ProcessId}", "-t", $"{Prefix}/#", "-q", qos.ToString(CultureInfo.InvariantCulture), "-F", "%l", "-C", count.ToString(CultureInfo.InvariantCulture)])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            }) ?? throw new InvalidOperationException("mosquitto_sub did not start (apt-get install mosquitto-clients)");

            // mosquitto_sub says nothing when its subscription is in place; give it a moment.
            Thread.Sleep(1000);
            if (process.HasExited)
            {
                throw new InvalidOperationException("mosquitto_sub exited: " + process.StandardError.ReadToEnd());
            }

            return new Subscriber(process);
        }

        public Rate Wait(long start, long sent) => WaitFor(start, sent, () => Interlocked.Read(ref _count), () => Interlocked.Read(ref _last));

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                _process.Kill();
            }

            _process.WaitForExit();
            _reader.Join();
            _process.Dispose();
        }

        private void Read()
        {
            Stream output = _process.StandardOutput.BaseStream;
            var buffer = new byte[65536];
            int n;
            while ((n = output.Read(buffer)) > 0)
            {
                int lines = buffer.AsSpan(0, n).Count((byte)'\n');
                if (lines > 0)
                {
                    Interlocked.Exchange(ref _last, Stopwatch.GetTimestamp());
                    Interlocked.Add(ref _count, lines);
                }
            }
        }
    }

    /// <summary>Waits until <paramref name="sent"/> messages arrived, or nothing arrived for 3 s (QoS 0 may lose some).</summary>
    private static Rate WaitFor(long start, long sent, Func<long> received, Func<long> lastArrival)
    {
        long seen = -1, since = Stopwatch.GetTimestamp();
        while (received() < sent)
        {
            Thread.Sleep(1);
            long now = received();
            if (now != seen)
            {
                (seen, since) = (now, Stopwatch.GetTimestamp());
            }
            else if (Stopwatch.GetElapsedTime(since) > TimeSpan.FromSeconds(3))
            {
                break;
            }
        }

        return Rate.Of(received(), sent, start, lastArrival());
    }

    /// <summary>An engine subscribed to the bench topics, running on its own task, optionally publishing results.</summary>
    private sealed class EngineUnderLoad : IDisposable
    {
        private readonly SignalEngine _engine;
        private readonly IMqttConnection _connection;
        private readonly ResultPublisher? _publisher;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;
        private readonly IDisposable _latencySubscription;
        private long _lastMessage;

        public EngineUnderLoad(string address, LoadMessages load, Settings settings, int qos, string client = "libmosquitto")
        {
            EngineModel model = LiveCommands.BenchModel(settings.Rate, 2 * settings.Chunk, settings.Chunk);
            _engine = new SignalEngine(model, new EngineOptions { TopicTemplate = Prefix + "/{device}/{sensor}", MaxStreams = Math.Max(settings.Streams, 1) });
            _connection = MqttConnections.Create(new MqttOptions { ClientId = $"bench-engine-{Environment.ProcessId}", CleanSession = true, Client = client }.WithAddress(address));
            _connection.Subscribe(Prefix + "/+/+", qos);
            _connection.ConnectAsync(TimeSpan.FromSeconds(10)).GetAwaiter().GetResult();
            if (settings.Publish != "none")
            {
                _publisher = new ResultPublisher(_engine, _connection, new PublishOptions { Mode = settings.Publish == "every" ? PublishMode.Every : PublishMode.Change, Prefix = "bench-results/" });
            }

            Latency = new LatencyRecorder(load);
            _latencySubscription = _engine.Classifications.Subscribe(c =>
            {
                Latency.Record(c);
                Volatile.Write(ref _lastMessage, Stopwatch.GetTimestamp());
            });
            _loop = Task.Run(() => EngineRunner.RunAsync(_engine, _connection, _stop.Token));
            Thread.Sleep(500); // the subscription is sent on connect; let the SUBACK come back
        }

        public LatencyRecorder Latency { get; }

        /// <summary>Waits until the engine took <paramref name="sent"/> messages; the end time is its last classification.</summary>
        public Rate WaitForMessages(long start, long sent)
        {
            Rate rate = WaitFor(start, sent, () => _engine.Counters.Messages, () => Volatile.Read(ref _lastMessage));

            // Taken is not yet stepped: let the last frames through, then stop the compute loop so the figures are final.
            for (int i = 0; i < 1000 && _engine.PendingFrames > 0; i++)
            {
                Thread.Sleep(1);
            }

            StopLoop();
            return Rate.Of(rate.Received, sent, start, Volatile.Read(ref _lastMessage));
        }

        private void StopLoop()
        {
            _stop.Cancel();
            _loop.GetAwaiter().GetResult();
        }

        public EngineFigures Figures(TimeSpan cpu)
        {
            EngineCounters c = _engine.Counters;
            return new EngineFigures(c.Steps, c.Batches, Math.Round(c.Steps / (double)Math.Max(1, c.Batches), 1), c.RejectedTotal, c.Duplicates, c.Resets.Values.Sum(),
                Math.Round(cpu.TotalSeconds, 2), Math.Round(cpu.TotalMicroseconds / Math.Max(1, c.Messages), 2));
        }

        public void Dispose()
        {
            StopLoop();
            _latencySubscription.Dispose();
            _publisher?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            _connection.DisposeAsync().AsTask().GetAwaiter().GetResult();
            _engine.Dispose();
            _stop.Dispose();
        }
    }

    /// <summary>
    /// Latency from the publish of the message holding a frame's last sample to that frame's classification. The
    /// publisher notes the time of every message in a per-stream ring; a classification finds its message from its data
    /// timestamp.
    /// </summary>
    private sealed class LatencyRecorder(LoadMessages load)
    {
        private readonly List<double> _ms = [];

        public long Count => _ms.Count;

        public long Unmatched { get; private set; }

        public void Record(Classification c)
        {
            if (!load.Pacing)
            {
                return;
            }

            int slash = c.Stream.IndexOf('/', StringComparison.Ordinal);
            int stream = int.Parse(c.Stream.AsSpan(1, slash - 1), CultureInfo.InvariantCulture);
            long endSample = (long)Math.Round((c.TimestampNs - load.StartNs) * load.Rate / 1e9);
            long message = endSample / load.Chunk;
            long published = load.PublishedAt(stream, message);
            if (published == 0)
            {
                Unmatched++;
                return;
            }

            _ms.Add(Stopwatch.GetElapsedTime(published).TotalMilliseconds);
        }

        public double Percentile(double p)
        {
            if (_ms.Count == 0)
            {
                return double.NaN;
            }

            _ms.Sort();
            return Math.Round(_ms[Math.Min(_ms.Count - 1, (int)(p * _ms.Count))], 2);
        }
    }

    /// <summary>The load: <c>bench/s{i}/vib</c> topics, binary messages with consecutive sequence numbers and timestamps per stream.</summary>
    private sealed class LoadMessages
    {
        private const int Ring = 64;
        private readonly string[] _topics;
        private readonly float[][] _blocks;
        private readonly byte[] _payload;
        private readonly long[] _publishedAt;
        private readonly long[] _publishedMessage;

        public LoadMessages(int streams, double rate, int chunk)
        {
            (Streams, Rate, Chunk) = (streams, rate, chunk);
            _topics = [.. Enumerable.Range(0, streams).Select(i => string.Create(CultureInfo.InvariantCulture, $"{Prefix}/s{i}/vib"))];
            var source = new VibrationSource(rate, 1);
            _blocks = [.. Enumerable.Range(0, 16).Select(_ =>
            {
                var block = new float[chunk];
                source.Next(block, null);
                return block;
            })];
            _payload = new byte[BinaryPayload.HeaderLength + (4 * chunk)];
            _publishedAt = new long[streams * Ring];
            _publishedMessage = new long[streams * Ring];
        }

        public int Streams { get; }

        public double Rate { get; }

        public int Chunk { get; }

        /// <summary>Data time of every stream's first sample in the current run, Unix ns.</summary>
        public long StartNs { get; private set; }

        public bool Pacing { get; private set; }

        public double MaxLagMs { get; private set; }

        /// <summary>Publishes <paramref name="count"/> messages round-robin over the streams as fast as the connection takes them.</summary>
        public void Blast(MosquittoConnection connection, long count, int qos) =>
            Blast((payload, topic) => Publish(connection, topic, payload, qos), count);

        /// <summary>Hands <paramref name="count"/> messages round-robin over the streams to <paramref name="send"/>.</summary>
        public void Blast(SpanAction<byte, string> send, long count)
        {
            (Pacing, StartNs) = (false, UnixNow());
            for (long k = 0; k < count; k++)
            {
                int stream = (int)(k % Streams);
                send(Build(stream, k / Streams), _topics[stream]);
            }
        }

        /// <summary>Publishes every stream at the sample rate (streams staggered over a message period) for <paramref name="seconds"/>.</summary>
        /// <returns>Messages published.</returns>
        public long Pace(MosquittoConnection connection, double seconds, int qos, LatencyRecorder latency)
        {
            Array.Clear(_publishedAt);
            (Pacing, StartNs, MaxLagMs) = (true, UnixNow(), 0);
            double period = Chunk / Rate;
            long messages = (long)Math.Ceiling(seconds / period), sent = 0;
            long start = Stopwatch.GetTimestamp();
            for (long m = 0; m < messages; m++)
            {
                for (int s = 0; s < Streams; s++)
                {
                    // Message m of stream s is due when its last sample exists: (m + 1 + s / streams) periods in.
                    double due = (m + 1 + ((double)s / Streams)) * period, now;
                    while ((now = Stopwatch.GetElapsedTime(start).TotalSeconds) < due)
                    {
                        Thread.Sleep(1); // messages leave in bursts of about a millisecond's worth, without spinning a core

                    }

                    MaxLagMs = Math.Max(MaxLagMs, (now - due) * 1000);
                    int slot = (s * Ring) + (int)(m % Ring);
                    Volatile.Write(ref _publishedMessage[slot], m);
                    Volatile.Write(ref _publishedAt[slot], Stopwatch.GetTimestamp());
                    Send(connection, s, m, qos);
                    sent++;
                }
            }

            return sent;
        }

        /// <summary>When message <paramref name="message"/> of stream <paramref name="stream"/> was published (Stopwatch ticks), or 0 when unknown.</summary>
        public long PublishedAt(int stream, long message)
        {
            int slot = (stream * Ring) + (int)(message % Ring);
            long at = Volatile.Read(ref _publishedAt[slot]);
            return Volatile.Read(ref _publishedMessage[slot]) == message ? at : 0;
        }

        private void Send(MosquittoConnection connection, int stream, long message, int qos) =>
            Publish(connection, _topics[stream], Build(stream, message), qos);

        private Span<byte> Build(int stream, long message)
        {
            long ts = StartNs + (long)Math.Round(message * Chunk * 1e9 / Rate);
            return _payload.AsSpan(0, BinaryPayload.Write(_payload, (ulong)message, ts, Rate, 1, _blocks[(stream + message) & 15]));
        }

        private static void Publish(MosquittoConnection connection, string topic, ReadOnlySpan<byte> payload, int qos)
        {
            while (!connection.Publish(topic, payload, qos))
            {
                Thread.Sleep(10); // the broker is away: keep the message, the stream must have no gap
            }
        }

        private static long UnixNow() => (DateTimeOffset.UtcNow.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100;
    }

    /// <summary>The report's JSON, source-generated (snake_case, indented): works in the NativeAOT build too.</summary>
    [JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
    [JsonSerializable(typeof(Report))]
    private sealed partial class EndToEndBenchJson : JsonSerializerContext;
}
