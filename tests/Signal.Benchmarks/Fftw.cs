using System.Runtime.InteropServices;

namespace Signal.Benchmarks;

/// <summary>
/// Benchmark-only binding to Debian's libfftw3-single3, a peer for the FFT ratio. FFTW is GPL: it is never
/// referenced by the product, only by this benchmark project.
/// </summary>
internal static unsafe partial class Fftw
{
    private const string Library = "libfftw3f.so.3";
    public const uint Measure = 0;

    public static bool IsAvailable => NativeLibrary.TryLoad(Library, out _);

    [LibraryImport(Library, EntryPoint = "fftwf_plan_dft_r2c_1d")]
    public static partial nint PlanR2C(int n, float* input, float* output, uint flags);

    [LibraryImport(Library, EntryPoint = "fftwf_execute")]
    public static partial void Execute(nint plan);

    [LibraryImport(Library, EntryPoint = "fftwf_destroy_plan")]
    public static partial void Destroy(nint plan);

    [LibraryImport(Library, EntryPoint = "fftwf_malloc")]
    public static partial void* Malloc(nuint bytes);

    [LibraryImport(Library, EntryPoint = "fftwf_free")]
    public static partial void Free(void* p);
}
