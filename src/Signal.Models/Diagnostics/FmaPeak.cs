using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Signal.Models.Diagnostics;

/// <summary>
/// Measures one core's fused multiply-add peak with a loop of independent vector FMAs (twelve
/// accumulators, enough to cover the FMA latency on two ports), so kernel speeds can be reported as a
/// fraction of what this very machine can do, measured in the same run.
/// </summary>
public static class FmaPeak
{
    /// <summary>FLOP/s of Vector256 FMAs on the calling thread (0 when Vector256 is not accelerated).</summary>
    /// <param name="duration">How long to measure (best of several rounds).</param>
    /// <returns>Floating-point operations per second (an FMA counts two).</returns>
    public static double Vector256FlopsPerSecond(TimeSpan duration) =>
        Vector256.IsHardwareAccelerated ? Measure(duration, Loop256, Vector256<float>.Count) : 0;

    /// <summary>FLOP/s of Vector512 FMAs on the calling thread (0 when AVX-512 is absent).</summary>
    /// <param name="duration">How long to measure.</param>
    /// <returns>Floating-point operations per second.</returns>
    public static double Vector512FlopsPerSecond(TimeSpan duration) =>
        Vector512.IsHardwareAccelerated || Avx512F.IsSupported ? Measure(duration, Loop512, Vector512<float>.Count) : 0;

    /// <summary>FLOP/s of Vector128 FMAs on the calling thread.</summary>
    /// <param name="duration">How long to measure.</param>
    /// <returns>Floating-point operations per second.</returns>
    public static double Vector128FlopsPerSecond(TimeSpan duration) =>
        Vector128.IsHardwareAccelerated ? Measure(duration, Loop128, Vector128<float>.Count) : 0;

    private static double Measure(TimeSpan duration, Func<long, float> loop, int lanes)
    {
        const long iterations = 2_000_000;
        loop(1000);
        double best = 0;
        var total = Stopwatch.StartNew();
        while (total.Elapsed < duration || best == 0)
        {
            long start = Stopwatch.GetTimestamp();
            float sink = loop(iterations);
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            GC.KeepAlive(sink);
            best = Math.Max(best, iterations * 12.0 * lanes * 2 / seconds);
        }

        return best;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static float Loop256(long iterations)
    {
        Vector256<float> m = Vector256.Create(0.999999f), a = Vector256.Create(1e-7f);
        Vector256<float> c0 = Vector256.Create(1f), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (long i = 0; i < iterations; i++)
        {
            c0 = Vector256.FusedMultiplyAdd(c0, m, a);
            c1 = Vector256.FusedMultiplyAdd(c1, m, a);
            c2 = Vector256.FusedMultiplyAdd(c2, m, a);
            c3 = Vector256.FusedMultiplyAdd(c3, m, a);
            c4 = Vector256.FusedMultiplyAdd(c4, m, a);
            c5 = Vector256.FusedMultiplyAdd(c5, m, a);
            c6 = Vector256.FusedMultiplyAdd(c6, m, a);
            c7 = Vector256.FusedMultiplyAdd(c7, m, a);
            c8 = Vector256.FusedMultiplyAdd(c8, m, a);
            c9 = Vector256.FusedMultiplyAdd(c9, m, a);
            c10 = Vector256.FusedMultiplyAdd(c10, m, a);
            c11 = Vector256.FusedMultiplyAdd(c11, m, a);
        }

        return Vector256.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static float Loop512(long iterations)
    {
        Vector512<float> m = Vector512.Create(0.999999f), a = Vector512.Create(1e-7f);
        Vector512<float> c0 = Vector512.Create(1f), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (long i = 0; i < iterations; i++)
        {
            c0 = Vector512.FusedMultiplyAdd(c0, m, a);
            c1 = Vector512.FusedMultiplyAdd(c1, m, a);
            c2 = Vector512.FusedMultiplyAdd(c2, m, a);
            c3 = Vector512.FusedMultiplyAdd(c3, m, a);
            c4 = Vector512.FusedMultiplyAdd(c4, m, a);
            c5 = Vector512.FusedMultiplyAdd(c5, m, a);
            c6 = Vector512.FusedMultiplyAdd(c6, m, a);
            c7 = Vector512.FusedMultiplyAdd(c7, m, a);
            c8 = Vector512.FusedMultiplyAdd(c8, m, a);
            c9 = Vector512.FusedMultiplyAdd(c9, m, a);
            c10 = Vector512.FusedMultiplyAdd(c10, m, a);
            c11 = Vector512.FusedMultiplyAdd(c11, m, a);
        }

        return Vector512.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Loop128(long iterations)
    {
        Vector128<float> m = Vector128.Create(0.999999f), a = Vector128.Create(1e-7f);
        Vector128<float> c0 = Vector128.Create(1f), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (long i = 0; i < iterations; i++)
        {
            c0 = Vector128.FusedMultiplyAdd(c0, m, a);
            c1 = Vector128.FusedMultiplyAdd(c1, m, a);
            c2 = Vector128.FusedMultiplyAdd(c2, m, a);
            c3 = Vector128.FusedMultiplyAdd(c3, m, a);
            c4 = Vector128.FusedMultiplyAdd(c4, m, a);
            c5 = Vector128.FusedMultiplyAdd(c5, m, a);
            c6 = Vector128.FusedMultiplyAdd(c6, m, a);
            c7 = Vector128.FusedMultiplyAdd(c7, m, a);
            c8 = Vector128.FusedMultiplyAdd(c8, m, a);
            c9 = Vector128.FusedMultiplyAdd(c9, m, a);
            c10 = Vector128.FusedMultiplyAdd(c10, m, a);
            c11 = Vector128.FusedMultiplyAdd(c11, m, a);
        }

        return Vector128.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
    }
}
