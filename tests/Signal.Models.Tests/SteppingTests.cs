using Signal.Models.Networks;

namespace Signal.Models.Tests;

public sealed class SteppingTests
{
    private static ModelArchitecture Architecture(CellKind kind, int input = 12, int hidden = 24, int layers = 2, int projection = 0, int forecast = 0, string pooling = "none") => new()
    {
        // "mean+conv": mean pooling behind a causal convolutional front end (dilated, with a residual block);
        // "+norm": running input normalisation of 3 raw channels.
        InputNormalization = pooling.Contains("+norm", StringComparison.Ordinal) ? "running" : "none",
        InputChannels = 3,
        NormalizationSamples = 5,
        Convolutions = pooling.EndsWith("+conv", StringComparison.Ordinal)
            ? [new ConvolutionArchitecture { Channels = 10, Kernel = 3, Dilation = 2 }, new ConvolutionArchitecture { Channels = 10, Kernel = 2, Residual = true }]
            : [],
        InputSize = input,
        Classes = 5,
        ForecastSize = forecast,
        Pooling = pooling.Split('+')[0],
        Layers = [.. Enumerable.Range(0, layers).Select(i => new LayerArchitecture { Kind = kind, HiddenSize = hidden, ProjectionSize = projection, LayerNorm = i == 1 })],
    };

    public static TheoryData<CellKind, int, string> Kinds => new() { { CellKind.Lstm, 0, "none" }, { CellKind.Lstm, 7, "none" }, { CellKind.Gru, 0, "none" }, { CellKind.Rnn, 0, "none" }, { CellKind.Gru, 0, "mean" }, { CellKind.Lstm, 7, "mean" }, { CellKind.Gru, 0, "mean+conv" }, { CellKind.Lstm, 0, "none+conv" }, { CellKind.Gru, 0, "mean+norm" }, { CellKind.Lstm, 0, "none+norm+conv" }, { CellKind.Lstm, 7, "meanmax" }, { CellKind.Gru, 0, "meanmax+conv" } };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void A_batched_step_equals_stepping_each_stream_alone(CellKind kind, int projection, string pooling)
    {
        RecurrentModel model = RecurrentModel.CreateRandom(Architecture(kind, projection: projection, forecast: 12, pooling: pooling), seed: 3);
        const int streams = 37;
        var random = new Random(5);
        RecurrentState[] alone = [.. Enumerable.Range(0, streams).Select(_ => model.CreateState())];
        RecurrentState[] batched = [.. Enumerable.Range(0, streams).Select(_ => model.CreateState())];
        using var stepper = new BatchStepper(model, streams, threads: 2) { ParallelMinimumMultiplyAdds = 0 };
        float[] inputs = new float[streams * 12];
        float[] p1 = new float[5], f1 = new float[12];
        float[] pb = new float[streams * 5], fb = new float[streams * 12];
        for (int step = 0; step < 40; step++)
        {
            // Batches of every size from 1 to all streams, members in a random order.
            int size = 1 + (step % streams);
            int[] members = [.. Enumerable.Range(0, streams).OrderBy(_ => random.Next()).Take(size)];
            RecurrentState[] chosen = [.. members.Select(m => batched[m])];
            for (int j = 0; j < size * 12; j++)
            {
                inputs[j] = (float)random.NextDouble() - 0.5f;
            }

            stepper.Step(chosen, inputs.AsSpan(0, size * 12), pb.AsSpan(0, size * 5), fb.AsSpan(0, size * 12));
            for (int i = 0; i < size; i++)
            {
                model.Step(alone[members[i]], inputs.AsSpan(i * 12, 12), p1, f1);
                Assert.Equal(p1, pb.AsSpan(i * 5, 5).ToArray());
                Assert.Equal(f1, fb.AsSpan(i * 12, 12).ToArray());
                Assert.Equal(alone[members[i]].AsSpan().ToArray(), batched[members[i]].AsSpan().ToArray());
            }
        }
    }

    [Fact]
    public void A_stream_may_appear_only_once_in_a_batched_step_and_nothing_changes_when_refused()
    {
        RecurrentModel model = RecurrentModel.CreateRandom(Architecture(CellKind.Lstm), seed: 1);
        using var stepper = new BatchStepper(model, 8);
        RecurrentState a = model.CreateState(), b = model.CreateState();
        float[] inputs = [.. Enumerable.Range(0, 3 * 12).Select(i => i * 0.01f)];
        var e = Assert.Throws<ArgumentException>(() => stepper.Step([a, b, a], inputs, new float[15]));
        Assert.Contains("appears twice", e.Message, StringComparison.Ordinal);
        Assert.All(a.AsSpan().ToArray().Concat(b.AsSpan().ToArray()), v => Assert.Equal(0f, v));

        inputs[14] = float.NaN;
        var nan = Assert.Throws<ArgumentException>(() => stepper.Step([a, b], inputs.AsSpan(0, 24), new float[10]));
        Assert.Contains("step 1, column 2", nan.Message, StringComparison.Ordinal);
        Assert.All(b.AsSpan().ToArray(), v => Assert.Equal(0f, v));
        Assert.Throws<ArgumentException>(() => stepper.Step(new RecurrentState[9], new float[9 * 12], default));
    }

    [Fact]
    public void Stepping_allocates_nothing_alone_or_batched()
    {
        RecurrentModel model = RecurrentModel.CreateRandom(Architecture(CellKind.Lstm, input: 40, hidden: 64), seed: 2);
        RecurrentState state = model.CreateState();
        float[] input = new float[40], probabilities = new float[5];
        using var stepper = new BatchStepper(model, 256, threads: 2);
        RecurrentState[] states = [.. Enumerable.Range(0, 256).Select(_ => model.CreateState())];
        float[] inputs = new float[256 * 40], outputs = new float[256 * 5];

        // A per-step allocation shows in every block of steps; the runtime's own one-time lazy work (a thread's
        // first blocking wait, say, when other tests load the machine) can show in one block at most.
        AssertSomeBlockAllocatesNothing("one stream", () => model.Step(state, input, probabilities));
        AssertSomeBlockAllocatesNothing("small batch", () => stepper.Step(states.AsSpan(0, 3), inputs.AsSpan(0, 120), outputs.AsSpan(0, 15)));
        AssertSomeBlockAllocatesNothing("two-thread batch", () => stepper.Step(states, inputs, outputs));
    }

    private static void AssertSomeBlockAllocatesNothing(string what, Action step)
    {
        step();
        long[] blocks = new long[3];
        for (int b = 0; b < blocks.Length; b++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 20; i++)
            {
                step();
            }

            blocks[b] = GC.GetAllocatedBytesForCurrentThread() - before;
        }

        Assert.True(blocks.Min() == 0, $"{what}: every block of 20 steps allocated ({string.Join(", ", blocks)} bytes)");
    }

    [Fact]
    public void A_state_round_trips_through_bytes_and_is_refused_by_another_architecture()
    {
        RecurrentModel model = RecurrentModel.CreateRandom(Architecture(CellKind.Lstm), seed: 4);
        RecurrentState state = model.CreateState();
        float[] probabilities = new float[5];
        model.Step(state, [.. Enumerable.Range(0, 12).Select(i => (float)i)], probabilities);
        byte[] bytes = state.ToBytes();
        RecurrentState restored = RecurrentState.FromBytes(model, bytes);
        Assert.Equal(state.AsSpan().ToArray(), restored.AsSpan().ToArray());
        Assert.Contains(state.AsSpan().ToArray(), v => v != 0f);

        RecurrentModel other = RecurrentModel.CreateRandom(Architecture(CellKind.Gru), seed: 4);
        Assert.Contains("another architecture", Assert.Throws<FormatException>(() => RecurrentState.FromBytes(other, bytes)).Message, StringComparison.Ordinal);
        Assert.Throws<FormatException>(() => RecurrentState.FromBytes(model, bytes.AsSpan(0, bytes.Length - 1)));
        Assert.Throws<ArgumentException>(() => other.Step(state, new float[12], new float[5]));

        restored.Reset();
        Assert.All(restored.AsSpan().ToArray(), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Mean_pooling_stepped_equals_offline_and_the_training_networks_loss()
    {
        // The head sees [h_t, mean of h_1..h_t]: stepping, the offline pass and the training network must agree.
        ModelArchitecture Plain(string pooling) => new()
        {
            InputSize = 3,
            Classes = 5,
            ForecastSize = 3,
            Pooling = pooling,
            Layers = [new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = 6 }, new LayerArchitecture { Kind = CellKind.Lstm, HiddenSize = 5 }],
        };
        ModelArchitecture architecture = Plain("mean");
        RecurrentModel model = RecurrentModel.CreateRandom(architecture, seed: 4);
        Assert.Equal(model.Architecture.FeatureSize * 2, model.Tensors[architecture.HeadPrefix + ".weight"].Shape[1]);
        var random = new Random(2);
        float[] sequence = [.. Enumerable.Range(0, 9 * 3).Select(_ => (float)random.NextDouble() - 0.5f)];
        float[] offline = new float[9 * 5], offlineForecast = new float[9 * 3];
        model.Predict(sequence, 9, offline, offlineForecast);
        RecurrentState state = model.CreateState();
        float[] p = new float[5], f = new float[3];
        for (int t = 0; t < 9; t++)
        {
            model.Step(state, sequence.AsSpan(t * 3, 3), p, f);
            for (int c = 0; c < 5; c++)
            {
                Assert.Equal(offline[(t * 5) + c], p[c], 5);
            }

            for (int j = 0; j < 3; j++)
            {
                Assert.Equal(offlineForecast[(t * 3) + j], f[j], 5);
            }
        }

        // The training network's loss is the cross-entropy of the same probabilities at the last step.
        float[] last = model.Predict(sequence, 9)[^5..];
        var network = new Signal.Models.Training.TrainingNetwork(architecture, model.Tensors) { ForecastWeight = 0 }; // the classification loss alone
        var batch = new Signal.Models.Training.SequenceBatch(sequence, 1, 9, 3, [9], [2]);
        double loss = network.Loss(batch, Signal.Models.Training.LossKind.LastStep, null, backward: false, out _, out _);
        Assert.Equal(-Math.Log(last[2]), loss, 5);

        // In the model file and the state's fingerprint.
        string path = Path.Combine(Path.GetTempPath(), $"pooled-{Guid.NewGuid():N}.sigm");
        model.Save(path);
        RecurrentModel loaded = RecurrentModel.Load(path);
        File.Delete(path);
        Assert.Equal("mean", loaded.Architecture.Pooling);
        Assert.Equal(model.Predict(sequence, 9), loaded.Predict(sequence, 9));
        Assert.NotEqual(Plain("none").StateFingerprint(), architecture.StateFingerprint());
        Assert.Throws<ModelFormatException>(() => new ModelArchitecture { InputSize = 3, Classes = 2, Pooling = "max", Layers = [new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = 4 }] }.Validate());
    }

    [Fact]
    public void The_pooled_maximum_is_the_exact_maximum_up_to_N_steps_then_sinks_towards_the_mean()
    {
        // One GRU layer: its output is its hidden state, the first values of the stream state; then the pooled mean,
        // the count and the pooled maximum. The expected maximum is computed here in double precision from the outputs.
        const int n = 4, hidden = 5;
        var architecture = new ModelArchitecture
        {
            InputSize = 2,
            Classes = 3,
            Pooling = "meanmax",
            PoolingSteps = n,
            Layers = [new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = hidden }],
        };
        RecurrentModel model = RecurrentModel.CreateRandom(architecture, seed: 6);
        Assert.Equal((3 * hidden) + 1, model.StateSize);
        Assert.Equal(3 * hidden, model.Tensors[architecture.HeadPrefix + ".weight"].Shape[1]);
        Assert.NotEqual(new ModelArchitecture { InputSize = 2, Classes = 3, Pooling = "mean", PoolingSteps = n, Layers = architecture.Layers }.StateFingerprint(), architecture.StateFingerprint());
        RecurrentState state = model.CreateState();
        var random = new Random(9);
        const int steps = 14;
        float[] sequence = new float[steps * 2];
        double[] max = new double[hidden], highest = Enumerable.Repeat(double.MinValue, hidden).ToArray();
        var p = new float[3];
        for (int t = 1; t <= steps; t++)
        {
            // High inputs first, then a lower level: the maximum must come down after N steps.
            float[] x = [(float)random.NextDouble() + (t <= 3 ? 2f : -2f), (float)random.NextDouble()];
            x.CopyTo(sequence, (t - 1) * 2);
            model.Step(state, x, p);
            float[] values = state.AsSpan().ToArray();
            for (int j = 0; j < hidden; j++)
            {
                double h = values[j], mean = values[hidden + j];
                highest[j] = Math.Max(highest[j], h);
                max[j] = t == 1 ? h : t <= n ? Math.Max(h, max[j]) : Math.Max(h, max[j] + ((mean - max[j]) / n));
                Assert.Equal(max[j], values[(2 * hidden) + 1 + j], 5);
            }

            Assert.Equal(t, values[2 * hidden]);
        }

        // It came down: below the largest output ever seen for at least one unit.
        Assert.True(Enumerable.Range(0, hidden).Any(j => max[j] < highest[j] - 0.05), "the maximum never sank below the highest output");

        // The offline pass agrees with the stepped one.
        float[] offline = model.Predict(sequence, steps);
        for (int c = 0; c < 3; c++)
        {
            Assert.Equal(offline[offline.Length - 3 + c], p[c], 1e-5);
        }

        // In the model file.
        string path = Path.Combine(Path.GetTempPath(), $"maxpooled-{Guid.NewGuid():N}.sigm");
        model.Save(path);
        RecurrentModel loaded = RecurrentModel.Load(path);
        File.Delete(path);
        Assert.Equal("meanmax", loaded.Architecture.Pooling);
        Assert.Equal(offline, loaded.Predict(sequence, steps));
    }

    [Fact]
    public void A_bounded_pooling_mean_is_the_exact_mean_up_to_N_steps_then_an_exponential_average()
    {
        // One GRU layer: its output is its hidden state, the first values of the stream state; the pooled mean and the
        // count follow. The expected mean is computed here in double precision from those outputs.
        const int n = 4, hidden = 5;
        var architecture = new ModelArchitecture
        {
            InputSize = 2,
            Classes = 3,
            Pooling = "mean",
            PoolingSteps = n,
            Layers = [new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = hidden }],
        };
        RecurrentModel model = RecurrentModel.CreateRandom(architecture, seed: 6);
        Assert.Equal((2 * hidden) + 1, model.StateSize);
        RecurrentModel unbounded = RecurrentModel.CreateRandom(new ModelArchitecture
        {
            InputSize = 2,
            Classes = 3,
            Pooling = "mean",
            Layers = [new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = hidden }],
        }, seed: 6);
        RecurrentState state = model.CreateState(), other = unbounded.CreateState();
        var random = new Random(9);
        double[] expected = new double[hidden];
        var p = new float[3];
        var q = new float[3];
        for (int t = 1; t <= 12; t++)
        {
            // A level change half way: the bounded mean must follow it.
            float[] x = [(float)random.NextDouble() + (t > 6 ? 3f : 0f), (float)random.NextDouble()];
            model.Step(state, x, p);
            unbounded.Step(other, x, q);
            float[] values = state.AsSpan().ToArray();
            double weight = 1.0 / Math.Min(t, n);
            for (int j = 0; j < hidden; j++)
            {
                expected[j] += weight * (values[j] - expected[j]);
                Assert.Equal(expected[j], values[hidden + j], 5);
            }

            Assert.Equal(t, values[2 * hidden]);
            if (t <= n)
            {
                // Up to N steps the bounded and the unbounded mean are the same mean: the same classes.
                Assert.Equal(q, p);
            }
        }

        // After the change the unbounded mean still remembers the first half; the bounded one has moved on.
        float[] last = state.AsSpan().ToArray(), lastOther = other.AsSpan().ToArray();
        double boundedDistance = 0, unboundedDistance = 0;
        for (int j = 0; j < hidden; j++)
        {
            boundedDistance += Math.Abs(last[hidden + j] - last[j]);
            unboundedDistance += Math.Abs(lastOther[hidden + j] - lastOther[j]);
        }

        Assert.True(boundedDistance < unboundedDistance, $"bounded {boundedDistance}, unbounded {unboundedDistance}");
        Assert.NotEqual(unbounded.Architecture.StateFingerprint(), architecture.StateFingerprint());
        Assert.Throws<ModelFormatException>(() => new ModelArchitecture { InputSize = 3, Classes = 2, Pooling = "mean", PoolingSteps = -1, Layers = [new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = 4 }] }.Validate());
    }
}

/// <summary>The front end's cost is counted, and a user's model can be benchmarked (<c>bench models --model</c>).</summary>
public sealed class FrontEndCostTests
{
    [Fact]
    public void The_convolutions_multiply_adds_are_counted_and_the_benchmark_measures_a_given_model_without_allocating()
    {
        var withConvolution = new ModelArchitecture
        {
            InputSize = 3,
            Classes = 2,
            Convolutions = [new ConvolutionArchitecture { Channels = 4, Kernel = 2, Dilation = 3 }],
            Layers = [new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = 5 }],
        };
        var without = new ModelArchitecture { InputSize = 4, Classes = 2, Layers = [new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = 5 }] };
        RecurrentModel model = RecurrentModel.CreateRandom(withConvolution, seed: 1);
        Assert.Equal(RecurrentModel.CreateRandom(without, seed: 1).MultiplyAddsPerStep + (4 * 2 * 3), model.MultiplyAddsPerStep);

        Signal.Models.Diagnostics.BenchmarkCase measured = Signal.Models.Diagnostics.ModelBenchmark.Measure("tiny", model, 64, 1, TimeSpan.FromMilliseconds(50), peak: 1e9);
        Assert.Equal(64, measured.Streams);
        Assert.Equal(2 * model.MultiplyAddsPerStep, measured.FlopsPerStream);
        Assert.True(measured.MicrosecondsPerStep > 0);
        Assert.Equal(0, measured.AllocatedBytesPerStep);
    }
}

/// <summary>Running input normalisation (<see cref="ModelArchitecture.InputNormalization"/>) against a computation of its own.</summary>
public sealed class RunningNormalizationTests
{
    private static ModelArchitecture Architecture(int reach) => new()
    {
        InputSize = 6, // 3 samples of 2 channels per step
        Classes = 3,
        ForecastSize = 6,
        InputNormalization = "running",
        InputChannels = 2,
        NormalizationSamples = reach,
        Convolutions = [new ConvolutionArchitecture { Channels = 4, Kernel = 2 }],
        Layers = [new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = 5 }],
    };

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    public void The_statistics_are_the_exact_mean_and_variance_up_to_the_reach_then_exponential(int reach)
    {
        RecurrentModel model = RecurrentModel.CreateRandom(Architecture(reach), seed: 2);
        RecurrentState state = model.CreateState();
        var random = new Random(3);
        var samples = new List<double>[] { [], [] };
        double[] mean = new double[2], variance = new double[2];
        var p = new float[3];
        for (int t = 0; t < 8; t++)
        {
            float[] x = [.. Enumerable.Range(0, 6).Select(j => (float)((random.NextDouble() * (j % 2 == 0 ? 1 : 5)) + (j % 2 == 0 ? 10 : -3)))];
            model.Step(state, x, p);
            for (int j = 0; j < 6; j++)
            {
                int c = j % 2;
                samples[c].Add(x[j]);
                int n = samples[c].Count;
                if (reach == 0 || n <= reach)
                {
                    mean[c] = samples[c].Average();
                    variance[c] = samples[c].Select(v => (v - mean[c]) * (v - mean[c])).Average(); // population variance
                }
                else
                {
                    double w = 1.0 / reach, delta = x[j] - mean[c];
                    mean[c] += w * delta;
                    variance[c] = (1 - w) * (variance[c] + (w * delta * delta));
                }
            }

            // The statistics sit right after the recurrent state (no pooling): mean, variance, count per channel.
            ReadOnlySpan<float> stats = state.AsSpan().Slice(5, 6);
            for (int c = 0; c < 2; c++)
            {
                Assert.Equal(mean[c], stats[3 * c], 3);
                Assert.Equal(variance[c], stats[(3 * c) + 1], Math.Max(1e-3, variance[c] * 1e-4));
                Assert.Equal(samples[c].Count, stats[(3 * c) + 2]);
            }
        }
    }

    [Fact]
    public void Stepped_equals_offline_and_the_training_networks_loss_and_the_normalised_copy_ignores_level_and_scale()
    {
        ModelArchitecture architecture = Architecture(0);
        RecurrentModel model = RecurrentModel.CreateRandom(architecture, seed: 5);
        var random = new Random(7);
        float[] sequence = [.. Enumerable.Range(0, 9 * 6).Select(_ => (float)random.NextDouble())];
        float[] offline = model.Predict(sequence, 9);
        RecurrentState state = model.CreateState();
        var p = new float[3];
        for (int t = 0; t < 9; t++)
        {
            model.Step(state, sequence.AsSpan(t * 6, 6), p);
            Assert.Equal(offline.AsSpan(t * 3, 3).ToArray(), p);
        }

        var network = new Signal.Models.Training.TrainingNetwork(architecture, model.Tensors) { ForecastWeight = 0 };
        double loss = network.Loss(new Signal.Models.Training.SequenceBatch(sequence, 1, 9, 6, [9], [1]), Signal.Models.Training.LossKind.LastStep, null, backward: false, out _, out _);
        Assert.Equal(-Math.Log(offline[(8 * 3) + 1]), loss, 5);

        // The normalised half is (nearly) the same for a shifted and scaled copy of the sequence: shape, not level.
        Assert.Equal(12, model.Architecture.ConvolutionInputSize(0));
        float[] statsA = new float[6], statsB = new float[6], outA = new float[12], outB = new float[12];
        for (int t = 0; t < 9; t++)
        {
            float[] shifted = [.. sequence.AsSpan(t * 6, 6).ToArray().Select(v => (3 * v) + 5)];
            RecurrentModel.NormalizeStep(architecture, statsA, sequence.AsSpan(t * 6, 6), outA);
            RecurrentModel.NormalizeStep(architecture, statsB, shifted, outB);
            Assert.Equal(sequence.AsSpan(t * 6, 6).ToArray(), outA[..6]);
            Assert.Equal(shifted, outB[..6]);
            for (int j = 6; j < 12; j++)
            {
                Assert.Equal(outA[j], outB[j], 0.02); // equal but for the 1e-4 floor under the variance
            }
        }

        Assert.Throws<ModelFormatException>(() => new ModelArchitecture { InputSize = 5, Classes = 2, InputNormalization = "running", InputChannels = 2, Layers = [new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = 3 }] }.Validate());
        Assert.Throws<ModelFormatException>(() => new ModelArchitecture { InputSize = 4, Classes = 2, InputNormalization = "instance", Layers = [new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = 3 }] }.Validate());
    }
}

public sealed class LargeInputSteppingTests
{
    [Fact]
    public void Very_large_pre_activations_saturate_the_LSTM_gates_instead_of_making_the_cell_state_NaN()
    {
        // Unnormalised features can drive gate pre-activations past ±40. Reference: the LSTM step in double precision,
        // computed here from the tensors (the case once gave NaN cell states on the SIMD path: an overflowing product's
        // refined reciprocal).
        var architecture = new ModelArchitecture { InputSize = 20, Classes = 3, Layers = [new LayerArchitecture { Kind = CellKind.Lstm, HiddenSize = 12 }] };
        RecurrentModel model = RecurrentModel.CreateRandom(architecture, 7);
        var random = new Random(1);
        float[] x = [.. Enumerable.Range(0, 20).Select(_ => (float)((random.NextDouble() * 2) - 1) * 100)];
        RecurrentState state = model.CreateState();
        model.Step(state, x, new float[3]);
        float[] wih = model.Tensors["layers.0.weight_ih_l0"].Data, bih = model.Tensors["layers.0.bias_ih_l0"].Data, bhh = model.Tensors["layers.0.bias_hh_l0"].Data;
        static double Sigmoid(double v) => 1 / (1 + Math.Exp(-v));
        int saturated = 0;
        for (int j = 0; j < 12; j++)
        {
            double[] g = new double[4];
            for (int q = 0; q < 4; q++)
            {
                g[q] = bih[(q * 12) + j] + bhh[(q * 12) + j];
                for (int k = 0; k < 20; k++)
                {
                    g[q] += wih[(((q * 12) + j) * 20) + k] * x[k];
                }
            }

            saturated += g[0] < -40 && g[2] < -20 ? 1 : 0;
            double c = Sigmoid(g[0]) * Math.Tanh(g[2]);
            double h = Sigmoid(g[3]) * Math.Tanh(c);
            Assert.Equal(h, state.AsSpan()[j], 1e-5);
            Assert.Equal(c, state.AsSpan()[12 + j], 1e-5);
        }

        Assert.True(saturated > 0, "no unit reached the overflowing case; the test would not test it");
    }
}
