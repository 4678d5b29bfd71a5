using System.Text;
using FsCheck;
using FsCheck.Fluent;
using Signal.Engine.Live;
using Signal.Engine.Payloads;

namespace Signal.Engine.Tests;

/// <summary>No message can end the message loop: every decoder refuses bad bytes with a reason.</summary>
public sealed class HostileInputTests
{
    /// <summary>The SenML messages that stopped the daemon (issue 16), each with the field the refusal must name.</summary>
    public static TheoryData<string, string> SenMLCrashers => new()
    {
        { """[{"n":"x","v":"1"}]""", "'v'" },
        { """[{"bn":5,"n":"x","v":1}]""", "'bn'" },
        { """[{"n":1,"v":1}]""", "'n'" },
        { """[{"n":"x","v":1,"t":"x"}]""", "'t'" },
        { """[{"n":"x","v":null}]""", "'v'" },
        { """[{"bt":true,"n":"x","v":1}]""", "'bt'" },
        { """[{"bv":[1],"n":"x","v":1}]""", "'bv'" },
        { """[{"n":"x","v":1e999}]""", "'v'" },
    };

    [Fact]
    public void Senml_names_whose_record_counts_only_add_up_are_refused()
    {
        // Found by bench fuzz after 1,000,000 cases: counts 2, 3, 1, 2 over four names total 4 × 2 samples.
        const string payload = """[{"t":0,"v":1,"n":"c0"},{"n":"c1","t":0,"v":2},{"t":0,"v":3,"n":"c2"},{"v":4,"t":1},{"v":5,"t":1,"n":"c1"},{"v":6,"l":"c2","t":1},{"v":7,"t":2,"n":"c0"},{"n":"c1","t":2,"v":8}]""";
        Assert.False(new PayloadDecoder().TryDecode(Encoding.UTF8.GetBytes(payload), PayloadFormat.Auto, out _, out string error));
        Assert.Contains("name 'c1' has 3 records, 'c0' has 2", error, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(SenMLCrashers))]
    public void A_senml_field_of_the_wrong_type_is_refused_naming_record_and_field(string payload, string field)
    {
        var decoder = new PayloadDecoder();
        Assert.False(decoder.TryDecode(Encoding.UTF8.GetBytes(payload), PayloadFormat.Auto, out _, out string error));
        Assert.Contains("record 0", error, StringComparison.Ordinal);
        Assert.Contains(field, error, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(SenMLCrashers))]
    public void A_crashing_message_is_dead_lettered_and_the_next_message_is_still_classified(string payload, string field)
    {
        _ = field;
        using var engine = new SignalEngine(TestModels.WithFeatures(channels: 1));
        var letters = new List<DeadLetter>();
        var classes = new List<Classification>();
        using IDisposable a = engine.DeadLetters.Subscribe(letters.Add);
        using IDisposable b = engine.Classifications.Subscribe(classes.Add);
        engine.Process("sensors/p/vib", Encoding.UTF8.GetBytes(payload));
        foreach (byte[] m in TestModels.Messages(TestModels.Signal(400, 1, 3), 1, 1000, seed: 3))
        {
            engine.Process("sensors/p/vib", m);
        }

        engine.Flush();
        DeadLetter letter = Assert.Single(letters);
        Assert.Equal("undecodable", letter.Reason);
        Assert.Equal(1, engine.Counters.Rejected["undecodable"]);
        Assert.False(engine.Counters.Rejected.ContainsKey("internal_error"));
        Assert.Equal(1 + ((400 - 64) / 32), classes.Count);
    }

    [Fact]
    public void An_exception_while_processing_is_contained_counted_and_the_engine_goes_on()
    {
        using var engine = new SignalEngine(TestModels.Raw(3), new EngineOptions { MaxBatch = 1 });
        var letters = new List<DeadLetter>();
        int seen = 0, thrown = 0;
        using IDisposable a = engine.DeadLetters.Subscribe(letters.Add);
        using IDisposable counter = engine.Classifications.Subscribe(_ => seen++);
        // A result observer that fails: the failure surfaces inside Process, as any defect in a stage would (Rx then
        // detaches that observer; the engine and its other observers go on).
        using IDisposable b = engine.Classifications.Subscribe(_ =>
        {
            thrown++;
            throw new InvalidOperationException("observer defect");
        });
        byte[] one = TestModels.Binary(0, 1, 0, 3, [1f, 2f, 3f]);
        engine.Process("sensors/a/vib", one);
        Assert.Equal(1, engine.Counters.Rejected["internal_error"]);
        DeadLetter letter = Assert.Single(letters);
        Assert.Equal(("internal_error", "a/vib", one.Length), (letter.Reason, letter.Stream, letter.PayloadLength));
        Assert.Contains("observer defect", letter.Detail, StringComparison.Ordinal);

        engine.Process("sensors/a/vib", TestModels.Binary(1, 2, 0, 3, [1f, 2f, 3f]));
        engine.Process("sensors/b/vib", TestModels.Binary(0, 1, 0, 3, [1f, 2f, 3f]));
        engine.Flush();
        Assert.Equal((3, 1), (seen, thrown));
        Assert.Equal(1, engine.Counters.Rejected["internal_error"]);
        Assert.Equal(1, engine.Counters.InternalErrors);
        Assert.Equal(1, engine.Counters.Resets["internal_error"]); // the stream of the failed batch, once
    }

    [Fact]
    public void An_exception_on_the_batching_timer_is_contained_and_the_streams_of_its_batch_start_afresh()
    {
        // Before, this exception escaped on a timer thread and ended the process.
        var clock = new System.Reactive.Concurrency.HistoricalScheduler(new DateTimeOffset(2026, 11, 30, 0, 0, 0, TimeSpan.Zero));
        using var engine = new SignalEngine(TestModels.Raw(3), new EngineOptions { MaxBatch = 8, MaxWait = TimeSpan.FromMilliseconds(10) }, clock);
        int thrown = 0, seen = 0;
        using IDisposable counter = engine.Classifications.Subscribe(_ => seen++);
        using IDisposable failing = engine.Classifications.Subscribe(_ =>
        {
            thrown++;
            throw new InvalidOperationException("observer defect");
        });
        engine.Process("sensors/a/vib", TestModels.Binary(0, 1, 0, 3, [1f, 2f, 3f]));
        engine.Process("sensors/b/vib", TestModels.Binary(0, 1, 0, 3, [1f, 2f, 3f]));
        clock.AdvanceBy(TimeSpan.FromMilliseconds(10)); // the timer steps a and b; the first result throws
        Assert.Equal((1, 1), (seen, thrown));
        Assert.Equal(1, engine.Counters.InternalErrors);
        Assert.Equal(2, engine.Counters.Resets["internal_error"]);
        Assert.False(engine.Counters.Rejected.ContainsKey("internal_error")); // no message was refused
        engine.Process("sensors/a/vib", TestModels.Binary(1, 2, 0, 3, [1f, 2f, 3f]));
        clock.AdvanceBy(TimeSpan.FromMilliseconds(10));
        Assert.Equal(2, seen);
    }

    [Fact]
    public void A_dead_letter_carries_a_bounded_prefix_and_the_original_size()
    {
        using var engine = new SignalEngine(TestModels.Raw(3), new EngineOptions { MaxMessageBytes = 1 << 20, DeadLetterBytes = 256 });
        var letters = new List<DeadLetter>();
        using IDisposable a = engine.DeadLetters.Subscribe(letters.Add);
        var huge = new byte[5 << 20];
        huge[0] = (byte)'{';
        engine.Process("sensors/a/vib", huge);
        DeadLetter letter = Assert.Single(letters);
        Assert.Equal("oversized", letter.Reason);
        Assert.Equal(256, letter.Payload.Length);
        Assert.Equal(5 << 20, letter.PayloadLength);
        Assert.True(letter.Truncated);
        Assert.Equal((byte)'{', letter.Payload[0]);
    }

    [Fact]
    public void Ten_thousand_fuzzed_payloads_are_all_refused_or_taken_without_an_exception()
    {
        // Cases reach the network: well-formed ones step it (Steps > 0), the rest are refused with a reason.
        FuzzResult features = PayloadFuzzer.Run(TestModels.WithFeatures(forecast: true), 6000, seed: 16);
        FuzzResult raw = PayloadFuzzer.Run(TestModels.Raw(3, forecast: true), 4000, seed: 17);
        foreach (FuzzResult r in new[] { features, raw })
        {
            Assert.True(r.Failures == 0, string.Join("\n", r.FirstFailures.Select(f => $"{f.Problem}: {f.Topic} {Convert.ToBase64String(f.Payload)}")));
            Assert.True(r.Steps > 100, $"only {r.Steps} steps: the fuzzed cases did not get past decoding");
        }

        Assert.Equal(10_000, features.Cases + raw.Cases);
    }

    [Fact]
    public void Senml_records_with_values_of_any_json_type_never_throw()
    {
        // FsCheck composes records from fields whose values are any JSON token; the decoder answers with a reason.
        string[] keys = ["bn", "bt", "bv", "n", "t", "v", "vs", "u"];
        string[] values = ["1", "-2.5e3", "1e999", "\"x\"", "\"\"", "null", "true", "false", "[]", "[1]", "{}", "{\"a\":1}"];
        Gen<string> field = Gen.Elements(keys).SelectMany(k => Gen.Elements(values), (k, v) => $"\"{k}\":{v}");
        Gen<string> record = Gen.ListOf(field).Select(f => "{" + string.Join(',', f) + "}");
        Gen<string> pack = Gen.ListOf(record).Select(r => "[" + string.Join(',', r) + "]");
        var decoder = new PayloadDecoder();
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(2000), Prop.ForAll(pack.ToArbitrary(), text =>
        {
            bool ok = decoder.TryDecode(Encoding.UTF8.GetBytes(text), PayloadFormat.SenML, out DecodedPayload p, out string error);
            return ok ? p.Count > 0 && p.Width > 0 : error.StartsWith("senml:", StringComparison.Ordinal) || error.StartsWith("payload:", StringComparison.Ordinal);
        }));
    }

    [Fact]
    public void The_log_limiter_writes_a_burst_per_reason_then_summarises()
    {
        var limiter = new LogLimiter(burst: 2, window: TimeSpan.FromMinutes(1));
        long t = TimeSpan.TicksPerHour;
        Assert.True(limiter.ShouldLog("undecodable", t, out long s0));
        Assert.True(limiter.ShouldLog("undecodable", t + 1, out _));
        Assert.True(limiter.ShouldLog("sequence_gap", t + 2, out _)); // reasons are limited apart
        for (int i = 0; i < 20_000; i++)
        {
            Assert.False(limiter.ShouldLog("undecodable", t + 3 + i, out _));
        }

        Assert.Empty(limiter.TakeSummaries(t + TimeSpan.TicksPerSecond));
        IReadOnlyList<(string Reason, long Suppressed)> due = limiter.TakeSummaries(t + TimeSpan.TicksPerMinute);
        Assert.Equal([("undecodable", 20_000L)], due);
        Assert.Empty(limiter.TakeSummaries(t + TimeSpan.TicksPerMinute + 1));
        // A reason recurring after its window is logged again (a second gap on a stream an hour later).
        Assert.True(limiter.ShouldLog("sequence_gap", t + TimeSpan.TicksPerHour, out long s1));
        Assert.Equal((0L, 0L), (s0, s1));
    }
}
