using Signal.Models.Networks;

namespace Signal.Models.Tests;

public sealed class EnsembleTests
{
    private static ModelArchitecture Member(CellKind kind, int[] hidden, int projection = 0, string pooling = "mean", int poolingSteps = 4, bool layerNorm = false, int classes = 4, int convChannels = 0) => new()
    {
        Convolutions = convChannels == 0 ? [] : [new ConvolutionArchitecture { Channels = convChannels, Kernel = 3 }, new ConvolutionArchitecture { Channels = convChannels, Kernel = 2, Dilation = 2, Residual = true }],
        InputSize = 3,
        Classes = classes,
        ForecastSize = 3,
        Pooling = pooling,
        PoolingSteps = poolingSteps,
        Layers = [.. hidden.Select(h => new LayerArchitecture { Kind = kind, HiddenSize = h, ProjectionSize = projection, LayerNorm = layerNorm })],
    };

    public static TheoryData<CellKind, int, string, bool> Kinds => new()
    {
        { CellKind.Gru, 0, "mean", false }, { CellKind.Lstm, 2, "mean", false }, { CellKind.Rnn, 0, "none", false }, { CellKind.Lstm, 0, "none", false },
        { CellKind.Gru, 0, "mean", true }, { CellKind.Lstm, 0, "none", true }, { CellKind.Gru, 0, "meanmax", true }, { CellKind.Lstm, 2, "meanmax", false },
    };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void The_ensemble_gives_the_softmax_of_the_members_mean_log_probabilities_and_their_mean_forecast(CellKind kind, int projection, string pooling, bool convolutions)
    {
        // Members of different widths (and front ends of different channels); the expected outputs come from the
        // members run alone, not from the merge.
        int[][] widths = [[6, 5], [4, 3], [5, 4]];
        RecurrentModel[] members = [.. widths.Select((w, k) => RecurrentModel.CreateRandom(Member(kind, w, projection, pooling, convChannels: convolutions ? w[0] - 1 : 0), seed: 10 + k, labels: ["a", "b", "c", "d"]))];
        RecurrentModel ensemble = ModelEnsemble.Merge(members);
        Assert.Equal(3, ModelEnsemble.MemberCount(ensemble));
        Assert.Equal(15, ensemble.Architecture.Layers[0].HiddenSize);
        var random = new Random(4);
        const int steps = 9;
        float[] sequence = [.. Enumerable.Range(0, steps * 3).Select(_ => (float)(random.NextDouble() * 2) - 1)];
        float[] p = new float[steps * 4], f = new float[steps * 3];
        ensemble.Predict(sequence, steps, p, f);
        double[] logSum = new double[steps * 4], forecast = new double[steps * 3];
        foreach (RecurrentModel member in members)
        {
            float[] pm = new float[steps * 4], fm = new float[steps * 3];
            member.Predict(sequence, steps, pm, fm);
            for (int i = 0; i < pm.Length; i++)
            {
                logSum[i] += Math.Log(pm[i]) / members.Length;
            }

            for (int i = 0; i < fm.Length; i++)
            {
                forecast[i] += fm[i] / (double)members.Length;
            }
        }

        for (int t = 0; t < steps; t++)
        {
            double norm = Enumerable.Range(0, 4).Sum(c => Math.Exp(logSum[(t * 4) + c]));
            for (int c = 0; c < 4; c++)
            {
                Assert.Equal(Math.Exp(logSum[(t * 4) + c]) / norm, p[(t * 4) + c], 1e-5); // a tolerance, not rounding to 5 places (two values 1e-8 apart can round apart)
            }

            for (int j = 0; j < 3; j++)
            {
                Assert.Equal(forecast[(t * 3) + j], f[(t * 3) + j], 1e-5);
            }
        }

        // Stepped as the live engine does, one step at a time with the stream's state: the same classes.
        RecurrentState state = ensemble.CreateState();
        float[] step = new float[4];
        for (int t = 0; t < steps; t++)
        {
            ensemble.Step(state, sequence.AsSpan(t * 3, 3), step);
            for (int c = 0; c < 4; c++)
            {
                Assert.Equal(p[(t * 4) + c], step[c], 1e-5);
            }
        }
    }

    [Fact]
    public void Each_member_comes_out_again_through_a_saved_file()
    {
        RecurrentModel[] members = [.. new[] { 7, 4 }.Select((h, k) => RecurrentModel.CreateRandom(Member(CellKind.Gru, [h, 3], convChannels: h - 2), seed: 20 + k))];
        RecurrentModel ensemble = ModelEnsemble.Merge(members);
        string path = Path.Combine(Path.GetTempPath(), $"ensemble-{Guid.NewGuid():N}.sigm");
        ensemble.Save(path);
        RecurrentModel loaded = RecurrentModel.Load(path);
        File.Delete(path);
        Assert.Equal(2, ModelEnsemble.MemberCount(loaded));
        var random = new Random(8);
        float[] sequence = [.. Enumerable.Range(0, 6 * 3).Select(_ => (float)random.NextDouble())];
        for (int k = 0; k < members.Length; k++)
        {
            RecurrentModel member = ModelEnsemble.Member(loaded, k);
            Assert.Equal(1, ModelEnsemble.MemberCount(member));
            Assert.Equal(members[k].Architecture.Layers[0].HiddenSize, member.Architecture.Layers[0].HiddenSize);
            float[] expected = members[k].Predict(sequence, 6), actual = member.Predict(sequence, 6);
            for (int i = 0; i < expected.Length; i++)
            {
                Assert.Equal(expected[i], actual[i], 6);
            }
        }

        Assert.Throws<ArgumentException>(() => ModelEnsemble.Member(loaded, 2));
        Assert.Throws<ArgumentException>(() => ModelEnsemble.Member(members[0], 0));
        Assert.Equal(1, ModelEnsemble.MemberCount(members[0]));
    }

    [Fact]
    public void Members_that_do_not_fit_together_are_refused_by_name()
    {
        RecurrentModel gru = RecurrentModel.CreateRandom(Member(CellKind.Gru, [4]), seed: 1);
        Assert.Contains("classes", Assert.Throws<ArgumentException>(() => ModelEnsemble.Merge([gru, RecurrentModel.CreateRandom(Member(CellKind.Gru, [4], classes: 5), seed: 2)])).Message, StringComparison.Ordinal);
        Assert.Contains("layer 0 is Lstm", Assert.Throws<ArgumentException>(() => ModelEnsemble.Merge([gru, RecurrentModel.CreateRandom(Member(CellKind.Lstm, [4]), seed: 2)])).Message, StringComparison.Ordinal);
        Assert.Contains("layer-normalised", Assert.Throws<ArgumentException>(() => ModelEnsemble.Merge([gru, RecurrentModel.CreateRandom(Member(CellKind.Gru, [4], layerNorm: true), seed: 2)])).Message, StringComparison.Ordinal);
        Assert.Contains("pooling", Assert.Throws<ArgumentException>(() => ModelEnsemble.Merge([gru, RecurrentModel.CreateRandom(Member(CellKind.Gru, [4], poolingSteps: 9), seed: 2)])).Message, StringComparison.Ordinal);
        Assert.Contains("convolutional front end", Assert.Throws<ArgumentException>(() => ModelEnsemble.Merge([gru, RecurrentModel.CreateRandom(Member(CellKind.Gru, [4], convChannels: 3), seed: 2)])).Message, StringComparison.Ordinal);
        Assert.Contains("2 layers", Assert.Throws<ArgumentException>(() => ModelEnsemble.Merge([gru, RecurrentModel.CreateRandom(Member(CellKind.Gru, [4, 4]), seed: 2)])).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => ModelEnsemble.Merge([]));

        // Metadata that does not add up to the architecture is a format error, not a wrong model.
        RecurrentModel ensemble = ModelEnsemble.Merge([gru, gru]);
        var metadata = ensemble.Metadata.ToDictionary(p => p.Key, p => p.Value);
        metadata[ModelEnsemble.MetadataKey] = metadata[ModelEnsemble.MetadataKey].Replace("\"hidden\":[4]", "\"hidden\":[5]", StringComparison.Ordinal);
        RecurrentModel broken = ensemble.WithMetadata(metadata);
        Assert.Contains("add up", Assert.Throws<ModelFormatException>(() => ModelEnsemble.Member(broken, 0)).Message, StringComparison.Ordinal);
        metadata[ModelEnsemble.MetadataKey] = "{";
        Assert.Throws<ModelFormatException>(() => ModelEnsemble.MemberCount(ensemble.WithMetadata(metadata)));
    }
}
