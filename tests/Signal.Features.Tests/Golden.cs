using System.Text.Json;

namespace Signal.Features.Tests;

/// <summary>Reads the golden files written by tests/reference/features_reference.py (numpy/scipy).</summary>
internal static class Golden
{
    public static JsonElement Load(string name)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "golden", "features", name + ".json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return doc.RootElement.Clone();
    }

    public static double[] Doubles(this JsonElement e) => [.. e.EnumerateArray().Select(x => x.GetDouble())];

    public static float[] Floats(this JsonElement e) => [.. e.EnumerateArray().Select(x => (float)x.GetDouble())];

    public static double[][] Matrix(this JsonElement e) => [.. e.EnumerateArray().Select(Doubles)];

    /// <summary>Asserts |actual - expected| ≤ abs + rel·|expected| element-wise, naming the first index that fails.</summary>
    public static void Close(ReadOnlySpan<double> expected, ReadOnlySpan<float> actual, double abs, double rel, string what)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: length {actual.Length}, expected {expected.Length}");
        for (int i = 0; i < expected.Length; i++)
        {
            double tol = abs + (rel * Math.Abs(expected[i]));
            Assert.True(Math.Abs(actual[i] - expected[i]) <= tol,
                $"{what}[{i}]: got {actual[i]:R}, expected {expected[i]:R} (tolerance {tol:G3})");
        }
    }

    public static void Close(double expected, double actual, double abs, double rel, string what) =>
        Assert.True(Math.Abs(actual - expected) <= abs + (rel * Math.Abs(expected)),
            $"{what}: got {actual:R}, expected {expected:R}");
}
