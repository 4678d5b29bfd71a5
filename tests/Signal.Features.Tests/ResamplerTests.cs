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
