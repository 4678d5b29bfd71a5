using System.Buffers.Binary;
using System.Globalization;
using Xunit;

namespace Signal.Edge.Tests;

/// <summary>`signal-edge import` and `infer` end to end on a network exported by PyTorch.</summary>
[Collection("console")]
public sealed class ModelCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("signal-edge-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Golden(string file) => Path.Combine(AppContext.BaseDirectory, "golden", "models", file);

    private static float[] Floats(string file)
    {
        byte[] bytes = File.ReadAllBytes(Golden(file));
        return [.. Enumerable.Range(0, bytes.Length / 4).Select(i => BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(4 * i)))];
    }

    [Fact]
    public void An_onnx_model_imported_and_stepped_over_a_csv_gives_pytorchs_probabilities()
    {
        string model = Path.Combine(_dir, "lstm.sigm"), input = Path.Combine(_dir, "sequence.csv"), output = Path.Combine(_dir, "out.csv");
        Assert.Equal(0, Program.Main(["import", "--onnx", Golden("lstm_1x16.onnx"), "--out", model, "--labels", "idle,run,wobble,fault"]));

        float[] inputs = Floats("lstm_1x16.inputs.f32");
        File.WriteAllLines(input, ["a,b,c,d,e,f,g,h", .. inputs.Chunk(8).Select(row => string.Join(",", row.Select(v => v.ToString("R", CultureInfo.InvariantCulture))))]);
        Assert.Equal(0, Program.Main(["infer", "--model", model, "--input", input, "--output", output]));

        string[] lines = File.ReadAllLines(output);
        Assert.Equal("step,idle,run,wobble,fault", lines[0]);
        float[] expected = Floats("lstm_1x16.probabilities.f32");
        Assert.Equal(50 + 1, lines.Length);
        for (int t = 0; t < 50; t++)
        {
            double[] row = [.. lines[t + 1].Split(',').Skip(1).Select(s => double.Parse(s, CultureInfo.InvariantCulture))];
            for (int c = 0; c < 4; c++)
            {
                Assert.True(Math.Abs(row[c] - expected[(t * 4) + c]) < 1e-5, $"step {t} class {c}: {row[c]} vs {expected[(t * 4) + c]}");
            }
        }
    }

    [Fact]
    public void Bad_inputs_give_one_clear_error_line()
    {
        string model = Path.Combine(_dir, "m.sigm"), input = Path.Combine(_dir, "bad.csv");
        Assert.Equal(0, Program.Main(["import", "--onnx", Golden("lstm_1x16.onnx"), "--out", model]));
        File.WriteAllLines(input, ["1,2,3"]);
        var error = new StringWriter();
        TextWriter original = Console.Error;
        Console.SetError(error);
        try
        {
            Assert.Equal(1, Program.Main(["infer", "--model", model, "--input", input]));
            Assert.Equal(1, Program.Main(["import", "--onnx", input, "--out", Path.Combine(_dir, "x.sigm")]));
            Assert.Equal(1, Program.Main(["infer", "--model", Golden("bilstm_2x10.safetensors"), "--input", input]));
        }
        finally
        {
            Console.SetError(original);
        }

        string text = error.ToString();
        Assert.Contains("3 columns; the model takes 8 inputs", text, StringComparison.Ordinal);
        Assert.Contains("error: ", text, StringComparison.Ordinal);
        Assert.Contains("bidirectional", text, StringComparison.Ordinal);
    }

    [Fact]
    public void A_recording_with_one_column_per_channel_is_framed_and_featurised_as_the_engine_does()
    {
        string model = Path.Combine(_dir, "demo.sigm"), input = Path.Combine(_dir, "vibration.csv"), output = Path.Combine(_dir, "out.csv");
        File.WriteAllBytes(model, Demo.DemoModel.Bundled());
        float[] samples = Signal.Engine.Data.SyntheticVibration.Generate(12_000, seconds: 5_000 / 12_000.0, seed: 5).Samples[..5_000];
        File.WriteAllLines(input, ["vib", .. samples.Select(v => v.ToString("R", CultureInfo.InvariantCulture))]);
        Assert.Equal(0, Program.Main(["infer", "--model", model, "--input", input, "--output", output]));

        // The reference: the model's own feature pipeline over the whole recording, then one step per feature row.
        var network = Signal.Models.Networks.RecurrentModel.Load(model);
        var pipeline = new Signal.Features.Pipeline.FeaturePipeline(Signal.Engine.Data.FeatureSequences.SpecOf(network.Metadata)!);
        float[] rows = pipeline.ExtractAll(samples);
        int steps = rows.Length / network.InputSize;
        Assert.Equal(1 + ((5_000 - 1024) / 512), steps);
        var state = network.CreateState();
        var expected = new float[network.ClassCount];
        string[] lines = File.ReadAllLines(output);
        Assert.Equal(steps + 1, lines.Length);
        for (int t = 0; t < steps; t++)
        {
            network.Step(state, rows.AsSpan(t * network.InputSize, network.InputSize), expected);
            float[] got = [.. lines[t + 1].Split(',').Skip(1).Select(v => float.Parse(v, CultureInfo.InvariantCulture))];
            Assert.Equal(expected, got);
        }

        // Six columns fit neither the channels nor the inputs: the error says what the model takes and how it frames.
        File.WriteAllLines(input, ["1,2,3,4,5,6", "1,2,3,4,5,6"]);
        (int code, string error) = Cli.Fails("infer", "--model", model, "--input", input);
        Assert.Equal(1, code);
        Assert.Contains("6 columns; the model takes 39 inputs per step, made from a recording of 1 channel(s) (frames of 1024 samples every 512 → 39 features)", error, StringComparison.Ordinal);
    }
}
