using Signal.Engine.Data;
using Signal.Engine.Live;
using Signal.Features.Pipeline;
using Signal.Models.Networks;

namespace Signal.Engine.Tests;

public sealed class CheckpointTests
{
    /// <summary>Every kind of feature state: pre-filter memory, framer overlap, flux history and delta history.</summary>
    private static EngineModel StatefulModel(CellKind kind, int seed = 7)
    {
        var spec = new FeatureSpec
        {
            SampleRate = 1000,
            Channels = 2,
            FrameLength = 64,
            Hop = 24,
            Filters = [new FilterSpec { Design = "butterworth", Mode = "highpass", Order = 2, Frequency = 5 }],
            Features = FeatureRequest.ParseList("rms,spectral_flux,mel:8,mfcc:5,mfcc_delta:5"),
        };
        var pipeline = new FeaturePipeline(spec);
        var architecture = new ModelArchitecture
        {
            InputSize = pipeline.OutputLength,
            Classes = 3,
            ForecastSize = pipeline.OutputLength,
            Layers = [new LayerArchitecture { Kind = kind, HiddenSize = 12 }, new LayerArchitecture { Kind = kind, HiddenSize = 8 }],
        };
        RecurrentModel network = RecurrentModel.CreateRandom(architecture, seed, TestModels.Labels)
            .WithMetadata(new Dictionary<string, string> { [FeatureSequences.MetadataKey] = spec.ToJson() });
        return EngineModel.From(network, "stateful");
    }

    /// <summary>A checkpoint of an engine fed 500 frames on each of the devices' streams (<c>sensors/{device}/vib</c>, seeds 1, 2, …).</summary>
    private static MemoryStream CheckpointOf(EngineModel model, params string[] devices)
    {
        var checkpoint = new MemoryStream();
        using (var engine = new SignalEngine(model))
        {
            for (int i = 0; i < devices.Length; i++)
            {
                Feed(engine, TestModels.Messages(TestModels.Signal(500, 2, i + 1), 2, 1000, seed: i + 1), $"sensors/{devices[i]}/vib");
            }

            Assert.Equal(devices.Length, engine.WriteCheckpoint(checkpoint));
        }

        checkpoint.Position = 0;
        return checkpoint;
    }

    private static (List<Classification> Classes, List<AnomalyScore> Scores) Feed(SignalEngine engine, IEnumerable<byte[]> messages, string topic)
    {
        var classes = new List<Classification>();
        var scores = new List<AnomalyScore>();
        using IDisposable a = engine.Classifications.Subscribe(classes.Add);
        using IDisposable b = engine.AnomalyScores.Subscribe(scores.Add);
        foreach (byte[] m in messages)
        {
            engine.Process(topic, m);
        }

        engine.Flush();
        return (classes, scores);
    }

    [Fact]
    public void On_an_accelerator_streams_step_as_on_the_CPU_and_checkpoints_move_between_them()
    {
        // ILGPU's CPU accelerator runs the GPU backend's kernels; the engine's results equal the CPU engine's within
        // 1e-5, and a checkpoint written by the accelerated engine (states copied back from the device) continues on the
        // CPU engine, and one from the CPU engine continues on the accelerator.
        EngineModel model = StatefulModel(CellKind.Lstm);
        float[] signal = TestModels.Signal(1500, 2, 5); // short: ILGPU's CPU accelerator is slow, and other test processes run beside it
        List<byte[]> messages = TestModels.Messages(signal, 2, 1000, seed: 9);
        int half = messages.Count / 2;
        using var cpu = new SignalEngine(model);
        (List<Classification> expected, List<AnomalyScore> expectedScores) = Feed(cpu, messages, "sensors/a/vib");

        var options = new EngineOptions { Accelerator = "ilgpu-cpu" };
        var checkpoint = new MemoryStream();
        List<Classification> before;
        using (var gpu = new SignalEngine(model, options))
        {
            (before, _) = Feed(gpu, messages.Take(half), "sensors/a/vib");
            Assert.Equal(1, gpu.WriteCheckpoint(checkpoint));
        }

        checkpoint.Position = 0;
        using var resumed = new SignalEngine(model);
        Assert.Equal(new CheckpointResult(1, 1, 0, true), resumed.RestoreCheckpoint(checkpoint));
        (List<Classification> after, _) = Feed(resumed, messages.Skip(half), "sensors/a/vib");

        checkpoint = new MemoryStream();
        using (var first = new SignalEngine(model))
        {
            Feed(first, messages.Take(half), "sensors/a/vib");
            first.WriteCheckpoint(checkpoint);
        }

        checkpoint.Position = 0;
        using var onDevice = new SignalEngine(model, options);
        Assert.Equal(new CheckpointResult(1, 1, 0, true), onDevice.RestoreCheckpoint(checkpoint));
        (List<Classification> deviceAfter, List<AnomalyScore> deviceScores) = Feed(onDevice, messages.Skip(half), "sensors/a/vib");

        Assert.True(before.Count > 20 && after.Count > 20);
        Assert.Equal(expected.Count, before.Count + after.Count);
        Assert.Equal(after.Count, deviceAfter.Count);
        double onDeviceFirst = 0, onCpuAfterDevice = 0, onDeviceAfterCpu = 0;
        for (int t = 0; t < expected.Count; t++)
        {
            Classification c = t < before.Count ? before[t] : after[t - before.Count];
            Assert.Equal(t, c.Step);
            double d = expected[t].Probabilities.Zip(c.Probabilities, (x, y) => Math.Abs((double)x - y)).Max();
            if (t < before.Count)
            {
                onDeviceFirst = Math.Max(onDeviceFirst, d);
            }
            else
            {
                onCpuAfterDevice = Math.Max(onCpuAfterDevice, d);
                onDeviceAfterCpu = Math.Max(onDeviceAfterCpu, expected[t].Probabilities.Zip(deviceAfter[t - before.Count].Probabilities, (x, y) => Math.Abs((double)x - y)).Max());
            }
        }

        string trace = string.Join(" ", Enumerable.Range(0, 8).Select(i => expected[before.Count + i].Probabilities.Zip(deviceAfter[i].Probabilities, (x, y) => Math.Abs((double)x - y)).Max().ToString("E1", System.Globalization.CultureInfo.InvariantCulture)));
        trace += $" resets {string.Join(",", onDevice.Counters.Resets.Select(k => k.Key + "=" + k.Value))} / {string.Join(",", resumed.Counters.Resets.Select(k => k.Key + "=" + k.Value))} steps {onDevice.Counters.Steps}/{resumed.Counters.Steps} batches {onDevice.Counters.Batches}/{resumed.Counters.Batches}";
        Assert.True(Math.Max(onDeviceFirst, Math.Max(onCpuAfterDevice, onDeviceAfterCpu)) <= 1e-5, trace + " " +
            $"largest probability differences: first half on the accelerator {onDeviceFirst:E2}, then on the CPU {onCpuAfterDevice:E2}; CPU then accelerator {onDeviceAfterCpu:E2}");
        // The forecasting head ran on the device too: the anomaly scores of the second half follow the CPU engine's.
        Assert.True(deviceScores.Count > 20);
        List<AnomalyScore> tail = [.. expectedScores.Skip(expectedScores.Count - deviceScores.Count)];
        for (int i = 0; i < tail.Count; i++)
        {
            Assert.Equal(tail[i].TimestampNs, deviceScores[i].TimestampNs);
            Assert.True(Math.Abs(tail[i].Score - deviceScores[i].Score) <= 1e-4 * Math.Max(1, Math.Abs(tail[i].Score)), $"at {tail[i].TimestampNs}: score {deviceScores[i].Score} against {tail[i].Score}");
        }
    }

    [Theory]
    [InlineData(CellKind.Lstm)]
    [InlineData(CellKind.Gru)]
    public void A_stream_restored_from_a_checkpoint_continues_exactly_as_if_never_stopped(CellKind kind)
    {
        EngineModel model = StatefulModel(kind);
        float[] signal = TestModels.Signal(3000, 2, 5);
        List<byte[]> messages = TestModels.Messages(signal, 2, 1000, seed: 9);
        int half = messages.Count / 2;

        using var whole = new SignalEngine(model);
        (List<Classification> expected, List<AnomalyScore> expectedScores) = Feed(whole, messages, "sensors/a/vib");

        var checkpoint = new MemoryStream();
        List<Classification> before;
        List<AnomalyScore> scoresBefore;
        using (var first = new SignalEngine(model))
        {
            (before, scoresBefore) = Feed(first, messages.Take(half), "sensors/a/vib");
            Assert.Equal(1, first.WriteCheckpoint(checkpoint));
        }

        checkpoint.Position = 0;
        using var second = new SignalEngine(EngineModel.From(model.Network, "reloaded"));
        Assert.Equal(new CheckpointResult(1, 1, 0, true), second.RestoreCheckpoint(checkpoint));
        (List<Classification> after, List<AnomalyScore> scoresAfter) = Feed(second, messages.Skip(half), "sensors/a/vib");

        // Independent reference: the offline pipeline over the whole signal, one network step per row.
        List<float[]> offline = TestModels.Offline(model, signal);
        Assert.True(before.Count > 20 && after.Count > 20);
        Assert.Equal(offline.Count, before.Count + after.Count);
        for (int t = 0; t < offline.Count; t++)
        {
            Classification c = t < before.Count ? before[t] : after[t - before.Count];
            Assert.Equal(offline[t], c.Probabilities);
            Assert.Equal(t, c.Step);
            Assert.Equal(expected[t].TimestampNs, c.TimestampNs);
        }

        // The anomaly smoother and last forecast carry over too: no score is lost at the seam.
        Assert.Equal(expectedScores.Select(s => s.Score), scoresBefore.Concat(scoresAfter).Select(s => s.Score));
        Assert.Empty(second.Counters.Resets);
        Assert.Equal(0, second.Counters.Duplicates);
    }

    [Fact]
    public void After_a_crash_a_restored_stream_jumps_over_the_lost_messages_and_keeps_its_state()
    {
        // A crash loses what arrived between the last checkpoint and the kill: the restored stream's next message jumps
        // forward in sequence and time. It continues with its state (a restore_gap), as if the lost samples had
        // never been sent: so the offline pipeline over the signal without them is the reference.
        EngineModel model = StatefulModel(CellKind.Lstm);
        float[] signal = TestModels.Signal(3000, 2, 5);
        List<byte[]> messages = TestModels.Messages(signal, 2, 1000, seed: 9);
        int checkpointed = messages.Count / 3, crashed = messages.Count / 2;
        var checkpoint = new MemoryStream();
        List<Classification> before;
        using (var first = new SignalEngine(model))
        {
            (before, _) = Feed(first, messages.Take(checkpointed), "sensors/a/vib");
            first.WriteCheckpoint(checkpoint);
            Feed(first, messages.Skip(checkpointed).Take(crashed - checkpointed), "sensors/a/vib"); // lost with the crash
        }

        checkpoint.Position = 0;
        using var second = new SignalEngine(model);
        second.RestoreCheckpoint(checkpoint);
        (List<Classification> after, _) = Feed(second, messages.Skip(crashed), "sensors/a/vib");

        Assert.Empty(second.Counters.Resets);
        Assert.Equal(1, second.Counters.RestoreGaps);
        int keptSamples = messages.Take(checkpointed).Sum(m => (m.Length - 32) / 8), lostSamples = messages.Skip(checkpointed).Take(crashed - checkpointed).Sum(m => (m.Length - 32) / 8);
        float[] seen = [.. signal.Take(keptSamples * 2), .. signal.Skip((keptSamples + lostSamples) * 2)];
        List<float[]> offline = TestModels.Offline(model, seen);
        Assert.True(after.Count > 20);
        Assert.Equal(offline.Count, before.Count + after.Count);
        for (int t = 0; t < offline.Count; t++)
        {
            Assert.Equal(offline[t], (t < before.Count ? before[t] : after[t - before.Count]).Probabilities);
        }

        // The step count carried on over the jump (a reset would have started it at 0 again).
        Assert.Equal(after[^1].Step + 1, after.Count + before.Count);

        // Only the first message after a restore may jump: a later gap is a gap again.
        byte[] late = TestModels.Binary((ulong)messages.Count + 5, 1_800_000_000_000_000_000, 1000, 2, new float[2 * 64]);
        second.Process("sensors/a/vib", late);
        Assert.Equal(1, second.Counters.Resets["sequence_gap"]);
        Assert.Equal(1, second.Counters.RestoreGaps);
    }

    [Fact]
    public void A_checkpoint_for_another_architecture_keeps_the_streams_but_resets_their_signal_state()
    {
        MemoryStream checkpoint = CheckpointOf(StatefulModel(CellKind.Lstm), "a", "b");
        using var gru = new SignalEngine(StatefulModel(CellKind.Gru));
        Assert.Equal(new CheckpointResult(2, 0, 2, false), gru.RestoreCheckpoint(checkpoint));
        Assert.Equal(2, gru.StreamCount);
        Assert.Equal(2, gru.Counters.Resets["model_changed"]);

        // The kept sequence number still catches a replayed message as a duplicate.
        float[] more = TestModels.Signal(200, 2, 3);
        List<Classification> classes = Feed(gru, [TestModels.Binary(0, 1_700_000_000_000_000_000, 1000, 2, more)], "sensors/a/vib").Classes;
        Assert.Empty(classes);
        Assert.Equal(1, gru.Counters.Duplicates);
    }

    [Fact]
    public void A_damaged_checkpoint_is_refused_and_leaves_the_engine_unchanged()
    {
        EngineModel model = StatefulModel(CellKind.Gru);
        byte[] bytes = CheckpointOf(model, "a").ToArray();
        using var engine = new SignalEngine(model);
        FormatException truncated = Assert.Throws<FormatException>(() => engine.RestoreCheckpoint(new MemoryStream(bytes[..(bytes.Length - 7)])));
        Assert.Contains("truncated", truncated.Message, StringComparison.Ordinal);
        FormatException foreign = Assert.Throws<FormatException>(() => engine.RestoreCheckpoint(new MemoryStream("not a checkpoint at all"u8.ToArray())));
        Assert.Contains("SGCK", foreign.Message, StringComparison.Ordinal);
        Assert.Equal(0, engine.StreamCount);
    }
}
