using System.Buffers;
using System.Globalization;
using System.IO.Compression;
using System.Net;
using System.Text;
using System.Text.Json;
using Signal.Engine.Live;
using Signal.Engine.Storage;

namespace Signal.Engine.Tests;

public sealed class InfluxTests
{
    private static readonly long s_t0 = 1_700_000_000_000_000_000;

    private static string Line(string measurement, Tag[] tags, Field[] fields, long ts, WritePrecision precision = WritePrecision.Nanoseconds)
    {
        var buffer = new ArrayBufferWriter<byte>();
        Assert.True(LineProtocol.Write(buffer, measurement, tags, fields, ts, precision));
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>Runs an InfluxQL query through /query and returns the first series' values.</summary>
    private static async Task<List<JsonElement[]>> Query(LocalInfluxDb db, string database, string q)
    {
        using HttpClient http = db.CreateClient();
        string json = await http.GetStringAsync(new Uri(db.Address, $"/query?db={Uri.EscapeDataString(database)}&epoch=ns&q={Uri.EscapeDataString(q)}"));
        using var doc = JsonDocument.Parse(json);
        JsonElement result = doc.RootElement.GetProperty("results")[0];
        Assert.False(result.TryGetProperty("error", out JsonElement error), error.ToString());
        if (!result.TryGetProperty("series", out JsonElement series))
        {
            return [];
        }

        return [.. series[0].GetProperty("values").EnumerateArray().Select(row => row.EnumerateArray().Select(v => v.Clone()).ToArray())];
    }

    private static async Task<long> Count(LocalInfluxDb db, string database, string measurement, string field = "value")
    {
        List<JsonElement[]> rows = await Query(db, database, $"SELECT count(\"{field}\") FROM \"{measurement}\"");
        return rows.Count == 0 ? 0 : rows[0][1].GetInt64();
    }

    private static async Task WaitUntil(Func<bool> condition, TimeSpan timeout, Func<string> what)
    {
        using var cancel = new CancellationTokenSource(timeout);
        while (!condition())
        {
            try
            {
                await Task.Delay(20, cancel.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail("timed out waiting: " + what());
            }
        }
    }

    [Fact]
    public void Line_protocol_escapes_every_part_as_the_spec_says()
    {
        Assert.Equal(
            "my\\ meas\\,ure,tag\\ key=tag\\,va\\=lue field\\ k\\=ey=\"say \\\"hi\\\" \\\\ there\" 17",
            Line("my meas,ure", [new("tag key", "tag,va=lue")], [Field.Of("field k=ey", "say \"hi\" \\ there")], 17).TrimEnd('\n'));
        Assert.Equal(
            "m,a=1 f=1.5,i=-3i,b=true,c=false,u=18446744073709551615u,s=\"\" 1700000000000\n",
            Line("m", [new("a", "1"), new("empty", ""), new("none", null)], [Field.Of("f", 1.5), Field.Of("i", -3L), Field.Of("b", true), Field.Of("c", false), Field.Of("u", ulong.MaxValue), Field.Of("s", "")], s_t0 + 999_999, WritePrecision.Milliseconds));

        // Shortest round-trip floats; NaN and infinities cannot be stored and are left out; a point left with no field is not written.
        Assert.Equal("m x=0.1,z=1E+300 1\n", Line("m", [], [Field.Of("x", 0.1), Field.Of("y", double.NaN), Field.Of("z", 1e300)], 1));
        var buffer = new ArrayBufferWriter<byte>();
        Assert.False(LineProtocol.Write(buffer, "m", [], [Field.Of("y", double.PositiveInfinity)], 1));
        Assert.Equal(0, buffer.WrittenCount);

        // Timestamps in each precision, rounding toward the past for times before 1970.
        Assert.Equal(1_700_000_000_000_000, LineProtocol.Convert(s_t0 + 999, WritePrecision.Microseconds));
        Assert.Equal(1_700_000_000, LineProtocol.Convert(s_t0 + 999_999_999, WritePrecision.Seconds));
        Assert.Equal(-1, LineProtocol.Convert(-1, WritePrecision.Milliseconds));

        var e = Assert.Throws<ArgumentException>(() => LineProtocol.Write(buffer, "m", [new("site", "a\nb")], [Field.Of("v", 1.0)], 1));
        Assert.Contains("tag 'site'", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => LineProtocol.Write(buffer, "", [], [Field.Of("v", 1.0)], 1));
        e = Assert.Throws<ArgumentException>(() => LineProtocol.Write(buffer, "m", [new("path", "C:\\")], [Field.Of("v", 1.0)], 1));
        Assert.Contains("backslash", e.Message, StringComparison.Ordinal);
        Assert.Equal(0, buffer.WrittenCount);
    }

    [Fact]
    public async Task Points_written_to_influxd_read_back_exactly_and_nasty_names_round_trip()
    {
        using var db = new LocalInfluxDb();
        await using (var writer = new InfluxWriter(new InfluxOptions { Database = "exact", BatchSize = 5_000 }.WithAddress(db.Address.ToString())))
        {
            for (int i = 0; i < 23_456; i++)
            {
                writer.Write("m", [new("stream", "s" + (i % 7).ToString(CultureInfo.InvariantCulture))], [Field.Of("value", i * 0.25), Field.Of("n", (long)i)], s_t0 + (i * 1000L));
            }

            await writer.FlushAsync();
            Assert.Equal(23_456, writer.Counters.Written);
        }

        Assert.Equal(23_456, await Count(db, "exact", "m"));
        List<JsonElement[]> sums = await Query(db, "exact", "SELECT sum(\"value\"), sum(\"n\") FROM \"m\"");
        Assert.Equal(0.25 * 23_455 * 23_456 / 2, sums[0][1].GetDouble());
        Assert.Equal(23_455L * 23_456 / 2, sums[0][2].GetInt64());

        string measurement = "we ird,meas=ure \"q\" Ωμέγα";
        string tagKey = "tag key,=\"x\"";
        string tagValue = "va lue,=\"Ω\" C:\\data";
        string fieldKey = "fi eld,=\"k\"";
        string text = "a \"quoted\" \\ back, slash = Ω\nsecond line";
        await using (var writer = new InfluxWriter(new InfluxOptions { Database = "nasty", Gzip = false }.WithAddress(db.Address.ToString())))
        {
            writer.Write(measurement, [new(tagKey, tagValue)], [Field.Of(fieldKey, text), Field.Of("value", 2.5)], s_t0);
            await writer.FlushAsync();
            Assert.Equal(1, writer.Counters.Written);
        }

        List<JsonElement[]> measurements = await Query(db, "nasty", "SHOW MEASUREMENTS");
        Assert.Equal(measurement, measurements.Single()[0].GetString());
        string quoted = "\"" + measurement.Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
        List<JsonElement[]> tagValues = await Query(db, "nasty", $"SHOW TAG VALUES FROM {quoted} WITH KEY = \"{tagKey.Replace("\"", "\\\"", StringComparison.Ordinal)}\"");
        Assert.Equal(tagValue, tagValues.Single()[1].GetString());
        List<JsonElement[]> rows = await Query(db, "nasty", $"SELECT \"{fieldKey.Replace("\"", "\\\"", StringComparison.Ordinal)}\", \"value\" FROM {quoted}");
        Assert.Equal(s_t0, rows.Single()[0].GetInt64());
        Assert.Equal(text, rows.Single()[1].GetString());
        Assert.Equal(2.5, rows.Single()[2].GetDouble());
    }

    [Fact]
    public async Task Https_with_a_private_ca_stores_everything_and_a_certificate_from_another_ca_is_refused()
    {
        using var certificates = new TestCertificates();
        using var db = new LocalInfluxDb(new TlsFiles(certificates.Ca, certificates.ServerCert, certificates.ServerKey));
        Assert.Equal("https", db.Address.Scheme);
        await using (var writer = new InfluxWriter(new InfluxOptions { Database = "tls", CaFile = certificates.Ca }.WithAddress(db.Address.ToString())))
        {
            for (int i = 0; i < 1_000; i++)
            {
                writer.Write("m", [new("stream", "s1")], [Field.Of("value", i * 0.5)], s_t0 + (i * 1000L));
            }

            await writer.FlushAsync();
            Assert.Equal(1_000, writer.Counters.Written);
            Assert.Null(writer.Problem);
        }

        Assert.Equal(1_000, await Count(db, "tls", "m"));

        // A client that trusts another CA (or, with no caFile, only the system's roots) does not send to this server.
        using var strangers = new TestCertificates();
        foreach (string? ca in new[] { strangers.Ca, null })
        {
            await using var refused = new InfluxWriter(new InfluxOptions { Database = "tls", CaFile = ca, ShutdownTimeout = TimeSpan.FromSeconds(0.5) }.WithAddress(db.Address.ToString()));
            refused.Write("m", [new("stream", "s2")], [Field.Of("value", 1.0)], s_t0);
            _ = refused.FlushAsync();
            await WaitUntil(() => refused.Problem is not null, TimeSpan.FromSeconds(20), () => "no TLS failure reported");
            Assert.Contains("SSL", refused.Problem, StringComparison.OrdinalIgnoreCase);
            Assert.Equal(0, refused.Counters.Written);
        }

        Assert.Equal(1_000, await Count(db, "tls", "m"));
        Assert.Contains("influx.caFile: is only for https", Assert.Throws<ArgumentException>(() => new InfluxOptions { CaFile = certificates.Ca }.WithAddress("http://127.0.0.1:8086").Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("does not exist", Assert.Throws<ArgumentException>(() => new InfluxOptions { CaFile = "/nonexistent/ca.crt" }.WithAddress("https://127.0.0.1:8086").Validate()).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Influxd_killed_and_restarted_mid_stream_loses_nothing_and_duplicates_nothing()
    {
        using var db = new LocalInfluxDb();
        string spool = Directory.CreateTempSubdirectory("signal-spool-").FullName;
        var options = new InfluxOptions
        {
            Database = "restart",
            BatchSize = 500,
            FlushInterval = TimeSpan.FromMilliseconds(100),
            SpoolFolder = spool,
            RetryDelay = TimeSpan.FromMilliseconds(100),
            RetryDelayMax = TimeSpan.FromMilliseconds(500),
            RetryBeforeSpool = TimeSpan.FromMilliseconds(500),
            RequestTimeout = TimeSpan.FromSeconds(2),
        }.WithAddress(db.Address.ToString());
        const int total = 30_000;
        await using (var writer = new InfluxWriter(options))
        {
            for (int i = 0; i < total; i++)
            {
                writer.Write("m", [new("stream", "s" + (i % 10).ToString(CultureInfo.InvariantCulture))], [Field.Of("value", (double)i)], s_t0 + (i * 1000L));
                if (i == total / 3)
                {
                    db.Stop(kill: true);
                }

                if (i == 2 * total / 3)
                {
                    await WaitUntil(() => writer.Counters.Spooled > 0, TimeSpan.FromSeconds(20), () => "nothing was spooled");
                    db.Start();
                }

                if (i % 100 == 0)
                {
                    await Task.Delay(2); // about 1.5 s of writing, so the outage spans many batches
                }
            }

            await writer.FlushAsync();
            await WaitUntil(() => writer.SpoolPoints == 0 && writer.Counters.Written == total, TimeSpan.FromSeconds(60), () => $"written {writer.Counters.Written}, spool {writer.SpoolPoints}");
            Assert.True(writer.Counters.Spooled > 0 && writer.Counters.Replayed > 0, $"spooled {writer.Counters.Spooled}, replayed {writer.Counters.Replayed}");
            Assert.Equal(0, writer.Counters.Dropped);
        }

        // Every point arrived once: the count and the sum of the unique values are exact.
        Assert.Equal(total, await Count(db, "restart", "m"));
        List<JsonElement[]> sum = await Query(db, "restart", "SELECT sum(\"value\") FROM \"m\"");
        Assert.Equal((double)total * (total - 1) / 2, sum[0][1].GetDouble());
        Directory.Delete(spool, recursive: true);
    }

    [Fact]
    public async Task What_a_crash_leaves_in_the_spool_replays_on_the_next_start_and_a_corrupt_segment_is_skipped()
    {
        using var db = new LocalInfluxDb();
        string spool = Directory.CreateTempSubdirectory("signal-spool-").FullName;
        const int total = 20_000;

        // Nothing listens on this port: every batch ends in the spool (forced to disk after each batch).
        var away = new InfluxOptions { Database = "crash", BatchSize = 1_000, SpoolFolder = spool, SpoolMaxBytes = 2 << 20, RetryBeforeSpool = TimeSpan.FromMilliseconds(200), RetryDelay = TimeSpan.FromMilliseconds(50) }
            .WithAddress($"http://127.0.0.1:{LocalServer.FreePort()}/crash");
        var writer = new InfluxWriter(away);
        for (int i = 0; i < total; i++)
        {
            writer.Write("m", [new("stream", "s1")], [Field.Of("value", (double)i)], s_t0 + (i * 1000L));
        }

        await writer.FlushAsync();
        Assert.Equal(total, writer.Counters.Spooled);

        // A crash leaves the files as they are now; the next start sees exactly these.
        string afterCrash = Directory.CreateTempSubdirectory("signal-spool-crash-").FullName;
        foreach (string file in Directory.GetFiles(spool))
        {
            File.Copy(file, Path.Combine(afterCrash, Path.GetFileName(file)));
        }

        await writer.DisposeAsync();
        string[] segments = [.. Directory.GetFiles(afterCrash, "bulk-*.seg").Order(StringComparer.Ordinal)];
        Assert.True(segments.Length >= 3, $"{segments.Length} segments");

        // Flip one byte in the middle of the second segment: its checksum fails.
        byte[] bytes = File.ReadAllBytes(segments[1]);
        bytes[bytes.Length / 2] ^= 0x5A;
        File.WriteAllBytes(segments[1], bytes);

        var back = new InfluxOptions { Database = "crash", SpoolFolder = afterCrash }.WithAddress(db.Address.ToString());
        await using (var restarted = new InfluxWriter(back))
        {
            await WaitUntil(() => restarted.SpoolPoints == 0 && restarted.CorruptSegments == 1, TimeSpan.FromSeconds(30), () => $"spool {restarted.SpoolPoints}, corrupt {restarted.CorruptSegments}");
            long replayed = restarted.Counters.Replayed;
            Assert.InRange(replayed, total / 2, total - 1000);
            Assert.Equal(replayed, await Count(db, "crash", "m"));
        }

        Assert.Single(Directory.GetFiles(afterCrash, "*.corrupt"));
        Directory.Delete(spool, recursive: true);
        Directory.Delete(afterCrash, recursive: true);
    }

    [Fact]
    public async Task Only_points_with_a_bad_field_type_are_dead_lettered_with_the_servers_reason()
    {
        using var db = new LocalInfluxDb();
        string folder = Directory.CreateTempSubdirectory("signal-dead-").FullName;
        var options = new InfluxOptions { Database = "types", DeadLetterFile = Path.Combine(folder, "dead.lp") }.WithAddress(db.Address.ToString());
        await using (var writer = new InfluxWriter(options))
        {
            writer.Write("m", [], [Field.Of("value", 1.0)], s_t0);
            await writer.FlushAsync();
            for (int i = 1; i <= 100; i++)
            {
                Field value = i is 17 or 60 ? Field.Of("value", "text") : Field.Of("value", (double)i);
                writer.Write("m", [], [value], s_t0 + i);
            }

            await writer.FlushAsync();
            Assert.Equal(2, writer.Counters.DeadLettered);
            Assert.Equal(99, writer.Counters.Written);
        }

        Assert.Equal(99, await Count(db, "types", "m"));
        string[] dead = File.ReadAllLines(Path.Combine(folder, "dead.lp"));
        Assert.Equal(4, dead.Length);
        Assert.Contains("field type conflict", dead[0], StringComparison.Ordinal);
        Assert.Equal($"m value=\"text\" {s_t0 + 17}", dead[1]);
        Assert.Equal($"m value=\"text\" {s_t0 + 60}", dead[3]);
        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public async Task The_v2_endpoint_gets_its_path_query_token_gzip_body_and_retries_honour_retry_after()
    {
        int port = LocalServer.FreePort();
        using var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        var requests = new List<(string Path, string Query, string? Authorization, string? Encoding, string Body, DateTime At)>();
        int[] answers = [429, 503, 204, 204];
        Task server = Task.Run(async () =>
        {
            foreach (int status in answers)
            {
                HttpListenerContext context = await listener.GetContextAsync();
                HttpListenerRequest request = context.Request;
                using var body = new MemoryStream();
                Stream input = request.Headers["Content-Encoding"] == "gzip" ? new GZipStream(request.InputStream, CompressionMode.Decompress) : request.InputStream;
                await input.CopyToAsync(body);
                requests.Add((request.Url!.AbsolutePath, request.Url.Query, request.Headers["Authorization"], request.Headers["Content-Encoding"], Encoding.UTF8.GetString(body.ToArray()), DateTime.UtcNow));
                context.Response.StatusCode = status;
                if (status == 429)
                {
                    context.Response.Headers["Retry-After"] = "1";
                }

                context.Response.Close();
            }
        });
        var options = new InfluxOptions { Org = "acme", Bucket = "sensors", Token = "s3cret", Precision = WritePrecision.Milliseconds, RetryDelay = TimeSpan.FromMilliseconds(50) }
            .WithAddress($"http://127.0.0.1:{port}");
        await using (var writer = new InfluxWriter(options))
        {
            writer.Write("classification", [new("model", "m1"), new("stream", "pump/vib")], [Field.Of("label", "outer"), Field.Of("confidence", 0.75)], s_t0 + 1_500_000);
            writer.Write("alert", [new("stream", "pump/vib")], [Field.Of("state", "raised")], s_t0 + 2_000_000, alert: true);
            await writer.FlushAsync();
            Assert.Equal(2, writer.Counters.Written);
            Assert.Equal(2, writer.Counters.Retries);
        }

        await server;
        Assert.All(requests, r =>
        {
            Assert.Equal("/api/v2/write", r.Path);
            Assert.Equal("?org=acme&bucket=sensors&precision=ms", r.Query);
            Assert.Equal("Token s3cret", r.Authorization);
            Assert.Equal("gzip", r.Encoding);
        });
        string bulk = $"classification,model=m1,stream=pump/vib label=\"outer\",confidence=0.75 {(s_t0 / 1_000_000) + 1}\n";
        string alert = $"alert,stream=pump/vib state=\"raised\" {(s_t0 / 1_000_000) + 2}\n";
        Assert.Equal([bulk, bulk, bulk, alert], requests.Select(r => r.Body));

        // The 429 asked for one second; the 503 that followed was retried after the back-off.
        Assert.True(requests[1].At - requests[0].At >= TimeSpan.FromSeconds(0.95), $"{(requests[1].At - requests[0].At).TotalMilliseconds} ms");
    }

    [Fact]
    public async Task The_engines_classifications_alerts_and_anomaly_scores_are_stored_in_the_documented_schema()
    {
        using var db = new LocalInfluxDb();
        EngineModel model = EngineModel.From(
            Signal.Models.Networks.RecurrentModel.CreateRandom(TestModels.Architecture(3, forecast: true), 7, TestModels.Labels)
                .WithMetadata(new Dictionary<string, string> { [EngineModel.AnomalyThresholdKey] = "0.5" }),
            "schema-test");
        var rules = new List<AlertRule> { new() { Name = "inner", Class = "inner", Raise = 0.0, Clear = -1, K = 1, N = 1, ClearSteps = 1 } };
        using var engine = new SignalEngine(model, new EngineOptions { Alerts = rules });
        var classes = new List<Classification>();
        engine.Classifications.Subscribe(classes.Add);
        await using var writer = new InfluxWriter(new InfluxOptions { Database = "schema" }.WithAddress(db.Address.ToString()));
        var errors = new List<Exception>();
        using (new InfluxSink(engine, writer, errors.Add))
        {
            foreach (byte[] m in TestModels.Messages(TestModels.Signal(200, 3, 4), 3, 100, seed: 2))
            {
                engine.Process("sensors/pump/vib", m);
            }

            engine.Flush();
        }

        await writer.FlushAsync();
        Assert.Empty(errors);
        Assert.Equal(200, await Count(db, "schema", "classification", "confidence"));
        Assert.Equal(199, await Count(db, "schema", "anomaly", "score"));
        Assert.Equal(199, await Count(db, "schema", "anomaly", "threshold"));
        Assert.Equal(1, await Count(db, "schema", "alert", "value"));
        List<JsonElement[]> rows = await Query(db, "schema", "SELECT \"label\", \"confidence\", \"p_normal\", \"p_inner\", \"p_outer\", \"model\", \"stream\" FROM \"classification\" ORDER BY time LIMIT 5 OFFSET 40");
        for (int r = 0; r < rows.Count; r++)
        {
            Classification c = classes[40 + r];
            Assert.Equal(c.TimestampNs, rows[r][0].GetInt64());
            Assert.Equal(c.Label, rows[r][1].GetString());
            Assert.Equal(c.Confidence, (float)rows[r][2].GetDouble());
            Assert.Equal(c.Probabilities, new[] { (float)rows[r][3].GetDouble(), (float)rows[r][4].GetDouble(), (float)rows[r][5].GetDouble() });
            Assert.Equal(model.Name, rows[r][6].GetString());
            Assert.Equal("pump/vib", rows[r][7].GetString());
        }

        List<JsonElement[]> alert = await Query(db, "schema", "SELECT \"state\", \"rule\", \"severity\", \"probabilities\" FROM \"alert\"");
        Assert.Equal("raised", alert[0][1].GetString());
        Assert.Equal("inner", alert[0][2].GetString());
        Assert.StartsWith("{\"normal\":", alert[0][4].GetString(), StringComparison.Ordinal);

        // Every query of the Grafana dashboard in the repo runs on these measurements and finds data.
        string dashboard = Path.Combine(AppContext.BaseDirectory, "signal-dashboard.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(dashboard));
        int queries = 0;
        foreach (JsonElement panel in doc.RootElement.GetProperty("panels").EnumerateArray())
        {
            foreach (JsonElement target in panel.GetProperty("targets").EnumerateArray())
            {
                string q = target.GetProperty("query").GetString()!
                    .Replace("$stream", ".*", StringComparison.Ordinal)
                    .Replace("$timeFilter", $"time >= {classes[0].TimestampNs} AND time <= {classes[^1].TimestampNs}", StringComparison.Ordinal)
                    .Replace("$__interval", "100ms", StringComparison.Ordinal);
                Assert.True((await Query(db, "schema", q)).Count > 0, "no rows: " + q);
                queries++;
            }
        }

        Assert.Equal(5, queries);
    }

    [Fact]
    public void A_full_spool_drops_the_oldest_bulk_data_first_and_keeps_alerts()
    {
        string folder = Directory.CreateTempSubdirectory("signal-spool-full-").FullName;
        static LineBatch Batch(bool alert, int first, int count)
        {
            var batch = new LineBatch(1024, alert);
            for (int i = first; i < first + count; i++)
            {
                LineProtocol.Write(batch, alert ? "alert" : "m", [], [Field.Of("value", (double)i), Field.Of("pad", new string('x', 200))], s_t0 + i);
                batch.EndPoint();
            }

            return batch;
        }

        long droppedTotal = 0;
        using (var spool = new DiskSpool(folder, 1 << 20, SpoolSync.Never))
        {
            // 1 MiB holds about 4,500 of these 230-byte points; 128 KiB segments. Write 10,000 bulk points and 3,000 alert points.
            for (int b = 0; b < 100; b++)
            {
                using LineBatch bulk = Batch(false, b * 100, 100);
                spool.Append(bulk, out long dropped);
                droppedTotal += dropped;
                if (b % 3 == 0)
                {
                    using LineBatch alerts = Batch(true, b * 100, 100);
                    Assert.True(spool.Append(alerts, out dropped));
                    droppedTotal += dropped;
                }
            }

            Assert.True(droppedTotal > 5_000, $"{droppedTotal} dropped");
            var alertValues = new List<double>();
            var bulkValues = new List<double>();
            while (spool.TryPeek(out LineBatch? batch))
            {
                using (batch)
                {
                    for (int i = 0; i < batch!.Count; i++)
                    {
                        string line = Encoding.UTF8.GetString(batch.Point(i));
                        double value = double.Parse(line[(line.IndexOf("value=", StringComparison.Ordinal) + 6)..line.IndexOf(',', line.IndexOf("value=", StringComparison.Ordinal))], CultureInfo.InvariantCulture);
                        (line.StartsWith("alert", StringComparison.Ordinal) ? alertValues : bulkValues).Add(value);
                    }

                    spool.Commit(batch.Count);
                }
            }

            // Every alert is kept, in order; the bulk data left is the newest, in order, and what is missing was counted.
            Assert.Equal(Enumerable.Range(0, 34).SelectMany(b => Enumerable.Range(b * 300, 100)).Select(v => (double)v), alertValues);
            Assert.Equal(10_000 - droppedTotal, bulkValues.Count);
            Assert.Equal(Enumerable.Range(10_000 - bulkValues.Count, bulkValues.Count).Select(v => (double)v), bulkValues);
            Assert.True(spool.IsEmpty);
        }

        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public void A_fully_replayed_spool_leaves_no_segment_on_disk_and_a_restart_replays_nothing()
    {
        string folder = Directory.CreateTempSubdirectory("signal-spool-replayed-").FullName;
        using (var spool = new DiskSpool(folder, 1 << 20, SpoolSync.Never))
        {
            for (int b = 0; b < 3; b++)
            {
                using var batch = new LineBatch(1024);
                LineProtocol.Write(batch, "m", [], [Field.Of("value", (double)b)], s_t0 + b);
                batch.EndPoint();
                spool.Append(batch, out _);
            }

            Assert.True(spool.Bytes > 0);
            int replayed = 0;
            while (spool.TryPeek(out LineBatch? batch))
            {
                using (batch)
                {
                    replayed += batch!.Count;
                    spool.Commit(batch.Count);
                }
            }

            Assert.Equal(3, replayed);
            Assert.Equal((0L, 0L), (spool.Points, spool.Bytes));
            Assert.Empty(Directory.GetFiles(folder, "*", SearchOption.AllDirectories));
        }

        using (var again = new DiskSpool(folder, 1 << 20, SpoolSync.Never))
        {
            Assert.True(again.IsEmpty);
            Assert.False(again.TryPeek(out _));
        }

        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public async Task A_file_url_appends_the_line_protocol_to_that_file()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("signal-lp-").FullName, "points.lp");
        await using (var writer = new InfluxWriter(new InfluxOptions().WithAddress(new Uri(path).AbsoluteUri)))
        {
            writer.Write("m", [new("stream", "a b")], [Field.Of("value", 1.5)], s_t0);
            writer.Write("alert", [new("stream", "a b")], [Field.Of("state", "raised")], s_t0 + 1, alert: true);
            await writer.FlushAsync();
            Assert.Equal(2, writer.Counters.Written);
        }

        Assert.Equal([$"m,stream=a\\ b value=1.5 {s_t0}", $"alert,stream=a\\ b state=\"raised\" {s_t0 + 1}"], File.ReadAllLines(path));
        Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
    }
}
