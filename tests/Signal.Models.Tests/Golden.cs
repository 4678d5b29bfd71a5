using System.Buffers.Binary;
using System.Text.Json;

namespace Signal.Models.Tests;

/// <summary>One network written by tests/reference/models_reference.py (PyTorch, float64 reference outputs).</summary>
internal sealed record GoldenModel(string Name, int Steps, int Inputs, int Classes, int Forecast, bool HasMetadata, bool HasOnnx, bool LastOnly)
{
    public static string Directory => Path.Combine(AppContext.BaseDirectory, "golden", "models");

    public static IEnumerable<string> Names => System.IO.Directory.GetFiles(Directory, "*.json").Select(Path.GetFileNameWithoutExtension).Order()!;

    public string SafeTensorsPath => Path.Combine(Directory, Name + ".safetensors");

    public string OnnxPath => Path.Combine(Directory, Name + ".onnx");

    public static GoldenModel Load(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Directory, name + ".json")));
        JsonElement e = doc.RootElement;
        return new GoldenModel(name, e.GetProperty("steps").GetInt32(), e.GetProperty("inputs").GetInt32(), e.GetProperty("classes").GetInt32(),
            e.GetProperty("forecast").GetInt32(), e.GetProperty("metadata").GetBoolean(), e.GetProperty("onnx").GetBoolean(), e.GetProperty("lastOnly").GetBoolean());
    }

    public float[] InputsData => ReadFloats(Name + ".inputs.f32");

    public float[] Probabilities => ReadFloats(Name + ".probabilities.f32");

    public float[] Forecasts => ReadFloats(Name + ".forecasts.f32");

    private static float[] ReadFloats(string file)
    {
        byte[] bytes = File.ReadAllBytes(Path.Combine(Directory, file));
        float[] values = new float[bytes.Length / 4];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(4 * i));
        }

        return values;
    }
}

internal static class Assertions
{
    /// <summary>Asserts |actual − expected| ≤ tolerance element-wise, naming the first step and column that fails.</summary>
    public static void Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, int columns, double tolerance, string what)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: {actual.Length} values, expected {expected.Length}");
        double worst = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = Math.Abs(actual[i] - expected[i]);
            worst = Math.Max(worst, d);
            Assert.True(d <= tolerance,
                $"{what}: step {i / columns}, column {i % columns}: got {actual[i]:R}, expected {expected[i]:R} (|Δ| {d:G3} > {tolerance:G3})");
        }
    }
}
