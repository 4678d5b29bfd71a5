using System.Text.Json.Serialization;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Signal.Engine.Storage;

namespace Signal.Edge.Commands;

/// <summary><c>signal-edge bench influx</c>: our writer against the raw HTTP ceiling, to a real influxd on loopback.</summary>
internal static partial class InfluxBench
{
    private static readonly string[] s_labels = ["normal", "inner", "outer", "ball"];

    public static Command Create()
    {
        var url = new Option<string>("--influx") { Description = "Use this InfluxDB 1.x (http://host:port) instead of starting a private Debian influxd on a free loopback port." };
        var points = new Option<int>("--points") { Description = "Points per run.", DefaultValueFactory = _ => 500_000 };
        var batch = new Option<int>("--batch") { Description = "Points per request.", DefaultValueFactory = _ => 5_000 };
        var rounds = new Option<int>("--rounds") { Description = "Rounds; the best of each is compared.", DefaultValueFactory = _ => 3 };
        var command = new Command("influx", """
            Points per second into a real influxd on loopback (a private Debian influxd unless --influx is given):
            the raw ceiling posts pre-built line protocol with plain HttpClient, one client, --batch points per request,
            uncompressed; ours formats the same classification points through InfluxWriter (batching, gzip off and on).
            Each round writes fresh series into a fresh database; the best of --rounds is compared. Also reports the
            writer's CPU per point (formatting and sending, measured as process CPU time). Prints JSON.
            """)
        {
            url, points, batch, rounds,
        };
        command.SetAction(parse => CommandErrors.Run(() =>
        {
            int n = parse.GetValue(points), size = parse.GetValue(batch), r = parse.GetValue(rounds);
            if (n < 1 || size < 1 || r < 1)
            {
                throw new ArgumentException("bench influx: need --points, --batch and --rounds ≥ 1.");
            }

            using LocalInfluxDb? local = parse.GetValue(url) is null ? new LocalInfluxDb() : null;
            Uri server = local?.Address ?? new Uri(parse.GetValue(url)!);
            Console.Error.WriteLine($"influxd {server}{(local is null ? "" : $" (private, pid {local.ProcessId})")}");
            var raw = new List<Run>();
            var ours = new List<Run>();
            var gzip = new List<Run>();
            int database = 0;
            Console.Error.WriteLine("warm-up (not reported) …");
            Raw(server, $"warm{++database}", Math.Max(size, n / 10), size);
            Ours(server, $"warm{++database}", Math.Max(size, n / 10), size, gzip: false);
            Ours(server, $"warm{++database}", Math.Max(size, n / 10), size, gzip: true);
            for (int i = 1; i <= r; i++)
            {
                Console.Error.WriteLine($"round {i}/{r}: raw HttpClient, InfluxWriter, InfluxWriter with gzip …");
                raw.Add(Raw(server, $"raw{++database}", n, size));
                ours.Add(Ours(server, $"ours{++database}", n, size, gzip: false));
                gzip.Add(Ours(server, $"gzip{++database}", n, size, gzip: true));
            }

            Run bestRaw = raw.MaxBy(x => x.PointsPerSecond)!, bestOurs = ours.MaxBy(x => x.PointsPerSecond)!, bestGzip = gzip.MaxBy(x => x.PointsPerSecond)!;
            var report = new Report(server.ToString(), n, size, bestRaw, bestOurs, bestGzip, Math.Round(bestOurs.PointsPerSecond / bestRaw.PointsPerSecond, 3), Math.Round(bestGzip.PointsPerSecond / bestRaw.PointsPerSecond, 3),
                [.. raw.Select(x => x.PointsPerSecond)], [.. ours.Select(x => x.PointsPerSecond)], [.. gzip.Select(x => x.PointsPerSecond)]);
            Console.WriteLine(JsonSerializer.Serialize(report, InfluxBenchJson.Default.Report));
            return 0;
        }));
        return command;
    }

    private static void Point(LineWriterTarget target, int i, long t0)
    {
        int cls = i % 4;
        target.Write(
            "classification",
            [new("model", "bench"), new("stream", "s" + (i % 1000).ToString(CultureInfo.InvariantCulture))],
            [Field.Of("label", s_labels[cls]), Field.Of("class", (long)cls), Field.Of("confidence", 0.7), Field.Of("p_normal", 0.1), Field.Of("p_inner", 0.1), Field.Of("p_outer", 0.7), Field.Of("p_ball", 0.1)],
            t0 + (i / 1000 * 10_000_000L));
    }

    /// <summary>The ceiling: the same line protocol built beforehand, posted batch after batch with plain HttpClient.</summary>
    private static Run Raw(Uri server, string database, int points, int size)
    {
        using var http = new HttpClient();
        Create(http, server, database);
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        var bodies = new List<byte[]>();
        long t0 = Now();
        TimeSpan format0 = Process.GetCurrentProcess().TotalProcessorTime;
        for (int start = 0; start < points; start += size)
        {
            buffer.ResetWrittenCount();
            var target = new LineWriterTarget(buffer);
            for (int i = start; i < Math.Min(points, start + size); i++)
            {
                Point(target, i, t0);
            }

            bodies.Add(buffer.WrittenSpan.ToArray());
        }

        double formatNs = (Process.GetCurrentProcess().TotalProcessorTime - format0).TotalNanoseconds / points;
        var uri = new Uri(server, $"/write?db={database}&precision=ns");
        TimeSpan cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        long begin = Stopwatch.GetTimestamp();
        foreach (byte[] body in bodies)
        {
            using var content = new ByteArrayContent(body);
            using HttpResponseMessage response = http.PostAsync(uri, content).GetAwaiter().GetResult();
            if (!response.IsSuccessStatusCode)
            {
                throw new InvalidOperationException($"raw write: HTTP {(int)response.StatusCode} {response.Content.ReadAsStringAsync().GetAwaiter().GetResult()}");
            }
        }

        TimeSpan elapsed = Stopwatch.GetElapsedTime(begin), cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu0;
        return Run.Of(points, elapsed, cpu, Verify(http, server, database, points)) with { FormatNanosecondsPerPoint = Math.Round(formatNs) };
    }

    private static Run Ours(Uri server, string database, int points, int size, bool gzip)
    {
        var options = new InfluxOptions { Database = database, BatchSize = size, Gzip = gzip, MaxQueuedBatches = 4 }.WithAddress(server.ToString());
        long t0 = Now();
        TimeSpan cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        long begin = Stopwatch.GetTimestamp();
        long written;
        var writer = new InfluxWriter(options);
        try
        {
            var target = new LineWriterTarget(writer);
            for (int i = 0; i < points; i++)
            {
                Point(target, i, t0);
            }

            writer.FlushAsync().GetAwaiter().GetResult();
            written = writer.Counters.Written;
        }
        finally
        {
            writer.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        TimeSpan elapsed = Stopwatch.GetElapsedTime(begin), cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu0;
        if (written != points)
        {
            throw new InvalidOperationException($"writer: {written} of {points} points written");
        }

        using var http = new HttpClient();
        return Run.Of(points, elapsed, cpu, Verify(http, server, database, points));
    }

    private static void Create(HttpClient http, Uri server, string database)
    {
        using var content = new FormUrlEncodedContent([new("q", $"CREATE DATABASE \"{database}\"")]);
        http.PostAsync(new Uri(server, "/query"), content).GetAwaiter().GetResult().EnsureSuccessStatusCode();
    }

    /// <summary>Counts the points back, so a run that lost points cannot look fast.</summary>
    private static long Verify(HttpClient http, Uri server, string database, int points)
    {
        string json = http.GetStringAsync(new Uri(server, $"/query?db={database}&q={Uri.EscapeDataString("SELECT count(\"confidence\") FROM \"classification\"")}")).GetAwaiter().GetResult();
        using var doc = JsonDocument.Parse(json);
        long count = doc.RootElement.GetProperty("results")[0].GetProperty("series")[0].GetProperty("values")[0][1].GetInt64();
        if (count != points)
        {
            throw new InvalidOperationException($"{database}: {count} of {points} points read back");
        }

        return count;
    }

    private static long Now() => (DateTimeOffset.UtcNow.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100;

    /// <summary>Formats a point either into a plain buffer (the ceiling's pre-built bodies) or through the writer.</summary>
    private sealed class LineWriterTarget
    {
        private readonly System.Buffers.ArrayBufferWriter<byte>? _buffer;
        private readonly InfluxWriter? _writer;

        public LineWriterTarget(System.Buffers.ArrayBufferWriter<byte> buffer) => _buffer = buffer;

        public LineWriterTarget(InfluxWriter writer) => _writer = writer;

        public void Write(string measurement, ReadOnlySpan<Tag> tags, ReadOnlySpan<Field> fields, long ts)
        {
            if (_writer is not null)
            {
                _writer.Write(measurement, tags, fields, ts);
            }
            else
            {
                LineProtocol.Write(_buffer!, measurement, tags, fields, ts);
            }
        }
    }

    private sealed record Run(long Points, double Seconds, double PointsPerSecond, double CpuNanosecondsPerPoint, long ReadBack)
    {
        /// <summary>For the raw ceiling: CPU to build its bodies beforehand (not in its time).</summary>
        public double? FormatNanosecondsPerPoint { get; init; }

        public static Run Of(long points, TimeSpan elapsed, TimeSpan cpu, long readBack)
        {
            double seconds = elapsed.TotalSeconds;
            return new Run(points, Math.Round(seconds, 3), Math.Round(points / seconds), Math.Round(cpu.TotalNanoseconds / points), readBack);
        }
    }

    private sealed record Report(string Server, int Points, int BatchSize, Run RawHttp, Run Writer, Run WriterGzip, double WriterOfRaw, double WriterGzipOfRaw, double[] RawRounds, double[] WriterRounds, double[] WriterGzipRounds);

    /// <summary>The report's JSON, source-generated (snake_case, indented): works in the NativeAOT build too.</summary>
    [JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
    [JsonSerializable(typeof(Report))]
    private sealed partial class InfluxBenchJson : JsonSerializerContext;
}
