using Signal.Models.Networks;

namespace Signal.Models.Accelerators;

/// <summary>One case of <see cref="AcceleratorCheck"/>: the largest differences from the SIMD path.</summary>
/// <param name="Name">The model (cell, sizes, options).</param>
/// <param name="Streams">Streams stepped.</param>
/// <param name="Steps">Batched steps.</param>
/// <param name="ProbabilityError">Largest |p_gpu − p_cpu| over every step and class.</param>
/// <param name="ForecastError">Largest |f_gpu − f_cpu| (0 without a forecasting head).</param>
/// <param name="StateError">Largest difference of the states read back after the last step.</param>
/// <param name="Passed">Every difference within <see cref="AcceleratorCheck.Tolerance"/>.</param>
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

        bool passed = probabilityError <= Tolerance && forecastError <= Tolerance && stateError <= Tolerance;
        return new AcceleratorCheckCase(name, streams, steps, probabilityError, forecastError, stateError, passed);
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
