using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace Signal.Models.Accelerators.Device;

/// <summary>
/// ILGPU contexts and accelerators, one per kind, made on first use and kept for the process (a context costs
/// 0.3–0.7 s to create). Each kind has its own context so that asking for CUDA never enumerates OpenCL (+68 MB).
/// </summary>
internal static class DeviceHost
{
    private static readonly Lock s_lock = new();
    private static readonly Dictionary<AcceleratorKind, (Context Context, ILGPU.Runtime.Accelerator Accelerator)> s_open = [];

    /// <summary>The accelerator of <paramref name="kind"/> (the first device of that kind).</summary>
    /// <exception cref="AcceleratorUnavailableException">No such device; the message says what was looked for.</exception>
    public static ILGPU.Runtime.Accelerator Open(AcceleratorKind kind)
    {
        lock (s_lock)
        {
            if (s_open.TryGetValue(kind, out var open))
            {
                return open.Accelerator;
            }

            Context context;
            try
            {
                context = CreateContext(kind);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new AcceleratorUnavailableException($"ILGPU could not look for {AcceleratorKinds.Name(kind)} devices: {e.Message}", e);
            }

            ILGPU.Runtime.Device? device = context.Devices.FirstOrDefault(d => d.AcceleratorType == TypeOf(kind));
            if (device is null)
            {
                context.Dispose();
                throw new AcceleratorUnavailableException(kind switch
                {
                    AcceleratorKind.Cuda => "no CUDA device was found (ILGPU looked through libcuda; is the NVIDIA driver installed and a GPU visible?). Set the accelerator to cpu or auto.",
                    AcceleratorKind.OpenCL => "no usable OpenCL device was found (ILGPU needs OpenCL 2.0 with generic address space; Debian's PoCL is refused). Set the accelerator to cpu or auto.",
                    _ => $"no {AcceleratorKinds.Name(kind)} device was found.",
                });
            }

            ILGPU.Runtime.Accelerator accelerator;
            try
            {
                accelerator = device.CreateAccelerator(context);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                context.Dispose();
                throw new AcceleratorUnavailableException($"{device.Name}: ILGPU could not open it: {e.Message}", e);
            }

            s_open[kind] = (context, accelerator);
            return accelerator;
        }
    }

    /// <summary>FP32 peak in FLOP/s of the opened device of <paramref name="kind"/>, where its FP32 lanes per multiprocessor are known.</summary>
    public static double? PeakFlops(AcceleratorKind kind)
    {
        if (Open(kind) is not CudaAccelerator cuda || cuda.Device is not CudaDevice device || device.Architecture is not { } architecture)
        {
            return null;
        }

        // FP32 lanes per multiprocessor: 64 on Volta, Turing and the A100 (8.0); 128 on 8.6/8.7/8.9 and Hopper (9.0).
        int lanes = architecture.Major switch
        {
            7 => 64,
            8 => architecture.Minor == 0 ? 64 : 128,
            9 => 128,
            _ => 0,
        };
        // ILGPU reports the clock in MHz.
        return lanes == 0 ? null : device.NumMultiprocessors * lanes * 2.0 * device.ClockRate * 1e6;
    }

    /// <summary>Every device ILGPU finds, CUDA, OpenCL and its CPU accelerator, each with a one-line description.</summary>
    public static IReadOnlyList<AcceleratorInfo> List()
    {
        var found = new List<AcceleratorInfo>();
        foreach (AcceleratorKind kind in new[] { AcceleratorKind.Cuda, AcceleratorKind.OpenCL, AcceleratorKind.IlgpuCpu })
        {
            try
            {
                using Context context = CreateContext(kind);
                ILGPU.Runtime.Device[] devices = [.. context.Devices.Where(d => d.AcceleratorType == TypeOf(kind))];
                foreach (ILGPU.Runtime.Device d in devices)
                {
                    string detail = d switch
                    {
                        CudaDevice cuda => $"compute capability {cuda.Architecture?.ToString() ?? "?"}, {d.NumMultiprocessors} multiprocessors, driver {cuda.DriverVersion}",
                        CPUDevice => "runs the GPU kernels on the CPU, for tests",
                        _ => $"{d.NumMultiprocessors} compute units",
                    };
                    found.Add(new AcceleratorInfo(AcceleratorKinds.Name(kind), d.Name, d is CPUDevice ? 0 : d.MemorySize, detail, null));
                }

                if (devices.Length == 0)
                {
                    found.Add(new AcceleratorInfo(AcceleratorKinds.Name(kind), "(none)", 0, string.Empty, "no device found"));
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                found.Add(new AcceleratorInfo(AcceleratorKinds.Name(kind), "(none)", 0, string.Empty, e.Message));
            }
        }

        return found;
    }

    private static Context CreateContext(AcceleratorKind kind) => Context.Create(builder =>
    {
        builder.Optimize(OptimizationLevel.O2);
        _ = kind switch
        {
            AcceleratorKind.Cuda => builder.Cuda(),
            AcceleratorKind.OpenCL => builder.OpenCL(),
            AcceleratorKind.IlgpuCpu => builder.CPU(CPUDeviceKind.Nvidia),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "not an ILGPU accelerator."),
        };
    });

    private static AcceleratorType TypeOf(AcceleratorKind kind) => kind switch
    {
        AcceleratorKind.Cuda => AcceleratorType.Cuda,
        AcceleratorKind.OpenCL => AcceleratorType.OpenCL,
        _ => AcceleratorType.CPU,
    };
}
