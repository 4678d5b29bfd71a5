using System.Text.Json;
using Signal.Features.Filters;

namespace Signal.Features.Tests;

/// <summary>Streaming rational resampling against scipy.signal.resample_poly (tests/reference/resample_reference.py).</summary>
public sealed class ResamplerTests
{
    public static TheoryData<int> Cases => [0, 1, 2, 3];

    private static (PolyphaseResampler Resampler, float[] Input, double[] Expected, double[] Taps, int Up, int Down) Case(int index)
    {
        JsonElement c = Golden.Load("resample").GetProperty("cases")[index];
        var resampler = new PolyphaseResampler(c.GetProperty("input_rate").GetInt32(), c.GetProperty("output_rate").GetInt32(), 2);
        return (resampler, c.GetProperty("input").Floats(), c.GetProperty("output").Doubles(), c.GetProperty("taps").Doubles(), c.GetProperty("up").GetInt32(), c.GetProperty("down").GetInt32());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void The_filter_is_scipys_firwin_with_a_kaiser_window(int index)
    {
        (PolyphaseResampler r, _, _, double[] taps, int up, int down) = Case(index);
        Assert.Equal((up, down), (r.Up, r.Down));
        double[] ours = PolyphaseResampler.DesignTaps(up, down);
        Assert.Equal(taps.Length, ours.Length);
        for (int i = 0; i < taps.Length; i++)
        {
            Assert.True(Math.Abs(ours[i] - taps[i]) <= 1e-12 * up, $"tap {i}: {ours[i]:R} vs scipy {taps[i]:R}");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_whole_recording_equals_resample_poly(int index)
    {
        (PolyphaseResampler r, float[] input, double[] expected, _, _, _) = Case(index);
        float[] output = r.ResampleAll(input);
        // Float32 samples in and out; the filter sums in double precision.
        Golden.Close(expected, output, 2e-6, 1e-5, $"{r.InputRate} → {r.OutputRate} Hz");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_stream_in_chunks_of_any_size_gives_the_offline_values_as_soon_as_its_input_is_in(int index)
    {
        (PolyphaseResampler r, float[] input, double[] expected, _, _, _) = Case(index);
        float[] offline = new PolyphaseResampler(r.InputRate, r.OutputRate, 2).ResampleAll(input);
        var rng = new Random(index);
        var streamed = new List<float>();
        var buffer = new float[64]; // small on purpose: Process must stop when it is full and resume
        int at = 0;
        while (at < input.Length)
        {
            int take = Math.Min(2 * rng.Next(1, 300), input.Length - at);
            ReadOnlySpan<float> chunk = input.AsSpan(at, take);
            int written;
            do
            {
                written = r.Process(chunk, buffer, out int consumed);
                streamed.AddRange(buffer.AsSpan(0, written).ToArray());
                chunk = chunk[consumed..];
            }
            while (!chunk.IsEmpty || written == buffer.Length);

            at += take;
            Assert.Equal(at / 2, r.InputSamples);
        }

        // As soon as its input is in: only the outputs that need samples after the end (half the filter) wait.
        int withheld = (offline.Length - streamed.Count) / 2;
        Assert.InRange(withheld, 1, (10 * Math.Max(r.Up, r.Down) / r.Down) + 2);
        var tail = new float[offline.Length];
        int flushed = r.Flush(tail);
        streamed.AddRange(tail.AsSpan(0, flushed).ToArray());
        Assert.Equal(offline, streamed.ToArray());
        Assert.Equal(expected.Length, streamed.Count);
    }
}

/// <summary>A feature spec with <c>resample</c>: a 48 kHz or 25.6 kHz sensor served by a 12 kHz pipeline.</summary>
public sealed class ResampledPipelineTests
{
    private static Pipeline.FeatureSpec Spec(double inputRate, string nonFinite = "reject") => new()
    {
        SampleRate = 12000,
        Channels = 2,
        FrameLength = 256,
        Hop = 128,
        NonFinite = nonFinite,
        Resample = new Pipeline.ResampleSpec { InputRate = inputRate },
        Filters = [new Pipeline.FilterSpec { Design = "butterworth", Mode = "highpass", Order = 2, Frequency = 20 }],
        Features = [new Pipeline.FeatureRequest { Name = "rms" }, new Pipeline.FeatureRequest { Name = "mfcc", Count = 13 }],
    };

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void Features_of_a_resampled_stream_are_those_of_resample_polys_output_in_any_chunks(int index)
    {
        System.Text.Json.JsonElement c = Golden.Load("resample").GetProperty("cases")[index];
        float[] input = c.GetProperty("input").Floats();
        double[] scipy = c.GetProperty("output").Doubles();
        Pipeline.FeatureSpec spec = Spec(c.GetProperty("input_rate").GetInt32());
        spec.Validate();
        var pipeline = new Pipeline.FeaturePipeline(spec);

        // The reference: scipy's resampled signal through the same pipeline without resampling.
        var plain = new Pipeline.FeaturePipeline(spec with { Resample = null });
        float[] expected = plain.ExtractAll([.. scipy.Select(v => (float)v)]);

        float[] offline = pipeline.ExtractAll(input);
        int rows = offline.Length / pipeline.OutputLength;
        Assert.True(rows >= (expected.Length / plain.OutputLength) - 1 && rows > 5, $"{rows} rows");
        Golden.Close([.. expected.Take(offline.Length).Select(v => (double)v)], offline, 1e-4, 1e-3, "resampled features");

        // Streamed in random chunks into a small destination, with a checkpoint and restore halfway: the same rows.
        Pipeline.FeatureExtractor stream = pipeline.CreateExtractor();
        var rng = new Random(index);
        var got = new List<float>();
        var room = new float[pipeline.OutputLength * 2];
        int at = 0;
        bool restored = false;
        while (at < input.Length)
        {
            ReadOnlySpan<float> chunk = input.AsSpan(at, Math.Min(2 * rng.Next(1, 700), input.Length - at));
            at += chunk.Length;
            int written;
            do
            {
                written = stream.Process(chunk, room, out int consumed);
                got.AddRange(room.AsSpan(0, written * pipeline.OutputLength).ToArray());
                chunk = chunk[consumed..];
            }
            while (!chunk.IsEmpty || written == 2);

            if (!restored && at > input.Length / 2)
            {
                using var state = new MemoryStream();
                stream.WriteState(new BinaryWriter(state));
                stream = pipeline.CreateExtractor();
                state.Position = 0;
                stream.ReadState(new BinaryReader(state));
                restored = true;
            }
        }

        Assert.Equal(offline, got.ToArray());
    }

    [Fact]
    public void A_bad_resampling_names_its_field()
    {
        Assert.Equal("resample.inputRate", Assert.Throws<Pipeline.FeatureSpecException>(() => Spec(0).Validate()).Field);
        Assert.Equal("resample.inputRate", Assert.Throws<Pipeline.FeatureSpecException>(() => Spec(44100.5).Validate()).Field);
        Pipeline.FeatureSpecException prime = Assert.Throws<Pipeline.FeatureSpecException>(() => Spec(12007).Validate());
        Assert.Contains("12007 Hz → 12000 Hz is 12000/12007 in lowest terms", prime.Message, StringComparison.Ordinal);
        Pipeline.FeatureSpec spec = Pipeline.FeatureSpec.FromJson("""{ "sampleRate": 12000, "resample": { "inputRate": 48000 }, "features": [ { "name": "rms" } ] }""");
        Assert.Equal(48000, spec.InputRate);
        Assert.Contains("\"inputRate\": 48000", spec.ToJson(), StringComparison.Ordinal);
    }
}
