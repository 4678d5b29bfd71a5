using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Signal.Models.Networks;

namespace Signal.Models.Accelerators;

/// <summary>
/// Chooses and creates the stepper for a setting of <see cref="AcceleratorKind"/>. ILGPU is touched only on the paths
/// that need it (the methods that call into it are never compiled otherwise), so a daemon set to the CPU never loads
/// it: its memory and start time stay as they are.
/// </summary>
public static class AcceleratorSelection
{
    /// <summary>
    /// With <see cref="AcceleratorKind.Auto"/>, the GPU is used when the largest batch's multiply-adds per step
    /// (streams × <see cref="RecurrentModel.MultiplyAddsPerStep"/>) reach this: 64 million, about 750 streams of a
    /// hidden-128 LSTM with 40 inputs. Measured on an H200 against the SIMD path on its 16 cores (docs/accelerators.md
    /// has the table): below it a step's fixed cost on the GPU (launches, two copies, one synchronisation, about
    /// 0.2 ms) outweighs its speed.
    /// </summary>
    public const long AutoMinimumMultiplyAdds = 64_000_000;

    /// <summary>Whether this build has the accelerator backend (the NativeAOT build leaves ILGPU out).</summary>
#if SIGNAL_NO_ACCELERATOR
    public static bool IsAvailable => false;
#else
    public static bool IsAvailable => true;
#endif

    /// <summary>Why the accelerator backend cannot step <paramref name="model"/>, or null when it can.</summary>
    /// <param name="model">The model.</param>
    /// <returns>The reason, or null.</returns>
    public static string? WhyNotSupported(RecurrentModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (!model.Architecture.IsStreamable)
        {
            return "the model has a bidirectional layer";
        }

        if (model.Architecture.Convolutions.Count > 0)
        {
            return "the model has causal convolutions, which the accelerator backend does not step";
        }

        if (model.Architecture.MaxPooling)
        {
            return "the model's head pools the running maximum (pooling meanmax), which the accelerator backend does not step";
        }

        return model.Architecture.RunningNormalization ? "the model normalises its input with running statistics, which the accelerator backend does not step" : null;
    }

    /// <summary>The error for a model the accelerator backend does not step.</summary>
    internal static NotSupportedException Unsupported(AcceleratorKind kind, string reason) =>
        new($"accelerator {AcceleratorKinds.Name(kind)}: {reason}; step it on the CPU (accelerator cpu, or auto, which falls back to the CPU for such models).");

    /// <summary>Whether the NVIDIA driver's libcuda loads here (checked without ILGPU).</summary>
    /// <returns>True when a CUDA driver is present.</returns>
    public static bool CudaDriverPresent()
    {
        if (!NativeLibrary.TryLoad(OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1", out IntPtr handle))
        {
            return false;
        }

        NativeLibrary.Free(handle);
        return true;
    }

    /// <summary>
    /// The stepper for <paramref name="kind"/>: <see cref="BatchStepper"/> for the CPU, the ILGPU backend for a GPU.
    /// <see cref="AcceleratorKind.Auto"/> takes the GPU only when a CUDA driver is present, the model is supported and
    /// <paramref name="maxBatch"/> is large enough (<see cref="AutoMinimumMultiplyAdds"/>); otherwise, or when the GPU
    /// cannot be opened, the CPU, and <paramref name="log"/> says why.
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="maxBatch">Largest batch.</param>
    /// <param name="kind">The setting.</param>
    /// <param name="threads">CPU threads for <see cref="BatchStepper"/>.</param>
    /// <param name="log">Receives one line about the choice (optional).</param>
    /// <param name="capacity">On a GPU, the streams whose states stay in device memory at once (default
    /// <paramref name="maxBatch"/>): an engine passes its stream limit, so states are not copied out and in again
    /// between batches of different streams.</param>
    /// <returns>The stepper.</returns>
    /// <exception cref="NotSupportedException">An explicit GPU setting with a model it does not step, or a build without the backend.</exception>
    /// <exception cref="AcceleratorUnavailableException">An explicit GPU setting and no such device, or not enough device memory.</exception>
    public static IRecurrentStepper CreateStepper(RecurrentModel model, int maxBatch, AcceleratorKind kind, int threads = 0, Action<string>? log = null, int capacity = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (kind == AcceleratorKind.Auto)
        {
            long work = (long)maxBatch * model.MultiplyAddsPerStep;
            string? why = !IsAvailable ? "this build has no accelerator backend"
                : WhyNotSupported(model)
                ?? (work < AutoMinimumMultiplyAdds ? $"a batch of {maxBatch} streams is {work:N0} multiply-adds per step, below the GPU's crossover of {AutoMinimumMultiplyAdds:N0}"
                : !CudaDriverPresent() ? "no CUDA driver (libcuda) is present" : null);
            if (why is null)
            {
                try
                {
                    IRecurrentStepper gpu = CreateDevice(model, maxBatch, AcceleratorKind.Cuda, capacity);
                    log?.Invoke($"accelerator auto: stepping on {gpu.Device}");
                    return gpu;
                }
                catch (Exception e) when (e is AcceleratorUnavailableException or NotSupportedException or DllNotFoundException or TypeInitializationException)
                {
                    why = "the GPU could not be opened: " + e.Message;
                }
            }

            log?.Invoke($"accelerator auto: stepping on the CPU ({why})");
            return new BatchStepper(model, maxBatch, threads);
        }

        if (kind == AcceleratorKind.Cpu)
        {
            return new BatchStepper(model, maxBatch, threads);
        }

        if (WhyNotSupported(model) is { } reason)
        {
            throw Unsupported(kind, reason);
        }

        IRecurrentStepper stepper = CreateDevice(model, maxBatch, kind, capacity);
        log?.Invoke($"accelerator {AcceleratorKinds.Name(kind)}: stepping on {stepper.Device}");
        return stepper;
    }

    /// <summary>
    /// The accelerator's loss for training <paramref name="architecture"/>, or null to train on the CPU:
    /// <see cref="AcceleratorKind.Cpu"/>, or <see cref="AcceleratorKind.Auto"/> without a CUDA driver or with options or
    /// an architecture the accelerator does not train.
    /// </summary>
    /// <param name="architecture">The network's architecture.</param>
    /// <param name="kind">The setting.</param>
    /// <param name="options">The training options (dropout and truncation are CPU-only).</param>
    /// <returns>The loss, or null.</returns>
    /// <exception cref="NotSupportedException">An explicit accelerator with something it does not train, or a build without the backend.</exception>
    /// <exception cref="AcceleratorUnavailableException">An explicit accelerator and no such device.</exception>
    public static IAcceleratedLoss? CreateLoss(ModelArchitecture architecture, AcceleratorKind kind, Training.TrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        ArgumentNullException.ThrowIfNull(options);
        if (kind == AcceleratorKind.Cpu)
        {
            return null;
        }

        string? why = !IsAvailable ? "this build (NativeAOT) has no accelerator backend"
            : WhyNotTrainable(architecture)
            ?? (options.Dropout > 0 ? "the accelerator trainer does not do dropout (set dropout to 0)"
            : options.TruncateSteps > 0 ? "the accelerator trainer does not truncate back-propagation (set truncateSteps to 0)" : null);
        if (kind == AcceleratorKind.Auto)
        {
            return why is null && CudaDriverPresent() ? CreateLossCore(architecture, AcceleratorKind.Cuda) : null;
        }

        return why is not null ? throw new NotSupportedException($"accelerator {AcceleratorKinds.Name(kind)}: {why}; train it on the CPU (accelerator cpu).")
            : CreateLossCore(architecture, kind);
    }

    /// <summary>Why the accelerator trainer cannot train <paramref name="architecture"/>, or null.</summary>
    /// <param name="architecture">The architecture.</param>
    /// <returns>The reason, or null.</returns>
    public static string? WhyNotTrainable(ModelArchitecture architecture)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        return architecture.Convolutions.Count > 0 ? "the accelerator trainer does not train causal convolutions"
            : architecture.RunningNormalization ? "the accelerator trainer does not train running input normalisation"
            : architecture.MaxPooling ? "the accelerator trainer does not train max pooling (pooling meanmax)"
            : architecture.ForecastSize > 0 ? "the accelerator trainer does not train a forecasting head"
            : architecture.Classes == 0 ? "the accelerator trainer needs a classification head"
            : null;
    }

#pragma warning disable CA1859 // as CreateDevice: the interface keeps the ILGPU backend's type out of callers
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static IAcceleratedLoss CreateLossCore(ModelArchitecture architecture, AcceleratorKind kind)
    {
#if SIGNAL_NO_ACCELERATOR
        throw new NotSupportedException($"accelerator {AcceleratorKinds.Name(kind)}: this build (NativeAOT) has no accelerator backend.");
#else
        return new Device.AcceleratedTrainer(architecture, kind);
#endif
    }
#pragma warning restore CA1859

    /// <summary>Every device ILGPU finds (CUDA, OpenCL, its CPU accelerator), for <c>signal-edge info</c>. Loads ILGPU.</summary>
    /// <returns>The devices, and for each kind that could not be enumerated, why.</returns>
    public static IReadOnlyList<AcceleratorInfo> ListDevices() =>
        IsAvailable ? ListDevicesCore() : [new AcceleratorInfo("all", "(none)", 0, string.Empty, "this build (NativeAOT) has no accelerator backend")];

    // The interface as the return type keeps the ILGPU backend's type out of every caller's signature (and compiles in the
    // NativeAOT build, which has no such type).
#pragma warning disable CA1859
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static IRecurrentStepper CreateDevice(RecurrentModel model, int maxBatch, AcceleratorKind kind, int capacity)
    {
#if SIGNAL_NO_ACCELERATOR
        throw new NotSupportedException($"accelerator {AcceleratorKinds.Name(kind)}: this build (NativeAOT) has no accelerator backend; use the JIT build (docs/accelerators.md) or accelerator cpu.");
#else
        return new Device.AcceleratedStepper(model, maxBatch, kind, capacity);
#endif
    }
#pragma warning restore CA1859

    /// <summary>
    /// The FP32 peak of the first device of <paramref name="kind"/> in FLOP/s (multiprocessors × FP32 lanes × 2 ×
    /// clock), where the lanes per multiprocessor are known (CUDA compute capability 7.0 to 9.0); else null. Loads ILGPU.
    /// </summary>
    /// <param name="kind">The accelerator.</param>
    /// <returns>FLOP/s, or null.</returns>
    public static double? PeakFlops(AcceleratorKind kind) => IsAvailable && kind is AcceleratorKind.Cuda ? PeakFlopsCore(kind) : null;

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static double? PeakFlopsCore(AcceleratorKind kind)
    {
#if SIGNAL_NO_ACCELERATOR
        return null;
#else
        return Device.DeviceHost.PeakFlops(kind);
#endif
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static IReadOnlyList<AcceleratorInfo> ListDevicesCore()
    {
#if SIGNAL_NO_ACCELERATOR
        return [];
#else
        return Device.DeviceHost.List();
#endif
    }
}
