using Signal.Features.Spectra;
using Signal.Features.Statistics;

namespace Signal.Features.Tests;

/// <summary>
/// The vectorised loops (power spectrum, time statistics) against plain double-precision loops for
/// every length 0..256, covering every tail. .ci/run repeats this under each instruction set.
/// </summary>
public sealed class KernelLengthTests
{
    [Fact]
    public void Power_spectrum_matches_a_plain_loop_for_every_length()
    {
        var rng = new Random(1);
        for (int n = 0; n <= 256; n++)
        {
            float[] re = Random(rng, n), im = Random(rng, n), power = new float[n];
            Spectrum.Power(re, im, power);
            for (int k = 0; k < n; k++)
            {
                double expected = ((double)re[k] * re[k]) + ((double)im[k] * im[k]);
                Assert.True(Math.Abs(power[k] - expected) <= 1e-6 * (1 + expected), $"n={n} k={k}");
            }
        }
    }

    [Fact]
    public void Time_statistics_match_plain_loops_for_every_length()
    {
        var rng = new Random(2);
        for (int n = 0; n <= 256; n++)
        {
            float[] x = Random(rng, n);
            TimeStatistics s = TimeStatistics.Compute(x);
            if (n == 0)
            {
                Assert.Equal(default, s);
                continue;
            }

            double mean = x.Average(v => (double)v);
            double m2 = x.Average(v => Math.Pow(v - mean, 2));
            double m3 = x.Average(v => Math.Pow(v - mean, 3));
            double m4 = x.Average(v => Math.Pow(v - mean, 4));
            double rms = Math.Sqrt(x.Average(v => (double)v * v));
            int changes = Enumerable.Range(0, n - 1).Count(i => (x[i] >= 0) != (x[i + 1] >= 0));
            Golden.Close(mean, s.Mean, 1e-6, 1e-5, $"n={n} mean");
            Golden.Close(rms, s.Rms, 1e-6, 1e-5, $"n={n} rms");
            Golden.Close(Math.Sqrt(m2), s.Std, 1e-6, 1e-5, $"n={n} std");
            Golden.Close(x.Max() - x.Min(), s.PeakToPeak, 1e-6, 1e-6, $"n={n} ptp");
            Golden.Close(x.Max(v => Math.Abs(v)) / rms, s.CrestFactor, 1e-6, 1e-5, $"n={n} crest");
            if (n > 2)
            {
                Golden.Close(m3 / Math.Pow(m2, 1.5), s.Skewness, 1e-4, 1e-4, $"n={n} skewness");
                Golden.Close((m4 / (m2 * m2)) - 3, s.Kurtosis, 1e-4, 1e-4, $"n={n} kurtosis");
            }

            Assert.Equal(n > 1 ? (float)changes / (n - 1) : 0f, s.ZeroCrossingRate);
        }
    }

    private static float[] Random(Random rng, int n) => [.. Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() * 4) - 2))];
}
