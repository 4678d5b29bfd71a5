using System.Reactive.Concurrency;
using System.Text;
using Signal.Engine.Data;
using Signal.Engine.Live;
using Signal.Features.Pipeline;

namespace Signal.Engine.Tests;

public sealed class EngineTests
{
    private static readonly DateTimeOffset s_start = new(2026, 11, 21, 0, 0, 0, TimeSpan.Zero);

    private static Dictionary<string, List<Classification>> Collect(SignalEngine engine)
    {
        var byStream = new Dictionary<string, List<Classification>>();
        engine.Classifications.Subscribe(c =>
        {
            if (!byStream.TryGetValue(c.Stream, out List<Classification>? list))
            {
                byStream[c.Stream] = list = [];
            }

            list.Add(c);
        });
        return byStream;
    }

    [Fact]
    public void Interleaved_streams_in_random_chunks_classify_exactly_as_offline_stepping()
    {
        EngineModel model = TestModels.WithFeatures();
        using var engine = new SignalEngine(model, new EngineOptions { MaxBatch = 3 });
        Dictionary<string, List<Classification>> got = Collect(engine);
        float[][] signals = [.. Enumerable.Range(0, 5).Select(s => TestModels.Signal(2000, 3, s))];
        List<byte[]>[] messages = [.. signals.Select((x, s) => TestModels.Messages(x, 3, 1000, seed: 100 + s))];
        int[] next = new int[5];
        var rng = new Random(1);
        while (next.Any(n => n >= 0))
        {
            int s = rng.Next(5);
            if (next[s] < 0)
            {
                continue;
            }

            engine.Process($"sensors/dev{s}/vib", messages[s][next[s]]);
            next[s] = next[s] + 1 == messages[s].Count ? -1 : next[s] + 1;
        }

        engine.Flush();
        for (int s = 0; s < 5; s++)
        {
            List<Classification> live = got[$"dev{s}/vib"];
            AssertAsOffline(model, signals[s], live);

            // Each step carries the data time of its frame's last sample.
            Assert.Equal(1_700_000_000_000_000_000 + (long)Math.Round((63 + (32 * 10)) * 1e6), live[10].TimestampNs);
        }

        Assert.True(engine.Counters.Batches < engine.Counters.Steps);
        Assert.Equal(0, engine.Counters.RejectedTotal);
        Assert.Empty(engine.Counters.Resets);
    }

    [Fact]
    public void A_sensor_at_four_times_the_models_rate_is_resampled_live_exactly_as_offline()
    {
        // The model's features are for 1 kHz; its spec resamples a 4 kHz sensor (resample_poly's filter, streaming).
        FeatureSpec spec = TestModels.Spec() with { Resample = new ResampleSpec { InputRate = 4000 } };
        var pipeline = new FeaturePipeline(spec);
        EngineModel model = EngineModel.From(Signal.Models.Networks.RecurrentModel.CreateRandom(TestModels.Architecture(pipeline.OutputLength), 7, TestModels.Labels)
            .WithMetadata(new Dictionary<string, string> { [FeatureSequences.MetadataKey] = spec.ToJson() }), "resampled");
        Assert.Equal((4000.0, 1000.0), (model.InputRate, model.SampleRate));
        using var engine = new SignalEngine(model, new EngineOptions { MaxBatch = 2 });
        Dictionary<string, List<Classification>> got = Collect(engine);
        float[][] signals = [.. Enumerable.Range(0, 2).Select(s => TestModels.Signal(8000, 3, s))];
        foreach ((float[] signal, int s) in signals.Select((x, s) => (x, s)))
        {
            foreach (byte[] message in TestModels.Messages(signal, 3, 4000, seed: 200 + s))
            {
                engine.Process($"sensors/dev{s}/vib", message);
            }
        }

        // A message at the model's own 1 kHz is refused as a rate mismatch.
        engine.Process("sensors/dev9/vib", TestModels.Binary(0, 1_700_000_000_000_000_000, 1000, 3, new float[30]));
        engine.Flush();
        for (int s = 0; s < 2; s++)
        {
            List<Classification> live = got[$"dev{s}/vib"];
            AssertAsOffline(model, signals[s], live);

            // Frame 10 ends at sample 63 + 32·10 of the 1 kHz signal: input sample 4·383 of the 4 kHz stream.
            Assert.Equal(1_700_000_000_000_000_000 + (long)Math.Round(4 * 383 * 1e9 / 4000), live[10].TimestampNs);
        }

        Assert.Equal(1, engine.Counters.RejectedTotal);
        Assert.Equal(1, engine.Counters.Rejected["rate_mismatch"]);
    }

    /// <summary>The live steps of one stream are exactly the offline steps of its whole signal, in order.</summary>
    private static void AssertAsOffline(EngineModel model, float[] signal, List<Classification> live)
    {
        List<float[]> offline = TestModels.Offline(model, signal);
        Assert.True(offline.Count > 50);
        Assert.Equal(offline.Count, live.Count);
        for (int t = 0; t < offline.Count; t++)
        {
            Assert.Equal(offline[t], live[t].Probabilities);
            Assert.Equal(t, live[t].Step);
        }
    }

    [Fact]
    public void A_model_without_features_steps_once_per_multichannel_sample()
    {
        EngineModel model = TestModels.Raw(input: 3);
        using var engine = new SignalEngine(model);
        Dictionary<string, List<Classification>> got = Collect(engine);
        float[] signal = TestModels.Signal(300, 3, 4);
        foreach (byte[] m in TestModels.Messages(signal, 3, 100, seed: 2))
        {
            engine.Process("sensors/a/b", m);
        }

        engine.Flush();
        List<float[]> offline = TestModels.Offline(model, signal);
        Assert.Equal(300, got["a/b"].Count);
        Assert.Equal(offline, got["a/b"].Select(c => c.Probabilities));
    }

    [Fact]
    public void A_batch_waits_at_most_max_wait_holds_one_frame_per_stream_and_keeps_each_streams_order()
    {
        var clock = new HistoricalScheduler(s_start);
        EngineModel model = TestModels.Raw(input: 4);
        using var engine = new SignalEngine(model, new EngineOptions { MaxBatch = 4, MaxWait = TimeSpan.FromMilliseconds(10) }, clock);
        var steps = new List<(string Stream, long Step, long Batch)>();
        engine.Classifications.Subscribe(c => steps.Add((c.Stream, c.Step, engine.Counters.Batches)));
        byte[] Vectors(int n, ulong seq) => TestModels.Binary(seq, 0, 10, 4, new float[4 * n], features: true);

        engine.Process("sensors/a/x", Vectors(3, 0));
        engine.Process("sensors/b/x", Vectors(1, 0));
        engine.Process("sensors/c/x", Vectors(1, 0));
        clock.AdvanceBy(TimeSpan.FromMilliseconds(9));
        Assert.Empty(steps);
        clock.AdvanceBy(TimeSpan.FromMilliseconds(1));

        // Batch 1: a, b, c (one frame each); then a alone, twice; a's frames in order.
        Assert.Equal([("a", 0L, 1L), ("b", 0L, 1L), ("c", 0L, 1L), ("a", 1L, 2L), ("a", 2L, 3L)], steps.Select(s => (s.Stream[..1], s.Step, s.Batch)));

        // Four ready streams fill a batch: it runs at once, without waiting.
        steps.Clear();
        foreach (string s in new[] { "d", "e", "f", "g" })
        {
            engine.Process($"sensors/{s}/x", Vectors(1, 0));
        }

        Assert.Equal(4, steps.Count);
        Assert.All(steps, s => Assert.Equal(4L, s.Batch));
    }

    [Fact]
    public void Idle_streams_are_evicted_and_come_back_fresh()
    {
        var clock = new HistoricalScheduler(s_start);
        EngineModel model = TestModels.Raw(input: 2);
        using var engine = new SignalEngine(model, new EngineOptions { IdleTimeout = TimeSpan.FromMinutes(1) }, clock);
        var steps = new List<Classification>();
        var evicted = new List<string>();
        engine.Classifications.Subscribe(steps.Add);
        engine.StreamsEvicted.Subscribe(evicted.Add);
        engine.Process("sensors/a/x", TestModels.Binary(0, 0, 10, 2, [1, 2]));
        engine.Process("sensors/b/x", TestModels.Binary(0, 0, 10, 2, [1, 2]));
        clock.AdvanceBy(TimeSpan.FromSeconds(40));
        engine.Process("sensors/b/x", TestModels.Binary(1, 100_000_000, 10, 2, [1, 2]));
        clock.AdvanceBy(TimeSpan.FromSeconds(40));
        Assert.Equal(1, engine.StreamCount); // a idle for 80 s: gone; b seen 40 s ago: kept
        Assert.Equal(1, engine.Counters.Evictions["idle"]);
        Assert.Equal(["a/x"], evicted);
        engine.Process("sensors/a/x", TestModels.Binary(5, 0, 10, 2, [1, 2]));
        engine.Flush();
        Assert.Equal(3, engine.Counters.StreamsCreated);
        Assert.Equal(0, steps.Last(c => c.Stream == "a/x").Step);
    }

    [Fact]
    public void Gaps_duplicates_and_time_going_backwards_reset_or_drop_and_are_counted()
    {
        EngineModel model = TestModels.Raw(input: 1);
        using var engine = new SignalEngine(model);
        var steps = new List<Classification>();
        engine.Classifications.Subscribe(steps.Add);
        const long t0 = 1_700_000_000_000_000_000;
        byte[] M(ulong seq, long ts, int n = 10) => TestModels.Binary(seq, ts, 100, 1, Enumerable.Repeat(0.5f, n).ToArray());
        engine.Process("sensors/a/x", M(0, t0));
        engine.Process("sensors/a/x", M(1, t0 + 100_000_000));
        engine.Process("sensors/a/x", M(1, t0 + 100_000_000));     // a QoS 1 redelivery
        engine.Process("sensors/a/x", M(3, t0 + 300_000_000));     // message 2 missing
        engine.Process("sensors/a/x", M(4, t0 + 400_000_000));
        engine.Process("sensors/a/x", M(5, t0 + 900_000_000));     // half a second of samples missing
        engine.Process("sensors/a/x", M(6, t0));                   // the clock jumped back
        engine.Flush();
        Assert.Equal(1, engine.Counters.Duplicates);
        Assert.Equal(1, engine.Counters.Resets["sequence_gap"]);
        Assert.Equal(1, engine.Counters.Resets["time_gap"]);
        Assert.Equal(1, engine.Counters.Resets["time_backwards"]);
        Assert.Equal([.. Enumerable.Range(0, 20), .. Enumerable.Range(0, 20), .. Enumerable.Range(0, 10), .. Enumerable.Range(0, 10)], steps.Select(s => (int)s.Step));
    }

    [Fact]
    public void Bad_input_is_counted_by_reason_dead_lettered_and_leaves_accepted_state_untouched()
    {
        EngineModel model = TestModels.WithFeatures();
        using var engine = new SignalEngine(model, new EngineOptions { MaxMessageBytes = 4096, AllowedStreams = new HashSet<string> { "dev/vib" } });
        Dictionary<string, List<Classification>> got = Collect(engine);
        var dead = new List<DeadLetter>();
        engine.DeadLetters.Subscribe(dead.Add);
        float[] signal = TestModels.Signal(1500, 3, 9);
        List<byte[]> messages = TestModels.Messages(signal, 3, 1000, seed: 3);
        byte[] nan = TestModels.Binary(999, 0, 1000, 3, [1, float.NaN, 2]);
        (string Topic, byte[] Payload, string Reason)[] bad =
        [
            ("sensors/dev/vib", Encoding.UTF8.GetBytes("{\"values\": [1, \"x\"]}"), "undecodable"),
            ("sensors/dev/vib", nan, "non_finite"),
            ("sensors/dev/vib", Encoding.UTF8.GetBytes("{\"rate\":1000,\"values\":[1,2,3]}"), "channel_count"),
            ("sensors/dev/vib", new byte[5000], "oversized"),
            ("sensors/other/vib", messages[0], "unknown_stream"),
            ("elsewhere", messages[0], "topic_mismatch"),
            ("sensors/dev/vib", Encoding.UTF8.GetBytes("{\"rate\":44100,\"channels\":{\"x\":[1],\"y\":[1],\"z\":[1]}}"), "rate_mismatch"),
        ];
        for (int i = 0; i < messages.Count; i++)
        {
            engine.Process("sensors/dev/vib", messages[i]);
            if (i % 5 == 2 && i / 5 < bad.Length)
            {
                engine.Process(bad[i / 5].Topic, bad[i / 5].Payload);
            }
        }

        engine.Flush();
        Assert.Equal(TestModels.Offline(model, signal), got["dev/vib"].Select(c => c.Probabilities));
        Assert.Equal(bad.Select(b => b.Reason).Order(), engine.Counters.Rejected.Keys.Order());
        Assert.Equal(bad.Select(b => b.Reason), dead.Select(d => d.Reason));
        Assert.Equal(nan, dead[1].Payload);
        Assert.Contains("sample 0, channel 1 is NaN", dead[1].Detail, StringComparison.Ordinal);
        Assert.Contains("json: values[1] is not a number", dead[0].Detail, StringComparison.Ordinal);
        Assert.Contains("1 channel(s) per sample; the model takes 3", dead[2].Detail, StringComparison.Ordinal);
        Assert.Single(got);
    }

    [Fact]
    public void Alerts_raise_on_k_of_n_clear_after_m_below_the_clear_threshold_and_change_state_only()
    {
        var rule = new AlertRule { Name = "r", K = 3, N = 5, Raise = 0.8, Clear = 0.5, ClearSteps = 3 };
        var tracker = default(AlertTracker);
        double[] values = [0.9, 0.1, 0.9, 0.1, 0.1, 0.9, 0.9, 0.95, 0.9, 0.6, 0.4, 0.4, 0.7, 0.4, 0.4, 0.4, 0.9];
        //                  no    no   no   no   no   no   RAISE(3 of 5: idx 2,5,6)  . hold: 0.6 not below 0.5; 0.4,0.4 then 0.7 breaks the run; 0.4×3 clears at idx 15
        var changes = new List<(int Step, AlertState State)>();
        for (int i = 0; i < values.Length; i++)
        {
            if (tracker.Update(rule, values[i], rule.Raise, rule.Clear, i + 1, out _) is { } change)
            {
                changes.Add((i, change));
            }
        }

        Assert.Equal([(6, AlertState.Raised), (15, AlertState.Cleared)], changes);

        // Suppression: a new raise within the window after a clear is held back.
        var suppressing = new AlertRule { Name = "s", K = 1, N = 1, Raise = 0.8, Clear = 0.5, ClearSteps = 1, Suppression = TimeSpan.FromSeconds(10) };
        var t = default(AlertTracker);
        long second = 1_000_000_000;
        Assert.Equal(AlertState.Raised, t.Update(suppressing, 0.9, 0.8, 0.5, 1 * second, out _));
        Assert.Equal(AlertState.Cleared, t.Update(suppressing, 0.1, 0.8, 0.5, 2 * second, out _));
        Assert.Null(t.Update(suppressing, 0.9, 0.8, 0.5, 5 * second, out bool suppressed));
        Assert.True(suppressed);
        Assert.Equal(AlertState.Raised, t.Update(suppressing, 0.9, 0.8, 0.5, 13 * second, out _));
    }

    [Fact]
    public void Engine_alerts_follow_the_class_probabilities_with_evidence()
    {
        EngineModel model = TestModels.WithFeatures(seed: 3);
        var rules = model.Labels.Select(l => new AlertRule { Name = "class:" + l, Class = l, Raise = 0.4, Clear = 0.3, K = 2, N = 3, ClearSteps = 2 }).ToList();
        using var engine = new SignalEngine(model, new EngineOptions { Alerts = rules });
        var steps = new List<Classification>();
        var alerts = new List<Alert>();
        engine.Classifications.Subscribe(steps.Add);
        engine.Alerts.Subscribe(alerts.Add);
        foreach (byte[] m in TestModels.Messages(TestModels.Signal(4000, 3, 5), 3, 1000, seed: 8))
        {
            engine.Process("sensors/d/v", m);
        }

        engine.Flush();

        // Replay the probabilities through the rule definition by hand: raised when ≥2 of the last 3 reach 0.4,
        // cleared after 2 consecutive steps below 0.3.
        var expected = new List<(string Rule, long Ts, AlertState State)>();
        foreach (AlertRule rule in rules)
        {
            int cls = Array.IndexOf(TestModels.Labels, rule.Class);
            bool raised = false;
            int below = 0;
            var window = new Queue<bool>();
            foreach (Classification c in steps)
            {
                double p = c.Probabilities[cls];
                window.Enqueue(p >= 0.4);
                if (window.Count > 3)
                {
                    window.Dequeue();
                }

                if (!raised && window.Count(x => x) >= 2)
                {
                    raised = true;
                    below = 0;
                    expected.Add((rule.Name, c.TimestampNs, AlertState.Raised));
                }
                else if (raised)
                {
                    below = p < 0.3 ? below + 1 : 0;
                    if (below == 2)
                    {
                        raised = false;
                        window.Clear();
                        expected.Add((rule.Name, c.TimestampNs, AlertState.Cleared));
                    }
                }
            }
        }

        Assert.NotEmpty(expected);
        Assert.Equal(expected.OrderBy(e => e.Ts).ThenBy(e => e.Rule), alerts.Select(a => (a.Rule, a.TimestampNs, a.State)).OrderBy(e => e.TimestampNs).ThenBy(e => e.Rule));
        Assert.All(alerts, a =>
        {
            Assert.Equal(3, a.Probabilities.Length);
            Assert.StartsWith("mel_", a.DominantBand, StringComparison.Ordinal);
        });
    }
}
