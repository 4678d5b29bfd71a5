using Signal.Features.Fft;
using Signal.Features.Spectra;
using Xunit;

namespace Signal.Features.Tests;

/// <summary>NWaves as a second, independent oracle for the FFT and the mel bank (beside the numpy/librosa goldens).</summary>
public sealed class NWavesOracleTests
{
    [Theory]
    [InlineData(256)]
    [InlineData(1024)]
    [InlineData(2048)]
    public void The_real_fft_agrees_with_nwaves(int n)
    {
        var random = new Random(n);
        float[] x = [.. Enumerable.Range(0, n).Select(_ => (float)((random.NextDouble() * 2) - 1))];
        float[] re = new float[(n / 2) + 1], im = new float[(n / 2) + 1];
        new RealFft(n).Forward(x, re, im);

        float[] theirRe = new float[n], theirIm = new float[n];
        new NWaves.Transforms.RealFft(n).Direct((float[])x.Clone(), theirRe, theirIm);
        double scale = Math.Sqrt(n); // the spectrum's typical magnitude for unit noise
        for (int k = 0; k <= n / 2; k++)
        {
            Assert.True(Math.Abs(re[k] - theirRe[k]) <= 2e-5 * scale && Math.Abs(im[k] - theirIm[k]) <= 2e-5 * scale,
                $"bin {k}: ours {re[k]}{im[k]:+0.######;-0.######}j, NWaves {theirRe[k]}{theirIm[k]:+0.######;-0.######}j");
        }
    }

    [Theory]
    [InlineData(16000, 512, 40, 0, 8000)]
    [InlineData(12000, 1024, 64, 20, 5000)]
    public void The_slaney_mel_bank_agrees_with_nwaves(int rate, int fft, int bands, double low, double high)
    {
        float[] ours = new MelFilterBank(new MelFilterBankOptions(rate, fft, bands, low, high, MelScale.Slaney, MelNorm.Slaney)).ToDense();
        float[][] theirs = NWaves.Filters.Fda.FilterBanks.MelBankSlaney(bands, fft, rate, low, high, normalizeGain: true);
        int bins = (fft / 2) + 1;
        float peak = ours.Max();
        for (int b = 0; b < bands; b++)
        {
            for (int k = 0; k < bins; k++)
            {
                Assert.True(Math.Abs(ours[(b * bins) + k] - theirs[b][k]) <= 1e-4 * peak, $"band {b}, bin {k}: ours {ours[(b * bins) + k]}, NWaves {theirs[b][k]}");
            }
        }
    }
}
