using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Signal.Features.Spectra;

/// <summary>Magnitude, power and log-power spectra from split-complex FFT bins.</summary>
public static class Spectrum
{
    /// <summary>The default floor of <see cref="LogPower"/>: 1e-10, librosa's <c>amin</c> (-100 dB).</summary>
    public const float DefaultFloor = 1e-10f;

    /// <summary>power[k] = real[k]² + imag[k]².</summary>
    /// <param name="real">Real parts.</param>
    /// <param name="imag">Imaginary parts, as long as <paramref name="real"/>.</param>
    /// <param name="power">Receives as many values as <paramref name="real"/> holds.</param>
    public static void Power(ReadOnlySpan<float> real, ReadOnlySpan<float> imag, Span<float> power)
    {
        CheckLengths(real, imag, power);
        int n = real.Length;
        int k = 0;
        ref float r = ref MemoryMarshal.GetReference(real);
        ref float i = ref MemoryMarshal.GetReference(imag);
        ref float p = ref MemoryMarshal.GetReference(power);
        if (Vector256.IsHardwareAccelerated)
        {
            for (; k + 8 <= n; k += 8)
            {
                Vector256<float> a = Vector256.LoadUnsafe(ref r, (nuint)k), b = Vector256.LoadUnsafe(ref i, (nuint)k);
                Vector256.MultiplyAddEstimate(a, a, b * b).StoreUnsafe(ref p, (nuint)k);
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            for (; k + 4 <= n; k += 4)
            {
                Vector128<float> a = Vector128.LoadUnsafe(ref r, (nuint)k), b = Vector128.LoadUnsafe(ref i, (nuint)k);
                Vector128.MultiplyAddEstimate(a, a, b * b).StoreUnsafe(ref p, (nuint)k);
            }
        }

        for (; k < n; k++)
        {
            power[k] = (real[k] * real[k]) + (imag[k] * imag[k]);
        }
    }

    /// <summary>magnitude[k] = sqrt(real[k]² + imag[k]²).</summary>
    /// <param name="real">Real parts.</param>
    /// <param name="imag">Imaginary parts, as long as <paramref name="real"/>.</param>
    /// <param name="magnitude">Receives as many values as <paramref name="real"/> holds.</param>
    public static void Magnitude(ReadOnlySpan<float> real, ReadOnlySpan<float> imag, Span<float> magnitude)
    {
        Power(real, imag, magnitude);
        TensorPrimitives.Sqrt(magnitude[..real.Length], magnitude);
    }

    /// <summary>logPower[k] = 10·log10(max(power[k], floor)) in decibels; finite for silent frames.</summary>
    /// <param name="power">Power values.</param>
    /// <param name="logPower">Receives as many values as <paramref name="power"/> holds (may be the same span).</param>
    /// <param name="floor">The smallest power considered, greater than zero; <see cref="DefaultFloor"/> by default.</param>
    public static void LogPower(ReadOnlySpan<float> power, Span<float> logPower, float floor = DefaultFloor)
    {
        if (!(floor > 0f) || !float.IsFinite(floor))
        {
            ThrowHelper.OutOfRange(nameof(floor), floor, "The log floor must be a finite number greater than zero.");
        }

        if (logPower.Length < power.Length)
        {
            ThrowHelper.ArgumentTooShort(nameof(logPower), power.Length, logPower.Length);
        }

        Span<float> dst = logPower[..power.Length];
        TensorPrimitives.Max(power, floor, dst);
        TensorPrimitives.Log10(dst, dst);
        TensorPrimitives.Multiply(dst, 10f, dst);
    }

    private static void CheckLengths(ReadOnlySpan<float> real, ReadOnlySpan<float> imag, Span<float> destination)
    {
        if (imag.Length != real.Length)
        {
            ThrowHelper.ArgumentLength(nameof(imag), real.Length, imag.Length);
        }

        if (destination.Length < real.Length)
        {
            ThrowHelper.ArgumentTooShort(nameof(destination), real.Length, destination.Length);
        }
    }
}
