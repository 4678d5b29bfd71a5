using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Signal.Models.Kernels;

internal static partial class Kernels
{
    /// <summary>
    /// C = A·Wᵀ + bias for a narrow W (few outputs, such as a classifier head of a handful of classes), one dot
    /// product per output, vectorised along k: c[r·ldc + n] = bias[n] + Σₖ a[r·lda + k]·w[n·k + k].
    /// </summary>
    /// <remarks>
    /// A packed product would vectorise along the outputs and waste most lanes on a four-class head. The
    /// vector paths sum k in four interleaved vector accumulators, then across lanes, so they differ from
    /// the scalar path (k in order) by rounding, within 1e-6 of Σ|a·w|; every path gives the same result for
    /// one row as for many, so a batched step still equals stepping each stream alone.
    /// </remarks>
    internal static void DotRows(ReadOnlySpan<float> a, int lda, int rows, ReadOnlySpan<float> w, int outputs, int columns, ReadOnlySpan<float> bias, Span<float> c, int ldc, KernelPath path)
    {
        if (rows <= 0 || outputs == 0)
        {
            return;
        }

        if (w.Length < outputs * columns || bias.Length < outputs || a.Length < ((rows - 1) * lda) + columns || c.Length < ((rows - 1) * ldc) + outputs)
        {
            ThrowHelper.Argument(nameof(a), $"DotRows needs W of {outputs}×{columns}, {outputs} biases, {rows} rows of A and C.");
        }

        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<float> x = a.Slice(r * lda, columns);
            for (int n = 0; n < outputs; n++)
            {
                ReadOnlySpan<float> wn = w.Slice(n * columns, columns);
                c[(r * ldc) + n] = bias[n] + path switch
                {
                    KernelPath.Vector512 when IsSupported(path) => Dot<Ops512, Vector512<float>>(x, wn),
                    KernelPath.Vector256 when IsSupported(path) => Dot<Ops256, Vector256<float>>(x, wn),
                    KernelPath.Vector128 when IsSupported(path) => Dot<Ops128, Vector128<float>>(x, wn),
                    _ => DotScalar(x, wn),
                };
            }
        }
    }

    private static float DotScalar(ReadOnlySpan<float> x, ReadOnlySpan<float> w)
    {
        float sum = 0;
        for (int k = 0; k < x.Length; k++)
        {
            sum = Fma(x[k], w[k], sum);
        }

        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot<TOps, TV>(ReadOnlySpan<float> x, ReadOnlySpan<float> w)
        where TOps : IVectorOps<TV>
        where TV : struct
    {
        int n = TOps.Count;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float wr = ref MemoryMarshal.GetReference(w);
        TV s0 = TOps.Broadcast(0f), s1 = s0, s2 = s0, s3 = s0;
        int k = 0;
        for (; k + (4 * n) <= x.Length; k += 4 * n)
        {
            nuint o = (nuint)k;
            s0 = TOps.MultiplyAdd(TOps.Load(ref xr, o), TOps.Load(ref wr, o), s0);
            s1 = TOps.MultiplyAdd(TOps.Load(ref xr, o + (nuint)n), TOps.Load(ref wr, o + (nuint)n), s1);
            s2 = TOps.MultiplyAdd(TOps.Load(ref xr, o + (nuint)(2 * n)), TOps.Load(ref wr, o + (nuint)(2 * n)), s2);
            s3 = TOps.MultiplyAdd(TOps.Load(ref xr, o + (nuint)(3 * n)), TOps.Load(ref wr, o + (nuint)(3 * n)), s3);
        }

        for (; k + n <= x.Length; k += n)
        {
            s0 = TOps.MultiplyAdd(TOps.Load(ref xr, (nuint)k), TOps.Load(ref wr, (nuint)k), s0);
        }

        float sum = TOps.Sum(TOps.Add(TOps.Add(s0, s1), TOps.Add(s2, s3)));
        for (; k < x.Length; k++)
        {
            sum = Fma(x[k], w[k], sum);
        }

        return sum;
    }
}
