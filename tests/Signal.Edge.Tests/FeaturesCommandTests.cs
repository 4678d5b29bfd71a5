using System.Globalization;
using System.Text.Json;
using Xunit;

namespace Signal.Edge.Tests;

/// <summary>`signal-edge features` end to end: a CSV recording in, a CSV of features out, checked against numpy/scipy.</summary>
[Collection("console")]
public sealed class FeaturesCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("signal-edge-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Features_of_a_csv_recording_match_the_numpy_reference()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "golden", "features", "frames.json")));
        JsonElement g = doc.RootElement;
        string input = Path.Combine(_dir, "signal.csv"), output = Path.Combine(_dir, "features.csv");
        File.WriteAllLines(input, ["vibration", .. g.GetProperty("signal").EnumerateArray().Select(v => ((float)v.GetDouble()).ToString("R", CultureInfo.InvariantCulture))]);

        int code = Program.Main(["features", "--input", input, "--rate", "12000", "--frame", "1024", "--hop", "384",
            "--features", "rms,spectral_centroid,mfcc:13,mel:40", "--output", output]);

        Assert.Equal(0, code);
        string[] lines = File.ReadAllLines(output);
        string[] header = lines[0].Split(',');
        Assert.Equal(["frame", "time_s", "rms", "spectral_centroid", "mfcc_0"], header[..5]);
        Assert.Equal("mel_39", header[^1]);
        JsonElement[] rows = [.. g.GetProperty("rows").EnumerateArray()];
        Assert.Equal(rows.Length + 1, lines.Length);
        for (int r = 0; r < rows.Length; r++)
        {
            double[] v = [.. lines[r + 1].Split(',').Select(s => double.Parse(s, CultureInfo.InvariantCulture))];
            Assert.Equal(r * 384 / 12000.0, v[1], 9);
            Assert.Equal(rows[r].GetProperty("rms").GetDouble(), v[2], 4);
            Assert.True(Math.Abs(rows[r].GetProperty("spectral_centroid").GetDouble() - v[3]) < 0.1, $"row {r} centroid");
            double[] mfcc = [.. rows[r].GetProperty("mfcc").EnumerateArray().Select(x => x.GetDouble())];
            for (int k = 0; k < 13; k++)
            {
                Assert.True(Math.Abs(mfcc[k] - v[4 + k]) < 2e-3 * (1 + Math.Abs(mfcc[k])), $"row {r} mfcc_{k}: {v[4 + k]} vs {mfcc[k]}");
            }
        }
    }

    [Fact]
    public void The_built_in_default_runs_without_arguments_and_saves_its_spec()
    {
        string output = Path.Combine(_dir, "default.csv"), spec = Path.Combine(_dir, "spec.json");
        Assert.Equal(0, Program.Main(["features", "--output", output, "--write-spec", spec]));
        Assert.True(File.ReadAllLines(output).Length > 50);
        string replay = Path.Combine(_dir, "replay.csv");
        Assert.Equal(0, Program.Main(["features", "--spec", spec, "--output", replay]));
        Assert.Equal(File.ReadAllText(output), File.ReadAllText(replay));
    }

    [Fact]
    public void A_bad_flag_fails_with_a_message_naming_the_field()
    {
        var error = new StringWriter();
        TextWriter previous = Console.Error;
        Console.SetError(error);
        try
        {
            Assert.Equal(1, Program.Main(["features", "--hop", "5000", "--output", Path.Combine(_dir, "x.csv")]));
        }
        finally
        {
            Console.SetError(previous);
        }

        Assert.Contains("'hop'", error.ToString(), StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_dir, "x.csv")));
    }

    [Fact]
    public void A_nan_in_a_csv_recording_is_reported_by_its_line_and_channel()
    {
        string path = Path.Combine(_dir, "nan.csv");
        var text = new System.Text.StringBuilder("x,y\n");
        for (int i = 0; i < 3000; i++)
        {
            text.Append(i == 2500 ? "0.5,nan" : "0.5,0.25").Append('\n');
        }

        File.WriteAllText(path, text.ToString());
        (int code, string error) = Cli.Fails("features", "--input", path, "--rate", "1000", "--frame", "256", "--hop", "128", "--output", Path.Combine(_dir, "nan-features.csv"));
        Assert.Equal(1, code);
        Assert.Contains($"'{path}' line 2502, channel 'y': NaN is not a finite number", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Train_refuses_a_data_path_that_does_not_exist()
    {
        (int code, string error) = Cli.Fails("train", "--data", Path.Combine(_dir, "no-such-folder"), "--out", Path.Combine(_dir, "m.sigm"));
        Assert.Equal(1, code);
        Assert.Contains("no-such-folder' does not exist", error, StringComparison.Ordinal);
    }
}
