using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Signal.Models.Kernels;

internal static partial class Kernels
{
    /// <summary>
    /// C = A·Wᵀ + bias for <paramref name="rows"/> rows: c[r·ldc + n] = bias[n] + Σₖ a[r·lda + k]·W[n, k]
    /// for n &lt; <see cref="PackedMatrix.PaddedRows"/> (padding columns come out as zero).
    /// One row is the single-stream matrix-vector product; many rows are the batched step.
    /// </summary>
    /// <remarks>
    /// Each output accumulates k = 0, 1, … in order with fused multiply-adds, starting from the bias, on
    /// every path. Vector paths: a 6-row × 2-vector register block streams one panel against six streams
    /// (12 accumulators); fewer than six rows use a 1-row × 4-panel block (8 accumulators) so a single
    /// stream still keeps both FMA ports busy. A packing made for another width runs on the scalar path.
    /// </remarks>
    internal static void Gemm(ReadOnlySpan<float> a, int lda, int rows, PackedMatrix w, Span<float> c, int ldc, KernelPath path)
    {
        if (rows <= 0 || w.PaddedRows == 0)
        {
            return;
        }

        int k = w.Columns;
        if (lda < k || a.Length < ((rows - 1) * lda) + k)
        {
            ThrowHelper.Argument(nameof(a), $"A must hold {rows} rows of {k} inputs at stride {lda} (has {a.Length} values).");
        }

        if (ldc < w.PaddedRows || c.Length < ((rows - 1) * ldc) + w.PaddedRows)
        {
            ThrowHelper.Argument(nameof(c), $"C must hold {rows} rows of {w.PaddedRows} outputs at stride {ldc} (has {c.Length} values).");
        }

        if (path != KernelPath.Scalar && (w.PanelWidth != PanelWidth(path) || !IsSupported(path)))
        {
            path = KernelPath.Scalar;
        }

        ref float ar = ref MemoryMarshal.GetReference(a);
        ref float cr = ref MemoryMarshal.GetReference(c);
        switch (path)
        {
            case KernelPath.Vector512:
                Gemm<Ops512, Vector512<float>>(ref ar, lda, rows, w, ref cr, ldc);
                break;
            case KernelPath.Vector256:
                Gemm<Ops256, Vector256<float>>(ref ar, lda, rows, w, ref cr, ldc);
                break;
            case KernelPath.Vector128:
                Gemm<Ops128, Vector128<float>>(ref ar, lda, rows, w, ref cr, ldc);
                break;
            default:
                GemmScalar(a, lda, rows, w, c, ldc);
                break;
        }
    }

    /// <summary>The specification: one output at a time, k in order, fused multiply-add.</summary>
    private static void GemmScalar(ReadOnlySpan<float> a, int lda, int rows, PackedMatrix w, Span<float> c, int ldc)
    {
        ReadOnlySpan<float> data = w.Data;
        int columns = w.Columns;
        int width = w.PanelWidth;
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<float> x = a.Slice(r * lda, columns);
            Span<float> y = c.Slice(r * ldc, w.PaddedRows);
            for (int p = 0; p < w.Panels; p++)
            {
                ReadOnlySpan<float> panel = data.Slice(p * columns * width, columns * width);
                for (int j = 0; j < width; j++)
                {
                    float acc = w.Bias[(p * width) + j];
                    for (int k = 0; k < columns; k++)
                    {
                        acc = Fma(x[k], panel[(k * width) + j], acc);
                    }

                    y[(p * width) + j] = acc;
                }
            }
        }
    }

    private static void Gemm<TOps, TV>(ref float a, int lda, int rows, PackedMatrix w, ref float c, int ldc)
        where TOps : IVectorOps<TV>
        where TV : struct
    {
        int columns = w.Columns;
        int width = 2 * TOps.Count;
        int panelSize = columns * width;
        ref float data = ref MemoryMarshal.GetReference(w.Data);
        ref float bias = ref MemoryMarshal.GetArrayDataReference(w.Bias);
        if (rows < 6)
        {
            for (int r = 0; r < rows; r++)
            {
                Row<TOps, TV>(ref Unsafe.Add(ref a, r * lda), columns, ref data, ref bias, w.Panels, ref Unsafe.Add(ref c, r * ldc));
            }

            return;
        }

        for (int p = 0; p < w.Panels; p++)
        {
            ref float panel = ref Unsafe.Add(ref data, p * panelSize);
            TV bias0 = TOps.Load(ref bias, (nuint)(p * width));
            TV bias1 = TOps.Load(ref bias, (nuint)((p * width) + TOps.Count));
            int r = 0;
            for (; r + 6 <= rows; r += 6)
            {
                Block6<TOps, TV>(ref Unsafe.Add(ref a, r * lda), lda, columns, ref panel, bias0, bias1, ref Unsafe.Add(ref c, (r * ldc) + (p * width)), ldc);
            }

            for (; r < rows; r++)
            {
                Block1<TOps, TV>(ref Unsafe.Add(ref a, r * lda), columns, ref panel, bias0, bias1, ref Unsafe.Add(ref c, (r * ldc) + (p * width)));
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block6<TOps, TV>(ref float a, int lda, int columns, ref float panel, TV bias0, TV bias1, ref float c, int ldc)
        where TOps : IVectorOps<TV>
        where TV : struct
    {
        int n = TOps.Count;
        int width = 2 * n;
        ref float a0 = ref a;
        ref float a1 = ref Unsafe.Add(ref a, lda);
        ref float a2 = ref Unsafe.Add(ref a, 2 * lda);
        ref float a3 = ref Unsafe.Add(ref a, 3 * lda);
        ref float a4 = ref Unsafe.Add(ref a, 4 * lda);
        ref float a5 = ref Unsafe.Add(ref a, 5 * lda);
        TV c00 = bias0, c01 = bias1, c10 = bias0, c11 = bias1, c20 = bias0, c21 = bias1;
        TV c30 = bias0, c31 = bias1, c40 = bias0, c41 = bias1, c50 = bias0, c51 = bias1;
        for (int k = 0; k < columns; k++)
        {
            TV b0 = TOps.Load(ref panel, (nuint)(k * width));
            TV b1 = TOps.Load(ref panel, (nuint)((k * width) + n));
            TV x = TOps.Broadcast(Unsafe.Add(ref a0, k));
            c00 = TOps.MultiplyAdd(x, b0, c00);
            c01 = TOps.MultiplyAdd(x, b1, c01);
            x = TOps.Broadcast(Unsafe.Add(ref a1, k));
            c10 = TOps.MultiplyAdd(x, b0, c10);
            c11 = TOps.MultiplyAdd(x, b1, c11);
            x = TOps.Broadcast(Unsafe.Add(ref a2, k));
            c20 = TOps.MultiplyAdd(x, b0, c20);
            c21 = TOps.MultiplyAdd(x, b1, c21);
            x = TOps.Broadcast(Unsafe.Add(ref a3, k));
            c30 = TOps.MultiplyAdd(x, b0, c30);
            c31 = TOps.MultiplyAdd(x, b1, c31);
            x = TOps.Broadcast(Unsafe.Add(ref a4, k));
            c40 = TOps.MultiplyAdd(x, b0, c40);
            c41 = TOps.MultiplyAdd(x, b1, c41);
            x = TOps.Broadcast(Unsafe.Add(ref a5, k));
            c50 = TOps.MultiplyAdd(x, b0, c50);
            c51 = TOps.MultiplyAdd(x, b1, c51);
        }

        nuint s = (nuint)ldc;
        nuint m = (nuint)n;
        TOps.Store(c00, ref c, 0);
        TOps.Store(c01, ref c, m);
        TOps.Store(c10, ref c, s);
        TOps.Store(c11, ref c, s + m);
        TOps.Store(c20, ref c, 2 * s);
        TOps.Store(c21, ref c, (2 * s) + m);
        TOps.Store(c30, ref c, 3 * s);
        TOps.Store(c31, ref c, (3 * s) + m);
        TOps.Store(c40, ref c, 4 * s);
        TOps.Store(c41, ref c, (4 * s) + m);
        TOps.Store(c50, ref c, 5 * s);
        TOps.Store(c51, ref c, (5 * s) + m);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block1<TOps, TV>(ref float a, int columns, ref float panel, TV bias0, TV bias1, ref float c)
        where TOps : IVectorOps<TV>
        where TV : struct
    {
        int n = TOps.Count;
        int width = 2 * n;
        TV c0 = bias0, c1 = bias1;
        for (int k = 0; k < columns; k++)
        {
            TV x = TOps.Broadcast(Unsafe.Add(ref a, k));
            c0 = TOps.MultiplyAdd(x, TOps.Load(ref panel, (nuint)(k * width)), c0);
            c1 = TOps.MultiplyAdd(x, TOps.Load(ref panel, (nuint)((k * width) + n)), c1);
        }

        TOps.Store(c0, ref c, 0);
        TOps.Store(c1, ref c, (nuint)n);
    }

    /// <summary>One row against every panel, four panels (eight accumulators) at a time.</summary>
    private static void Row<TOps, TV>(ref float a, int columns, ref float data, ref float bias, int panels, ref float c)
        where TOps : IVectorOps<TV>
        where TV : struct
    {
        int n = TOps.Count;
        int width = 2 * n;
        int panelSize = columns * width;
        int p = 0;
        for (; p + 4 <= panels; p += 4)
        {
            ref float w0 = ref Unsafe.Add(ref data, p * panelSize);
            ref float w1 = ref Unsafe.Add(ref w0, panelSize);
            ref float w2 = ref Unsafe.Add(ref w1, panelSize);
            ref float w3 = ref Unsafe.Add(ref w2, panelSize);
            nuint o = (nuint)(p * width);
            TV c0 = TOps.Load(ref bias, o);
            TV c1 = TOps.Load(ref bias, o + (nuint)n);
            TV c2 = TOps.Load(ref bias, o + (nuint)(2 * n));
            TV c3 = TOps.Load(ref bias, o + (nuint)(3 * n));
            TV c4 = TOps.Load(ref bias, o + (nuint)(4 * n));
            TV c5 = TOps.Load(ref bias, o + (nuint)(5 * n));
            TV c6 = TOps.Load(ref bias, o + (nuint)(6 * n));
            TV c7 = TOps.Load(ref bias, o + (nuint)(7 * n));
            for (int k = 0; k < columns; k++)
            {
                TV x = TOps.Broadcast(Unsafe.Add(ref a, k));
                nuint q = (nuint)(k * width);
                c0 = TOps.MultiplyAdd(x, TOps.Load(ref w0, q), c0);
                c1 = TOps.MultiplyAdd(x, TOps.Load(ref w0, q + (nuint)n), c1);
                c2 = TOps.MultiplyAdd(x, TOps.Load(ref w1, q), c2);
                c3 = TOps.MultiplyAdd(x, TOps.Load(ref w1, q + (nuint)n), c3);
                c4 = TOps.MultiplyAdd(x, TOps.Load(ref w2, q), c4);
                c5 = TOps.MultiplyAdd(x, TOps.Load(ref w2, q + (nuint)n), c5);
                c6 = TOps.MultiplyAdd(x, TOps.Load(ref w3, q), c6);
                c7 = TOps.MultiplyAdd(x, TOps.Load(ref w3, q + (nuint)n), c7);
            }

            TOps.Store(c0, ref c, o);
            TOps.Store(c1, ref c, o + (nuint)n);
            TOps.Store(c2, ref c, o + (nuint)(2 * n));
            TOps.Store(c3, ref c, o + (nuint)(3 * n));
            TOps.Store(c4, ref c, o + (nuint)(4 * n));
            TOps.Store(c5, ref c, o + (nuint)(5 * n));
            TOps.Store(c6, ref c, o + (nuint)(6 * n));
            TOps.Store(c7, ref c, o + (nuint)(7 * n));
        }

        for (; p < panels; p++)
        {
            nuint o = (nuint)(p * width);
            Block1<TOps, TV>(ref a, columns, ref Unsafe.Add(ref data, p * panelSize), TOps.Load(ref bias, o), TOps.Load(ref bias, o + (nuint)n), ref Unsafe.Add(ref c, (int)o));
        }
    }
}
