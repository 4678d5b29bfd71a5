using System.Runtime.CompilerServices;

namespace Signal.Models.Kernels;

internal static partial class Kernels
{
    /// <summary>σ(x) = 1 / (1 + e⁻ˣ), the scalar specification.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    /// <summary>tanh(x), the scalar specification.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Tanh(float x) => MathF.Tanh(x);

    /// <summary>
    /// eˣ for x clamped to [−40, 40] (Cephes' expf scheme: x = n·ln2 + r, |r| ≤ ln2/2, degree-6 polynomial for eʳ,
    /// 2ⁿ built in the exponent bits), relative error about 2 ulp. The clamp keeps products of two such
    /// exponentials finite, which the fused gates rely on; at ±40 sigmoid and tanh are already 0 or ±1 in float.
    /// The runtime's Vector.Exp is accurate to the last bit but computes in double, several times slower.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV ExpClamped<TOps, TV>(TV x)
        where TOps : IVectorOps<TV>
        where TV : struct
    {
        x = TOps.Max(TOps.Min(x, TOps.Broadcast(40f)), TOps.Broadcast(-40f));
        // t = x·log₂e + 1.5·2²³ rounds x·log₂e to the nearest integer n and leaves n in t's low mantissa bits.
        TV t = TOps.MultiplyAdd(x, TOps.Broadcast(1.44269504088896341f), TOps.Broadcast(12582912f));
        TV n = TOps.Subtract(t, TOps.Broadcast(12582912f));
        TV r = TOps.MultiplyAdd(n, TOps.Broadcast(-0.693359375f), x);
        r = TOps.MultiplyAdd(n, TOps.Broadcast(2.12194440e-4f), r);
        TV p = TOps.Broadcast(1.9875691500E-4f);
        p = TOps.MultiplyAdd(p, r, TOps.Broadcast(1.3981999507E-3f));
        p = TOps.MultiplyAdd(p, r, TOps.Broadcast(8.3334519073E-3f));
        p = TOps.MultiplyAdd(p, r, TOps.Broadcast(4.1665795894E-2f));
        p = TOps.MultiplyAdd(p, r, TOps.Broadcast(1.6666665459E-1f));
        p = TOps.MultiplyAdd(p, r, TOps.Broadcast(5.0000001201E-1f));
        p = TOps.MultiplyAdd(p, TOps.Multiply(r, r), TOps.Add(r, TOps.Broadcast(1f)));
        return TOps.Multiply(p, TOps.Pow2FromRounded(t));
    }

    /// <summary>tanh(x) = 1 − 2 / (e²ˣ + 1): exact limits ±1 (e²ˣ overflows to ∞ or underflows to 0), absolute error below 1e-6.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV Tanh<TOps, TV>(TV x)
        where TOps : IVectorOps<TV>
        where TV : struct
    {
        TV one = TOps.Broadcast(1f);
        TV e = ExpClamped<TOps, TV>(TOps.Add(x, x));
        return TOps.Subtract(one, TOps.Divide(TOps.Broadcast(2f), TOps.Add(e, one)));
    }

    /// <summary>
    /// Softmax of <paramref name="logits"/> into <paramref name="probabilities"/> (may be the same span):
    /// exp(x − max) / Σ exp(x − max), so large logits do not overflow.
    /// </summary>
    internal static void Softmax(ReadOnlySpan<float> logits, Span<float> probabilities)
    {
        if (logits.IsEmpty)
        {
            return;
        }

        if (logits.Length <= 16)
        {
            // A handful of classes: a plain loop beats five TensorPrimitives calls' fixed costs.
            float top = logits[0];
            for (int i = 1; i < logits.Length; i++)
            {
                top = MathF.Max(top, logits[i]);
            }

            float total = 0;
            for (int i = 0; i < logits.Length; i++)
            {
                float e = MathF.Exp(logits[i] - top);
                probabilities[i] = e;
                total += e;
            }

            float inverse = 1f / total;
            for (int i = 0; i < logits.Length; i++)
            {
                probabilities[i] *= inverse;
            }

            return;
        }

        float max = System.Numerics.Tensors.TensorPrimitives.Max(logits);
        System.Numerics.Tensors.TensorPrimitives.Subtract(logits, max, probabilities);
        System.Numerics.Tensors.TensorPrimitives.Exp(probabilities[..logits.Length], probabilities);
        float sum = System.Numerics.Tensors.TensorPrimitives.Sum(probabilities[..logits.Length]);
        System.Numerics.Tensors.TensorPrimitives.Divide(probabilities[..logits.Length], sum, probabilities);
    }

    /// <summary>
    /// Layer normalisation: y = (x − mean) / √(var + ε) · γ + β, with the biased variance (PyTorch's
    /// <c>nn.LayerNorm</c>). Sums in double so the result does not depend on vector width.
    /// </summary>
    internal static void LayerNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, float epsilon, Span<float> y)
    {
        int n = x.Length;
        if (n == 0)
        {
            return;
        }

        double sum = 0;
        for (int i = 0; i < n; i++)
        {
            sum += x[i];
        }

        double mean = sum / n;
        double squares = 0;
        for (int i = 0; i < n; i++)
        {
            double d = x[i] - mean;
            squares += d * d;
        }

        float scale = (float)(1.0 / Math.Sqrt((squares / n) + epsilon));
        float m = (float)mean;
        for (int i = 0; i < n; i++)
        {
            y[i] = ((x[i] - m) * scale * gamma[i]) + beta[i];
        }
    }
}
