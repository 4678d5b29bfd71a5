using System.Globalization;
using System.Text.Json;
using Xunit;

namespace Signal.Edge.Tests;

/// <summary>The example files of datasets/examples, each through the command it is for, as datasets/README.md shows.</summary>
[Collection("console")]
public sealed class ExampleFilesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("signal-examples-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Example(string name) => Repository.Path("datasets", "examples", name);

    [Fact]
    public void The_vibration_recording_gives_features_and_the_demo_models_classes()
    {
        string features = Path.Combine(_dir, "features.csv");
        Cli.Output("features", "--input", Example("vibration.csv"), "--rate", "12000", "--features", "rms,mfcc:13", "--output", features);
        string[] rows = File.ReadAllLines(features);
        Assert.StartsWith("frame,time_s,rms,mfcc_0,", rows[0], StringComparison.Ordinal);
        Assert.Equal(1 + ((6000 - 1024) / 512) + 1, rows.Length); // header + every complete frame of 0.5 s at 12 kHz

        string model = Path.Combine(_dir, "demo.sigm"), probabilities = Path.Combine(_dir, "p.csv");
        File.WriteAllBytes(model, Demo.DemoModel.Bundled());
        Cli.Output("infer", "--model", model, "--input", Example("vibration.csv"), "--output", probabilities);
        Assert.Equal(10 + 1, File.ReadAllLines(probabilities).Length);
    }

    [Fact]
    public void The_labelled_machines_train_a_model_that_tells_idle_from_running()
    {
        string model = Path.Combine(_dir, "machines.sigm");
        Cli.Output("train", "--data", Example("machines.csv"), "--epochs", "30", "--ensemble", "1", "--out", model);
        using JsonDocument report = JsonDocument.Parse(Cli.Output("eval", "--model", model, "--data", Example("machines.csv"), "--json"));
        // Not a terminal here: one plain progress line per epoch, no table redrawn at every epoch.
        string output = Cli.Output("train", "--data", Example("machines.csv"), "--epochs", "7", "--ensemble", "1", "--validation", "0", "--out", Path.Combine(_dir, "plain.sigm"));
        string[] epochs = [.. output.Split('\n').Where(l => l.StartsWith("epoch ", StringComparison.Ordinal))];
        Assert.True(Console.IsOutputRedirected);
        Assert.Equal(7, epochs.Length);
        Assert.All(epochs, l => Assert.Matches(@"^epoch [1-7]/7( \*)?  loss \d+\.\d{4}  acc [\d.]+ %  val loss -  val acc -  lr ", l));
        Assert.DoesNotContain("│ epoch", output, StringComparison.Ordinal); // the live table's header

        // The held-out fifth of each class's recordings: one idle, one running.
        Assert.Equal(2, report.RootElement.GetProperty("sequences").GetInt32());
        Assert.Equal(1.0, report.RootElement.GetProperty("accuracy").GetDouble());
    }

    [Fact]
    public void The_temperature_readings_flag_the_level_shift_where_it_starts()
    {
        string scores = Path.Combine(_dir, "scores.csv");
        Cli.Output("detect", "--input", Example("temperature.csv"), "--output", scores);
        string[] flagged = [.. File.ReadAllLines(scores).Skip(1).Where(l => l.Split(',')[2] == "1").Select(l => l.Split(',')[0])];
        Assert.Contains("2026-03-10T14:00:00Z", flagged); // the +4 degree shift, day 8 at 14:00 (make-examples.py)
        Assert.True(flagged.Length <= 2, string.Join(", ", flagged));
    }

    [Fact]
    public void A_file_in_another_commands_layout_is_refused_with_the_layout_this_command_reads()
    {
        (int code, string error) = Cli.Fails("detect", "--input", Example("machines.csv"), "--output", Path.Combine(_dir, "x.csv"));
        Assert.Equal(1, code);
        Assert.Contains("timestamp 'm0' is not ISO 8601", error, StringComparison.Ordinal);
        Assert.Contains("(this command reads CSV 'timestamp,<value>…'", error, StringComparison.Ordinal);

        (code, error) = Cli.Fails("train", "--data", Example("vibration.csv"), "--out", Path.Combine(_dir, "x.sigm"));
        Assert.Equal(1, code);
        Assert.Contains("(this command reads CSV 'recording,timestamp,<channel>…,label'", error, StringComparison.Ordinal);

        (code, error) = Cli.Fails("features", "--input", Example("temperature.csv"), "--rate", "100");
        Assert.Equal(1, code);
        Assert.Contains("line 2, column 1: '2026-03-02T00:00:00Z' is not a number", error, StringComparison.Ordinal);
        Assert.Contains("example: datasets/examples/vibration.csv", error, StringComparison.Ordinal);
    }

    [Fact]
    public void A_budget_searches_the_recipes_and_trains_the_best_one()
    {
        string model = Path.Combine(_dir, "searched.sigm");
        string output = Cli.Output("train", "--data", Example("machines.csv"), "--budget", "60s", "--ensemble", "1", "--epochs", "15", "--out", model);
        string[] judged = [.. output.Split('\n').Where(l => l.StartsWith("  ", StringComparison.Ordinal) && l.Contains("held-out accuracy", StringComparison.Ordinal))];
        Assert.Equal(8, judged.Length); // every recipe of TrainCommand.Recipes, within the budget
        System.Text.RegularExpressions.Match chosen = System.Text.RegularExpressions.Regex.Match(output, @"Recipe: (?<name>[a-z0-9 ]+) \((?<cell>GRU|LSTM) (?<layers>\d)×(?<hidden>\d+),");
        Assert.True(chosen.Success, output);
        Assert.Contains(judged, l => l.StartsWith("  " + chosen.Groups["name"].Value + ":", StringComparison.Ordinal));

        // The model is the chosen recipe's, and says so.
        var network = Signal.Models.Networks.RecurrentModel.Load(model);
        Assert.Equal(int.Parse(chosen.Groups["layers"].Value, CultureInfo.InvariantCulture), network.Architecture.Layers.Count);
        Assert.Equal(int.Parse(chosen.Groups["hidden"].Value, CultureInfo.InvariantCulture), network.Architecture.Layers[0].HiddenSize);
        Assert.Contains("recipe=" + chosen.Groups["name"].Value.Replace(' ', '-'), network.Metadata["signal.provenance"], StringComparison.Ordinal);

        // A budget too short for one recipe keeps the given one.
        output = Cli.Output("train", "--data", Example("machines.csv"), "--budget", "0.001s", "--ensemble", "1", "--epochs", "15", "--out", model);
        Assert.True(output.Contains("No recipe finished within the budget: keeping the given one", StringComparison.Ordinal), output);
        Assert.Contains("Recipe: given (GRU 1×64", output, StringComparison.Ordinal);
        Assert.Equal(1, Cli.Fails("train", "--data", Example("machines.csv"), "--budget", "soon", "--out", model).Code);
    }
}
