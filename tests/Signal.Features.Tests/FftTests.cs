using FsCheck;
using FsCheck.Fluent;
using Signal.Features.Fft;

namespace Signal.Features.Tests;

[Collection(nameof(ScalarSwitch))]
public sealed class FftTests
{
    /// <summary>Random frames of every supported length, values in [-10, 10].</summary>
    private static readonly Gen<(int, float[])> s_frames =
        from log2 in Gen.Choose(4, 13)
        from values in Gen.ArrayOf(Gen.Choose(-10000, 10000).Select(v => v / 1000f), 1 << log2)
        select (1 << log2, values);

    public static TheoryData<int> GoldenLengths => [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192];

    [Theory]
    [MemberData(nameof(GoldenLengths))]
    public void Forward_matches_numpy_rfft(int n)
    {
        var c = Golden.Load("fft").GetProperty("cases").EnumerateArray().Single(x => x.GetProperty("n").GetInt32() == n);
        float[] input = c.GetProperty("input").Floats();
        double[] re = c.GetProperty("real").Doubles(), im = c.GetProperty("imag").Doubles();
        double scale = Math.Sqrt(input.Sum(v => (double)v * v));
        foreach (bool scalar in new[] { false, true })
        {
            using var _ = ScalarSwitch.Set(scalar);
            var fft = new RealFft(n);
            var outRe = new float[fft.BinCount];
            var outIm = new float[fft.BinCount];
            fft.Forward(input, outRe, outIm);
            // Single precision: the error grows like log2(N)·ε·‖x‖.
            double tol = 2e-7 * Math.Log2(n) * scale;
            Golden.Close(re, outRe, tol, 0, $"re (N={n}, scalar={scalar})");
            Golden.Close(im, outIm, tol, 0, $"im (N={n}, scalar={scalar})");
        }
    }

    [Fact]
    public void Every_vector_path_equals_the_scalar_path_for_every_supported_length()
    {
        var rng = new Random(7);
        for (int n = RealFft.MinLength; n <= RealFft.MaxLength; n *= 2)
        {
            float[] x = [.. Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() * 2) - 1))];
            (float[] vr, float[] vi) = Transform(x, n, scalar: false);
            (float[] sr, float[] si) = Transform(x, n, scalar: true);
            double tol = 1e-6 * Math.Sqrt(n) * Math.Log2(n);
            for (int k = 0; k < vr.Length; k++)
            {
                Assert.True(Math.Abs(vr[k] - sr[k]) <= tol && Math.Abs(vi[k] - si[k]) <= tol, $"N={n} bin {k}");
            }
        }
    }

    [Fact]
    public void Short_frames_are_zero_padded()
    {
        var rng = new Random(3);
        float[] x = [.. Enumerable.Range(0, 700).Select(_ => (float)rng.NextDouble())];
        float[] padded = [.. x, .. new float[324]];
        (float[] r1, float[] i1) = Transform(x, 1024, scalar: false);
        (float[] r2, float[] i2) = Transform(padded, 1024, scalar: false);
        Assert.Equal(r2, r1);
        Assert.Equal(i2, i1);
        // The vector loops stop where the short input ends; the scalar path is the oracle.
        (float[] r3, float[] i3) = Transform(x, 1024, scalar: true);
        for (int k = 0; k < r1.Length; k++)
        {
            Assert.True(Math.Abs(r1[k] - r3[k]) <= 1e-3 && Math.Abs(i1[k] - i3[k]) <= 1e-3, $"bin {k}");
        }
    }

    [Fact]
    public void Windowed_forward_equals_forward_of_the_windowed_frame()
    {
        var rng = new Random(5);
        float[] x = [.. Enumerable.Range(0, 512).Select(_ => (float)rng.NextDouble())];
        float[] w = Windows.Window.Create(Windows.WindowKind.Hann, 512);
        float[] xw = [.. x.Zip(w, (a, b) => a * b)];
        var fft = new RealFft(512);
        float[] r1 = new float[257], i1 = new float[257], r2 = new float[257], i2 = new float[257];
        fft.Forward(x, w, r1, i1);
        fft.Forward(xw, r2, i2);
        Assert.Equal(r2, r1);
        Assert.Equal(i2, i1);
    }

    [Fact]
    public void Round_trip_restores_the_signal()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(60), Prop.ForAll(s_frames.ToArbitrary(), t =>
        {
            (int n, float[] x) = t;
            var fft = new RealFft(n);
            float[] re = new float[fft.BinCount], im = new float[fft.BinCount], back = new float[n];
            fft.Forward(x, re, im);
            fft.Inverse(re, im, back);
            double err = x.Zip(back, (a, b) => Math.Abs(a - b)).Max();
            return err <= 1e-5 * 10 * Math.Log2(n);
        }));
    }

    [Fact]
    public void Parseval_holds()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(60), Prop.ForAll(s_frames.ToArbitrary(), t =>
        {
            (int n, float[] x) = t;
            var fft = new RealFft(n);
            float[] re = new float[fft.BinCount], im = new float[fft.BinCount];
            fft.Forward(x, re, im);
            double time = x.Sum(v => (double)v * v);
            double freq = 0;
            for (int k = 0; k <= n / 2; k++)
            {
                double p = ((double)re[k] * re[k]) + ((double)im[k] * im[k]);
                freq += k == 0 || k == n / 2 ? p : 2 * p;
            }

            return Math.Abs(time - (freq / n)) <= 1e-5 * Math.Max(1, time);
        }));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(8)]
    [InlineData(1000)]
    [InlineData(16384)]
    public void Unsupported_lengths_are_refused_with_a_clear_message(int n)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new RealFft(n));
        Assert.Contains("power of two", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Transform_allocates_nothing()
    {
        var fft = new RealFft(1024);
        float[] x = new float[1024], re = new float[513], im = new float[513];
        fft.Forward(x, re, im);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            fft.Forward(x, re, im);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    private static (float[] Re, float[] Im) Transform(float[] x, int n, bool scalar)
    {
        using var _ = ScalarSwitch.Set(scalar);
        var fft = new RealFft(n);
        float[] re = new float[fft.BinCount], im = new float[fft.BinCount];
        fft.Forward(x, re, im);
        return (re, im);
    }
}

/// <summary>Serialises tests that flip the kernels' scalar switch.</summary>
[CollectionDefinition(nameof(ScalarSwitch), DisableParallelization = true)]
public sealed class ScalarSwitch : IDisposable
{
    private readonly bool _previous;

    private ScalarSwitch(bool scalar)
    {
        _previous = FftKernels.ForceScalar;
        FftKernels.ForceScalar = scalar;
    }

    public static ScalarSwitch Set(bool scalar) => new(scalar);

    public void Dispose() => FftKernels.ForceScalar = _previous;
}
