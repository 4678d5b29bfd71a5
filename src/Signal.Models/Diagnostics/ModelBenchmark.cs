using System.Diagnostics;
using Signal.Models.Networks;

namespace Signal.Models.Diagnostics;

/// <summary>One measured case of <see cref="ModelBenchmark"/>.</summary>
/// <param name="Name">What was measured.</param>
/// <param name="Streams">Streams per step.</param>
/// <param name="Threads">Threads used.</param>
/// <param name="MicrosecondsPerStep">Best time of one (batched) step.</param>
/// <param name="FlopsPerStream">FLOPs of one stream's step: 2 × multiply-adds of the products (8·H·(I+H) for an LSTM layer, 6·H·(I+H) for GRU, plus the head); element-wise work not counted.</param>
/// <param name="GigaflopsPerSecond">Achieved product throughput.</param>
/// <param name="FractionOfPeak">Achieved throughput over the measured single-core FMA peak times the threads.</param>
/// <param name="AllocatedBytesPerStep">Managed bytes allocated per step on the calling thread.</param>
public sealed record BenchmarkCase(string Name, int Streams, int Threads, double MicrosecondsPerStep, long FlopsPerStream, double GigaflopsPerSecond, double FractionOfPeak, double AllocatedBytesPerStep);

/// <summary>
/// The recurrent-step benchmark behind <c>signal-edge bench models</c>: a single-stream LSTM step and
/// batched LSTM/GRU steps of 1,024 streams on one and two cores, each reported against the FMA peak of
/// this machine measured in the same run.
/// </summary>
public static class ModelBenchmark
{
    /// <summary>Runs every case.</summary>
    /// <param name="secondsPerCase">Measuring time per case (the best round counts).</param>
    /// <param name="progress">Called with each case's name before it runs.</param>
    /// <returns>The peak in FLOP/s of the width the kernels use, and the cases.</returns>
    /// <param name="model">A model of the user's to measure too, batched at 1,024 streams on one and two cores (optional).</param>
    public static (double PeakFlops, string PeakWidth, IReadOnlyList<BenchmarkCase> Cases) Run(double secondsPerCase = 1.0, Action<string>? progress = null, RecurrentModel? model = null)
    {
        TimeSpan span = TimeSpan.FromSeconds(secondsPerCase);
        string width = Kernels.Kernels.Best.ToString();
        progress?.Invoke("fma peak " + width);
        double peak = Kernels.Kernels.Best switch
        {
            Kernels.KernelPath.Vector512 => FmaPeak.Vector512FlopsPerSecond(span),
            Kernels.KernelPath.Vector256 => FmaPeak.Vector256FlopsPerSecond(span),
            Kernels.KernelPath.Vector128 => FmaPeak.Vector128FlopsPerSecond(span),
            _ => 2e9,
        };

        var cases = new List<BenchmarkCase>();
        void Add(string name, CellKind kind, int hidden, int streams, int threads)
        {
            progress?.Invoke(name);
            cases.Add(Measure(name, kind, 40, hidden, streams, threads, span, peak));
        }

        Add("lstm single stream I=40 H=64", CellKind.Lstm, 64, 1, 1);
        Add("lstm batch 1024 I=40 H=128, 1 core", CellKind.Lstm, 128, 1024, 1);
        Add("lstm batch 1024 I=40 H=128, 2 cores", CellKind.Lstm, 128, 1024, 2);
        Add("lstm batch 1024 I=40 H=64, 1 core", CellKind.Lstm, 64, 1024, 1);
        Add("lstm batch 1024 I=40 H=64, 2 cores", CellKind.Lstm, 64, 1024, 2);
        Add("gru batch 1024 I=40 H=128, 1 core", CellKind.Gru, 128, 1024, 1);
        Add("gru batch 1024 I=40 H=64, 1 core", CellKind.Gru, 64, 1024, 1);
        if (model is not null)
        {
            string layers = string.Join("+", model.Architecture.Layers.Select(l => $"{l.Kind.ToString().ToLowerInvariant()} H={l.HiddenSize}"));
            foreach (int threads in new[] { 1, 2 })
            {
                string name = $"the model ({layers}, I={model.InputSize}) batch 1024, {threads} core{(threads > 1 ? "s" : string.Empty)}";
                progress?.Invoke(name);
                cases.Add(Measure(name, model, 1024, threads, span, peak));
            }
        }

        return (peak, width, cases);
    }

    /// <summary>Measures one case.</summary>
    /// <param name="name">Its name.</param>
    /// <param name="kind">Cell kind.</param>
    /// <param name="input">Input size.</param>
    /// <param name="hidden">Hidden size.</param>
    /// <param name="streams">Streams per step (1 uses <see cref="RecurrentModel.Step"/>).</param>
    /// <param name="threads">Threads of the batch stepper.</param>
    /// <param name="duration">Measuring time.</param>
    /// <param name="peak">Single-core FMA peak in FLOP/s.</param>
    /// <returns>The case.</returns>
    public static BenchmarkCase Measure(string name, CellKind kind, int input, int hidden, int streams, int threads, TimeSpan duration, double peak)
    {
        var architecture = new ModelArchitecture { InputSize = input, Classes = 4, Layers = [new LayerArchitecture { Kind = kind, HiddenSize = hidden }] };
        return Measure(name, RecurrentModel.CreateRandom(architecture, seed: 1), streams, threads, duration, peak);
    }

    /// <summary>Measures one case of a given model (random inputs; every head the model has).</summary>
    /// <param name="name">Its name.</param>
    /// <param name="model">The model.</param>
    /// <param name="streams">Streams per step (1 uses <see cref="RecurrentModel.Step"/>).</param>
    /// <param name="threads">Threads of the batch stepper.</param>
    /// <param name="duration">Measuring time.</param>
    /// <param name="peak">Single-core FMA peak in FLOP/s.</param>
    /// <returns>The case.</returns>
    public static BenchmarkCase Measure(string name, RecurrentModel model, int streams, int threads, TimeSpan duration, double peak)
    {
        ArgumentNullException.ThrowIfNull(model);
        int input = model.InputSize, classes = Math.Max(1, model.ClassCount);
        var random = new Random(2);
        float[] inputs = new float[streams * input];
        for (int i = 0; i < inputs.Length; i++)
        {
            inputs[i] = (float)random.NextDouble() - 0.5f;
        }

        float[] probabilities = new float[streams * classes];
        RecurrentState[] states = [.. Enumerable.Range(0, streams).Select(_ => model.CreateState())];
        using var stepper = new BatchStepper(model, streams, threads) { ParallelMinimumMultiplyAdds = threads > 1 ? 0 : long.MaxValue };
        Action step = streams == 1
            ? () => model.Step(states[0], inputs, probabilities)
            : () => stepper.Step(states, inputs, probabilities);

        // Rounds long enough to time well; the best round counts (the least disturbed by the machine).
        int perRound = Math.Max(1, (int)(2_000_000 / (model.MultiplyAddsPerStep * (double)streams / 1000 + 1)));
        for (int i = 0; i < perRound; i++)
        {
            step();
        }

        double best = double.MaxValue;
        long allocated = 0, measuredSteps = 0;
        var total = Stopwatch.StartNew();
        while (total.Elapsed < duration || best == double.MaxValue)
        {
            long bytes = GC.GetAllocatedBytesForCurrentThread();
            long start = Stopwatch.GetTimestamp();
            for (int i = 0; i < perRound; i++)
            {
                step();
            }

            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            allocated += GC.GetAllocatedBytesForCurrentThread() - bytes;
            measuredSteps += perRound;
            best = Math.Min(best, seconds / perRound);
        }

        long flops = 2 * model.MultiplyAddsPerStep;
        double gflops = flops * (double)streams / best / 1e9;
        return new BenchmarkCase(name, streams, threads, best * 1e6, flops, gflops, gflops * 1e9 / (peak * threads), (double)allocated / measuredSteps);
    }
}
