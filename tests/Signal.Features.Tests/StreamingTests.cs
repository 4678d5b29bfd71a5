using FsCheck;
using FsCheck.Fluent;
using Signal.Features.Framing;
using Signal.Features.Pipeline;

namespace Signal.Features.Tests;

public sealed class StreamingTests
{
    /// <summary>A spec that exercises every piece of stream state: filters, framer overlap, flux, deltas, three channels.</summary>
    private static FeatureSpec StatefulSpec(string nonFinite = "reject") => new()
    {
        SampleRate = 1000,
        Channels = 3,
        ChannelNames = ["x", "y", "z"],
        FrameLength = 100, // not a power of two: zero-padded to 128
        Hop = 37,
        Window = "hamming",
        RemoveDc = true,
        NonFinite = nonFinite,
        Filters = [
            new FilterSpec { Design = "butterworth", Mode = "highpass", Order = 3, Frequency = 5 },
            new FilterSpec { Design = "biquad", Mode = "notch", Frequency = 50, Q = 10 },
            new FilterSpec { Design = "fir", Mode = "lowpass", Taps = 21, Frequency = 200 },
        ],
        Features = [
            new FeatureRequest { Name = "rms" },
            new FeatureRequest { Name = "spectral_flux" },
            new FeatureRequest { Name = "mel", Count = 12 },
            new FeatureRequest { Name = "mfcc_delta", Count = 6, MelBands = 12 },
        ],
    };

    private static float[] Signal(int samples, int channels, int seed)
    {
        var rng = new Random(seed);
        var x = new float[samples * channels];
        for (int i = 0; i < samples; i++)
        {
            for (int c = 0; c < channels; c++)
            {
                x[(i * channels) + c] = (float)(Math.Sin((i * (0.05 + (0.1 * c))) + c) + (0.3 * rng.NextDouble()) + 2);
            }
        }

        return x;
    }

    [Fact]
    public void Streams_sharing_one_workspace_match_streams_with_their_own()
    {
        var pipeline = new FeaturePipeline(StatefulSpec());
        FeatureWorkspace shared = pipeline.CreateWorkspace();
        float[][] signals = [Signal(900, 3, 11), Signal(900, 3, 12), Signal(900, 3, 13)];
        FeatureExtractor[] streams = [.. signals.Select(_ => pipeline.CreateExtractor(shared))];
        var rows = signals.Select(_ => new List<float>()).ToArray();
        var buffer = new float[pipeline.OutputLength * 8];
        for (int start = 0; start < 900 * 3; start += 57 * 3)
        {
            for (int s = 0; s < signals.Length; s++)
            {
                ReadOnlySpan<float> chunk = signals[s].AsSpan(start, Math.Min(57 * 3, signals[s].Length - start));
                while (!chunk.IsEmpty)
                {
                    int n = streams[s].Process(chunk, buffer, out int consumed);
                    rows[s].AddRange(buffer.AsSpan(0, n * pipeline.OutputLength).ToArray());
                    chunk = chunk[consumed..];
                }
            }
        }

        for (int s = 0; s < signals.Length; s++)
        {
            float[] alone = pipeline.ExtractAll(signals[s]);
            Assert.True(alone.Length > 10 * pipeline.OutputLength);
            Assert.Equal(alone, rows[s].ToArray());
        }

        Assert.Throws<ArgumentException>(() => new FeaturePipeline(StatefulSpec()).CreateExtractor(shared));
    }

    [Fact]
    public void Streaming_features_match_offline_features_for_random_chunkings()
    {
        var pipeline = new FeaturePipeline(StatefulSpec());
        float[] signal = Signal(1500, 3, 1);
        float[] offline = pipeline.ExtractAll(signal);
        Assert.True(offline.Length / pipeline.OutputLength > 30);
        Gen<int[]> chunkings = Gen.ArrayOf(Gen.Choose(0, 250), 40);
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(40), Prop.ForAll(chunkings.ToArbitrary(), sizes =>
        {
            FeatureExtractor extractor = pipeline.CreateExtractor();
            var rows = new List<float>();
            var buffer = new float[pipeline.OutputLength * 3];
            int position = 0, s = 0;
            while (position < signal.Length)
            {
                int samples = sizes[s++ % sizes.Length];
                ReadOnlySpan<float> chunk = signal.AsSpan(position, Math.Min(samples * 3, signal.Length - position));
                while (true)
                {
                    // A destination of 3 rows forces the "destination full" path too.
                    int n = extractor.Process(chunk, buffer, out int consumed);
                    rows.AddRange(buffer.AsSpan(0, n * pipeline.OutputLength).ToArray());
                    chunk = chunk[consumed..];
                    position += consumed;
                    if (chunk.IsEmpty && n < 3)
                    {
                        break;
                    }
                }
            }

            return rows.SequenceEqual(offline);
        }));
    }

    [Fact]
    public void Frame_count_is_one_plus_whole_hops_after_the_first_frame()
    {
        var pipeline = new FeaturePipeline(new FeatureSpec { SampleRate = 100, FrameLength = 16, Hop = 5, Features = [new() { Name = "rms" }] });
        foreach (int n in new[] { 0, 1, 15, 16, 17, 20, 21, 22, 100 })
        {
            int expected = n < 16 ? 0 : 1 + ((n - 16) / 5);
            Assert.Equal(expected, pipeline.ExtractAll(new float[n]).Length);
        }
    }

    [Fact]
    public void Framer_holds_all_channels_channel_major_and_removes_dc()
    {
        var framer = new Framer(new FramerOptions(4, 2, Channels: 2, RemoveDc: true));
        float[] samples = [1, 10, 2, 20, 3, 30, 4, 40, 5, 50, 6, 60];
        var frame = new float[8];
        int used = framer.Append(samples);
        Assert.Equal(8, used);
        framer.ReadFrame(frame);
        Assert.Equal([-1.5f, -0.5f, 0.5f, 1.5f, -15f, -5f, 5f, 15f], frame);
        used += framer.Append(samples.AsSpan(used));
        Assert.Equal(12, used);
        framer.ReadFrame(frame);
        Assert.Equal([-1.5f, -0.5f, 0.5f, 1.5f, -15f, -5f, 5f, 15f], frame); // samples 3..6, DC removed again
        Assert.False(framer.IsFrameReady);
        Assert.Throws<InvalidOperationException>(() => framer.ReadFrame(frame));
    }

    [Fact]
    public void A_partial_multichannel_sample_is_refused()
    {
        FeatureExtractor extractor = new FeaturePipeline(StatefulSpec()).CreateExtractor();
        var ex = Assert.Throws<ArgumentException>(() => extractor.Process(new float[7], new float[100], out _));
        Assert.Contains("3-channel", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_chunk_with_nan_is_refused_whole_and_earlier_samples_stay_accepted()
    {
        var pipeline = new FeaturePipeline(StatefulSpec());
        float[] signal = Signal(400, 3, 2);
        float[] expected = pipeline.ExtractAll(signal);
        FeatureExtractor extractor = pipeline.CreateExtractor();
        var rows = new float[expected.Length];
        int written = extractor.Process(signal.AsSpan(0, 300), rows, out _);
        float[] bad = signal[300..600];
        bad[3 * 20 + 1] = float.NaN;
        var ex = Assert.Throws<NonFiniteSampleException>(() => extractor.Process(bad, rows, out _));
        Assert.Equal(20, ex.SampleIndex);
        Assert.Equal(1, ex.Channel);
        Assert.Contains("channel 1", ex.Message, StringComparison.Ordinal);
        // The refused chunk consumed nothing: resending it repaired continues the stream exactly.
        written += extractor.Process(signal.AsSpan(300), rows.AsSpan(written * pipeline.OutputLength), out _);
        Assert.Equal(expected, rows[..(written * pipeline.OutputLength)]);
    }

    [Fact]
    public void Hold_policy_repairs_and_counts_non_finite_samples()
    {
        var pipeline = new FeaturePipeline(StatefulSpec("hold"));
        float[] signal = Signal(400, 3, 3);
        float[] repaired = (float[])signal.Clone();
        signal[30] = float.PositiveInfinity; // sample 10, channel 0
        signal[31] = float.NaN;              // sample 10, channel 1
        repaired[30] = repaired[27];
        repaired[31] = repaired[28];
        FeatureExtractor extractor = pipeline.CreateExtractor();
        var rows = new float[pipeline.OutputLength * 20];
        int n = extractor.Process(signal, rows, out _);
        Assert.Equal(2, extractor.NonFiniteSamples);
        Assert.Equal(pipeline.ExtractAll(repaired), rows[..(n * pipeline.OutputLength)]);
        Assert.All(rows, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void Constant_and_silent_signals_give_finite_features()
    {
        string[] all = [.. FeatureRequest.KnownNames];
        var spec = new FeatureSpec
        {
            SampleRate = 100,
            FrameLength = 32,
            Hop = 16,
            Features = [.. all.Select(n => n switch
            {
                "band_energy" or "dominant_band" or "envelope_band_energy" => new FeatureRequest { Name = n, Edges = [0, 10, 50] },
                "bearing_fault_energy" => new FeatureRequest { Name = n, Bearing = new BearingGeometry { Balls = 9, BallDiameter = 7.94, PitchDiameter = 39.04, ShaftHz = 2 } },
                "mel" => new FeatureRequest { Name = n, Count = 8 },
                "mfcc" or "mfcc_delta" => new FeatureRequest { Name = n, Count = 4, MelBands = 8 },
                _ => new FeatureRequest { Name = n },
            })],
        };
        var pipeline = new FeaturePipeline(spec);
        foreach (float level in new[] { 0f, 3.5f, -1e6f })
        {
            float[] rows = pipeline.ExtractAll(Enumerable.Repeat(level, 200).ToArray());
            Assert.NotEmpty(rows);
            Assert.All(rows, v => Assert.True(float.IsFinite(v), $"level {level}: non-finite feature"));
            int skew = pipeline.ColumnNames.ToList().IndexOf("skewness");
            int kurt = pipeline.ColumnNames.ToList().IndexOf("kurtosis");
            Assert.Equal(0f, rows[skew]);
            Assert.Equal(0f, rows[kurt]);
        }
    }

    [Fact]
    public void A_saved_and_restored_stream_continues_exactly_filters_included()
    {
        var pipeline = new FeaturePipeline(StatefulSpec());
        float[] x = Signal(2000, 3, 41);
        float[] whole = pipeline.ExtractAll(x);

        // Half the signal, a checkpoint, then the rest on a new extractor restored from it.
        FeatureExtractor first = pipeline.CreateExtractor();
        var rows = new float[whole.Length];
        int written = first.Process(x.AsSpan(0, 3 * 1000), rows, out _);
        using var state = new MemoryStream();
        using (var writer = new BinaryWriter(state, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            first.WriteState(writer);
        }

        state.Position = 0;
        FeatureExtractor second = pipeline.CreateExtractor();
        using (var reader = new BinaryReader(state))
        {
            second.ReadState(reader);
        }

        written += second.Process(x.AsSpan(3 * 1000), rows.AsSpan(written * pipeline.OutputLength), out _);
        Assert.Equal(whole.Length / pipeline.OutputLength, written);
        Assert.Equal(whole, rows);
    }

    [Fact]
    public void Reset_starts_the_stream_over()
    {
        var pipeline = new FeaturePipeline(StatefulSpec());
        float[] signal = Signal(500, 3, 4);
        FeatureExtractor extractor = pipeline.CreateExtractor();
        var rows = new float[pipeline.OutputLength * 100];
        extractor.Process(Signal(333, 3, 9), rows, out _);
        extractor.Reset();
        int n = extractor.Process(signal, rows, out _);
        Assert.Equal(pipeline.ExtractAll(signal), rows[..(n * pipeline.OutputLength)]);
    }

    [Fact]
    public void Processing_a_frame_allocates_nothing()
    {
        var pipeline = new FeaturePipeline(StatefulSpec());
        FeatureExtractor extractor = pipeline.CreateExtractor();
        float[] signal = Signal(1000, 3, 5);
        var rows = new float[pipeline.OutputLength * 100];
        extractor.Process(signal, rows, out _);
        long before = GC.GetAllocatedBytesForCurrentThread();
        extractor.Process(signal, rows, out _);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
