namespace Signal.Models.Accelerators;

/// <summary>Where batched recurrent steps (and training) run.</summary>
public enum AcceleratorKind
{
    /// <summary>The SIMD kernels on this machine's cores (the default; ILGPU is never loaded).</summary>
    Cpu,

    /// <summary>An NVIDIA GPU through ILGPU's CUDA backend.</summary>
    Cuda,

    /// <summary>An OpenCL 2.0 device with generic address space through ILGPU.</summary>
    OpenCL,

    /// <summary>A GPU when one is present and the batch is large enough to win (<see cref="AcceleratorSelection.AutoMinimumMultiplyAdds"/>), else <see cref="Cpu"/>.</summary>
    Auto,

    /// <summary>ILGPU's CPU accelerator: runs the GPU kernels on the CPU, 100× slower than <see cref="Cpu"/>. A test device, not a fallback.</summary>
    IlgpuCpu,
}

/// <summary>Parsing and naming of <see cref="AcceleratorKind"/> as settings and options spell it.</summary>
public static class AcceleratorKinds
{
    /// <summary>The names accepted by <see cref="Parse"/>.</summary>
    public const string Names = "cpu, cuda, opencl, auto, ilgpu-cpu";

    /// <summary>Reads a setting's value (case-insensitive).</summary>
    /// <param name="value">cpu, cuda, opencl, auto or ilgpu-cpu.</param>
    /// <returns>The kind.</returns>
    /// <exception cref="ArgumentException">Another value; the message lists the accepted ones.</exception>
    public static AcceleratorKind Parse(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return value.Trim().ToLowerInvariant() switch
        {
            "cpu" or "" => AcceleratorKind.Cpu,
            "cuda" or "gpu" => AcceleratorKind.Cuda,
            "opencl" => AcceleratorKind.OpenCL,
            "auto" => AcceleratorKind.Auto,
            "ilgpu-cpu" => AcceleratorKind.IlgpuCpu,
            _ => throw new ArgumentException($"accelerator '{value}' is not one of {Names}."),
        };
    }

    /// <summary>The setting's spelling of <paramref name="kind"/>.</summary>
    /// <param name="kind">The kind.</param>
    /// <returns>cpu, cuda, opencl, auto or ilgpu-cpu.</returns>
    public static string Name(AcceleratorKind kind) => kind switch
    {
        AcceleratorKind.Cuda => "cuda",
        AcceleratorKind.OpenCL => "opencl",
        AcceleratorKind.Auto => "auto",
        AcceleratorKind.IlgpuCpu => "ilgpu-cpu",
        _ => "cpu",
    };
}
