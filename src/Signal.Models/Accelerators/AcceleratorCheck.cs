using Signal.Models.Networks;
using Signal.Models.Training;

namespace Signal.Models.Accelerators;

/// <summary>One case of <see cref="AcceleratorCheck"/>: the largest differences from the SIMD path.</summary>
/// <param name="Name">The model (cell, sizes, options).</param>
/// <param name="Streams">Streams stepped.</param>
/// <param name="Steps">Batched steps.</param>
/// <param name="ProbabilityError">Largest |p_gpu − p_cpu| over every step and class.</param>
/// <param name="ForecastError">Largest |f_gpu − f_cpu| (0 without a forecasting head).</param>
/// <param name="StateError">Largest difference of the states read back after the last step.</param>
/// <param name="Passed">Every difference within <see cref="AcceleratorCheck.Tolerance"/>, and the states moved from zero.</param>
public sealed record AcceleratorCheckCase(string Name, int Streams, int Steps, double ProbabilityError, double ForecastError, double StateError, bool Passed);

/// <summary>
/// Steps the same streams through the accelerator backend and through <see cref="BatchStepper"/> (the SIMD kernels,
/// themselves checked against PyTorch) and compares every output: LSTM, LSTM with projection, GRU, RNN (tanh and ReLU),
/// two layers with layer norm, mean pooling and a forecasting head. Batches vary in size and order, a stream is reset
/// and another restored from bytes halfway, a state is read between steps, every third step repeats the last batch
/// unchanged, and more streams than device slots force states back to the host and in
/// again. Used by the tests on ILGPU's CPU accelerator and by <c>signal-edge selftest --accelerator cuda</c>.
/// </summary>
public static class AcceleratorCheck
{
    /// <summary>Largest difference allowed (the 1e-5).</summary>
    public const double Tolerance = 1e-5;

    /// <summary>The models checked, small enough for ILGPU's CPU accelerator (<paramref name="scale"/> 1) or larger.</summary>
    /// <param name="scale">Multiplies the hidden sizes.</param>
    /// <returns>Names and architectures.</returns>
    public static IReadOnlyList<(string Name, ModelArchitecture Architecture)> Models(int scale = 1)
    {
        int h = 24 * scale;
        return
        [
            ($"lstm I=9 H={h}", new ModelArchitecture { InputSize = 9, Classes = 5, Layers = [new LayerArchitecture { Kind = CellKind.Lstm, HiddenSize = h }] }),
            ($"lstm I=9 H={h} projected to {h / 2}, forecast", new ModelArchitecture { InputSize = 9, Classes = 3, ForecastSize = 9, Layers = [new LayerArchitecture { Kind = CellKind.Lstm, HiddenSize = h, ProjectionSize = h / 2 }] }),
            ($"gru I=7 H={h + 3}", new ModelArchitecture { InputSize = 7, Classes = 4, Layers = [new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = h + 3 }] }),
            ($"rnn tanh I=5 H={h}", new ModelArchitecture { InputSize = 5, Classes = 2, Layers = [new LayerArchitecture { Kind = CellKind.Rnn, HiddenSize = h }] }),
            ($"rnn relu I=5 H={h}, no bias", new ModelArchitecture { InputSize = 5, Classes = 2, Layers = [new LayerArchitecture { Kind = CellKind.Rnn, HiddenSize = h, Nonlinearity = "relu", Bias = false }] }),
            ($"layer norm + lstm H={h} + layer norm + gru H={h}, mean pooling", new ModelArchitecture
            {
                InputSize = 11,
                Classes = 6,
                Pooling = "mean",
                PoolingSteps = 3,
                Layers = [new LayerArchitecture { Kind = CellKind.Lstm, HiddenSize = h, LayerNorm = true }, new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = h, LayerNorm = true }],
            }),
            ($"forecast only: lstm I=4 H={h}", new ModelArchitecture { InputSize = 4, ForecastSize = 4, Layers = [new LayerArchitecture { Kind = CellKind.Lstm, HiddenSize = h }] }),
        ];
    }

    /// <summary>Runs every case of <see cref="Models"/>.</summary>
    /// <param name="kind">The accelerator (not <see cref="AcceleratorKind.Cpu"/> or <see cref="AcceleratorKind.Auto"/>).</param>
    /// <param name="streams">Streams per case (more than 128 crosses a tile of the product).</param>
    /// <param name="steps">Batched steps per case.</param>
    /// <param name="scale">Multiplies the hidden sizes.</param>
    /// <param name="progress">Called with each case's name before it runs.</param>
    /// <returns>One result per case.</returns>
    public static IReadOnlyList<AcceleratorCheckCase> Run(AcceleratorKind kind, int streams = 150, int steps = 8, int scale = 1, Action<string>? progress = null)
    {
        var results = new List<AcceleratorCheckCase>();
        int seed = 1;
        foreach ((string name, ModelArchitecture architecture) in Models(scale))
        {
            progress?.Invoke(name);
            results.Add(Compare(name, RecurrentModel.CreateRandom(architecture, seed++), kind, streams, steps));
        }

        return results;
    }

    /// <summary>Compares one model's steps on <paramref name="kind"/> with the SIMD path's.</summary>
    /// <param name="name">The case's name.</param>
    /// <param name="model">The model.</param>
    /// <param name="kind">The accelerator.</param>
    /// <param name="streams">Streams.</param>
    /// <param name="steps">Batched steps.</param>
    /// <returns>The largest differences.</returns>
    public static AcceleratorCheckCase Compare(string name, RecurrentModel model, AcceleratorKind kind, int streams, int steps)
    {
        ArgumentNullException.ThrowIfNull(model);
        int batch = Math.Max(1, (streams * 3) / 4);
        using var cpu = new BatchStepper(model, batch, threads: 1);
        using IRecurrentStepper gpu = AcceleratorSelection.CreateStepper(model, batch, kind);
        var random = new Random(streams + steps);
        RecurrentState[] cpuStates = [.. Enumerable.Range(0, streams).Select(_ => model.CreateState())];
        RecurrentState[] gpuStates = [.. Enumerable.Range(0, streams).Select(_ => model.CreateState())];
        int classes = model.ClassCount, forecast = model.ForecastSize, input = model.InputSize;
        float[] x = new float[batch * input];
        float[] p1 = new float[batch * classes], p2 = new float[batch * classes], f1 = new float[batch * forecast], f2 = new float[batch * forecast];
        double probabilityError = 0, forecastError = 0;
        int[] order = [.. Enumerable.Range(0, streams)];
        int n = 0;
        RecurrentState[] cpuBatch = [], gpuBatch = [];
        double stateError = 0;
        bool changed = false;
        for (int t = 0; t < steps; t++)
        {
            // Each step takes a different subset in a different order; over the steps every stream is stepped, and
            // the batch (¾ of the streams) leaves some streams' slots to be reused when the device holds fewer.
            // Every third step repeats the last batch as it was (the device stepper's fast path, where only states
            // changed on the host are looked at).
            if (t % 3 != 2)
            {
                random.Shuffle(order);
                n = t % 2 == 0 ? batch : Math.Max(1, batch / 3);
                cpuBatch = new RecurrentState[n];
                gpuBatch = new RecurrentState[n];
                for (int r = 0; r < n; r++)
                {
                    cpuBatch[r] = cpuStates[order[r]];
                    gpuBatch[r] = gpuStates[order[r]];
                }
            }

            for (int i = 0; i < n * input; i++)
            {
                x[i] = (float)((random.NextDouble() * 4) - 2);
            }

            if (t == (steps / 2) - 1)
            {
                // A state read on the host between steps (a checkpoint) comes back from the device, and steps on.
                stateError = Math.Max(stateError, MaxDifference(cpuStates[order[2]].AsSpan(), gpuStates[order[2]].AsSpan()));
            }

            if (!changed && t >= steps / 2 && t % 3 == 2)
            {
                // In a repeated batch, a stream starts over and another is restored from a third's serialised state:
                // both change the host's copy, which must go up before the step.
                changed = true;
                cpuStates[order[0]].Reset();
                gpuStates[order[0]].Reset();
                RecurrentState.FromBytes(model, cpuStates[order[3]].ToBytes()).CopyTo(cpuStates[order[1]]);
                RecurrentState.FromBytes(model, gpuStates[order[3]].ToBytes()).CopyTo(gpuStates[order[1]]);
            }

            Span<float> pc = classes == 0 ? default : p1.AsSpan(0, n * classes), pg = classes == 0 ? default : p2.AsSpan(0, n * classes);
            Span<float> fc = forecast == 0 ? default : f1.AsSpan(0, n * forecast), fg = forecast == 0 ? default : f2.AsSpan(0, n * forecast);
            cpu.Step(cpuBatch, x.AsSpan(0, n * input), pc, fc);
            gpu.Step(gpuBatch, x.AsSpan(0, n * input), pg, fg);
            probabilityError = Math.Max(probabilityError, MaxDifference(pc, pg));
            forecastError = Math.Max(forecastError, MaxDifference(fc, fg));
        }

        for (int s = 0; s < streams; s++)
        {
            stateError = Math.Max(stateError, MaxDifference(cpuStates[s].AsSpan(), gpuStates[s].AsSpan()));
        }

        // Both paths agreeing on states that never moved from zero would prove nothing: the reference must have stepped.
        bool moved = cpuStates.Any(st => st.AsSpan().ContainsAnyExcept(0f));
        bool passed = moved && probabilityError <= Tolerance && forecastError <= Tolerance && stateError <= Tolerance;
        return new AcceleratorCheckCase(name, streams, steps, probabilityError, forecastError, stateError, passed);
    }

    /// <summary>
    /// The training cases: stacks of the three cells with each head option (last or every step with a skipped prefix,
    /// mean pooling, label smoothing, class weights).
    /// </summary>
    /// <returns>Cells (comma-separated, "rnn-relu" for ReLU), loss, pooling, smoothing, class weights.</returns>
    public static IReadOnlyList<(string Cells, LossKind Loss, bool Pooling, double Smoothing, bool Weighted)> TrainingCases() =>
    [
        ("lstm,lstm", LossKind.LastStep, false, 0, false),
        ("gru", LossKind.EveryStep, false, 0.1, true),
        ("rnn,rnn-relu", LossKind.LastStep, true, 0, false),
        ("lstm,gru,rnn", LossKind.EveryStep, true, 0.1, true),
        ("gru,lstm", LossKind.LastStep, true, 0.2, true),
    ];

    /// <summary>
    /// One batch's loss and gradients on <paramref name="kind"/> against <see cref="TrainingNetwork.Loss"/> on the CPU
    /// (same weights and batch): the largest differences of the loss and of any gradient.
    /// </summary>
    /// <param name="cells">Comma-separated lstm, gru, rnn or rnn-relu.</param>
    /// <param name="loss">Which steps take a loss.</param>
    /// <param name="pooling">Mean pooling.</param>
    /// <param name="smoothing">Label smoothing.</param>
    /// <param name="weighted">Class weights.</param>
    /// <param name="kind">The accelerator.</param>
    /// <param name="hidden">Hidden units per layer.</param>
    /// <param name="count">Sequences.</param>
    /// <returns>The loss difference, the largest gradient difference and the tensor it is in, whether the counts agreed, and whether every tensor received a gradient.</returns>
    public static (double LossError, double GradientError, string WorstTensor, bool CountsAgree, bool AllGradientsNonZero) CompareTraining(
        string cells, LossKind loss, bool pooling, double smoothing, bool weighted, AcceleratorKind kind, int hidden = 6, int count = 5)
    {
        ArgumentNullException.ThrowIfNull(cells);
        var architecture = new ModelArchitecture
        {
            InputSize = 3,
            Classes = 4,
            Pooling = pooling ? "mean" : "none",
            PoolingSteps = pooling ? 4 : 0,
            Layers = [.. cells.Split(',').Select(c => new LayerArchitecture
            {
                Kind = c.StartsWith("lstm", StringComparison.Ordinal) ? CellKind.Lstm : c.StartsWith("gru", StringComparison.Ordinal) ? CellKind.Gru : CellKind.Rnn,
                HiddenSize = hidden,
                Nonlinearity = c.EndsWith("relu", StringComparison.Ordinal) ? "relu" : "tanh",
            })],
        };
        var net = new TrainingNetwork(architecture, RecurrentModel.CreateRandom(architecture, 11).Tensors) { LabelSmoothing = smoothing };
        TrainingNetwork twin = net.Replica(); // the same weights, gradients of its own
        twin.LabelSmoothing = smoothing;
        var random = new Random(3);
        const int steps = 9;
        float[] inputs = [.. Enumerable.Range(0, count * steps * 3).Select(_ => (float)((random.NextDouble() * 4) - 2))];
        int[] lengths = [.. Enumerable.Range(0, count).Select(b => b == 3 ? 1 : 1 + random.Next(steps))];
        int[] labels = [.. Enumerable.Range(0, count).Select(b => b % 4)];
        for (int b = 0; b < count; b++)
        {
            // Padding after a sequence's end is zeros, as the trainer packs it.
            Array.Clear(inputs, (b * steps * 3) + (lengths[b] * 3), (steps - lengths[b]) * 3);
        }

        var batch = new SequenceBatch(inputs, count, steps, 3, lengths, labels)
        {
            Skip = loss == LossKind.EveryStep ? [.. lengths.Select(n => random.Next(n))] : null,
        };
        float[]? weights = weighted ? [1f, 0.5f, 2f, 1.5f] : null;
        net.ZeroGradients();
        double expected = net.Loss(batch, loss, weights, backward: true, out int expectedCorrect, out int expectedCounted);
        twin.ZeroGradients();
        using IAcceleratedLoss device = AcceleratorSelection.CreateLoss(architecture, kind, new TrainerOptions())
            ?? throw new ArgumentException("give an accelerator, not cpu.", nameof(kind));
        double actual = device.Loss(twin, batch, loss, weights, backward: true, out int correct, out int counted);
        double worst = 0;
        string worstTensor = string.Empty;
        bool allNonZero = true;
        foreach (Parameter p in net.Parameters)
        {
            double d = MaxDifference(p.Gradient, twin[p.Name].Gradient);
            allNonZero &= p.Gradient.Any(g => g != 0);
            if (d >= worst)
            {
                (worst, worstTensor) = (d, p.Name);
            }
        }

        return (Math.Abs(expected - actual), worst, worstTensor, expectedCorrect == correct && expectedCounted == counted, allNonZero);
    }

    private static double MaxDifference(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double worst = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Abs((double)a[i] - b[i]);
            worst = double.IsNaN(d) ? double.PositiveInfinity : Math.Max(worst, d);
        }

        return worst;
    }
}
