using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Signal.Engine.Data;
using Signal.Engine.Mqtt;
using Signal.Engine.Payloads;

namespace Signal.Edge.Commands;

/// <summary><c>signal-edge replay</c>: a recording, or a folder of them, published over MQTT in real time or faster.</summary>
internal static class ReplayCommand
{
    public static Command Create()
    {
        var data = new Option<string>("--data") { Description = "A recording (.npy, .npz, .csv) or a folder of them (one stream per file, any depth).", Required = true };
        var mqtt = new Option<string>("--mqtt") { Description = "Broker address. Default mqtt://127.0.0.1:1883.", DefaultValueFactory = _ => "mqtt://127.0.0.1:1883" };
        var speed = new Option<double>("--speed") { Description = "1 for real time, 10 for ten times faster, 0 for as fast as the broker takes it.", DefaultValueFactory = _ => 1 };
        var rate = new Option<double>("--rate") { Description = "Sample rate of the recordings in Hz (sent in every message).", DefaultValueFactory = _ => 12_000 };
        var chunk = new Option<int>("--chunk") { Description = "Samples per message.", DefaultValueFactory = _ => 600 };
        var topic = new Option<string>("--topic") { Description = "Topic of each stream; {name} is the file name without extension.", DefaultValueFactory = _ => "sensors/{name}/vib" };
        var key = new Option<string?>("--key") { Description = "For .npz: the array to read (for example DE in CWRU files; default: the first)." };
        var qos = new Option<int>("--qos") { Description = "QoS of the messages.", DefaultValueFactory = _ => 1 };
        var loop = new Option<bool>("--loop") { Description = "Start over at the end (sequence numbers and timestamps keep running, so the engine sees one long stream)." };
        var command = new Command("replay", """
            Replays recordings over MQTT as the sensors would send them: binary messages with sequence numbers,
            timestamps and the sample rate, one stream per file, in real time (--speed 1), faster, or flat out (--speed 0).

            Example:
              signal-edge replay --data "../shared/datasets/cwru/Data/1797 RPM" --mqtt mqtt://127.0.0.1:1883 --speed 5
            """)
        {
            data, mqtt, speed, rate, chunk, topic, key, qos, loop,
        };
        command.SetAction(parse => CommandErrors.Run(() =>
        {
            string path = parse.GetValue(data)!;
            double x = parse.GetValue(speed), hz = parse.GetValue(rate);
            int size = parse.GetValue(chunk), q = parse.GetValue(qos);
            if (!(x >= 0) || !(hz > 0) || size < 1 || q is < 0 or > 2)
            {
                throw new ArgumentException("replay: need --speed ≥ 0, --rate > 0, --chunk ≥ 1 and --qos 0-2.");
            }

            string[] files = Directory.Exists(path)
                ? [.. Directory.EnumerateFiles(path, "*.*", SearchOption.AllDirectories).Where(f => Path.GetExtension(f).ToLowerInvariant() is ".npy" or ".npz" or ".csv").Order(StringComparer.Ordinal)]
                : File.Exists(path) ? [path] : throw new ArgumentException($"--data: '{path}' does not exist.");
            if (files.Length == 0)
            {
                throw new ArgumentException($"--data: '{path}' holds no .npy, .npz or .csv recordings.");
            }

            string template = parse.GetValue(topic)!;
            var streams = files.Select(f => (Topic: template.Replace("{name}", Signal.Engine.Live.TopicTemplate.Level(Path.GetFileNameWithoutExtension(f)), StringComparison.Ordinal), Recording: Recording.Load(f, parse.GetValue(key)))).ToList();
            var options = new MqttOptions { ClientId = $"signal-replay-{Environment.ProcessId}", CleanSession = true }.WithAddress(parse.GetValue(mqtt)!);
            using var stop = new CancellationTokenSource();
            void OnCancel(object? sender, ConsoleCancelEventArgs e)
            {
                e.Cancel = true;
                stop.Cancel();
            }

            Console.CancelKeyPress += OnCancel;
            try
            {
                foreach ((string t, Recording r) in streams)
                {
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{t}: {r.Source}, {r.Length:N0} samples × {r.Channels} channel(s), {r.Length / hz:0.#} s"));
                }

                (long messages, long samples, TimeSpan took) = Replay(options, streams, hz, size, x, q, parse.GetValue(loop), stop.Token).GetAwaiter().GetResult();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"published {messages:N0} messages ({samples:N0} samples, {samples / hz:0.#} s of data) in {took.TotalSeconds:0.0} s"));
            }
            finally
            {
                Console.CancelKeyPress -= OnCancel;
            }

            return 0;
        }, CommandErrors.RecordingLayout));
        return command;
    }


    private static async Task<(long Messages, long Samples, TimeSpan Took)> Replay(MqttOptions options, List<(string Topic, Recording Recording)> streams, double rate, int chunk, double speed, int qos, bool loop, CancellationToken stop)
    {
        await using var connection = new MosquittoConnection(options);
        await connection.ConnectAsync(TimeSpan.FromSeconds(10), stop).ConfigureAwait(false);
        int maxChannels = streams.Max(s => s.Recording.Channels);
        var payload = new byte[BinaryPayload.HeaderLength + (4 * chunk * maxChannels)];
        long startNs = (DateTimeOffset.UtcNow.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100;
        var position = new long[streams.Count];
        var clock = Stopwatch.StartNew();
        long messages = 0, samples = 0;
        for (ulong n = 0; !stop.IsCancellationRequested; n++)
        {
            if (speed > 0)
            {
                TimeSpan due = TimeSpan.FromSeconds((double)n * chunk / rate / speed);
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
            }

            bool any = false;
            for (int s = 0; s < streams.Count; s++)
            {
                Recording r = streams[s].Recording;
                long at = position[s] % r.Length;
                if (!loop && position[s] >= r.Length)
                {
                    continue;
                }

                int take = (int)Math.Min(chunk, r.Length - at);
                long ts = startNs + (long)Math.Round(position[s] * 1e9 / rate);
                int length = BinaryPayload.Write(payload, n, ts, rate, r.Channels, r.Samples.AsSpan((int)(at * r.Channels), take * r.Channels));
                while (!connection.Publish(streams[s].Topic, payload.AsSpan(0, length), qos) && !stop.IsCancellationRequested)
                {
                    // The broker is away: keep the message and retry, so the stream has no gap.
                    await Task.Delay(100, CancellationToken.None).ConfigureAwait(false);
                }

                position[s] += take;
                messages++;
                samples += take;
                any = true;
            }

            if (!any)
            {
                break;
            }
        }

        // Give the client loop time to hand the last QoS 1 messages to the broker before disconnecting.
        await Task.Delay(500, CancellationToken.None).ConfigureAwait(false);
        return (messages, samples, clock.Elapsed);
    }
}
