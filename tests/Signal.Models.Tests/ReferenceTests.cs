using Signal.Models.Networks;

namespace Signal.Models.Tests;

/// <summary>Networks made and run by PyTorch (tests/reference/models_reference.py) against ours, step by step.</summary>
public sealed class ReferenceTests
{
    /// <summary>The bound: per-step probabilities within 1e-5 absolute of PyTorch.</summary>
    private const double Tolerance = 1e-5;

    public static TheoryData<string> Streamable => [.. GoldenModel.Names.Where(n => !n.StartsWith("bi", StringComparison.Ordinal))];

    public static TheoryData<string> All => [.. GoldenModel.Names];

    [Theory]
    [MemberData(nameof(Streamable))]
    public void Stepping_one_input_at_a_time_matches_pytorch(string name)
    {
        GoldenModel golden = GoldenModel.Load(name);
        RecurrentModel model = RecurrentModel.Load(golden.SafeTensorsPath);
        Assert.Equal(golden.Inputs, model.InputSize);
        Assert.Equal(golden.Classes, model.ClassCount);
        RecurrentState state = model.CreateState();
        float[] inputs = golden.InputsData;
        float[] probabilities = new float[golden.Steps * golden.Classes];
        float[] forecasts = new float[golden.Steps * golden.Forecast];
        for (int t = 0; t < golden.Steps; t++)
        {
            model.Step(state, inputs.AsSpan(t * golden.Inputs, golden.Inputs), probabilities.AsSpan(t * golden.Classes, golden.Classes),
                golden.Forecast > 0 ? forecasts.AsSpan(t * golden.Forecast, golden.Forecast) : default);
        }

        Assertions.Close(golden.Probabilities, probabilities, golden.Classes, Tolerance, name);
        if (golden.Forecast > 0)
        {
            Assertions.Close(golden.Forecasts, forecasts, golden.Forecast, 1e-5, name + " forecast");
        }
    }

    [Theory]
    [MemberData(nameof(All))]
    public void Offline_prediction_of_whole_sequences_matches_pytorch(string name)
    {
        GoldenModel golden = GoldenModel.Load(name);
        RecurrentModel model = RecurrentModel.Load(golden.SafeTensorsPath);
        float[] probabilities = model.Predict(golden.InputsData, golden.Steps);
        Assertions.Close(golden.Probabilities, probabilities, golden.Classes, Tolerance, name);
    }

    [Fact]
    public void A_state_dict_without_our_metadata_loads_by_its_pytorch_names()
    {
        RecurrentModel model = RecurrentModel.Load(GoldenModel.Load("lstm_40x64").SafeTensorsPath);
        LayerArchitecture layer = Assert.Single(model.Architecture.Layers);
        Assert.Equal(CellKind.Lstm, layer.Kind);
        Assert.Equal(64, layer.HiddenSize);
        Assert.Equal("rnn", layer.Prefix);
        Assert.Equal(40, model.InputSize);
        Assert.Equal(6, model.ClassCount);

        RecurrentModel bigru = RecurrentModel.Load(GoldenModel.Load("bigru_1x7").SafeTensorsPath);
        Assert.True(bigru.Architecture.Layers[0].Bidirectional);
        Assert.Equal(CellKind.Gru, bigru.Architecture.Layers[0].Kind);
    }

    [Fact]
    public void The_streaming_path_refuses_a_bidirectional_model_with_a_clear_message()
    {
        RecurrentModel model = RecurrentModel.Load(GoldenModel.Load("bilstm_2x10").SafeTensorsPath);
        var e = Assert.Throws<NotSupportedException>(() => model.CreateState());
        Assert.Contains("bidirectional", e.Message, StringComparison.Ordinal);
        Assert.Throws<NotSupportedException>(() => new BatchStepper(model, 4));
    }
}
