using System.Numerics.Tensors;

namespace Signal.Features.Spectra;

/// <summary>The mel scale's formula.</summary>
public enum MelScale
{
    /// <summary>Slaney's Auditory Toolbox scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above; librosa's default (<c>htk=False</c>).</summary>
    Slaney,

    /// <summary>HTK's scale: <c>mel = 2595·log10(1 + f/700)</c> (librosa's <c>htk=True</c>).</summary>
    Htk,
}

/// <summary>How each mel filter is scaled.</summary>
public enum MelNorm
{
    /// <summary>Triangles peak at 1.</summary>
    None,

    /// <summary>Slaney's area normalisation: each triangle is divided by its width in Hz / 2 (librosa's <c>norm='slaney'</c>, the default).</summary>
    Slaney,
}

/// <summary>Options of a <see cref="MelFilterBank"/>; the defaults are librosa's.</summary>
/// <param name="SampleRate">Samples per second, greater than zero.</param>
/// <param name="FftLength">The FFT length N; the bank reads N/2 + 1 power bins.</param>
/// <param name="Bands">The number of mel bands, at least 1.</param>
/// <param name="MinFrequency">The lowest filter edge in Hz (default 0).</param>
/// <param name="MaxFrequency">The highest filter edge in Hz; null for the Nyquist frequency.</param>
/// <param name="Scale">The mel formula (default Slaney).</param>
/// <param name="Norm">The filter normalisation (default Slaney area normalisation).</param>
public sealed record MelFilterBankOptions(
    double SampleRate,
    int FftLength,
    int Bands,
    double MinFrequency = 0,
    double? MaxFrequency = null,
    MelScale Scale = MelScale.Slaney,
    MelNorm Norm = MelNorm.Slaney);

/// <summary>
/// A bank of triangular filters on the mel scale applied to a power spectrum, the formulas of
/// <c>librosa.filters.mel</c>: <c>Bands + 2</c> points evenly spaced in mel between the min
/// and max frequency, converted back to Hz, each filter rising from point i to i+1 and falling to i+2.
/// </summary>
/// <remarks>Immutable after construction and safe to share between threads. Filters are stored sparsely (only their non-zero bins).</remarks>
public sealed class MelFilterBank
{
    private readonly int[] _start;
    private readonly float[][] _weights;

    /// <summary>Builds the bank.</summary>
    /// <param name="options">The bank's options.</param>
    /// <exception cref="ArgumentException">An option is out of range; the message names it.</exception>
    public MelFilterBank(MelFilterBankOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!(options.SampleRate > 0) || !double.IsFinite(options.SampleRate))
        {
            ThrowHelper.OutOfRange("SampleRate", options.SampleRate, "The sample rate must be a finite number of Hz greater than zero.");
        }

        if (options.FftLength < 2)
        {
            ThrowHelper.OutOfRange("FftLength", options.FftLength, "The FFT length must be at least 2.");
        }

        if (options.Bands < 1)
        {
            ThrowHelper.OutOfRange("Bands", options.Bands, "A mel bank needs at least one band.");
        }

        double nyquist = options.SampleRate / 2;
        double fmax = options.MaxFrequency ?? nyquist;
        if (options.MinFrequency < 0 || options.MinFrequency >= fmax)
        {
            ThrowHelper.OutOfRange("MinFrequency", options.MinFrequency, $"The mel bank's lowest frequency must be at least 0 and below its highest ({fmax} Hz).");
        }

        if (fmax > nyquist + 1e-9)
        {
            ThrowHelper.OutOfRange("MaxFrequency", fmax, $"The mel bank's highest frequency is above the Nyquist frequency ({nyquist} Hz).");
        }

        Options = options;
        bool htk = options.Scale == MelScale.Htk;
        int bins = (options.FftLength / 2) + 1;
        double lo = HzToMel(options.MinFrequency, htk), hi = HzToMel(fmax, htk);
        var points = new double[options.Bands + 2];
        for (int i = 0; i < points.Length; i++)
        {
            points[i] = MelToHz(lo + ((hi - lo) * i / (points.Length - 1)), htk);
        }

        _start = new int[options.Bands];
        _weights = new float[options.Bands][];
        var row = new double[bins];
        for (int b = 0; b < options.Bands; b++)
        {
            double left = points[b], centre = points[b + 1], right = points[b + 2];
            double scale = options.Norm == MelNorm.Slaney ? 2.0 / (right - left) : 1.0;
            int first = -1, last = -1;
            for (int k = 0; k < bins; k++)
            {
                double f = k * options.SampleRate / options.FftLength;
                double rise = (f - left) / (centre - left);
                double fall = (right - f) / (right - centre);
                double w = Math.Max(0, Math.Min(rise, fall)) * scale;
                row[k] = w;
                if (w > 0)
                {
                    if (first < 0)
                    {
                        first = k;
                    }

                    last = k;
                }
            }

            // A band narrower than one bin gets no weights (librosa warns of empty filters the same way).
            _start[b] = Math.Max(first, 0);
            _weights[b] = first < 0 ? [] : Array.ConvertAll(row[first..(last + 1)], x => (float)x);
        }
    }

    /// <summary>The options the bank was built with.</summary>
    public MelFilterBankOptions Options { get; }

    /// <summary>The number of bands.</summary>
    public int Bands => _weights.Length;

    /// <summary>The number of power bins read, FftLength/2 + 1.</summary>
    public int BinCount => (Options.FftLength / 2) + 1;

    /// <summary>melPower[b] = Σ_k weight[b, k]·power[k].</summary>
    /// <param name="power">The power spectrum, <see cref="BinCount"/> values.</param>
    /// <param name="melPower">Receives <see cref="Bands"/> values.</param>
    public void Apply(ReadOnlySpan<float> power, Span<float> melPower)
    {
        if (power.Length != BinCount)
        {
            ThrowHelper.ArgumentLength(nameof(power), BinCount, power.Length);
        }

        if (melPower.Length < Bands)
        {
            ThrowHelper.ArgumentTooShort(nameof(melPower), Bands, melPower.Length);
        }

        for (int b = 0; b < _weights.Length; b++)
        {
            float[] w = _weights[b];
            melPower[b] = TensorPrimitives.Dot(w, power.Slice(_start[b], w.Length));
        }
    }

    /// <summary>The dense weight matrix (Bands × BinCount), for inspection and tests.</summary>
    /// <returns>A new array, row-major.</returns>
    public float[] ToDense()
    {
        var dense = new float[Bands * BinCount];
        for (int b = 0; b < Bands; b++)
        {
            _weights[b].CopyTo(dense.AsSpan((b * BinCount) + _start[b]));
        }

        return dense;
    }

    /// <summary>Hz to mel on the given scale (librosa's <c>hz_to_mel</c>).</summary>
    /// <param name="hz">A frequency in Hz.</param>
    /// <param name="htk">True for the HTK formula, false for Slaney's.</param>
    /// <returns>The frequency in mels.</returns>
    public static double HzToMel(double hz, bool htk)
    {
        if (htk)
        {
            return 2595.0 * Math.Log10(1.0 + (hz / 700.0));
        }

        const double fSp = 200.0 / 3, minLogHz = 1000.0, minLogMel = minLogHz / fSp;
        double logStep = Math.Log(6.4) / 27.0;
        return hz >= minLogHz ? minLogMel + (Math.Log(hz / minLogHz) / logStep) : hz / fSp;
    }

    /// <summary>Mel to Hz on the given scale (librosa's <c>mel_to_hz</c>).</summary>
    /// <param name="mel">A frequency in mels.</param>
    /// <param name="htk">True for the HTK formula, false for Slaney's.</param>
    /// <returns>The frequency in Hz.</returns>
    public static double MelToHz(double mel, bool htk)
    {
        if (htk)
        {
            return 700.0 * (Math.Pow(10.0, mel / 2595.0) - 1.0);
        }

        const double fSp = 200.0 / 3, minLogHz = 1000.0, minLogMel = minLogHz / fSp;
        double logStep = Math.Log(6.4) / 27.0;
        return mel >= minLogMel ? minLogHz * Math.Exp(logStep * (mel - minLogMel)) : fSp * mel;
    }
}
