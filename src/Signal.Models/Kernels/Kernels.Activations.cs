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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV Sigmoid<TOps, TV>(TV x)
        where TOps : IVectorOps<TV>
        where TV : struct
    {
        TV one = TOps.Broadcast(1f);
        return TOps.Divide(one, TOps.Add(one, TOps.Exp(TOps.Subtract(TOps.Broadcast(0f), x))));
    }

    /// <summary>tanh(x) = 1 − 2 / (e²ˣ + 1): exact limits ±1 (e²ˣ overflows to ∞ or underflows to 0), absolute error below 1e-6.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV Tanh<TOps, TV>(TV x)
        where TOps : IVectorOps<TV>
        where TV : struct
    {
        TV one = TOps.Broadcast(1f);
        TV e = TOps.Exp(TOps.Add(x, x));
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
