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

/// <summary>Constant folding of Slice by ONNX's rules, negative steps included (exporters reverse pad lists that way).</summary>
public sealed class SliceFoldingTests
{
    private static double[] Slice(double[] values, double start, double end, double step)
    {
        var node = new Signal.Models.Onnx.OnnxNode { OpType = "Slice", Name = "s" };
        node.Inputs.AddRange(["x", "starts", "ends", "axes", "steps"]);
        Signal.Models.Onnx.ConstTensor[] inputs =
        [
            new([values.Length], values), Signal.Models.Onnx.ConstTensor.Vector(start), Signal.Models.Onnx.ConstTensor.Vector(end),
            Signal.Models.Onnx.ConstTensor.Vector(0), Signal.Models.Onnx.ConstTensor.Vector(step),
        ];
        return Signal.Models.Onnx.ConstFolding.Evaluate(node, i => inputs[i]).Data;
    }

    [Theory]
    // numpy: x[start:end:step] for x = [0 … 5]; ONNX's "to the start" end is INT64_MIN.
    [InlineData(-1, -9.223372036854775807e18, -1, new double[] { 5, 4, 3, 2, 1, 0 })]
    [InlineData(4, 1, -1, new double[] { 4, 3, 2 })]
    [InlineData(5, 0, -2, new double[] { 5, 3, 1 })]
    [InlineData(10, -10, -3, new double[] { 5, 2 })]
    [InlineData(1, 5, 2, new double[] { 1, 3 })]
    [InlineData(0, 100, 1, new double[] { 0, 1, 2, 3, 4, 5 })]
    [InlineData(3, 1, 1, new double[0])]
    public void Slices_follow_onnx_and_numpy(double start, double end, double step, double[] expected) =>
        Assert.Equal(expected, Slice([0, 1, 2, 3, 4, 5], start, end, step));

    [Fact]
    public void A_step_of_zero_is_refused() =>
        Assert.Throws<Signal.Models.Onnx.OnnxImportException>(() => Slice([0, 1, 2], 0, 2, 0));
}
