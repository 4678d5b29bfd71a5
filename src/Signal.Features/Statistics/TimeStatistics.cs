using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Signal.Features.Statistics;

/// <summary>Time-domain statistics of one frame, computed on the raw (un-windowed) samples.</summary>
/// <remarks>
/// Conventions (and the scipy/numpy functions the tests compare with): <c>Std</c> is the
/// population standard deviation (<c>numpy.std</c>, ddof 0); <c>Skewness</c> and
/// <c>Kurtosis</c> are the biased moment estimators of <c>scipy.stats.skew</c> and
/// <c>scipy.stats.kurtosis</c> (Fisher, excess: a normal distribution gives 0); a constant
/// frame gives 0 for both rather than NaN. <c>CrestFactor</c> is max|x| / RMS (0 for a silent
/// frame). <c>ZeroCrossingRate</c> is the fraction of adjacent sample pairs whose signs differ,
/// zero counting as positive (librosa's <c>zero_pos=True</c>).
/// </remarks>
public readonly record struct TimeStatistics(
    float Mean,
    float Rms,
    float Std,
    float PeakToPeak,
    float CrestFactor,
    float Skewness,
    float Kurtosis,
    float ZeroCrossingRate)
{
    /// <summary>Computes every statistic of <paramref name="frame"/>; allocates nothing.</summary>
    /// <param name="frame">The samples; an empty frame gives all zeros.</param>
    /// <returns>The statistics.</returns>
    public static TimeStatistics Compute(ReadOnlySpan<float> frame)
    {
        int n = frame.Length;
        if (n == 0)
        {
            return default;
        }

        float mean = TensorPrimitives.Sum(frame) / n;
        float rms = MathF.Sqrt(TensorPrimitives.SumOfSquares(frame) / n);
        float min = TensorPrimitives.Min(frame), max = TensorPrimitives.Max(frame);
        float peak = MathF.Max(MathF.Abs(min), MathF.Abs(max));
        CentralMoments(frame, mean, out double m2, out double m3, out double m4);
        double std = Math.Sqrt(m2);
        // A frame whose spread is at float rounding level is constant for our purposes.
        bool constant = !(std > 1e-6 * Math.Max(1.0, Math.Abs(mean)));
        float skew = constant ? 0f : (float)(m3 / (m2 * std));
        float kurt = constant ? 0f : (float)((m4 / (m2 * m2)) - 3.0);
        float crest = rms > 0 ? peak / rms : 0f;
        float zcr = n > 1 ? (float)SignChanges(frame) / (n - 1) : 0f;
        return new TimeStatistics(mean, rms, (float)std, max - min, crest, skew, kurt, zcr);
    }

    private static void CentralMoments(ReadOnlySpan<float> x, float mean, out double m2, out double m3, out double m4)
    {
        int n = x.Length, i = 0;
        double s2 = 0, s3 = 0, s4 = 0;
        ref float r = ref MemoryMarshal.GetReference(x);
        if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var mv = Vector256.Create(mean);
            Vector256<float> a2 = default, a3 = default, a4 = default;
            for (; i + 8 <= n; i += 8)
            {
                Vector256<float> d = Vector256.LoadUnsafe(ref r, (nuint)i) - mv;
                Vector256<float> d2 = d * d;
                a2 += d2;
                a3 = Vector256.MultiplyAddEstimate(d2, d, a3);
                a4 = Vector256.MultiplyAddEstimate(d2, d2, a4);
            }

            s2 = Vector256.Sum(a2);
            s3 = Vector256.Sum(a3);
            s4 = Vector256.Sum(a4);
        }
        else if (Vector128.IsHardwareAccelerated && n >= 4)
        {
            var mv = Vector128.Create(mean);
            Vector128<float> a2 = default, a3 = default, a4 = default;
            for (; i + 4 <= n; i += 4)
            {
                Vector128<float> d = Vector128.LoadUnsafe(ref r, (nuint)i) - mv;
                Vector128<float> d2 = d * d;
                a2 += d2;
                a3 = Vector128.MultiplyAddEstimate(d2, d, a3);
                a4 = Vector128.MultiplyAddEstimate(d2, d2, a4);
            }

            s2 = Vector128.Sum(a2);
            s3 = Vector128.Sum(a3);
            s4 = Vector128.Sum(a4);
        }

        for (; i < n; i++)
        {
            double d = x[i] - mean;
            double d2 = d * d;
            s2 += d2;
            s3 += d2 * d;
            s4 += d2 * d2;
        }

        m2 = s2 / n;
        m3 = s3 / n;
        m4 = s4 / n;
    }

    private static int SignChanges(ReadOnlySpan<float> x)
    {
        int n = x.Length, i = 0, count = 0;
        ref float r = ref MemoryMarshal.GetReference(x);
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 9 <= n; i += 8)
            {
                Vector256<float> a = Vector256.GreaterThanOrEqual(Vector256.LoadUnsafe(ref r, (nuint)i), Vector256<float>.Zero);
                Vector256<float> b = Vector256.GreaterThanOrEqual(Vector256.LoadUnsafe(ref r, (nuint)(i + 1)), Vector256<float>.Zero);
                count += BitOperations.PopCount(Vector256.ExtractMostSignificantBits(a ^ b));
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            for (; i + 5 <= n; i += 4)
            {
                Vector128<float> a = Vector128.GreaterThanOrEqual(Vector128.LoadUnsafe(ref r, (nuint)i), Vector128<float>.Zero);
                Vector128<float> b = Vector128.GreaterThanOrEqual(Vector128.LoadUnsafe(ref r, (nuint)(i + 1)), Vector128<float>.Zero);
                count += BitOperations.PopCount(Vector128.ExtractMostSignificantBits(a ^ b));
            }
        }

        for (; i + 1 < n; i++)
        {
            if ((x[i] >= 0) != (x[i + 1] >= 0))
            {
                count++;
            }
        }

        return count;
    }
}
