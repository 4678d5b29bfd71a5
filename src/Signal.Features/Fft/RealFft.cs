using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Signal.Features.Fft;

/// <summary>
/// A plan for the discrete Fourier transform of real signals of one power-of-two length
/// (16 to 8192): <c>X[k] = Σ_n x[n]·e^{-2πi·kn/N}</c> for <c>k = 0..N/2</c>, unscaled,
/// the same convention as <c>numpy.fft.rfft</c>.
/// </summary>
/// <remarks>
/// <para>
/// Hand-written because no package on our feed offers an allocation-free streaming real FFT
/// (MathNet.Numerics allocates and is measured as a peer in the benchmarks). The transform of
/// length N is computed as a complex FFT of length N/2 over the even/odd samples (Stockham
/// autosort, radix 2, split real/imaginary arrays) followed by the usual split step; the
/// complex stages and the split step run on <see cref="System.Runtime.Intrinsics.Vector256{T}"/>
/// or <see cref="System.Runtime.Intrinsics.Vector128{T}"/> (NEON on ARM64) where the hardware
/// has them, with a scalar path that is the specification.
/// </para>
/// <para>
/// Results are written in split-complex form: <c>real[k]</c> and <c>imag[k]</c> for
/// <c>k = 0..N/2</c> (so both spans hold <see cref="BinCount"/> = N/2 + 1 values; <c>imag[0]</c>
/// and <c>imag[N/2]</c> are zero). A frame shorter than <see cref="Length"/> is zero-padded
/// at its end, the same as <c>numpy.fft.rfft(x, n=N)</c>.
/// </para>
/// <para>
/// Thread safety: a plan owns scratch buffers, so one instance must not be used by two threads
/// at once. Construction precomputes twiddles and scratch; <see cref="Forward(ReadOnlySpan{float}, Span{float}, Span{float})"/>
/// and <see cref="Inverse"/> allocate nothing. Results differ from the scalar path by rounding
/// only (fused multiply-add and summation order), well within 1e-5 relative to the frame's energy.
/// </para>
/// </remarks>
public sealed class RealFft
{
    /// <summary>The smallest supported transform length.</summary>
    public const int MinLength = 16;

    /// <summary>The largest supported transform length.</summary>
    public const int MaxLength = 8192;

    private readonly int _half;            // M = N/2, the complex transform length
    private readonly int _log2Half;
    private readonly float[] _baseRe;      // e^{-2πi j/M}, j < M/2
    private readonly float[] _baseIm;
    private readonly float[][] _stageRe;   // per stage with stride < 16: twiddle expanded per k
    private readonly float[][] _stageIm;
    private readonly float[] _splitCos;    // cos(2πk/N), k < M
    private readonly float[] _splitSin;    // -sin(2πk/N), k < M
    private readonly float[] _re0, _im0, _re1, _im1;

    /// <summary>Creates a plan for transforms of <paramref name="length"/> real samples.</summary>
    /// <param name="length">A power of two from <see cref="MinLength"/> to <see cref="MaxLength"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException">The length is not a supported power of two.</exception>
    public RealFft(int length)
    {
        if (length < MinLength || length > MaxLength || !BitOperations.IsPow2(length))
        {
            ThrowHelper.OutOfRange(nameof(length), length,
                $"The FFT length must be a power of two from {MinLength} to {MaxLength}; use NextSupportedLength to zero-pad.");
        }

        Length = length;
        _half = length / 2;
        _log2Half = BitOperations.Log2((uint)_half);
        int m = _half;

        _baseRe = new float[m / 2];
        _baseIm = new float[m / 2];
        for (int j = 0; j < m / 2; j++)
        {
            double angle = -2.0 * Math.PI * j / m;
            _baseRe[j] = (float)Math.Cos(angle);
            _baseIm[j] = (float)Math.Sin(angle);
        }

        int expanded = Math.Min(_log2Half, 4);
        _stageRe = new float[expanded][];
        _stageIm = new float[expanded][];
        for (int t = 0; t < expanded; t++)
        {
            var re = new float[m / 2];
            var im = new float[m / 2];
            for (int k = 0; k < m / 2; k++)
            {
                int j = (k >> t) << t;
                re[k] = _baseRe[j];
                im[k] = _baseIm[j];
            }

            _stageRe[t] = re;
            _stageIm[t] = im;
        }

        _splitCos = new float[m];
        _splitSin = new float[m];
        for (int k = 0; k < m; k++)
        {
            double angle = 2.0 * Math.PI * k / length;
            _splitCos[k] = (float)Math.Cos(angle);
            _splitSin[k] = (float)-Math.Sin(angle);
        }

        _re0 = new float[m];
        _im0 = new float[m];
        _re1 = new float[m];
        _im1 = new float[m];
    }

    /// <summary>The transform length N (number of real input samples).</summary>
    public int Length { get; }

    /// <summary>The number of frequency bins, N/2 + 1.</summary>
    public int BinCount => _half + 1;

    /// <summary>The smallest supported length that holds <paramref name="frameLength"/> samples (zero-padding length).</summary>
    /// <param name="frameLength">A frame length from 1 to <see cref="MaxLength"/>.</param>
    /// <returns>The power of two at least <paramref name="frameLength"/> and at least <see cref="MinLength"/>.</returns>
    public static int NextSupportedLength(int frameLength)
    {
        if (frameLength < 1 || frameLength > MaxLength)
        {
            ThrowHelper.OutOfRange(nameof(frameLength), frameLength, $"A frame must hold 1 to {MaxLength} samples.");
        }

        return Math.Max(MinLength, (int)BitOperations.RoundUpToPowerOf2((uint)frameLength));
    }

    /// <summary>Forward transform of a real frame.</summary>
    /// <param name="input">Up to <see cref="Length"/> samples; fewer are zero-padded at the end.</param>
    /// <param name="real">Receives Re X[k], k = 0..N/2 (at least <see cref="BinCount"/> elements).</param>
    /// <param name="imag">Receives Im X[k], k = 0..N/2 (at least <see cref="BinCount"/> elements).</param>
    public void Forward(ReadOnlySpan<float> input, Span<float> real, Span<float> imag) =>
        Forward(input, default, real, imag);

    /// <summary>Forward transform of <c>input[n]·window[n]</c>, the window applied on the fly.</summary>
    /// <param name="input">Up to <see cref="Length"/> samples; fewer are zero-padded at the end.</param>
    /// <param name="window">Empty for no window, otherwise exactly as long as <paramref name="input"/>.</param>
    /// <param name="real">Receives Re X[k], k = 0..N/2 (at least <see cref="BinCount"/> elements).</param>
    /// <param name="imag">Receives Im X[k], k = 0..N/2 (at least <see cref="BinCount"/> elements).</param>
    public void Forward(ReadOnlySpan<float> input, ReadOnlySpan<float> window, Span<float> real, Span<float> imag)
    {
        if (input.Length > Length)
        {
            ThrowHelper.Argument(nameof(input), $"'input' holds {input.Length} samples; this plan transforms at most {Length}.");
        }

        if (!window.IsEmpty && window.Length != input.Length)
        {
            ThrowHelper.ArgumentLength(nameof(window), input.Length, window.Length);
        }

        if (real.Length < BinCount)
        {
            ThrowHelper.ArgumentTooShort(nameof(real), BinCount, real.Length);
        }

        if (imag.Length < BinCount)
        {
            ThrowHelper.ArgumentTooShort(nameof(imag), BinCount, imag.Length);
        }

        FftKernels.Deinterleave(input, window, _re0, _im0);
        bool inFirst = RunStages();
        FftKernels.SplitForward(
            inFirst ? _re0 : _re1, inFirst ? _im0 : _im1, _splitCos, _splitSin, real[..BinCount], imag[..BinCount]);
    }

    /// <summary>
    /// Inverse transform: rebuilds the N real samples from bins k = 0..N/2, scaled by 1/N so that
    /// <c>Inverse(Forward(x)) = x</c> (the convention of <c>numpy.fft.irfft</c>).
    /// </summary>
    /// <param name="real">Re X[k], k = 0..N/2 (<see cref="BinCount"/> elements are read).</param>
    /// <param name="imag">Im X[k], k = 0..N/2; <c>imag[0]</c> and <c>imag[N/2]</c> are ignored.</param>
    /// <param name="output">Receives <see cref="Length"/> samples.</param>
    public void Inverse(ReadOnlySpan<float> real, ReadOnlySpan<float> imag, Span<float> output)
    {
        if (real.Length < BinCount)
        {
            ThrowHelper.ArgumentTooShort(nameof(real), BinCount, real.Length);
        }

        if (imag.Length < BinCount)
        {
            ThrowHelper.ArgumentTooShort(nameof(imag), BinCount, imag.Length);
        }

        if (output.Length < Length)
        {
            ThrowHelper.ArgumentTooShort(nameof(output), Length, output.Length);
        }

        int m = _half;
        // Undo the split step: Z[k] = E + D with E = (X[k] + conj X[M-k]) / 2 and
        // D = conj(W_k)·(conj X[M-k] - X[k]) / 2i, W_k = e^{-2πik/N}. The conjugate of Z is stored
        // so that the forward complex transform computes the inverse one.
        for (int k = 0; k < m; k++)
        {
            float ar = real[k], ai = imag[k];
            float br = real[m - k], bi = -imag[m - k];
            if (k == 0)
            {
                ai = 0f;
                bi = 0f;
            }

            float er = 0.5f * (ar + br), ei = 0.5f * (ai + bi);
            // (b - a) / 2i = (i·(a - b)) / 2
            float qr = -0.5f * (ai - bi), qi = 0.5f * (ar - br);
            float c = _splitCos[k], s = -_splitSin[k]; // conj(W_k) = cos + i·sin
            float dr = qr * c - qi * s, di = qr * s + qi * c;
            _re0[k] = er + dr;
            _im0[k] = -(ei + di);
        }

        bool inFirst = RunStages();
        float[] re = inFirst ? _re0 : _re1;
        float[] im = inFirst ? _im0 : _im1;
        float scale = 1f / m;
        for (int n = 0; n < m; n++)
        {
            output[2 * n] = re[n] * scale;
            output[(2 * n) + 1] = -im[n] * scale;
        }
    }

    /// <summary>Runs the complex stages over (_re0, _im0); returns true when the result is back in them.</summary>
    private bool RunStages()
    {
        float[] xr = _re0, xi = _im0, yr = _re1, yi = _im1;
        for (int t = 0; t < _log2Half; t++)
        {
            FftKernels.Stage(t, xr, xi, yr, yi,
                t < _stageRe.Length ? _stageRe[t] : null, t < _stageIm.Length ? _stageIm[t] : null, _baseRe, _baseIm);
            (xr, yr) = (yr, xr);
            (xi, yi) = (yi, xi);
        }

        return ReferenceEquals(xr, _re0);
    }

    /// <summary>Exposes the dispatch choice for tests and benchmarks.</summary>
    internal static string Path => FftKernels.Path;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ref float At(float[] array) => ref MemoryMarshal.GetArrayDataReference(array);
}
