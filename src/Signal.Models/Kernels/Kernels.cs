using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Signal.Models.Kernels;

/// <summary>The instruction width a kernel runs at.</summary>
internal enum KernelPath
{
    /// <summary>Plain C#; the specification and the test oracle.</summary>
    Scalar,

    /// <summary>128-bit vectors: SSE on x64, NEON on ARM64 (the edge boards' production path).</summary>
    Vector128,

    /// <summary>256-bit vectors: AVX2 + FMA.</summary>
    Vector256,

    /// <summary>512-bit vectors: AVX-512.</summary>
    Vector512,
}

/// <summary>
/// Hand-written kernels for the recurrent step: packed matrix products (one row is the single-stream
/// matrix-vector product, many rows the batched step) and fused gate activations. Element-wise work that
/// <see cref="System.Numerics.Tensors.TensorPrimitives"/> already does well is left to it.
/// </summary>
/// <remarks>
/// Dispatch goes Vector512 → Vector256 → Vector128 → scalar. The runtime's own preference decides the
/// default (<c>Vector512.IsHardwareAccelerated</c> is false on many AVX-512 parts unless
/// <c>DOTNET_PreferredVectorBitWidth=512</c>); <c>SIGNAL_KERNEL=scalar|vector128|vector256|vector512</c>
/// overrides it for benchmarks. Products accumulate over k in the same order with fused multiply-adds on
/// every path, so where the hardware has FMA the vector paths equal the scalar path bit for bit; the
/// activations use vector exponentials and agree with the scalar path within 2e-6 absolute.
/// </remarks>
internal static partial class Kernels
{
    /// <summary>The widest path the runtime prefers on this machine.</summary>
    internal static KernelPath Best { get; } = ChooseBest();

    /// <summary>The path new weight packings and steps use; tests switch it to compare paths.</summary>
    internal static KernelPath Default { get; set; } = Best;

    /// <summary>True when <paramref name="path"/> can run on this machine.</summary>
    internal static bool IsSupported(KernelPath path) => path switch
    {
        KernelPath.Scalar => true,
        KernelPath.Vector128 => Vector128.IsHardwareAccelerated,
        KernelPath.Vector256 => Vector256.IsHardwareAccelerated,
        KernelPath.Vector512 => Vector512.IsHardwareAccelerated || Avx512F.IsSupported,
        _ => false,
    };

    /// <summary>Floats per vector of <paramref name="path"/> (1 for scalar).</summary>
    internal static int VectorWidth(KernelPath path) => path switch
    {
        KernelPath.Vector128 => 4,
        KernelPath.Vector256 => 8,
        KernelPath.Vector512 => 16,
        _ => 1,
    };

    /// <summary>Output columns per packed panel for <paramref name="path"/>: two vectors (8 for scalar).</summary>
    internal static int PanelWidth(KernelPath path) => path == KernelPath.Scalar ? 8 : 2 * VectorWidth(path);

    private static KernelPath ChooseBest()
    {
        string? forced = Environment.GetEnvironmentVariable("SIGNAL_KERNEL");
        if (!string.IsNullOrEmpty(forced) && Enum.TryParse(forced, ignoreCase: true, out KernelPath wanted) && IsSupported(wanted))
        {
            return wanted;
        }

        return Vector512.IsHardwareAccelerated ? KernelPath.Vector512
            : Vector256.IsHardwareAccelerated ? KernelPath.Vector256
            : Vector128.IsHardwareAccelerated ? KernelPath.Vector128
            : KernelPath.Scalar;
    }

    /// <summary>a·b + c, fused where the hardware can (the scalar specification always fuses).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Fma(float a, float b, float c) => MathF.FusedMultiplyAdd(a, b, c);
}
