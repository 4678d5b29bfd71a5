using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace Signal.Models.Kernels;

/// <summary>
/// The few vector operations the kernels need, as static abstract members so each kernel is written once
/// and the JIT specialises it per width (struct type arguments are compiled separately and inlined).
/// </summary>
internal interface IVectorOps<TV>
    where TV : struct
{
    static abstract int Count { get; }

    static abstract TV Load(ref float source, nuint offset);

    static abstract void Store(TV value, ref float destination, nuint offset);

    static abstract TV Broadcast(float value);

    /// <summary>a·b + c, fused where the hardware has FMA (all our x64 AVX2 and ARM64 targets do).</summary>
    static abstract TV MultiplyAdd(TV a, TV b, TV c);

    static abstract TV Add(TV a, TV b);

    static abstract TV Subtract(TV a, TV b);

    static abstract TV Multiply(TV a, TV b);

    static abstract TV Divide(TV a, TV b);

    /// <summary>Maximum with the hardware's NaN and signed-zero rules (inputs here are finite).</summary>
    static abstract TV Max(TV a, TV b);

    /// <summary>Round to nearest integer (ties to even).</summary>
    static abstract TV Round(TV a);

    /// <summary>2ⁿ from t = n + 1.5·2²³ (n integral, |n| ≤ 127): the exponent bits are (bits(t) + 127) &lt;&lt; 23.</summary>
    static abstract TV Pow2FromRounded(TV t);

    static abstract TV Min(TV a, TV b);

    /// <summary>Sum of the lanes.</summary>
    static abstract float Sum(TV a);

    /// <summary>1/a to about 2⁻²² relative: a hardware estimate refined by one Newton step where the ISA has one, else a division.</summary>
    static abstract TV Reciprocal(TV a);
}

internal readonly struct Ops128 : IVectorOps<Vector128<float>>
{
    public static int Count => Vector128<float>.Count;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Load(ref float source, nuint offset) => Vector128.LoadUnsafe(ref source, offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector128<float> value, ref float destination, nuint offset) => value.StoreUnsafe(ref destination, offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Broadcast(float value) => Vector128.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> MultiplyAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.MultiplyAddEstimate(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Subtract(Vector128<float> a, Vector128<float> b) => a - b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Multiply(Vector128<float> a, Vector128<float> b) => a * b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Divide(Vector128<float> a, Vector128<float> b) => a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Max(Vector128<float> a, Vector128<float> b) => Vector128.MaxNative(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Round(Vector128<float> a) => Vector128.Round(a);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Pow2FromRounded(Vector128<float> t) => Vector128.ShiftLeft(t.AsInt32() + Vector128.Create(127), 23).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Min(Vector128<float> a, Vector128<float> b) => Vector128.MinNative(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector128<float> a) => Vector128.Sum(a);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Reciprocal(Vector128<float> a)
    {
        if (AdvSimd.Arm64.IsSupported)
        {
            Vector128<float> x = AdvSimd.ReciprocalEstimate(a);
            x = AdvSimd.Multiply(x, AdvSimd.ReciprocalStep(a, x));
            return AdvSimd.Multiply(x, AdvSimd.ReciprocalStep(a, x));
        }

        if (Avx512F.VL.IsSupported)
        {
            Vector128<float> x = Avx512F.VL.Reciprocal14(a);
            return x * (Vector128.Create(2f) - (a * x));
        }

        return Vector128.Create(1f) / a;
    }
}

internal readonly struct Ops256 : IVectorOps<Vector256<float>>
{
    public static int Count => Vector256<float>.Count;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load(ref float source, nuint offset) => Vector256.LoadUnsafe(ref source, offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector256<float> value, ref float destination, nuint offset) => value.StoreUnsafe(ref destination, offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Broadcast(float value) => Vector256.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.MultiplyAddEstimate(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Subtract(Vector256<float> a, Vector256<float> b) => a - b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => a * b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Divide(Vector256<float> a, Vector256<float> b) => a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Vector256.MaxNative(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Round(Vector256<float> a) => Vector256.Round(a);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Pow2FromRounded(Vector256<float> t) => Vector256.ShiftLeft(t.AsInt32() + Vector256.Create(127), 23).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Min(Vector256<float> a, Vector256<float> b) => Vector256.MinNative(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector256<float> a) => Vector256.Sum(a);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Reciprocal(Vector256<float> a)
    {
        if (Avx512F.VL.IsSupported)
        {
            Vector256<float> x = Avx512F.VL.Reciprocal14(a);
            return x * (Vector256.Create(2f) - (a * x));
        }

        return Vector256.Create(1f) / a;
    }
}

internal readonly struct Ops512 : IVectorOps<Vector512<float>>
{
    public static int Count => Vector512<float>.Count;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load(ref float source, nuint offset) => Vector512.LoadUnsafe(ref source, offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector512<float> value, ref float destination, nuint offset) => value.StoreUnsafe(ref destination, offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Broadcast(float value) => Vector512.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.MultiplyAddEstimate(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Subtract(Vector512<float> a, Vector512<float> b) => a - b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Multiply(Vector512<float> a, Vector512<float> b) => a * b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Divide(Vector512<float> a, Vector512<float> b) => a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Max(Vector512<float> a, Vector512<float> b) => Vector512.MaxNative(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Round(Vector512<float> a) => Vector512.Round(a);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Pow2FromRounded(Vector512<float> t) => Vector512.ShiftLeft(t.AsInt32() + Vector512.Create(127), 23).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Min(Vector512<float> a, Vector512<float> b) => Vector512.MinNative(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector512<float> a) => Vector512.Sum(a);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Reciprocal(Vector512<float> a)
    {
        if (Avx512F.IsSupported)
        {
            Vector512<float> x = Avx512F.Reciprocal14(a);
            return x * (Vector512.Create(2f) - (a * x));
        }

        return Vector512.Create(1f) / a;
    }
}
