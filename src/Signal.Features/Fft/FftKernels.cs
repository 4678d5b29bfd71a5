using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace Signal.Features.Fft;

/// <summary>
/// The FFT's inner loops. Each has a scalar path (the specification and the test oracle) and
/// vector paths: Vector256 on AVX2 machines, Vector128 on SSE2 and on ARM64 (NEON, the
/// production path of the edge boards). Interleaving needs two-source shuffles that have no
/// cross-platform API, so those few lines use the platform intrinsics directly.
/// </summary>
internal static class FftKernels
{
    /// <summary>Set to force the scalar path (tests compare every vector path against it).</summary>
    internal static bool ForceScalar { get; set; }

    private static bool Use256 => !ForceScalar && Vector256.IsHardwareAccelerated && Avx2.IsSupported;

    private static bool Use128 => !ForceScalar && Vector128.IsHardwareAccelerated && (Sse2.IsSupported || AdvSimd.Arm64.IsSupported);

    /// <summary>The path taken on this machine, for logs and benchmark reports.</summary>
    internal static string Path => Use256 ? "Vector256" : Use128 ? "Vector128" : "scalar";

    /// <summary>
    /// re[n] = x[2n]·w[2n], im[n] = x[2n+1]·w[2n+1]; samples past <paramref name="input"/>'s end are zero.
    /// An empty window means no window.
    /// </summary>
    public static void Deinterleave(ReadOnlySpan<float> input, ReadOnlySpan<float> window, Span<float> re, Span<float> im)
    {
        int m = re.Length;
        int n = 0;
        // Vector loops cover the pairs fully inside the input; the scalar loop does the rest and the zero padding.
        int whole = input.Length;
        ref float x = ref MemoryMarshal.GetReference(input);
        ref float w = ref MemoryMarshal.GetReference(window);
        ref float r = ref MemoryMarshal.GetReference(re);
        ref float i = ref MemoryMarshal.GetReference(im);
        bool windowed = !window.IsEmpty;
        if (Use256)
        {
            for (; n + 8 <= m && (2 * n) + 16 <= whole; n += 8)
            {
                Vector256<float> v0 = Vector256.LoadUnsafe(ref x, (nuint)(2 * n));
                Vector256<float> v1 = Vector256.LoadUnsafe(ref x, (nuint)((2 * n) + 8));
                if (windowed)
                {
                    v0 *= Vector256.LoadUnsafe(ref w, (nuint)(2 * n));
                    v1 *= Vector256.LoadUnsafe(ref w, (nuint)((2 * n) + 8));
                }

                Unzip(v0, v1, out Vector256<float> even, out Vector256<float> odd);
                even.StoreUnsafe(ref r, (nuint)n);
                odd.StoreUnsafe(ref i, (nuint)n);
            }
        }
        else if (Use128)
        {
            for (; n + 4 <= m && (2 * n) + 8 <= whole; n += 4)
            {
                Vector128<float> v0 = Vector128.LoadUnsafe(ref x, (nuint)(2 * n));
                Vector128<float> v1 = Vector128.LoadUnsafe(ref x, (nuint)((2 * n) + 4));
                if (windowed)
                {
                    v0 *= Vector128.LoadUnsafe(ref w, (nuint)(2 * n));
                    v1 *= Vector128.LoadUnsafe(ref w, (nuint)((2 * n) + 4));
                }

                Unzip(v0, v1, out Vector128<float> even, out Vector128<float> odd);
                even.StoreUnsafe(ref r, (nuint)n);
                odd.StoreUnsafe(ref i, (nuint)n);
            }
        }


        for (; n < m; n++)
        {
            int j = 2 * n;
            float a = j < input.Length ? input[j] : 0f;
            float b = j + 1 < input.Length ? input[j + 1] : 0f;
            if (!window.IsEmpty)
            {
                a *= j < window.Length ? window[j] : 0f;
                b *= j + 1 < window.Length ? window[j + 1] : 0f;
            }

            re[n] = a;
            im[n] = b;
        }
    }

    /// <summary>
    /// One radix-2 Stockham stage (decimation in frequency) of a complex FFT of length M = x.Length,
    /// stride s = 2^t: for k = q + s·p, a = x[k], b = x[k + M/2],
    /// y[q + 2sp] = a + b and y[q + 2sp + s] = (a - b)·e^{-2πi·ps/M}.
    /// </summary>
    public static void Stage(int t, float[] xr, float[] xi, float[] yr, float[] yi,
        float[]? expandedRe, float[]? expandedIm, float[] baseRe, float[] baseIm)
    {
        int m = xr.Length;
        int half = m / 2;
        int s = 1 << t;
        if (Use256 && half >= 8)
        {
            if (s >= 8)
            {
                StageWide256(s, half, xr, xi, yr, yi, baseRe, baseIm);
            }
            else
            {
                StageNarrow256(s, half, xr, xi, yr, yi, expandedRe!, expandedIm!);
            }

            return;
        }

        if (Use128 && half >= 4)
        {
            if (s >= 4)
            {
                StageWide128(s, half, xr, xi, yr, yi, baseRe, baseIm);
            }
            else
            {
                StageNarrow128(s, half, xr, xi, yr, yi, expandedRe!, expandedIm!);
            }

            return;
        }

        StageScalar(s, half, xr, xi, yr, yi, baseRe, baseIm);
    }

    private static void StageScalar(int s, int half, float[] xr, float[] xi, float[] yr, float[] yi, float[] baseRe, float[] baseIm)
    {
        for (int k = 0; k < half; k++)
        {
            int q = k & (s - 1);
            int p = k - q; // p·s
            float ar = xr[k], ai = xi[k], br = xr[k + half], bi = xi[k + half];
            float wr = baseRe[p], wi = baseIm[p];
            int o = (2 * p) + q;
            yr[o] = ar + br;
            yi[o] = ai + bi;
            float dr = ar - br, di = ai - bi;
            yr[o + s] = (dr * wr) - (di * wi);
            yi[o + s] = (dr * wi) + (di * wr);
        }
    }

    private static void StageWide256(int s, int half, float[] xr, float[] xi, float[] yr, float[] yi, float[] baseRe, float[] baseIm)
    {
        ref float xR = ref RealFft.At(xr);
        ref float xI = ref RealFft.At(xi);
        ref float yR = ref RealFft.At(yr);
        ref float yI = ref RealFft.At(yi);
        for (int p = 0; p < half; p += s)
        {
            var wr = Vector256.Create(baseRe[p]);
            var wi = Vector256.Create(baseIm[p]);
            int o = 2 * p;
            for (int q = 0; q < s; q += 8)
            {
                nuint k = (nuint)(p + q);
                Vector256<float> ar = Vector256.LoadUnsafe(ref xR, k);
                Vector256<float> ai = Vector256.LoadUnsafe(ref xI, k);
                Vector256<float> br = Vector256.LoadUnsafe(ref xR, k + (nuint)half);
                Vector256<float> bi = Vector256.LoadUnsafe(ref xI, k + (nuint)half);
                (ar + br).StoreUnsafe(ref yR, (nuint)(o + q));
                (ai + bi).StoreUnsafe(ref yI, (nuint)(o + q));
                Vector256<float> dr = ar - br, di = ai - bi;
                Vector256.MultiplyAddEstimate(dr, wr, -(di * wi)).StoreUnsafe(ref yR, (nuint)(o + s + q));
                Vector256.MultiplyAddEstimate(dr, wi, di * wr).StoreUnsafe(ref yI, (nuint)(o + s + q));
            }
        }
    }

    private static void StageNarrow256(int s, int half, float[] xr, float[] xi, float[] yr, float[] yi, float[] twRe, float[] twIm)
    {
        ref float xR = ref RealFft.At(xr);
        ref float xI = ref RealFft.At(xi);
        ref float yR = ref RealFft.At(yr);
        ref float yI = ref RealFft.At(yi);
        ref float tR = ref RealFft.At(twRe);
        ref float tI = ref RealFft.At(twIm);
        for (int k = 0; k < half; k += 8)
        {
            Vector256<float> ar = Vector256.LoadUnsafe(ref xR, (nuint)k);
            Vector256<float> ai = Vector256.LoadUnsafe(ref xI, (nuint)k);
            Vector256<float> br = Vector256.LoadUnsafe(ref xR, (nuint)(k + half));
            Vector256<float> bi = Vector256.LoadUnsafe(ref xI, (nuint)(k + half));
            Vector256<float> wr = Vector256.LoadUnsafe(ref tR, (nuint)k);
            Vector256<float> wi = Vector256.LoadUnsafe(ref tI, (nuint)k);
            Vector256<float> sr = ar + br, si = ai + bi;
            Vector256<float> dr = ar - br, di = ai - bi;
            Vector256<float> er = Vector256.MultiplyAddEstimate(dr, wr, -(di * wi));
            Vector256<float> ei = Vector256.MultiplyAddEstimate(dr, wi, di * wr);
            Interleave(s, sr, er, out Vector256<float> r0, out Vector256<float> r1);
            Interleave(s, si, ei, out Vector256<float> i0, out Vector256<float> i1);
            r0.StoreUnsafe(ref yR, (nuint)(2 * k));
            r1.StoreUnsafe(ref yR, (nuint)((2 * k) + 8));
            i0.StoreUnsafe(ref yI, (nuint)(2 * k));
            i1.StoreUnsafe(ref yI, (nuint)((2 * k) + 8));
        }
    }

    private static void StageWide128(int s, int half, float[] xr, float[] xi, float[] yr, float[] yi, float[] baseRe, float[] baseIm)
    {
        ref float xR = ref RealFft.At(xr);
        ref float xI = ref RealFft.At(xi);
        ref float yR = ref RealFft.At(yr);
        ref float yI = ref RealFft.At(yi);
        for (int p = 0; p < half; p += s)
        {
            var wr = Vector128.Create(baseRe[p]);
            var wi = Vector128.Create(baseIm[p]);
            int o = 2 * p;
            for (int q = 0; q < s; q += 4)
            {
                nuint k = (nuint)(p + q);
                Vector128<float> ar = Vector128.LoadUnsafe(ref xR, k);
                Vector128<float> ai = Vector128.LoadUnsafe(ref xI, k);
                Vector128<float> br = Vector128.LoadUnsafe(ref xR, k + (nuint)half);
                Vector128<float> bi = Vector128.LoadUnsafe(ref xI, k + (nuint)half);
                (ar + br).StoreUnsafe(ref yR, (nuint)(o + q));
                (ai + bi).StoreUnsafe(ref yI, (nuint)(o + q));
                Vector128<float> dr = ar - br, di = ai - bi;
                Vector128.MultiplyAddEstimate(dr, wr, -(di * wi)).StoreUnsafe(ref yR, (nuint)(o + s + q));
                Vector128.MultiplyAddEstimate(dr, wi, di * wr).StoreUnsafe(ref yI, (nuint)(o + s + q));
            }
        }
    }

    private static void StageNarrow128(int s, int half, float[] xr, float[] xi, float[] yr, float[] yi, float[] twRe, float[] twIm)
    {
        ref float xR = ref RealFft.At(xr);
        ref float xI = ref RealFft.At(xi);
        ref float yR = ref RealFft.At(yr);
        ref float yI = ref RealFft.At(yi);
        ref float tR = ref RealFft.At(twRe);
        ref float tI = ref RealFft.At(twIm);
        for (int k = 0; k < half; k += 4)
        {
            Vector128<float> ar = Vector128.LoadUnsafe(ref xR, (nuint)k);
            Vector128<float> ai = Vector128.LoadUnsafe(ref xI, (nuint)k);
            Vector128<float> br = Vector128.LoadUnsafe(ref xR, (nuint)(k + half));
            Vector128<float> bi = Vector128.LoadUnsafe(ref xI, (nuint)(k + half));
            Vector128<float> wr = Vector128.LoadUnsafe(ref tR, (nuint)k);
            Vector128<float> wi = Vector128.LoadUnsafe(ref tI, (nuint)k);
            Vector128<float> sr = ar + br, si = ai + bi;
            Vector128<float> dr = ar - br, di = ai - bi;
            Vector128<float> er = Vector128.MultiplyAddEstimate(dr, wr, -(di * wi));
            Vector128<float> ei = Vector128.MultiplyAddEstimate(dr, wi, di * wr);
            Interleave(s, sr, er, out Vector128<float> r0, out Vector128<float> r1);
            Interleave(s, si, ei, out Vector128<float> i0, out Vector128<float> i1);
            r0.StoreUnsafe(ref yR, (nuint)(2 * k));
            r1.StoreUnsafe(ref yR, (nuint)((2 * k) + 4));
            i0.StoreUnsafe(ref yI, (nuint)(2 * k));
            i1.StoreUnsafe(ref yI, (nuint)((2 * k) + 4));
        }
    }

    /// <summary>
    /// The split step from the complex FFT Z of the even/odd samples to the real FFT X, k = 0..M:
    /// X[k] = E + (-i)·W_k·D with E = (Z[k] + conj Z[M-k]) / 2, D = (Z[k] - conj Z[M-k]) / 2,
    /// W_k = e^{-2πik/N} (cos = c[k], sin = s[k]).
    /// </summary>
    public static void SplitForward(float[] zr, float[] zi, float[] c, float[] s, Span<float> real, Span<float> imag)
    {
        int m = zr.Length;
        real[0] = zr[0] + zi[0];
        imag[0] = 0f;
        real[m] = zr[0] - zi[0];
        imag[m] = 0f;
        int k = 1;
        ref float zR = ref RealFft.At(zr);
        ref float zI = ref RealFft.At(zi);
        ref float cR = ref RealFft.At(c);
        ref float sR = ref RealFft.At(s);
        ref float oR = ref MemoryMarshal.GetReference(real);
        ref float oI = ref MemoryMarshal.GetReference(imag);
        var halfV256 = Vector256.Create(0.5f);
        var halfV128 = Vector128.Create(0.5f);
        if (Use256)
        {
            for (; k + 8 <= m; k += 8)
            {
                // Z[M-k] for the 8 lanes is the reversed vector that starts at M-k-7.
                Vector256<float> br = Reverse(Vector256.LoadUnsafe(ref zR, (nuint)(m - k - 7)));
                Vector256<float> bi = -Reverse(Vector256.LoadUnsafe(ref zI, (nuint)(m - k - 7)));
                Vector256<float> ar = Vector256.LoadUnsafe(ref zR, (nuint)k);
                Vector256<float> ai = Vector256.LoadUnsafe(ref zI, (nuint)k);
                Vector256<float> er = (ar + br) * halfV256, ei = (ai + bi) * halfV256;
                Vector256<float> dr = (ar - br) * halfV256, di = (ai - bi) * halfV256;
                Vector256<float> cv = Vector256.LoadUnsafe(ref cR, (nuint)k), sv = Vector256.LoadUnsafe(ref sR, (nuint)k);
                Vector256.MultiplyAddEstimate(di, cv, Vector256.MultiplyAddEstimate(dr, sv, er)).StoreUnsafe(ref oR, (nuint)k);
                Vector256.MultiplyAddEstimate(di, sv, ei - (dr * cv)).StoreUnsafe(ref oI, (nuint)k);
            }
        }
        else if (Use128)
        {
            for (; k + 4 <= m; k += 4)
            {
                Vector128<float> br = Reverse(Vector128.LoadUnsafe(ref zR, (nuint)(m - k - 3)));
                Vector128<float> bi = -Reverse(Vector128.LoadUnsafe(ref zI, (nuint)(m - k - 3)));
                Vector128<float> ar = Vector128.LoadUnsafe(ref zR, (nuint)k);
                Vector128<float> ai = Vector128.LoadUnsafe(ref zI, (nuint)k);
                Vector128<float> er = (ar + br) * halfV128, ei = (ai + bi) * halfV128;
                Vector128<float> dr = (ar - br) * halfV128, di = (ai - bi) * halfV128;
                Vector128<float> cv = Vector128.LoadUnsafe(ref cR, (nuint)k), sv = Vector128.LoadUnsafe(ref sR, (nuint)k);
                Vector128.MultiplyAddEstimate(di, cv, Vector128.MultiplyAddEstimate(dr, sv, er)).StoreUnsafe(ref oR, (nuint)k);
                Vector128.MultiplyAddEstimate(di, sv, ei - (dr * cv)).StoreUnsafe(ref oI, (nuint)k);
            }
        }

        for (; k < m; k++)
        {
            float ar = zr[k], ai = zi[k], br = zr[m - k], bi = -zi[m - k];
            float er = 0.5f * (ar + br), ei = 0.5f * (ai + bi);
            float dr = 0.5f * (ar - br), di = 0.5f * (ai - bi);
            real[k] = er + (di * c[k]) + (dr * s[k]);
            imag[k] = ei + (di * s[k]) - (dr * c[k]);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Reverse(Vector256<float> v) =>
        Vector256.Shuffle(v, Vector256.Create(7, 6, 5, 4, 3, 2, 1, 0));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Reverse(Vector128<float> v) =>
        Vector128.Shuffle(v, Vector128.Create(3, 2, 1, 0));

    /// <summary>Splits 16 interleaved floats into the 8 at even and the 8 at odd positions.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Unzip(Vector256<float> v0, Vector256<float> v1, out Vector256<float> even, out Vector256<float> odd)
    {
        // Per 128-bit lane: [v0 0 2 | v1 0 2]; then put the 64-bit halves in order.
        Vector256<float> e = Avx.Shuffle(v0, v1, 0b10_00_10_00);
        Vector256<float> o = Avx.Shuffle(v0, v1, 0b11_01_11_01);
        even = Avx2.Permute4x64(e.AsDouble(), 0b11_01_10_00).AsSingle();
        odd = Avx2.Permute4x64(o.AsDouble(), 0b11_01_10_00).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Unzip(Vector128<float> v0, Vector128<float> v1, out Vector128<float> even, out Vector128<float> odd)
    {
        if (AdvSimd.Arm64.IsSupported)
        {
            even = AdvSimd.Arm64.UnzipEven(v0, v1);
            odd = AdvSimd.Arm64.UnzipOdd(v0, v1);
        }
        else
        {
            even = Sse.Shuffle(v0, v1, 0b10_00_10_00);
            odd = Sse.Shuffle(v0, v1, 0b11_01_11_01);
        }
    }

    /// <summary>Interleaves blocks of <paramref name="s"/> lanes: [a0..a(s-1), b0..b(s-1), a(s).., b(s)..].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Interleave(int s, Vector256<float> a, Vector256<float> b, out Vector256<float> lo, out Vector256<float> hi)
    {
        Vector256<float> l, h;
        if (s == 1)
        {
            l = Avx.UnpackLow(a, b);
            h = Avx.UnpackHigh(a, b);
        }
        else if (s == 2)
        {
            l = Avx.UnpackLow(a.AsDouble(), b.AsDouble()).AsSingle();
            h = Avx.UnpackHigh(a.AsDouble(), b.AsDouble()).AsSingle();
        }
        else
        {
            l = a;
            h = b;
        }

        lo = Avx.Permute2x128(l, h, 0x20);
        hi = Avx.Permute2x128(l, h, 0x31);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Interleave(int s, Vector128<float> a, Vector128<float> b, out Vector128<float> lo, out Vector128<float> hi)
    {
        if (AdvSimd.Arm64.IsSupported)
        {
            if (s == 1)
            {
                lo = AdvSimd.Arm64.ZipLow(a, b);
                hi = AdvSimd.Arm64.ZipHigh(a, b);
            }
            else
            {
                lo = AdvSimd.Arm64.ZipLow(a.AsUInt64(), b.AsUInt64()).AsSingle();
                hi = AdvSimd.Arm64.ZipHigh(a.AsUInt64(), b.AsUInt64()).AsSingle();
            }
        }
        else if (s == 1)
        {
            lo = Sse.UnpackLow(a, b);
            hi = Sse.UnpackHigh(a, b);
        }
        else
        {
            lo = Sse2.UnpackLow(a.AsDouble(), b.AsDouble()).AsSingle();
            hi = Sse2.UnpackHigh(a.AsDouble(), b.AsDouble()).AsSingle();
        }
    }
}
