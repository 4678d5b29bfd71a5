using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Signal.Engine.Live;

namespace Signal.Engine.Payloads;

/// <summary>
/// Hostile payloads for the decoders and the live engine: valid JSON, SenML, binary and feature messages built with
/// random (often wrong) field types and extreme values, then, half of the time, mutated byte by byte (flips, cuts,
/// inserted tokens, repeated slices). Deterministic for a seed. <see cref="Run"/> feeds them through the real
/// <see cref="PayloadDecoder"/> and a <see cref="SignalEngine"/>; a case fails when the decoder throws or the engine
/// has to contain an exception (<c>internal_error</c>): bad input must always be refused with a reason.
/// </summary>
/// <remarks>Not thread-safe: one fuzzer per thread.</remarks>
public sealed class PayloadFuzzer
{
    private static readonly string[] Tokens =
    [
        "null", "true", "false", "\"\"", "\"x\"", "[]", "{}", "[[]]", "-", "1e999", "-1e999", "1e-999", "NaN", "Infinity",
        "9223372036854775807", "-9223372036854775808", "18446744073709551616", "0.0000001", "-0", "1.7976931348623157e308",
        "\"2026-13-45T99:99:99Z\"", "\"\\u0000\"", "\"\\ud800\"", ",", ":", "]", "}", "[", "{", "\"",
    ];

    private static readonly string[] Keys = ["ts", "rate", "seq", "values", "channels", "features", "bn", "bt", "bv", "n", "t", "v", "vs", "vb", "vd", "u", "s"];

    private readonly Random _random;
    private readonly int _channels;
    private readonly double _rate;
    private readonly int _featureWidth;

    /// <summary>Creates a fuzzer whose well-formed cases fit a model of the given shape (so they reach the steps).</summary>
    /// <param name="seed">The seed; the same seed gives the same cases.</param>
    /// <param name="channels">Channels per sample of the model.</param>
    /// <param name="rate">The model's sample rate in Hz (0: any).</param>
    /// <param name="featureWidth">Inputs per network step (feature vector width).</param>
    public PayloadFuzzer(int seed, int channels = 3, double rate = 1000, int featureWidth = 11)
    {
        _random = new Random(seed);
        _channels = Math.Max(1, channels);
        _rate = rate;
        _featureWidth = Math.Max(1, featureWidth);
    }

    /// <summary>The next payload.</summary>
    /// <returns>The bytes.</returns>
    public byte[] Next()
    {
        byte[] payload = _random.Next(5) switch
        {
            0 => Encoding.UTF8.GetBytes(Json()),
            1 => Encoding.UTF8.GetBytes(SenML()),
            2 => Binary(),
            3 => Encoding.UTF8.GetBytes(Features()),
            _ => Encoding.UTF8.GetBytes(JsonChannels()),
        };
        return _random.Next(2) == 0 ? payload : Mutate(payload);
    }

    /// <summary>A topic: mostly a few well-formed stream topics, sometimes a hostile one.</summary>
    /// <returns>The topic.</returns>
    public string Topic() => _random.Next(10) switch
    {
        0 => string.Empty,
        1 => "sensors/" + new string('a', _random.Next(1, 2000)) + "/vib",
        2 => "sensors/\0/\u00ff\ud7ff/" + _random.Next(100),
        3 => "other/topic/" + _random.Next(1000),
        _ => $"sensors/s{_random.Next(8)}/vib",
    };

    /// <summary>
    /// Runs <paramref name="cases"/> payloads through a fresh decoder and a fresh engine for <paramref name="model"/>.
    /// </summary>
    /// <param name="model">The engine's model.</param>
    /// <param name="cases">How many payloads.</param>
    /// <param name="seed">The fuzzer's seed.</param>
    /// <param name="progress">Called with the cases done so far, about once a second, or null.</param>
    /// <param name="cancellationToken">Stops early; the result covers the cases run.</param>
    /// <returns>Cases run, failures and the first failing payloads.</returns>
    public static FuzzResult Run(EngineModel model, int cases, int seed, Action<long>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        var fuzzer = new PayloadFuzzer(seed, model.Channels, model.SampleRate, model.Network.InputSize);
        var decoder = new PayloadDecoder();
        var options = new EngineOptions { TopicTemplate = "sensors/{stream}/vib", MaxStreams = 64, Threads = 1 };
        using var engine = new SignalEngine(model, options);
        using IDisposable letters = engine.DeadLetters.Subscribe(_ => { });
        var failures = new List<FuzzFailure>();
        long failed = 0, run = 0, lastProgress = Stopwatch.GetTimestamp();
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < cases; i++)
        {
            string topic = fuzzer.Topic();
            byte[] payload = fuzzer.Next();
            if (cancellationToken.IsCancellationRequested)
            {
                break;
            }

            string? problem = null;
            try
            {
                decoder.TryDecode(payload, PayloadFormat.Auto, out _, out _);
            }
            catch (Exception e)
            {
                problem = "decoder threw " + e.GetType().Name + ": " + e.Message;
            }

            long before = engine.Counters.InternalErrors;
            try
            {
                engine.Process(topic, payload);
            }
            catch (Exception e)
            {
                problem ??= "engine threw " + e.GetType().Name + ": " + e.Message;
            }

            if (problem is null && engine.Counters.InternalErrors != before)
            {
                problem = "the engine had to contain an exception (internal_error)";
            }

            run++;
            if (problem is not null)
            {
                failed++;
                if (failures.Count < 10)
                {
                    failures.Add(new FuzzFailure(topic, payload, problem));
                }
            }

            if (progress is not null && Stopwatch.GetElapsedTime(lastProgress) > TimeSpan.FromSeconds(1))
            {
                lastProgress = Stopwatch.GetTimestamp();
                progress(run);
            }
        }

        engine.Flush();
        return new FuzzResult(run, failed, clock.Elapsed, engine.Counters.Steps, failures);
    }

    private string Json()
    {
        var b = new StringBuilder("{");
        int fields = _random.Next(1, 6);
        for (int i = 0; i < fields; i++)
        {
            if (i > 0)
            {
                b.Append(',');
            }

            string key = _random.Next(4) == 0 ? Keys[_random.Next(Keys.Length)] : new[] { "ts", "rate", "seq", "values" }[i % 4];
            b.Append('"').Append(key).Append("\":");
            b.Append(key switch
            {
                "values" => Numbers(_random.Next(0, 200)),
                "ts" => Time(),
                "rate" => Maybe(Num(_rate)),
                "seq" => Maybe(Int(_random.Next(0, 10))),
                _ => Value(2),
            });
        }

        return b.Append('}').ToString();
    }

    private string JsonChannels()
    {
        var b = new StringBuilder("{\"ts\":").Append(Time()).Append(",\"rate\":").Append(Maybe(Num(_rate))).Append(",\"channels\":{");
        int channels = _random.Next(4) == 0 ? _random.Next(0, 6) : _channels;
        int samples = _random.Next(0, 120);
        for (int c = 0; c < channels; c++)
        {
            b.Append(c > 0 ? "," : string.Empty).Append("\"c").Append(c).Append("\":");
            b.Append(_random.Next(8) == 0 ? Value(2) : Numbers(_random.Next(8) == 0 ? _random.Next(0, 120) : samples));
        }

        return b.Append("}}").ToString();
    }

    private string Features()
    {
        if (_random.Next(2) == 0)
        {
            return "{\"features\":" + Numbers(_random.Next(4) == 0 ? _random.Next(0, 30) : _featureWidth) + "}";
        }

        var b = new StringBuilder("{\"ts\":").Append(Time()).Append(",\"features\":[");
        int rows = _random.Next(0, 6);
        for (int r = 0; r < rows; r++)
        {
            b.Append(r > 0 ? "," : string.Empty).Append(Numbers(_random.Next(6) == 0 ? _random.Next(0, 30) : _featureWidth));
        }

        return b.Append("]}").ToString();
    }

    private string SenML()
    {
        var b = new StringBuilder("[");
        int records = _random.Next(0, 3 * _channels * 8);
        double t0 = _random.Next(3) == 0 ? 1.7e9 : 0;
        for (int r = 0; r < records; r++)
        {
            b.Append(r > 0 ? "," : string.Empty).Append('{');
            var fields = new List<string>();
            if (r == 0 && _random.Next(2) == 0)
            {
                fields.Add("\"bn\":" + Maybe("\"dev/\""));
                fields.Add("\"bt\":" + Maybe(Num(t0)));
            }

            fields.Add("\"n\":" + Maybe("\"c" + (r % _channels) + "\""));
            fields.Add("\"v\":" + Maybe(Num((_random.NextDouble() * 2) - 1)));
            fields.Add("\"t\":" + Maybe(Num(r / _channels / Math.Max(1, _rate))));
            if (_random.Next(10) == 0)
            {
                fields.Add("\"" + Keys[_random.Next(Keys.Length)] + "\":" + Value(2));
            }

            b.AppendJoin(',', fields.OrderBy(_ => _random.Next()));
            b.Append('}');
        }

        return b.Append(']').ToString();
    }

    private byte[] Binary()
    {
        int channels = _random.Next(6) == 0 ? _random.Next(0, 70000) : _channels;
        bool features = _random.Next(3) == 0;
        int width = features ? _featureWidth : Math.Max(1, channels);
        int count = _random.Next(0, 64);
        int body = _random.Next(8) == 0 ? _random.Next(0, 400) : count * width * 4;
        var payload = new byte[BinaryPayload.HeaderLength + body];
        payload[0] = (byte)'S';
        payload[1] = (byte)'G';
        payload[2] = _random.Next(10) == 0 ? (byte)_random.Next(256) : BinaryPayload.Version;
        payload[3] = features ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt16LittleEndian(payload.AsSpan(4), (ushort)(features ? _featureWidth : channels));
        BinaryPrimitives.WriteUInt64LittleEndian(payload.AsSpan(8), _random.Next(4) == 0 ? (ulong)_random.NextInt64() * 2 : (ulong)_random.Next(10));
        long[] times = [0, 1, -1, long.MaxValue, long.MinValue, 1_700_000_000_000_000_000, _random.NextInt64()];
        BinaryPrimitives.WriteInt64LittleEndian(payload.AsSpan(16), times[_random.Next(times.Length)]);
        double[] rates = [_rate, _rate, 0, -1, double.NaN, double.PositiveInfinity, double.Epsilon, 1e300, _random.NextDouble() * 1e5];
        BinaryPrimitives.WriteDoubleLittleEndian(payload.AsSpan(24), rates[_random.Next(rates.Length)]);
        for (int i = 0; i + 4 <= body; i += 4)
        {
            float v = _random.Next(50) == 0 ? new[] { float.NaN, float.PositiveInfinity, float.MaxValue, float.Epsilon, -float.MaxValue }[_random.Next(5)] : (float)((_random.NextDouble() * 2) - 1);
            BinaryPrimitives.WriteSingleLittleEndian(payload.AsSpan(BinaryPayload.HeaderLength + i), v);
        }

        return payload;
    }

    private byte[] Mutate(byte[] payload)
    {
        var bytes = new List<byte>(payload);
        int edits = _random.Next(1, 5);
        for (int e = 0; e < edits; e++)
        {
            int at = bytes.Count == 0 ? 0 : _random.Next(bytes.Count);
            switch (_random.Next(6))
            {
                case 0 when bytes.Count > 0:
                    bytes[at] ^= (byte)(1 << _random.Next(8));
                    break;
                case 1:
                    bytes.RemoveRange(at, bytes.Count - at); // cut
                    break;
                case 2:
                    bytes.InsertRange(at, Encoding.UTF8.GetBytes(Tokens[_random.Next(Tokens.Length)]));
                    break;
                case 3 when bytes.Count > 0:
                    int length = _random.Next(1, Math.Min(64, bytes.Count - at) + 1);
                    bytes.InsertRange(at, bytes.GetRange(at, length)); // repeat a slice
                    break;
                case 4 when bytes.Count > 0:
                    bytes[at] = (byte)_random.Next(256);
                    break;
                default:
                    if (bytes.Count > 0)
                    {
                        bytes.RemoveAt(at);
                    }

                    break;
            }
        }

        return [.. bytes];
    }

    private string Value(int depth) => _random.Next(depth <= 0 ? 5 : 7) switch
    {
        0 => Tokens[_random.Next(Tokens.Length)],
        1 => Num((_random.NextDouble() - 0.5) * Math.Pow(10, _random.Next(-10, 40))),
        2 => "\"" + new string('s', _random.Next(0, 10)) + "\"",
        3 => _random.Next(2) == 0 ? "true" : "false",
        4 => "null",
        5 => "[" + string.Join(',', Enumerable.Range(0, _random.Next(0, 4)).Select(_ => Value(depth - 1))) + "]",
        _ => "{" + string.Join(',', Enumerable.Range(0, _random.Next(0, 3)).Select(_ => "\"" + Keys[_random.Next(Keys.Length)] + "\":" + Value(depth - 1))) + "}",
    };

    private string Maybe(string good) => _random.Next(6) == 0 ? Value(1) : good;

    private string Time() => _random.Next(8) switch
    {
        0 => "\"2026-11-30T10:00:00Z\"",
        1 => Value(1),
        2 => "9000000000000",
        3 => "-8999999999999.5",
        _ => Int(1_764_496_800_000 + _random.Next(0, 1000)),
    };

    private string Numbers(int count)
    {
        var b = new StringBuilder("[");
        for (int i = 0; i < count; i++)
        {
            b.Append(i > 0 ? "," : string.Empty);
            b.Append(_random.Next(100) == 0 ? Value(0) : Num((_random.NextDouble() * 2) - 1));
        }

        return b.Append(']').ToString();
    }

    private static string Num(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    private static string Int(long v) => v.ToString(CultureInfo.InvariantCulture);
}

/// <summary>One failing fuzz case.</summary>
/// <param name="Topic">The topic it was sent on.</param>
/// <param name="Payload">The payload.</param>
/// <param name="Problem">What went wrong.</param>
public sealed record FuzzFailure(string Topic, byte[] Payload, string Problem);

/// <summary>What a fuzz run found.</summary>
/// <param name="Cases">Payloads run.</param>
/// <param name="Failures">Payloads whose decoding threw or whose processing the engine had to contain.</param>
/// <param name="Elapsed">Time taken.</param>
/// <param name="Steps">Network steps the well-formed cases reached (shows the cases got past decoding).</param>
/// <param name="FirstFailures">Up to ten failing cases, to keep as regressions.</param>
public sealed record FuzzResult(long Cases, long Failures, TimeSpan Elapsed, long Steps, IReadOnlyList<FuzzFailure> FirstFailures)
{
    /// <summary>Cases per second.</summary>
    public double CasesPerSecond => Cases / Math.Max(1e-9, Elapsed.TotalSeconds);
}
