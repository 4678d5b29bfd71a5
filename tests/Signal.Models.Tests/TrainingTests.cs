using System.Text.Json;
using Signal.Models.Files;
using Signal.Models.Networks;
using Signal.Models.Training;

namespace Signal.Models.Tests;

/// <summary>Back-propagation and optimisers against PyTorch (tests/reference/training_reference.py, float64 autograd).</summary>
public sealed class TrainingTests
{
    public static TheoryData<string> Cases => [.. Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "golden", "training"), "*.json").Select(f => Path.GetFileNameWithoutExtension(f)).Order()];

    private sealed record Golden(JsonElement Root)
    {
        public static Golden Load(string name)
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "golden", "training", name + ".json")));
            return new Golden(doc.RootElement.Clone());
        }

        public ModelArchitecture Architecture => new()
        {
            InputSize = Root.GetProperty("inputs").GetInt32(),
            Classes = Root.GetProperty("classes").GetInt32(),
            Layers = [.. Root.GetProperty("layers").EnumerateArray().Select(l => new LayerArchitecture
            {
                Kind = l.GetProperty("kind").GetString() switch { "lstm" => CellKind.Lstm, "gru" => CellKind.Gru, _ => CellKind.Rnn },
                Nonlinearity = l.GetProperty("kind").GetString() == "rnn_relu" ? "relu" : "tanh",
                HiddenSize = l.GetProperty("hidden").GetInt32(),
            })],
        };

        public static Dictionary<string, Tensor> Tensors(JsonElement map) => map.EnumerateObject().ToDictionary(
            p => p.Name,
            p => new Tensor(p.Name, [.. p.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32())], [.. p.Value.GetProperty("data").EnumerateArray().Select(v => (float)v.GetDouble())]));

        public SequenceBatch Batch
        {
            get
            {
                int batch = Root.GetProperty("batch").GetInt32(), steps = Root.GetProperty("steps").GetInt32();
                return new SequenceBatch([.. Root.GetProperty("x").EnumerateArray().Select(v => (float)v.GetDouble())], batch, steps, Root.GetProperty("inputs").GetInt32(),
                    [.. Root.GetProperty("lengths").EnumerateArray().Select(v => v.GetInt32())], [.. Root.GetProperty("labels").EnumerateArray().Select(v => v.GetInt32())]);
            }
        }

        public float[]? ClassWeights => Root.GetProperty("classWeights").ValueKind == JsonValueKind.Array
            ? [.. Root.GetProperty("classWeights").EnumerateArray().Select(v => (float)v.GetDouble())]
            : null;

        public LossKind Loss => Root.GetProperty("everyStep").GetBoolean() ? LossKind.EveryStep : LossKind.LastStep;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Loss_and_gradients_match_pytorch_autograd(string name)
    {
        var golden = Golden.Load(name);
        var net = new TrainingNetwork(golden.Architecture, Golden.Tensors(golden.Root.GetProperty("initial")));
        double loss = net.Loss(golden.Batch, golden.Loss, golden.ClassWeights, backward: true, out _, out _);
        Assert.Equal(golden.Root.GetProperty("losses")[0].GetDouble(), loss, 5);
        foreach ((string tensor, Tensor expected) in Golden.Tensors(golden.Root.GetProperty("gradients")))
        {
            Assertions.Close(expected.Data, net[tensor].Gradient, expected.Shape[^1], 2e-6, $"{name} d{tensor}");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Three_optimiser_steps_match_pytorchs_weights(string name)
    {
        var golden = Golden.Load(name);
        var net = new TrainingNetwork(golden.Architecture, Golden.Tensors(golden.Root.GetProperty("initial")));
        Optimizer optimizer = golden.Root.GetProperty("optimizer").GetString() switch
        {
            "adam" => new Adam(0.01),
            "adamw" => new Adam(0.01, weightDecay: 0.1, decoupled: true),
            _ => new Sgd(0.1, momentum: 0.9, weightDecay: 0.01),
        };
        double clip = golden.Root.GetProperty("clip").GetDouble();
        for (int step = 0; step < 3; step++)
        {
            net.ZeroGradients();
            double loss = net.Loss(golden.Batch, golden.Loss, golden.ClassWeights, backward: true, out _, out _);
            Assert.Equal(golden.Root.GetProperty("losses")[step].GetDouble(), loss, 4);
            if (clip > 0)
            {
                Optimizer.ClipGradientNorm(net.Parameters, clip);
            }

            optimizer.Update(net.Parameters);
            foreach ((string tensor, Tensor expected) in Golden.Tensors(golden.Root.GetProperty("after")[step]))
            {
                Assertions.Close(expected.Data, net[tensor].Value, expected.Shape[^1], 2e-5, $"{name} step {step + 1} {tensor}");
            }
        }
    }

    [Theory]
    [InlineData("lstm")]
    [InlineData("gru")]
    [InlineData("rnn")]
    public void Gradients_match_finite_differences(string kind)
    {
        var architecture = new ModelArchitecture
        {
            InputSize = 3,
            Classes = 3,
            Layers = [new LayerArchitecture { Kind = kind switch { "lstm" => CellKind.Lstm, "gru" => CellKind.Gru, _ => CellKind.Rnn }, HiddenSize = 4 }, new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = 3 }],
        };
        var net = new TrainingNetwork(architecture, RecurrentModel.CreateRandom(architecture, seed: 5).Tensors);
        var random = new Random(3);
        var batch = new SequenceBatch([.. Enumerable.Range(0, 2 * 5 * 3).Select(_ => (float)(random.NextDouble() - 0.5))], 2, 5, 3, [5, 3], [1, 2]);
        net.ZeroGradients();
        net.Loss(batch, LossKind.EveryStep, null, backward: true, out _, out _);
        foreach (Parameter p in net.Parameters)
        {
            for (int i = 0; i < p.Value.Length; i += 3)
            {
                float saved = p.Value[i];
                const float h = 1e-2f;
                p.Value[i] = saved + h;
                double up = net.Loss(batch, LossKind.EveryStep, null, backward: false, out _, out _);
                p.Value[i] = saved - h;
                double down = net.Loss(batch, LossKind.EveryStep, null, backward: false, out _, out _);
                p.Value[i] = saved;
                double numeric = (up - down) / (2 * h);
                Assert.True(Math.Abs(numeric - p.Gradient[i]) <= 2e-3 + (2e-2 * Math.Abs(numeric)), $"{kind} {p.Name}[{i}]: analytic {p.Gradient[i]}, numeric {numeric}");
            }
        }
    }
}

public sealed class TrainerTests
{
    private static (ModelArchitecture Architecture, List<LabeledSequence> Data) Problem()
    {
        var random = new Random(4);
        var data = new List<LabeledSequence>();
        for (int i = 0; i < 24; i++)
        {
            int label = i % 2;
            int steps = 8 + random.Next(5);
            float[] values = [.. Enumerable.Range(0, steps * 2).Select(j => (float)((label == 0 ? Math.Sin(j * 0.4) : Math.Cos(j * 1.3)) + (0.1 * random.NextDouble())))];
            data.Add(new LabeledSequence(values, steps, label));
        }

        return (new ModelArchitecture { InputSize = 2, Classes = 2, Layers = [new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = 8 }] }, data);
    }

    [Fact]
    public void Training_is_reproducible_for_a_seed_and_learns_a_separable_problem()
    {
        (ModelArchitecture architecture, List<LabeledSequence> data) = Problem();
        float[] Run()
        {
            var net = new TrainingNetwork(architecture, RecurrentModel.CreateRandom(architecture, 2).Tensors);
            IReadOnlyList<EpochReport> history = Trainer.Train(net, data, [], new TrainerOptions { Epochs = 80, BatchSize = 6, Seed = 9, Threads = 2 });
            Assert.True(history[^1].Accuracy >= 0.9, $"training accuracy {history[^1].Accuracy}");
            return [.. net.Parameters.SelectMany(p => p.Value)];
        }

        Assert.Equal(Run(), Run());
    }

    [Fact]
    public void A_cancelled_run_keeps_the_starting_weights_and_bad_options_are_named()
    {
        (ModelArchitecture architecture, List<LabeledSequence> data) = Problem();
        var net = new TrainingNetwork(architecture, RecurrentModel.CreateRandom(architecture, 2).Tensors);
        float[] before = [.. net.Parameters.SelectMany(p => p.Value)];
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.Empty(Trainer.Train(net, data, [], new TrainerOptions(), cancellationToken: cancelled.Token));
        Assert.Equal(before, net.Parameters.SelectMany(p => p.Value).ToArray());
        Assert.Contains("optimizer", Assert.Throws<ArgumentException>(() => Trainer.Train(net, data, [], new TrainerOptions { Optimizer = "lion" })).Message, StringComparison.Ordinal);
        Assert.Contains("projections", Assert.Throws<NotSupportedException>(() => new TrainingNetwork(
            new ModelArchitecture { InputSize = 2, Classes = 2, Layers = [new LayerArchitecture { HiddenSize = 8, ProjectionSize = 4 }] },
            RecurrentModel.CreateRandom(new ModelArchitecture { InputSize = 2, Classes = 2, Layers = [new LayerArchitecture { HiddenSize = 8, ProjectionSize = 4 }] }, 1).Tensors)).Message, StringComparison.Ordinal);
    }
}
