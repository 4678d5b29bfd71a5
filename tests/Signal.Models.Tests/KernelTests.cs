using System.Runtime.Intrinsics;
using Signal.Models.Kernels;
using Xunit.Abstractions;
using K = Signal.Models.Kernels.Kernels;

namespace Signal.Models.Tests;

/// <summary>Every vector path against the scalar path (the specification), for every size 0..256.</summary>
public sealed class KernelTests(ITestOutputHelper output)
{
    /// <summary>Activations use vector exponentials on the vector paths; this is their stated bound.</summary>
    private const float ActivationTolerance = 2e-6f;

    public static TheoryData<string> VectorPaths => ["Vector128", "Vector256", "Vector512"];

    [Fact]
    public void Reports_the_instruction_sets_this_run_uses()
    {
        string line = $"Vector512={Vector512.IsHardwareAccelerated} Vector256={Vector256.IsHardwareAccelerated} " +
            $"Vector128={Vector128.IsHardwareAccelerated} models={K.Best} supported=[{string.Join(",", Enum.GetValues<KernelPath>().Where(K.IsSupported))}]";
        output.WriteLine(line);
        Console.WriteLine("[instruction sets] " + line);
        Assert.True(K.IsSupported(K.Best));
    }

    [SkippableTheory]
    [MemberData(nameof(VectorPaths))]
    public void Products_equal_the_scalar_path_for_every_output_count_and_odd_input_counts(string pathName)
    {
        KernelPath path = Enum.Parse<KernelPath>(pathName);
        Skip.IfNot(K.IsSupported(path), $"{path} is not supported here (the scalar run covers this machine).");

        var random = new Random(7);
        foreach (int rows in new[] { 1, 5, 6, 13 })
        {
            for (int n = 0; n <= 256; n += rows == 1 ? 1 : 17)
            {
                foreach (int k in new[] { 0, 1, 3, 40, 97 })
                {
                    CompareGemm(random, path, rows, n, k);
                }
            }
        }

        for (int k = 0; k <= 256; k++)
        {
            CompareGemm(random, path, 7, 33, k);
        }
    }

    [SkippableTheory]
    [MemberData(nameof(VectorPaths))]
    public void Fused_gates_equal_the_scalar_path_for_every_hidden_size(string pathName)
    {
        KernelPath path = Enum.Parse<KernelPath>(pathName);
        Skip.IfNot(K.IsSupported(path), $"{path} is not supported here (the scalar run covers this machine).");

        var random = new Random(11);
        for (int h = 0; h <= 256; h++)
        {
            float[] gates = Random(random, 4 * h, 6f);
            float[] c0 = Random(random, h, 3f);
            float[] cs = (float[])c0.Clone(), cv = (float[])c0.Clone();
            float[] hs = new float[h], hv = new float[h];
            K.LstmGates(gates, cs, hs, h, KernelPath.Scalar);
            K.LstmGates(gates, cv, hv, h, path);
            Assertions.Close(cs, cv, Math.Max(1, h), ActivationTolerance, $"LSTM c, H={h}");
            Assertions.Close(hs, hv, Math.Max(1, h), ActivationTolerance, $"LSTM h, H={h}");

            float[] gi = Random(random, 3 * h, 6f), gh = Random(random, 3 * h, 6f), prev = Random(random, h, 1f);
            K.GruGates(gi, gh, prev, hs, h, KernelPath.Scalar);
            K.GruGates(gi, gh, prev, hv, h, path);
            Assertions.Close(hs, hv, Math.Max(1, h), ActivationTolerance, $"GRU h, H={h}");

            foreach (bool relu in new[] { false, true })
            {
                K.RnnActivation(gi.AsSpan(0, h), hs, relu, KernelPath.Scalar);
                K.RnnActivation(gi.AsSpan(0, h), hv, relu, path);
                Assertions.Close(hs, hv, Math.Max(1, h), ActivationTolerance, $"RNN relu={relu}, H={h}");
            }
        }
    }

    [Fact]
    public void Activations_saturate_without_overflow_at_extreme_inputs()
    {
        float[] gates = [-1e30f, 1e30f, -100f, 100f, float.MaxValue, -float.MaxValue, 0f, 0f];
        foreach (KernelPath path in Enum.GetValues<KernelPath>().Where(K.IsSupported))
        {
            float[] c = [1f, -1f];
            float[] h = new float[2];
            K.LstmGates(gates, c, h, 2, path);
            Assert.All(c.Concat(h), v => Assert.True(float.IsFinite(v), $"{path}: {v}"));
        }
    }

    [Fact]
    public void Softmax_of_large_logits_is_finite_and_sums_to_one()
    {
        float[] p = new float[3];
        K.Softmax([1000f, 999f, -1000f], p);
        Assert.Equal(1.0, p.Sum(), 6);
        Assert.True(p[0] > p[1] && p[2] == 0f);
    }

    private void CompareGemm(Random random, KernelPath path, int rows, int n, int k)
    {
        float[] w = Random(random, n * k, 1f);
        float[] bias = Random(random, n, 1f);
        var packed = new PackedMatrix(w, n, k, bias, path);
        int lda = k + 3;
        float[] a = Random(random, rows * lda, 2f);
        int ldc = packed.PaddedRows + 1;
        float[] cs = new float[rows * ldc], cv = new float[rows * ldc];
        K.Gemm(a, lda, rows, packed, cs, ldc, KernelPath.Scalar);
        K.Gemm(a, lda, rows, packed, cv, ldc, path);
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < n; j++)
            {
                // Same order of fused multiply-adds on every path: equal up to FMA-less hardware rounding.
                double sumAbs = Math.Abs(bias[j]);
                for (int q = 0; q < k; q++)
                {
                    sumAbs += Math.Abs(a[(r * lda) + q] * w[(j * k) + q]);
                }

                double tolerance = 1e-6 * (sumAbs + 1);
                float s = cs[(r * ldc) + j], v = cv[(r * ldc) + j];
                Assert.True(Math.Abs(s - v) <= tolerance, $"{path} rows={rows} N={n} K={k}: C[{r},{j}] {v:R} vs scalar {s:R}");
            }

            for (int j = n; j < packed.PaddedRows; j++)
            {
                Assert.Equal(0f, cv[(r * ldc) + j]);
            }
        }

        // The scalar product itself against a plain dot product in double.
        for (int j = 0; j < n; j++)
        {
            double dot = bias[j];
            for (int q = 0; q < k; q++)
            {
                dot += (double)a[q] * w[(j * k) + q];
            }

            Assert.True(Math.Abs(dot - cs[j]) <= 1e-5 * (1 + Math.Abs(dot)), $"scalar N={n} K={k}: C[0,{j}] {cs[j]} vs {dot}");
        }
    }

    private static float[] Random(Random random, int n, float scale)
    {
        float[] x = new float[n];
        for (int i = 0; i < n; i++)
        {
            x[i] = (float)(((random.NextDouble() * 2) - 1) * scale);
        }

        return x;
    }
}
