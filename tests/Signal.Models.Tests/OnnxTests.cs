using Signal.Models.Networks;
using Signal.Models.Onnx;

namespace Signal.Models.Tests;

/// <summary>Networks exported by torch.onnx.export (tests/reference/models_reference.py), imported and run against PyTorch.</summary>
public sealed class OnnxTests
{
    public static TheoryData<string> Exported => [.. GoldenModel.Names.Where(n => GoldenModel.Load(n).HasOnnx)];

    [Theory]
    [MemberData(nameof(Exported))]
    public void Models_exported_by_pytorch_import_and_match_its_outputs(string name)
    {
        GoldenModel golden = GoldenModel.Load(name);
        RecurrentModel model = OnnxImporter.Import(File.ReadAllBytes(golden.OnnxPath));
        Assert.Equal(golden.Inputs, model.InputSize);
        Assert.Equal(golden.Classes, model.ClassCount);
        float[] probabilities = model.Predict(golden.InputsData, golden.Steps);
        float[] expected = golden.Probabilities;
        if (golden.LastOnly)
        {
            // The graph classifies the last step; the imported head runs at every step, so compare all of them.
            Assert.Equal("true", model.Metadata["signal.onnx.lastStepOnly"]);
        }

        Assertions.Close(expected, probabilities, golden.Classes, 1e-5, name);
        if (model.Architecture.IsStreamable)
        {
            RecurrentState state = model.CreateState();
            float[] stepped = new float[golden.Steps * golden.Classes];
            for (int t = 0; t < golden.Steps; t++)
            {
                model.Step(state, golden.InputsData.AsSpan(t * golden.Inputs, golden.Inputs), stepped.AsSpan(t * golden.Classes, golden.Classes));
            }

            Assertions.Close(expected, stepped, golden.Classes, 1e-5, name + " streamed");
        }
    }

    [Fact]
    public void Imported_weights_equal_the_safetensors_export_of_the_same_network()
    {
        RecurrentModel fromOnnx = OnnxImporter.Import(File.ReadAllBytes(GoldenModel.Load("gru_3x20").OnnxPath));
        RecurrentModel fromTorch = RecurrentModel.Load(GoldenModel.Load("gru_3x20").SafeTensorsPath);
        for (int layer = 0; layer < 3; layer++)
        {
            foreach (string kind in new[] { "weight_ih", "weight_hh", "bias_ih", "bias_hh" })
            {
                Assert.Equal(fromTorch.Tensors[$"rnn.{kind}_l{layer}"].Data, fromOnnx.Tensors[$"layers.{layer}.{kind}_l0"].Data);
            }
        }
    }

    [Fact]
    public void A_file_that_is_not_onnx_is_refused_clearly()
    {
        var e = Assert.Throws<OnnxImportException>(() => OnnxImporter.Import([1, 2, 3, 4, 5]));
        Assert.False(string.IsNullOrWhiteSpace(e.Message));
        byte[] good = File.ReadAllBytes(GoldenModel.Load("lstm_1x16").OnnxPath);
        var random = new Random(3);
        for (int trial = 0; trial < 300; trial++)
        {
            byte[] bad = (byte[])good.Clone();
            bad[random.Next(bad.Length)] ^= (byte)(1 << random.Next(8));
            try
            {
                OnnxImporter.Import(bad);
            }
            catch (OnnxImportException)
            {
            }
        }
    }
}

public sealed class OnnxGraphTests
{
    [Fact]
    public void The_pytorch_export_wraps_the_recurrent_op_in_shape_glue_that_the_importer_folds()
    {
        OnnxGraph graph = OnnxGraph.Parse(File.ReadAllBytes(GoldenModel.Load("lstm_1x16").OnnxPath));
        string ops = string.Join(",", graph.Nodes.Select(n => n.OpType));
        Assert.Contains("LSTM", ops, StringComparison.Ordinal);
        Assert.Contains("Shape", ops, StringComparison.Ordinal);
        Console.WriteLine("[onnx ops] lstm_1x16: " + ops);
    }
}
