using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Signal.Models.Kernels;

internal static partial class Kernels
{
    /// <summary>
    /// The LSTM cell update after the gate product, fused (PyTorch conventions, gate blocks i, f, g, o of
    /// <paramref name="hidden"/> each in <paramref name="gates"/>): i = σ, f = σ, g = tanh, o = σ;
    /// c ← f·c + i·g (in place); h = o·tanh(c). <paramref name="gates"/> is scratch: it is overwritten.
    /// </summary>
    internal static void LstmGates(Span<float> gates, Span<float> c, Span<float> h, int hidden, KernelPath path)
    {
        if (gates.Length < 4 * hidden || c.Length < hidden || h.Length < hidden)
        {
            ThrowHelper.Argument(nameof(gates), $"LSTM gates need 4·{hidden} gate values and {hidden} cell and hidden values.");
        }

        ref float g = ref MemoryMarshal.GetReference(gates);
        ref float cr = ref MemoryMarshal.GetReference(c);
        ref float hr = ref MemoryMarshal.GetReference(h);
        // The widest path takes whole vectors, narrower ones the rest, and the scalar path what is left (at most 3).
        int j = 0;
        if (path == KernelPath.Vector512 && IsSupported(path))
        {
            j += LstmGates<Ops512, Vector512<float>>(ref g, ref cr, ref hr, hidden, hidden);
        }

        if (path >= KernelPath.Vector256 && IsSupported(KernelPath.Vector256))
        {
            j += LstmGates<Ops256, Vector256<float>>(ref Unsafe.Add(ref g, j), ref Unsafe.Add(ref cr, j), ref Unsafe.Add(ref hr, j), hidden, hidden - j);
        }

        if (path >= KernelPath.Vector128 && IsSupported(KernelPath.Vector128))
        {
            j += LstmGates<Ops128, Vector128<float>>(ref Unsafe.Add(ref g, j), ref Unsafe.Add(ref cr, j), ref Unsafe.Add(ref hr, j), hidden, hidden - j);
        }

        for (; j < hidden; j++)
        {
            float i = Sigmoid(gates[j]);
            float f = Sigmoid(gates[hidden + j]);
            float gg = Tanh(gates[(2 * hidden) + j]);
            float o = Sigmoid(gates[(3 * hidden) + j]);
            float cn = (f * c[j]) + (i * gg);
            c[j] = cn;
            h[j] = o * Tanh(cn);
        }
    }

    /// <summary>
    /// Vector part of the LSTM update. The gate buffer is scratch: pass 1 replaces every gate x by e⁻ˣ in one
    /// loop with a single inlined exponential (one loop with five overflows the JIT's inlining budget and runs
    /// at a third of the speed); pass 2 combines them, taking e⁻²ᵍ as (e⁻ᵍ)², with one more exponential for tanh(c).
    /// </summary>
    private static int LstmGates<TOps, TV>(ref float g, ref float c, ref float h, int hidden, int count)
        where TOps : IVectorOps<TV>
        where TV : struct
    {
        int vectorized = count - (count % TOps.Count);
        if (vectorized == 0)
        {
            return 0;
        }

        if (vectorized == hidden)
        {
            // The four gate blocks are contiguous: one pass over 4H values keeps many exponentials in flight.
            ExpScaled<TOps, TV>(ref g, 4 * hidden, -1f);
        }
        else
        {
            for (int block = 0; block < 4; block++)
            {
                ExpScaled<TOps, TV>(ref Unsafe.Add(ref g, block * hidden), vectorized, -1f);
            }
        }

        LstmCombine<TOps, TV>(ref g, ref c, ref h, hidden, vectorized);
        return vectorized;
    }

    /// <summary>x[i] ← e^(scale·x[i]) for the first <paramref name="count"/> values (a multiple of the vector width).</summary>
    private static void ExpScaled<TOps, TV>(ref float x, int count, float scale)
        where TOps : IVectorOps<TV>
        where TV : struct
    {
        TV s = TOps.Broadcast(scale);
        for (int j = 0; j < count; j += TOps.Count)
        {
            TOps.Store(ExpClamped<TOps, TV>(TOps.Multiply(s, TOps.Load(ref x, (nuint)j))), ref x, (nuint)j);
        }
    }

    private static void LstmCombine<TOps, TV>(ref float g, ref float c, ref float h, int hidden, int count)
        where TOps : IVectorOps<TV>
        where TV : struct
    {
        TV one = TOps.Broadcast(1f);
        nuint hs = (nuint)hidden;
        for (int j = 0; j < count; j += TOps.Count)
        {
            // σ(a)·tanh(b) = (1 − e⁻²ᵇ) / ((1 + e⁻ᵃ)(1 + e⁻²ᵇ)) and σ(o)·tanh(c) = (e²ᶜ − 1) / ((1 + e⁻ᵒ)(e²ᶜ + 1)): one reciprocal per product.
            nuint o = (nuint)j;
            TV ei = TOps.Load(ref g, o);
            TV ef = TOps.Load(ref g, hs + o);
            TV eg = TOps.Load(ref g, (2 * hs) + o);
            // e⁻²ᵍ: tanh(g) = (1 − e⁻²ᵍ)/(1 + e⁻²ᵍ), capped at e⁴⁰ (tanh is −1 in float long before): uncapped, e⁸⁰ times
            // a clamped e⁴⁰ from the input gate overflowed the product to ∞, whose refined reciprocal is NaN (0·∞), and
            // the cell state became NaN for a very negative input gate and cell candidate (pre-activations below −40).
            eg = TOps.Min(TOps.Multiply(eg, eg), TOps.Broadcast(2.3538527e17f));
            TV eo = TOps.Load(ref g, (3 * hs) + o);
            TV ig = TOps.Multiply(TOps.Subtract(one, eg), TOps.Reciprocal(TOps.Multiply(TOps.Add(one, ei), TOps.Add(eg, one))));
            TV cn = TOps.MultiplyAdd(TOps.Load(ref c, o), TOps.Reciprocal(TOps.Add(one, ef)), ig);
            TOps.Store(cn, ref c, o);
            TV ec = ExpClamped<TOps, TV>(TOps.Add(cn, cn));
            TOps.Store(TOps.Multiply(TOps.Subtract(ec, one), TOps.Reciprocal(TOps.Multiply(TOps.Add(one, eo), TOps.Add(ec, one)))), ref h, o);
        }
    }

    /// <summary>
    /// The GRU update, fused (PyTorch conventions, gate blocks r, z, n): <paramref name="inputGates"/> =
    /// W_ih·x + b_ih and <paramref name="hiddenGates"/> = W_hh·h + b_hh; r = σ(·), z = σ(·),
    /// n = tanh(x_n + r·h_n) (reset applied after the hidden product), h' = (1 − z)·n + z·h.
    /// <paramref name="previous"/> and <paramref name="next"/> may be the same span. <paramref name="inputGates"/> is
    /// scratch: it is overwritten.
    /// </summary>
    internal static void GruGates(Span<float> inputGates, ReadOnlySpan<float> hiddenGates, ReadOnlySpan<float> previous, Span<float> next, int hidden, KernelPath path)
    {
        if (inputGates.Length < 3 * hidden || hiddenGates.Length < 3 * hidden || previous.Length < hidden || next.Length < hidden)
        {
            ThrowHelper.Argument(nameof(inputGates), $"GRU gates need 3·{hidden} gate values from each product and {hidden} hidden values.");
        }

        ref float gi = ref MemoryMarshal.GetReference(inputGates);
        ref float gh = ref MemoryMarshal.GetReference(hiddenGates);
        ref float hp = ref MemoryMarshal.GetReference(previous);
        ref float hn = ref MemoryMarshal.GetReference(next);
        int j = 0;
        if (path == KernelPath.Vector512 && IsSupported(path))
        {
            j += GruGates<Ops512, Vector512<float>>(ref gi, ref gh, ref hp, ref hn, hidden, hidden);
        }

        if (path >= KernelPath.Vector256 && IsSupported(KernelPath.Vector256))
        {
            j += GruGates<Ops256, Vector256<float>>(ref Unsafe.Add(ref gi, j), ref Unsafe.Add(ref gh, j), ref Unsafe.Add(ref hp, j), ref Unsafe.Add(ref hn, j), hidden, hidden - j);
        }

        if (path >= KernelPath.Vector128 && IsSupported(KernelPath.Vector128))
        {
            j += GruGates<Ops128, Vector128<float>>(ref Unsafe.Add(ref gi, j), ref Unsafe.Add(ref gh, j), ref Unsafe.Add(ref hp, j), ref Unsafe.Add(ref hn, j), hidden, hidden - j);
        }

        for (; j < hidden; j++)
        {
            float r = Sigmoid(inputGates[j] + hiddenGates[j]);
            float z = Sigmoid(inputGates[hidden + j] + hiddenGates[hidden + j]);
            float nn = Tanh(inputGates[(2 * hidden) + j] + (r * hiddenGates[(2 * hidden) + j]));
            next[j] = nn + (z * (previous[j] - nn));
        }
    }

    /// <summary>Vector part of the GRU update; <paramref name="gi"/> is scratch (pass 1 stores r and e⁻ᶻ there).</summary>
    private static int GruGates<TOps, TV>(ref float gi, ref float gh, ref float hp, ref float hn, int hidden, int count)
        where TOps : IVectorOps<TV>
        where TV : struct
    {
        int vectorized = count - (count % TOps.Count);
        if (vectorized == 0)
        {
            return 0;
        }

        GruResetAndUpdate<TOps, TV>(ref gi, ref gh, hidden, vectorized);
        GruCombine<TOps, TV>(ref gi, ref gh, ref hp, ref hn, hidden, vectorized);
        return vectorized;
    }

    private static void GruResetAndUpdate<TOps, TV>(ref float gi, ref float gh, int hidden, int count)
        where TOps : IVectorOps<TV>
        where TV : struct
    {
        TV one = TOps.Broadcast(1f);
        TV zero = TOps.Broadcast(0f);
        nuint hs = (nuint)hidden;
        for (int j = 0; j < count; j += TOps.Count)
        {
            nuint o = (nuint)j;
            TV er = ExpClamped<TOps, TV>(TOps.Subtract(zero, TOps.Add(TOps.Load(ref gi, o), TOps.Load(ref gh, o))));
            TOps.Store(TOps.Reciprocal(TOps.Add(one, er)), ref gi, o);
        }

        for (int j = 0; j < count; j += TOps.Count)
        {
            nuint o = hs + (nuint)j;
            TOps.Store(ExpClamped<TOps, TV>(TOps.Subtract(zero, TOps.Add(TOps.Load(ref gi, o), TOps.Load(ref gh, o)))), ref gi, o);
        }
    }

    private static void GruCombine<TOps, TV>(ref float gi, ref float gh, ref float hp, ref float hn, int hidden, int count)
        where TOps : IVectorOps<TV>
        where TV : struct
    {
        TV one = TOps.Broadcast(1f);
        nuint hs = (nuint)hidden;
        for (int j = 0; j < count; j += TOps.Count)
        {
            // h' = (1 − z)·n + z·h with n = (E − 1)/(E + 1), E = e^(2·(x_n + r·h_n)), 1 − z = e⁻ᶻ/(1 + e⁻ᶻ):
            // h' = ((E − 1)·e⁻ᶻ + h·(E + 1)) / ((E + 1)(1 + e⁻ᶻ)), one division.
            nuint o = (nuint)j;
            TV r = TOps.Load(ref gi, o);
            TV ez = TOps.Load(ref gi, hs + o);
            TV a = TOps.MultiplyAdd(r, TOps.Load(ref gh, (2 * hs) + o), TOps.Load(ref gi, (2 * hs) + o));
            TV e = ExpClamped<TOps, TV>(TOps.Add(a, a));
            TV ep1 = TOps.Add(e, one);
            TV numerator = TOps.MultiplyAdd(TOps.Subtract(e, one), ez, TOps.Multiply(TOps.Load(ref hp, o), ep1));
            TOps.Store(TOps.Multiply(numerator, TOps.Reciprocal(TOps.Multiply(ep1, TOps.Add(one, ez)))), ref hn, o);
        }
    }

    /// <summary>The plain RNN update: h = tanh(pre) or max(0, pre).</summary>
    internal static void RnnActivation(ReadOnlySpan<float> preActivation, Span<float> h, bool relu, KernelPath path)
    {
        int hidden = h.Length;
        if (preActivation.Length < hidden)
        {
            ThrowHelper.Argument(nameof(preActivation), $"RNN update needs {hidden} pre-activation values.");
        }

        ref float g = ref MemoryMarshal.GetReference(preActivation);
        ref float hr = ref MemoryMarshal.GetReference(h);
        int j = path switch
        {
            KernelPath.Vector512 when IsSupported(path) => RnnActivation<Ops512, Vector512<float>>(ref g, ref hr, hidden, relu),
            KernelPath.Vector256 when IsSupported(path) => RnnActivation<Ops256, Vector256<float>>(ref g, ref hr, hidden, relu),
            KernelPath.Vector128 when IsSupported(path) => RnnActivation<Ops128, Vector128<float>>(ref g, ref hr, hidden, relu),
            _ => 0,
        };
        for (; j < hidden; j++)
        {
            h[j] = relu ? MathF.Max(0f, preActivation[j]) : Tanh(preActivation[j]);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int RnnActivation<TOps, TV>(ref float g, ref float h, int hidden, bool relu)
        where TOps : IVectorOps<TV>
        where TV : struct
    {
        int n = TOps.Count;
        int j = 0;
        for (; j + n <= hidden; j += n)
        {
            TV x = TOps.Load(ref g, (nuint)j);
            TOps.Store(relu ? TOps.Max(x, TOps.Broadcast(0f)) : Tanh<TOps, TV>(x), ref h, (nuint)j);
        }

        return j;
    }
}
