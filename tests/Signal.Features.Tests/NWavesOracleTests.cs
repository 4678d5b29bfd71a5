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

    [Fact]
    public void Mfcc_agrees_with_nwaves_given_the_same_window_bank_log_and_dct()
    {
        // NWaves's MfccExtractor set to what ours computes: the frame windowed by the caller (periodic Hann), the
        // power spectrum through the Slaney mel bank, 10·log10 with the same floor, and the orthonormal DCT-II ("2N").
        const int n = 1024, rate = 16000, bands = 40, coefficients = 13;
        var spec = new Signal.Features.Pipeline.FeatureSpec
        {
            SampleRate = rate,
            FrameLength = n,
            Hop = n,
            Window = "hann",
            Features = [new Signal.Features.Pipeline.FeatureRequest { Name = "mfcc", Count = coefficients, MelBands = bands }],
        };
        var random = new Random(17);
        float[] x = [.. Enumerable.Range(0, n).Select(i => (float)(Math.Sin(2 * Math.PI * 440 * i / rate) + (0.2 * (random.NextDouble() - 0.5))))];
        float[] ours = new Signal.Features.Pipeline.FeaturePipeline(spec).ExtractAll(x);

        float[] window = Signal.Features.Windows.Window.Create(Signal.Features.Windows.WindowKind.Hann, n, symmetric: false);
        float[] frame = [.. x.Select((v, i) => v * window[i])];
        var options = new NWaves.FeatureExtractors.Options.MfccOptions
        {
            SamplingRate = rate,
            FeatureCount = coefficients,
            FrameSize = n,
            HopSize = n,
            FftSize = n,
            FilterBankSize = bands,
            FilterBank = NWaves.Filters.Fda.FilterBanks.MelBankSlaney(bands, n, rate, 0, rate / 2.0, normalizeGain: true),
            SpectrumType = NWaves.FeatureExtractors.Options.SpectrumType.Power,
            NonLinearity = NWaves.FeatureExtractors.Options.NonLinearityType.ToDecibel,
            LogFloor = 1e-10f,
            DctType = "2N",
            Window = NWaves.Windows.WindowType.Rectangular,
        };
        float[] theirs = new float[coefficients];
        new NWaves.FeatureExtractors.MfccExtractor(options).ProcessFrame(frame, theirs);
        double scale = ours.Max(Math.Abs);
        for (int c = 0; c < coefficients; c++)
        {
            Assert.True(Math.Abs(ours[c] - theirs[c]) <= 1e-4 * scale, $"coefficient {c}: ours {ours[c]}, NWaves {theirs[c]}");
        }
    }
}
