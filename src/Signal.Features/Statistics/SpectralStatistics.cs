using System.Numerics.Tensors;

namespace Signal.Features.Statistics;

/// <summary>Statistics of one frame's power spectrum P[k], k = 0..N/2, bin frequencies f_k = k·rate/N.</summary>
/// <remarks>
/// Conventions: <c>Centroid</c> = Σ f·P / Σ P (Hz); <c>Bandwidth</c> = √(Σ P·(f - centroid)² / Σ P) (Hz,
/// librosa's p = 2 with normalised weights); <c>Rolloff</c> = the lowest bin frequency at which the
/// cumulative power reaches the configured fraction of the total (librosa's definition);
/// <c>Flatness</c> = geometric mean / arithmetic mean of max(P, floor) (librosa with power 2);
/// <c>Entropy</c> = -Σ p·ln p / ln(bins) with p = P / Σ P, in [0, 1]; <c>Flux</c> = √(Σ (P - P_previous)²),
/// 0 on a stream's first frame; <c>PeakFrequency</c>/<c>PeakMagnitude</c> = the frequency and √P of the
/// strongest bin (the lowest on ties). A silent frame gives 0 for centroid, bandwidth, rolloff and
/// entropy and 1 for flatness: finite values, never NaN.
/// </remarks>
public readonly record struct SpectralStatistics(
    float Centroid,
    float Bandwidth,
    float Rolloff,
    float Flatness,
    float Entropy,
    float Flux,
    float PeakFrequency,
    float PeakMagnitude);

/// <summary>Computes <see cref="SpectralStatistics"/> and band energies for one FFT length and sample rate.</summary>
/// <remarks>Immutable and safe to share between threads; the per-stream state (previous spectrum) and scratch are passed in.</remarks>
public sealed class SpectralAnalyzer
{
    private readonly float[] _binIndex;
    private readonly float _binHz;

    /// <summary>Creates an analyzer.</summary>
    /// <param name="sampleRate">Samples per second, greater than zero.</param>
    /// <param name="fftLength">The FFT length N; spectra hold N/2 + 1 bins.</param>
    /// <param name="rolloffFraction">The rolloff's fraction of total power, in (0, 1]; 0.85 by default (librosa).</param>
    /// <param name="logFloor">The floor applied before logarithms (flatness, entropy).</param>
    public SpectralAnalyzer(double sampleRate, int fftLength, double rolloffFraction = 0.85, float logFloor = 1e-10f)
    {
        if (!(sampleRate > 0) || !double.IsFinite(sampleRate))
        {
            ThrowHelper.OutOfRange(nameof(sampleRate), sampleRate, "The sample rate must be a finite number of Hz greater than zero.");
        }

        if (fftLength < 2)
        {
            ThrowHelper.OutOfRange(nameof(fftLength), fftLength, "The FFT length must be at least 2.");
        }

        if (!(rolloffFraction > 0 && rolloffFraction <= 1))
        {
            ThrowHelper.OutOfRange(nameof(rolloffFraction), rolloffFraction, "The rolloff fraction must lie in (0, 1].");
        }

        SampleRate = sampleRate;
        FftLength = fftLength;
        RolloffFraction = rolloffFraction;
        LogFloor = logFloor;
        BinCount = (fftLength / 2) + 1;
        _binHz = (float)(sampleRate / fftLength);
        _binIndex = new float[BinCount];
        for (int k = 0; k < BinCount; k++)
        {
            _binIndex[k] = k;
        }
    }

    /// <summary>Samples per second.</summary>
    public double SampleRate { get; }

    /// <summary>The FFT length N.</summary>
    public int FftLength { get; }

    /// <summary>The number of bins, N/2 + 1.</summary>
    public int BinCount { get; }

    /// <summary>The rolloff's fraction of total power.</summary>
    public double RolloffFraction { get; }

    /// <summary>The floor applied before logarithms.</summary>
    public float LogFloor { get; }

    /// <summary>Computes the statistics of <paramref name="power"/>.</summary>
    /// <param name="power">The power spectrum, <see cref="BinCount"/> values.</param>
    /// <param name="previous">The previous frame's power spectrum for the flux, or empty on a stream's first frame.</param>
    /// <param name="scratch">Scratch of at least <see cref="BinCount"/> values (overwritten).</param>
    /// <param name="withLogs">False skips flatness and entropy (the two that need a logarithm per bin); they are then 0.</param>
    /// <returns>The statistics.</returns>
    public SpectralStatistics Compute(ReadOnlySpan<float> power, ReadOnlySpan<float> previous, Span<float> scratch, bool withLogs = true)
    {
        if (power.Length != BinCount)
        {
            ThrowHelper.ArgumentLength(nameof(power), BinCount, power.Length);
        }

        if (!previous.IsEmpty && previous.Length != BinCount)
        {
            ThrowHelper.ArgumentLength(nameof(previous), BinCount, previous.Length);
        }

        if (scratch.Length < BinCount)
        {
            ThrowHelper.ArgumentTooShort(nameof(scratch), BinCount, scratch.Length);
        }

        Span<float> work = scratch[..BinCount];
        float total = TensorPrimitives.Sum(power);
        float centroidBin = 0, bandwidthBins = 0, rolloff = 0, entropy = 0, flatness = 1;
        if (total > 0)
        {
            centroidBin = TensorPrimitives.Dot(power, _binIndex) / total;
            // Σ P·(k - c)² as a second pass: Σ P·k² - c²·Σ P cancels badly for narrow spectra.
            TensorPrimitives.Subtract(_binIndex, centroidBin, work);
            TensorPrimitives.Multiply(work, work, work);
            bandwidthBins = MathF.Sqrt(MathF.Max(0, TensorPrimitives.Dot(work, power) / total));
            rolloff = RolloffBin(power, (float)(RolloffFraction * total)) * _binHz;
        }

        if (withLogs)
        {
            TensorPrimitives.Max(power, LogFloor, work);
            float arithmetic = TensorPrimitives.Sum(work) / BinCount;
            TensorPrimitives.Log(work, work);
            float geometric = MathF.Exp(TensorPrimitives.Sum(work) / BinCount);
            flatness = geometric / arithmetic;
            if (total > 0)
            {
                // -Σ p ln p = ln T - Σ P ln P / T; bins below the floor carry P·ln(floor) ≈ 0.
                float h = MathF.Log(total) - (TensorPrimitives.Dot(power, work) / total);
                entropy = MathF.Max(0, h / MathF.Log(BinCount));
            }
        }

        float flux = previous.IsEmpty ? 0 : TensorPrimitives.Distance(power, previous);
        int peak = TensorPrimitives.IndexOfMax(power);
        return new SpectralStatistics(
            centroidBin * _binHz, bandwidthBins * _binHz, rolloff, flatness, entropy, flux, peak * _binHz, MathF.Sqrt(power[peak]));
    }

    private static int RolloffBin(ReadOnlySpan<float> power, float threshold)
    {
        float cumulative = 0;
        for (int k = 0; k < power.Length; k++)
        {
            cumulative += power[k];
            if (cumulative >= threshold)
            {
                return k;
            }
        }

        // Rounding can leave the running sum a hair below the threshold at the end.
        return power.Length - 1;
    }
}
