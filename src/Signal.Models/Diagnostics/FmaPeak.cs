using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

using Signal.Models.Kernels;

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

    /// <summary>Vector256 loop: 12 × 8 lanes × 2 FLOPs per iteration.</summary>
    internal static float Loop256(long iterations) => Loop<Ops256, Vector256<float>>(iterations);

    /// <summary>Vector512 loop: 12 × 16 lanes × 2 FLOPs per iteration.</summary>
    internal static float Loop512(long iterations) => Loop<Ops512, Vector512<float>>(iterations);

    private static float Loop128(long iterations) => Loop<Ops128, Vector128<float>>(iterations);

    /// <summary>Twelve independent multiply-add chains, with the same multiply-add the kernels use.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Loop<TOps, TV>(long iterations)
        where TOps : IVectorOps<TV>
        where TV : struct
    {
        TV m = TOps.Broadcast(0.999999f), a = TOps.Broadcast(1e-7f);
        TV c0 = TOps.Broadcast(1f), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (long i = 0; i < iterations; i++)
        {
            c0 = TOps.MultiplyAdd(c0, m, a);
            c1 = TOps.MultiplyAdd(c1, m, a);
            c2 = TOps.MultiplyAdd(c2, m, a);
            c3 = TOps.MultiplyAdd(c3, m, a);
            c4 = TOps.MultiplyAdd(c4, m, a);
            c5 = TOps.MultiplyAdd(c5, m, a);
            c6 = TOps.MultiplyAdd(c6, m, a);
            c7 = TOps.MultiplyAdd(c7, m, a);
            c8 = TOps.MultiplyAdd(c8, m, a);
            c9 = TOps.MultiplyAdd(c9, m, a);
            c10 = TOps.MultiplyAdd(c10, m, a);
            c11 = TOps.MultiplyAdd(c11, m, a);
        }

        TV sum = TOps.Add(TOps.Add(TOps.Add(c0, c1), TOps.Add(c2, c3)), TOps.Add(TOps.Add(c4, c5), TOps.Add(c6, c7)));
        return TOps.Sum(TOps.Add(sum, TOps.Add(TOps.Add(c8, c9), TOps.Add(c10, c11))));
    }
}
