using Signal.Models.Networks;
using Signal.Models.Training;
using Xunit;

namespace Signal.Models.Tests;

/// <summary>Initialisation, truncated BPTT and dropout: the properties each promises.</summary>
public sealed class TrainingOptionTests
{
    private static TrainingNetwork Network(CellKind kind, int hidden, int layers = 1)
    {
        var architecture = new ModelArchitecture
        {
            InputSize = 3,
            Classes = 2,
            Layers = [.. Enumerable.Range(0, layers).Select(_ => new LayerArchitecture { Kind = kind, HiddenSize = hidden })],
        };
        return new TrainingNetwork(architecture, RecurrentModel.CreateRandom(architecture, 1).Tensors);
    }

    [Theory]
    [InlineData(CellKind.Lstm)]
    [InlineData(CellKind.Gru)]
    [InlineData(CellKind.Rnn)]
    public void Xavier_orthogonal_gives_orthogonal_recurrent_blocks_a_forget_bias_of_one_and_is_seeded(CellKind kind)
    {
        TrainingNetwork net = Network(kind, 16);
        Initialization.Apply(net, InitializationKind.XavierOrthogonal, 7);
        int h = 16, gates = net.Architecture.Layers[0].GateCount;
        float[] whh = net["layers.0.weight_hh_l0"].Value;
        for (int g = 0; g < gates; g++)
        {
            for (int a = 0; a < h; a++)
            {
                for (int b = 0; b < h; b++)
                {
                    // (QᵀQ)[a, b] over the gate's block of rows
                    double dot = Enumerable.Range(0, h).Sum(r => (double)whh[(((g * h) + r) * h) + a] * whh[(((g * h) + r) * h) + b]);
                    Assert.Equal(a == b ? 1.0 : 0.0, dot, 5);
                }
            }
        }

        float[] wih = net["layers.0.weight_ih_l0"].Value;
        double bound = Math.Sqrt(6.0 / (h + 3));
        Assert.All(wih, w => Assert.InRange(Math.Abs(w), 0, bound));
        Assert.True(wih.Max(Math.Abs) > 0.8 * bound, "Xavier weights should fill their range");
        float[] bias = net["layers.0.bias_ih_l0"].Value;
        Assert.Equal(kind == CellKind.Lstm ? 16 : 0, bias.Count(b => b == 1f));
        Assert.Equal(gates * h, bias.Count(b => b is 0f or 1f));

        TrainingNetwork again = Network(kind, 16);
        Initialization.Apply(again, InitializationKind.XavierOrthogonal, 7);
        Assert.Equal(net.Parameters.SelectMany(p => p.Value), again.Parameters.SelectMany(p => p.Value));
        Initialization.Apply(again, InitializationKind.XavierOrthogonal, 8);
        Assert.NotEqual(net.Parameters.SelectMany(p => p.Value), again.Parameters.SelectMany(p => p.Value));
    }

    private static float[] Gradient(TrainingNetwork net, SequenceBatch batch, LossKind loss)
    {
        net.ZeroGradients();
        net.Loss(batch, loss, null, backward: true, out _, out _);
        return [.. net.Parameters.SelectMany(p => p.Gradient)];
    }

    [Fact]
    public void Truncated_bptt_equals_full_bptt_when_the_window_covers_the_sequence_and_cuts_the_recurrent_path_otherwise()
    {
        var random = new Random(3);
        float[] x = [.. Enumerable.Range(0, 12 * 3).Select(_ => (float)random.NextDouble())];
        var batch = new SequenceBatch(x, 1, 12, 3, [12], [1]);
        TrainingNetwork net = Network(CellKind.Lstm, 5, layers: 2);
        float[] full = Gradient(net, batch, LossKind.LastStep);
        net.TruncateSteps = 12;
        Assert.Equal(full, Gradient(net, batch, LossKind.LastStep));

        // A shorter window changes the gradient (the exact terms it drops are checked on a linear RNN below).
        net.TruncateSteps = 4;
        float[] truncated = Gradient(net, batch, LossKind.LastStep);
        Assert.NotEqual(full, truncated);
        Assert.All(truncated, g => Assert.True(float.IsFinite(g)));
    }

    [Fact]
    public void Truncated_bptt_of_a_linear_rnn_drops_exactly_the_terms_older_than_the_window()
    {
        // One ReLU RNN unit with positive weights and inputs stays in its linear region: h_t = w·x_t + u·h_(t-1) + b.
        // The last-step loss's gradient for w is Σ_t dL/dh_T · u^(T-t) · x_t; a window of K keeps the K newest terms.
        var architecture = new ModelArchitecture
        {
            InputSize = 1,
            Classes = 2,
            Layers = [new LayerArchitecture { Kind = CellKind.Rnn, HiddenSize = 1, Nonlinearity = "relu" }],
        };
        var net = new TrainingNetwork(architecture, RecurrentModel.CreateRandom(architecture, 1).Tensors);
        net["layers.0.weight_ih_l0"].Value[0] = 0.5f;
        net["layers.0.weight_hh_l0"].Value[0] = 0.8f;
        net["layers.0.bias_ih_l0"].Value[0] = 0.1f;
        net["layers.0.bias_hh_l0"].Value[0] = 0f;
        float[] x = [1f, 2f, 3f, 4f, 5f, 6f];
        var batch = new SequenceBatch(x, 1, 6, 1, [6], [0]);
        double FullTerms(int keep)
        {
            double sum = 0;
            for (int t = 6 - keep; t < 6; t++)
            {
                sum += Math.Pow(0.8, 5 - t) * x[t];
            }

            return sum;
        }

        net.ZeroGradients();
        net.Loss(batch, LossKind.LastStep, null, backward: true, out _, out _);
        double dh = net["layers.0.weight_ih_l0"].Gradient[0] / FullTerms(6);
        net.TruncateSteps = 3;
        net.ZeroGradients();
        net.Loss(batch, LossKind.LastStep, null, backward: true, out _, out _);
        Assert.Equal(dh * FullTerms(3), net["layers.0.weight_ih_l0"].Gradient[0], 5);
    }

    [Fact]
    public void Dropout_changes_only_training_passes_and_training_with_it_is_reproducible()
    {
        var random = new Random(5);
        var data = Enumerable.Range(0, 20).Select(i => new LabeledSequence(
            [.. Enumerable.Range(0, 18).Select(j => (float)((i % 2 == 0 ? Math.Sin(j) : Math.Cos(2 * j)) + (0.1 * random.NextDouble())))], 6, i % 2)).ToList();
        TrainingNetwork net = Network(CellKind.Gru, 8, layers: 2);
        var batch = new SequenceBatch([.. data.Take(4).SelectMany(s => s.Values)], 4, 6, 3, [6, 6, 6, 6], [0, 1, 0, 1]);
        double plain = net.Loss(batch, LossKind.LastStep, null, backward: false, out _, out _);
        net.Dropout = 0.5;
        Assert.Equal(plain, net.Loss(batch, LossKind.LastStep, null, backward: false, out _, out _));
        net.ZeroGradients();
        Assert.NotEqual(plain, net.Loss(batch, LossKind.LastStep, null, backward: true, out _, out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => net.Dropout = 1);

        float[] Train()
        {
            TrainingNetwork n = Network(CellKind.Gru, 8, layers: 2);
            Trainer.Train(n, data, [], new TrainerOptions { Epochs = 5, BatchSize = 4, Dropout = 0.3, Threads = 2, Seed = 4 });
            return [.. n.Parameters.SelectMany(p => p.Value)];
        }

        Assert.Equal(Train(), Train());
    }

    [Fact]
    public void Augmentation_changes_training_reproducibly_whatever_the_thread_count_and_leaves_the_data_alone()
    {
        var random = new Random(6);
        var data = Enumerable.Range(0, 20).Select(i => new LabeledSequence(
            [.. Enumerable.Range(0, 18).Select(j => (float)((i % 2 == 0 ? Math.Sin(j) : Math.Cos(2 * j)) + (0.1 * random.NextDouble())))], 6, i % 2)).ToList();
        float[] original = [.. data.SelectMany(s => s.Values)];

        float[] Train(double scale, double jitter, int threads)
        {
            TrainingNetwork n = Network(CellKind.Gru, 8);
            Trainer.Train(n, data, [], new TrainerOptions { Epochs = 4, BatchSize = 4, AugmentScale = scale, AugmentJitter = jitter, Threads = threads, Seed = 4 });
            return [.. n.Parameters.SelectMany(p => p.Value)];
        }

        float[] plain = Train(0, 0, 1), augmented = Train(0.1, 0.05, 1);
        Assert.NotEqual(plain, augmented);
        Assert.Equal(augmented, Train(0.1, 0.05, 1));
        Assert.Equal(augmented, Train(0.1, 0.05, 2), new ToleranceComparer(1e-5f)); // the draw does not depend on the threads (sums may round differently)
        Assert.NotEqual(augmented, Train(0.1, 0, 1));
        Assert.Equal(original, data.SelectMany(s => s.Values)); // augmented copies, never the training data itself
        Assert.Throws<ArgumentException>(() => new TrainerOptions { AugmentScale = -0.1 }.Validate());
    }

    [Fact]
    public void Window_slicing_keeps_a_random_contiguous_window_of_each_sequence_and_refuses_what_it_cannot_do()
    {
        // Three sequences of 10, 7 and 4 steps (2 inputs), padded to 10; value = step + 100·sequence (+ 0.5 on the second input).
        int[] lengths = [10, 7, 4];
        var inputs = new float[3 * 10 * 2];
        for (int b = 0; b < 3; b++)
        {
            for (int t = 0; t < lengths[b]; t++)
            {
                inputs[(((b * 10) + t) * 2) + 0] = t + (100 * b);
                inputs[(((b * 10) + t) * 2) + 1] = t + (100 * b) + 0.5f;
            }
        }

        var starts = new HashSet<int>();
        for (int seed = 0; seed < 20; seed++)
        {
            var batch = new SequenceBatch((float[])inputs.Clone(), 3, 10, 2, (int[])lengths.Clone(), [0, 1, 0]);
            Trainer.Augment(batch, new Random(seed), 0, 0, 0.5);
            Assert.Equal([5, 4, 2], batch.Lengths); // ⌈0.5 · length⌉
            for (int b = 0; b < 3; b++)
            {
                float first = batch.Inputs[b * 20] - (100 * b);
                Assert.InRange(first, 0, lengths[b] - batch.Lengths[b]);
                starts.Add((int)first);
                for (int t = 0; t < 10; t++)
                {
                    float expected = t < batch.Lengths[b] ? first + t + (100 * b) : 0; // the window, then zeros
                    Assert.Equal(expected, batch.Inputs[((b * 10) + t) * 2]);
                    Assert.Equal(t < batch.Lengths[b] ? expected + 0.5f : 0, batch.Inputs[(((b * 10) + t) * 2) + 1]);
                }
            }
        }

        Assert.True(starts.Count >= 4, "the window's start is drawn at random"); // 0..5 for the first sequence
        Assert.Throws<ArgumentException>(() => new TrainerOptions { AugmentSlice = 1 }.Validate());
        Assert.Throws<ArgumentException>(() => new TrainerOptions { AugmentSlice = -0.1 }.Validate());
    }

    [Fact]
    public void Time_warping_resamples_each_sequence_along_a_monotonic_clock_with_its_ends_fixed()
    {
        // Two ramps (20 and 12 steps, padded to 20), two inputs: t and 10·t, so one clock must move both alike.
        int[] lengths = [20, 12];
        var inputs = new float[2 * 20 * 2];
        for (int b = 0; b < 2; b++)
        {
            for (int t = 0; t < lengths[b]; t++)
            {
                inputs[((b * 20) + t) * 2] = t;
                inputs[(((b * 20) + t) * 2) + 1] = 10 * t;
            }
        }

        double moved = 0;
        for (int seed = 0; seed < 20; seed++)
        {
            var batch = new SequenceBatch((float[])inputs.Clone(), 2, 20, 2, (int[])lengths.Clone(), [0, 1]);
            Trainer.Augment(batch, new Random(seed), 0, 0, 0, 0, 0.3);
            Assert.Equal(lengths, batch.Lengths);
            for (int b = 0; b < 2; b++)
            {
                int n = lengths[b];
                Assert.Equal(0f, batch.Inputs[b * 40]);
                Assert.Equal(n - 1, batch.Inputs[((b * 20) + n - 1) * 2], 4);
                for (int t = 0; t < 20; t++)
                {
                    float x = batch.Inputs[((b * 20) + t) * 2], y = batch.Inputs[(((b * 20) + t) * 2) + 1];
                    if (t >= n)
                    {
                        Assert.Equal(0f, x); // the padding stays empty
                        continue;
                    }

                    Assert.InRange(x, 0f, n - 1);
                    Assert.Equal(10.0 * x, y, 1e-3); // float rounding of the interpolation
                    if (t > 0)
                    {
                        Assert.True(x > batch.Inputs[((b * 20) + t - 1) * 2], $"the clock runs forward (seed {seed}, step {t})");
                    }

                    moved = Math.Max(moved, Math.Abs(x - t));
                }
            }
        }

        Assert.True(moved > 0.5, $"the clock is warped (largest shift {moved:0.00} steps)");
        Assert.Throws<ArgumentException>(() => new TrainerOptions { AugmentTimeWarp = 1 }.Validate());
        Assert.Throws<ArgumentException>(() => new TrainerOptions { AugmentMagnitudeWarp = -0.1 }.Validate());
    }

    [Fact]
    public void Magnitude_warping_multiplies_each_sequence_by_a_smooth_curve_around_one()
    {
        // Constant inputs 1 and 3 over 50 steps: after warping, each step's first input is the curve's gain there.
        var gains = new List<double>();
        for (int seed = 0; seed < 200; seed++)
        {
            float[] inputs = [.. Enumerable.Range(0, 50).SelectMany(_ => new[] { 1f, 3f })];
            var batch = new SequenceBatch(inputs, 1, 50, 2, [50], [0]);
            Trainer.Augment(batch, new Random(seed), 0, 0, 0, 0.2);
            for (int t = 0; t < 50; t++)
            {
                float gain = batch.Inputs[t * 2];
                Assert.Equal(3 * gain, batch.Inputs[(t * 2) + 1], 4); // one gain per step for every input
                Assert.InRange(gain, 0.01f, 2.5f);
                if (t > 0)
                {
                    Assert.True(Math.Abs(gain - batch.Inputs[(t - 1) * 2]) < 0.2, $"the curve is smooth (seed {seed}, step {t})");
                }

                gains.Add(gain);
            }
        }

        Assert.InRange(gains.Average(), 0.97, 1.03);
        double sd = Math.Sqrt(gains.Average(g => (g - 1) * (g - 1)));
        Assert.InRange(sd, 0.1, 0.3); // knots from N(1, 0.2²); between knots the spline averages them somewhat
        Assert.All(Trainer.WarpCurve(new Random(1), 0, 30), g => Assert.Equal(1, g, 12));
    }

    private sealed class ToleranceComparer(float tolerance) : IEqualityComparer<float>
    {
        public bool Equals(float x, float y) => Math.Abs(x - y) <= tolerance;

        public int GetHashCode(float obj) => 0;
    }
}
