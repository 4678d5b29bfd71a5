using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Signal.Models.Kernels;

internal static partial class Kernels
{
    /// <summary>
    /// The LSTM cell update after the gate product, fused (PyTorch conventions, gate blocks i, f, g, o of
    /// <paramref name="hidden"/> each in <paramref name="gates"/>): i = σ, f = σ, g = tanh, o = σ;
    /// c ← f·c + i·g (in place); h = o·tanh(c).
    /// </summary>
    internal static void LstmGates(ReadOnlySpan<float> gates, Span<float> c, Span<float> h, int hidden, KernelPath path)
    {
        if (gates.Length < 4 * hidden || c.Length < hidden || h.Length < hidden)
        {
            ThrowHelper.Argument(nameof(gates), $"LSTM gates need 4·{hidden} gate values and {hidden} cell and hidden values.");
        }

        ref float g = ref MemoryMarshal.GetReference(gates);
        ref float cr = ref MemoryMarshal.GetReference(c);
        ref float hr = ref MemoryMarshal.GetReference(h);
        int j = path switch
        {
            KernelPath.Vector512 when IsSupported(path) => LstmGates<Ops512, Vector512<float>>(ref g, ref cr, ref hr, hidden),
            KernelPath.Vector256 when IsSupported(path) => LstmGates<Ops256, Vector256<float>>(ref g, ref cr, ref hr, hidden),
            KernelPath.Vector128 when IsSupported(path) => LstmGates<Ops128, Vector128<float>>(ref g, ref cr, ref hr, hidden),
            _ => 0,
        };
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

    private static int LstmGates<TOps, TV>(ref float g, ref float c, ref float h, int hidden)
        where TOps : IVectorOps<TV>
        where TV : struct
    {
        int n = TOps.Count;
        int j = 0;
        nuint hs = (nuint)hidden;
        for (; j + n <= hidden; j += n)
        {
            nuint o = (nuint)j;
            TV i = Sigmoid<TOps, TV>(TOps.Load(ref g, o));
            TV f = Sigmoid<TOps, TV>(TOps.Load(ref g, hs + o));
            TV gg = Tanh<TOps, TV>(TOps.Load(ref g, (2 * hs) + o));
            TV og = Sigmoid<TOps, TV>(TOps.Load(ref g, (3 * hs) + o));
            TV cn = TOps.Add(TOps.Multiply(f, TOps.Load(ref c, o)), TOps.Multiply(i, gg));
            TOps.Store(cn, ref c, o);
            TOps.Store(TOps.Multiply(og, Tanh<TOps, TV>(cn)), ref h, o);
        }

        return j;
    }

    /// <summary>
    /// The GRU update, fused (PyTorch conventions, gate blocks r, z, n): <paramref name="inputGates"/> =
    /// W_ih·x + b_ih and <paramref name="hiddenGates"/> = W_hh·h + b_hh; r = σ(·), z = σ(·),
    /// n = tanh(x_n + r·h_n) (reset applied after the hidden product), h' = (1 − z)·n + z·h.
    /// <paramref name="previous"/> and <paramref name="next"/> may be the same span.
    /// </summary>
    internal static void GruGates(ReadOnlySpan<float> inputGates, ReadOnlySpan<float> hiddenGates, ReadOnlySpan<float> previous, Span<float> next, int hidden, KernelPath path)
    {
        if (inputGates.Length < 3 * hidden || hiddenGates.Length < 3 * hidden || previous.Length < hidden || next.Length < hidden)
        {
            ThrowHelper.Argument(nameof(inputGates), $"GRU gates need 3·{hidden} gate values from each product and {hidden} hidden values.");
        }

        ref float gi = ref MemoryMarshal.GetReference(inputGates);
        ref float gh = ref MemoryMarshal.GetReference(hiddenGates);
        ref float hp = ref MemoryMarshal.GetReference(previous);
        ref float hn = ref MemoryMarshal.GetReference(next);
        int j = path switch
        {
            KernelPath.Vector512 when IsSupported(path) => GruGates<Ops512, Vector512<float>>(ref gi, ref gh, ref hp, ref hn, hidden),
            KernelPath.Vector256 when IsSupported(path) => GruGates<Ops256, Vector256<float>>(ref gi, ref gh, ref hp, ref hn, hidden),
            KernelPath.Vector128 when IsSupported(path) => GruGates<Ops128, Vector128<float>>(ref gi, ref gh, ref hp, ref hn, hidden),
            _ => 0,
        };
        for (; j < hidden; j++)
        {
            float r = Sigmoid(inputGates[j] + hiddenGates[j]);
            float z = Sigmoid(inputGates[hidden + j] + hiddenGates[hidden + j]);
            float nn = Tanh(inputGates[(2 * hidden) + j] + (r * hiddenGates[(2 * hidden) + j]));
            next[j] = nn + (z * (previous[j] - nn));
        }
    }

    private static int GruGates<TOps, TV>(ref float gi, ref float gh, ref float hp, ref float hn, int hidden)
        where TOps : IVectorOps<TV>
        where TV : struct
    {
        int n = TOps.Count;
        int j = 0;
        nuint hs = (nuint)hidden;
        for (; j + n <= hidden; j += n)
        {
            nuint o = (nuint)j;
            TV r = Sigmoid<TOps, TV>(TOps.Add(TOps.Load(ref gi, o), TOps.Load(ref gh, o)));
            TV z = Sigmoid<TOps, TV>(TOps.Add(TOps.Load(ref gi, hs + o), TOps.Load(ref gh, hs + o)));
            TV nn = Tanh<TOps, TV>(TOps.Add(TOps.Load(ref gi, (2 * hs) + o), TOps.Multiply(r, TOps.Load(ref gh, (2 * hs) + o))));
            TOps.Store(TOps.Add(nn, TOps.Multiply(z, TOps.Subtract(TOps.Load(ref hp, o), nn))), ref hn, o);
        }

        return j;
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
