using System.Runtime.InteropServices;

namespace Signal.Engine;

/// <summary>
/// Hands the C library's free heap memory back to the OS (glibc's <c>malloc_trim</c>). The runtime, the JIT and
/// libmosquitto allocate natively; glibc keeps what they free in its arenas, and after traffic stops that was measured
/// at 3.5 MB of an idle daemon's resident set (docs/daemon.md). No library wraps this; it is one call.
/// </summary>
public static partial class NativeHeap
{
    private static bool s_unavailable;

    /// <summary>Trims every arena; nothing on a C library without <c>malloc_trim</c> (musl) or off Linux.</summary>
    public static void Trim()
    {
        if (s_unavailable || !OperatingSystem.IsLinux())
        {
            return;
        }

        try
        {
            _ = MallocTrim(0);
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            s_unavailable = true;
        }
    }

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);
}
