using System.Diagnostics;
using Signal.Models.Accelerators;
using Signal.Models.Networks;

namespace Signal.Models.Diagnostics;

/// <summary>One case of <see cref="AcceleratorBenchmark"/>: one model and batch on the accelerator and on the CPU.</summary>
/// <param name="Model">The model (cell, input, hidden).</param>
/// <param name="Hidden">Hidden units.</param>
/// <param name="Streams">Streams per batched step.</param>
/// <param name="DeviceMicroseconds">Mean time of one step on the accelerator: inputs up, every launch, probabilities down.</param>
/// <param name="CpuMicroseconds">Mean time of one step of <see cref="BatchStepper"/> on all cores (0 when not measured).</param>
/// <param name="DeviceStreamStepsPerSecond">Streams × steps per second on the accelerator.</param>
/// <param name="CpuStreamStepsPerSecond">The same on the CPU.</param>
/// <param name="Speedup">Accelerator over CPU (stream-steps per second).</param>
/// <param name="DeviceGigaflops">Achieved product FLOP/s on the accelerator (2 × multiply-adds per step).</param>
/// <param name="FractionOfDevicePeak">Of the device's FP32 peak, where known.</param>
/// <param name="CpuGigaflops">Achieved product FLOP/s on the CPU.</param>
public sealed record AcceleratorBenchCase(string Model, int Hidden, int Streams, double DeviceMicroseconds, double CpuMicroseconds, double DeviceStreamStepsPerSecond, double CpuStreamStepsPerSecond, double Speedup, double DeviceGigaflops, double? FractionOfDevicePeak, double CpuGigaflops);

/// <summary>
/// The accelerator benchmark behind <c>signal-edge bench models --accelerator</c>: a one-layer LSTM (40 inputs, 4
/// classes) at each hidden size and batch, stepped on the accelerator and, in the same run, by the SIMD path on every
/// core of this machine.
/// </summary>
public static class AcceleratorBenchmark
{
    /// <summary>Runs every case.</summary>
    /// <param name="kind">The accelerator.</param>
    /// <param name="batches">Streams per step.</param>
    /// <param name="hiddens">Hidden sizes.</param>
    /// <param name="secondsPerCase">Measuring time per case and path.</param>
    /// <param name="cpu">Whether to measure the CPU path too.</param>
    /// <param name="progress">Called with each case's name.</param>
    /// <returns>The device's name, its FP32 peak in GFLOP/s (when known), the CPU threads, and the cases.</returns>
    public static (string Device, double? PeakGigaflops, int CpuThreads, IReadOnlyList<AcceleratorBenchCase> Cases) Run(
        AcceleratorKind kind, IReadOnlyList<int> batches, IReadOnlyList<int> hiddens, double secondsPerCase = 1.0, bool cpu = true, Action<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(batches);
        ArgumentNullException.ThrowIfNull(hiddens);
        var cases = new List<AcceleratorBenchCase>();
        int threads = Environment.ProcessorCount;
        string deviceName = AcceleratorKinds.Name(kind);
        double? peak = AcceleratorSelection.PeakFlops(kind) is { } p ? p / 1e9 : null;
        int largest = batches.Max();
        foreach (int hidden in hiddens)
        {
            var architecture = new ModelArchitecture { InputSize = 40, Classes = 4, Layers = [new LayerArchitecture { Kind = CellKind.Lstm, HiddenSize = hidden }] };
            RecurrentModel model = RecurrentModel.CreateRandom(architecture, seed: hidden);
            string name = $"lstm I=40 H={hidden}";
            RecurrentState[] states = [.. Enumerable.Range(0, largest).Select(_ => model.CreateState())];
            float[] inputs = new float[largest * model.InputSize];
            for (int i = 0; i < inputs.Length; i++)
            {
                inputs[i] = (float)Math.Sin(i * 0.37);
            }

            float[] probabilities = new float[largest * model.ClassCount];
            double[] onDevice;
            using (IRecurrentStepper gpu = AcceleratorSelection.CreateStepper(model, largest, kind))
            {
                onDevice = [.. batches.Select(b =>
                {
                    progress?.Invoke($"{name}, {b:N0} streams, {gpu.Device}");
                    return Time(gpu, states, inputs, probabilities, model, b, secondsPerCase);
                })];
                deviceName = gpu.Device;
            }

            double[] host = new double[batches.Count];
            if (cpu)
            {
                RecurrentState[] cpuStates = [.. Enumerable.Range(0, largest).Select(_ => model.CreateState())];
                using var simd = new BatchStepper(model, largest, threads) { ParallelMinimumMultiplyAdds = 0 };
                host = [.. batches.Select(b =>
                {
                    progress?.Invoke($"{name}, {b:N0} streams, {simd.Device}");
                    return Time(simd, cpuStates, inputs, probabilities, model, b, secondsPerCase);
                })];
            }

            for (int i = 0; i < batches.Count; i++)
            {
                int b = batches[i];
                double flops = 2.0 * model.MultiplyAddsPerStep * b;
                double gpuRate = b / (onDevice[i] * 1e-6), cpuRate = host[i] > 0 ? b / (host[i] * 1e-6) : 0;
                double gpuGflops = flops / (onDevice[i] * 1e-6) / 1e9;
                cases.Add(new AcceleratorBenchCase(name, hidden, b, onDevice[i], host[i], gpuRate, cpuRate, cpuRate > 0 ? gpuRate / cpuRate : 0,
                    gpuGflops, peak is { } pk ? gpuGflops / pk : null, host[i] > 0 ? flops / (host[i] * 1e-6) / 1e9 : 0));
            }
        }

        return (deviceName, peak, threads, cases);
    }

    /// <summary>Mean µs of one batched step of the first <paramref name="streams"/> states, after two warm-up steps.</summary>
    private static double Time(IRecurrentStepper stepper, RecurrentState[] states, float[] inputs, float[] probabilities, RecurrentModel model, int streams, double seconds)
    {
        ReadOnlySpan<RecurrentState> batch = states.AsSpan(0, streams);
        ReadOnlySpan<float> x = inputs.AsSpan(0, streams * model.InputSize);
        Span<float> p = probabilities.AsSpan(0, streams * model.ClassCount);
        stepper.Step(batch, x, p);
        stepper.Step(batch, x, p);
        long start = Stopwatch.GetTimestamp();
        int steps = 0;
        do
        {
            stepper.Step(batch, x, p);
            steps++;
        }
        while (steps < 3 || Stopwatch.GetElapsedTime(start).TotalSeconds < seconds);

        return Stopwatch.GetElapsedTime(start).TotalMicroseconds / steps;
    }
}
