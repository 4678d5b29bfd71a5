namespace Signal.Models.Diagnostics;

/// <summary>Which SIMD kernels this process uses (for <c>signal-edge info</c> and benchmark reports).</summary>
public static class KernelInfo
{
    /// <summary>
    /// The kernel path recurrent steps use: <c>Vector512</c>, <c>Vector256</c>, <c>Vector128</c> (SSE on x64, NEON
    /// on ARM64) or <c>Scalar</c>; the runtime's preference, or <c>SIGNAL_KERNEL</c> when set and supported.
    /// </summary>
    public static string Path => Kernels.Kernels.Best.ToString();

    /// <summary>Floats per vector of <see cref="Path"/> (1 for scalar).</summary>
    public static int Width => Kernels.Kernels.VectorWidth(Kernels.Kernels.Best);
}
