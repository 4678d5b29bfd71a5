using System.Text.Json.Nodes;
using Xunit;

namespace Signal.Edge.Tests;

/// <summary><c>signal-edge selftest</c> against the committed golden files, and against a copy with wrong values.</summary>
[Collection("console")]
public sealed class SelfTestTests
{
    private static string GoldenFolder() => Repository.Path("tests", "reference", "golden");

    private static (int Code, string Output) Run(string golden)
    {
        var output = new StringWriter();
        TextWriter original = Console.Out;
        Console.SetOut(output);
        try
        {
            return (Program.Main(["selftest", "--golden", golden]), output.ToString());
        }
        finally
        {
            Console.SetOut(original);
        }
    }

    [Fact]
    public void Every_kernel_matches_the_committed_goldens()
    {
        (int code, string output) = Run(GoldenFolder());
        Assert.True(code == 0, output);
        Assert.Matches(@"\n(1[5-9]|[2-9]\d) passed, 0 failed", output);
        Assert.Contains("passed: real FFT matches numpy.fft.rfft (10 lengths", output, StringComparison.Ordinal);
        Assert.Contains("passed: lstm_40x64 stepped and batched matches PyTorch", output, StringComparison.Ordinal);
        Assert.Contains("passed: gru_3x20 imported from ONNX matches PyTorch", output, StringComparison.Ordinal);
    }

    [Fact]
    public void A_wrong_golden_value_fails_its_check_by_name_and_the_command()
    {
        string copy = Directory.CreateTempSubdirectory("signal-selftest-").FullName;
        try
        {
            string source = GoldenFolder();
            foreach (string file in Directory.GetFiles(source, "*", SearchOption.AllDirectories))
            {
                string target = Path.Combine(copy, Path.GetRelativePath(source, file));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(file, target);
            }

            // One FFT bin off by 0.01 and one PyTorch probability off by 1e-4 (ten times the bound).
            string fftPath = Path.Combine(copy, "features", "fft.json");
            JsonNode fft = JsonNode.Parse(File.ReadAllText(fftPath))!;
            JsonNode bin = fft["cases"]![0]!["real"]![3]!;
            fft["cases"]![0]!["real"]![3] = bin.GetValue<double>() + 0.01;
            File.WriteAllText(fftPath, fft.ToJsonString());
            string probabilities = Path.Combine(copy, "models", "gru_3x20.probabilities.f32");
            byte[] bytes = File.ReadAllBytes(probabilities);
            float p = BitConverter.ToSingle(bytes, 40);
            BitConverter.GetBytes(p + 1e-4f).CopyTo(bytes, 40);
            File.WriteAllBytes(probabilities, bytes);

            (int code, string output) = Run(copy);
            Assert.Equal(1, code);
            Assert.Contains("FAILED: real FFT matches numpy.fft.rfft: N=16 real[3]", output, StringComparison.Ordinal);
            Assert.Contains("FAILED: gru_3x20 stepped and batched matches PyTorch: stepped[10]", output, StringComparison.Ordinal);
            Assert.Contains("FAILED: gru_3x20 imported from ONNX matches PyTorch", output, StringComparison.Ordinal);
            Assert.Matches(@"\n\d+ passed, 3 failed", output);
        }
        finally
        {
            Directory.Delete(copy, recursive: true);
        }
    }
}
