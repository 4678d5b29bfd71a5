using System.Globalization;
using System.Text.Json;
using Signal.Models.Training;
using Xunit;

namespace Signal.Edge.Tests;

/// <summary>`signal-edge train` and `eval` end to end on small generated data sets in the UCR and UEA layouts.</summary>
[Collection("console")]
public sealed class TrainCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("signal-train-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Two classes of noisy sines (1 and 3 cycles per series), variable length with NaN padding.</summary>
    /// <param name="quiet">Every other series is scaled by this (1: all alike).</param>
    private void WriteUcr(string name, int perClass, int seed, double quiet = 1)
    {
        int row = 0;
        var random = new Random(seed);
        string Row(int label)
        {
            int length = 30 + random.Next(11);
            double phase = random.NextDouble() * Math.PI;
            double scale = row++ % 2 == 0 ? 1 : quiet;
            IEnumerable<string> values = Enumerable.Range(0, 40).Select(t => t < length
                ? (scale * (Math.Sin((2 * Math.PI * (label == 1 ? 1 : 3) * t / 40.0) + phase) + (0.1 * (random.NextDouble() - 0.5)))).ToString("R", CultureInfo.InvariantCulture)
                : "NaN");
            return label.ToString(CultureInfo.InvariantCulture) + "\t" + string.Join("\t", values);
        }

        string folder = Path.Combine(_dir, name);
        Directory.CreateDirectory(folder);
        File.WriteAllLines(Path.Combine(folder, name + "_TRAIN.tsv"), Enumerable.Range(0, 2 * perClass).Select(i => Row(1 + (i % 2))));
        File.WriteAllLines(Path.Combine(folder, name + "_TEST.tsv"), Enumerable.Range(0, 2 * perClass).Select(i => Row(1 + (i % 2))));
    }

    [Fact]
    public void Training_on_a_ucr_folder_learns_the_classes_and_eval_reproduces_the_test_accuracy()
    {
        WriteUcr("Sines", 20, 1);
        string model = Path.Combine(_dir, "sines.sigm");
        Assert.Equal(0, Program.Main(["train", "--data", Path.Combine(_dir, "Sines"), "--out", model, "--hidden", "16", "--epochs", "40", "--seed", "3"]));

        using var doc = JsonDocument.Parse(Cli.Output("eval", "--model", model, "--data", Path.Combine(_dir, "Sines"), "--json"));
        double accuracy = doc.RootElement.GetProperty("accuracy").GetDouble();
        Assert.True(accuracy >= 0.9, $"test accuracy {accuracy}");
        Assert.True(doc.RootElement.GetProperty("macro_f1").GetDouble() >= 0.9);
        Assert.Equal(40, doc.RootElement.GetProperty("sequences").GetInt32());
        Assert.Equal(10, doc.RootElement.GetProperty("accuracy_by_fraction_seen").GetArrayLength());

        // The provenance in the model file records the same test accuracy the streaming evaluation found.
        var loaded = Signal.Models.Networks.RecurrentModel.Load(model);
        using var provenance = JsonDocument.Parse(loaded.Metadata["signal.provenance"]);
        Assert.Equal(accuracy, double.Parse(provenance.RootElement.GetProperty("testAccuracy").GetString()!, CultureInfo.InvariantCulture), 9);
        Assert.Equal(["1", "2"], loaded.Labels);
        Assert.True(loaded.Metadata.ContainsKey("signal.input.normalization"));

        string report = File.ReadAllText(model + ".report.html");
        Assert.Contains("<svg", report, StringComparison.Ordinal);
        Assert.Contains("Confusion matrix", report, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", report, StringComparison.Ordinal);
    }

    [Fact]
    public void An_ensemble_trains_its_members_and_eval_reports_it_and_each_member()
    {
        WriteUcr("Sines", 20, 1);
        string model = Path.Combine(_dir, "ensemble.sigm");
        Assert.Equal(0, Program.Main(["train", "--data", Path.Combine(_dir, "Sines"), "--out", model, "--hidden", "16", "--epochs", "40", "--seed", "3", "--ensemble", "3"]));
        var loaded = Signal.Models.Networks.RecurrentModel.Load(model);
        Assert.Equal(3, Signal.Models.Networks.ModelEnsemble.MemberCount(loaded));
        Assert.Equal(48, loaded.Architecture.Layers[0].HiddenSize);

        using var doc = JsonDocument.Parse(Cli.Output("eval", "--model", model, "--data", Path.Combine(_dir, "Sines"), "--json"));
        Assert.True(doc.RootElement.GetProperty("accuracy").GetDouble() >= 0.9, doc.RootElement.ToString());
        double[] members = [.. doc.RootElement.GetProperty("members").EnumerateArray().Select(m => m.GetProperty("accuracy").GetDouble())];
        Assert.Equal(3, members.Length);

        // Training judged each member alone on the test split too, before merging: eval finds the same accuracies.
        using var provenance = JsonDocument.Parse(loaded.Metadata["signal.provenance"]);
        double[] atTraining = [.. provenance.RootElement.GetProperty("testAccuracyMembers").GetString()!.Split(' ').Select(a => double.Parse(a, CultureInfo.InvariantCulture))];
        Assert.Equal(atTraining, members);

        (int code, string error) = Cli.Fails("train", "--data", Path.Combine(_dir, "Sines"), "--out", model, "--ensemble", "0");
        Assert.Equal(1, code);
        Assert.Contains("--ensemble must be between 1 and 64", error, StringComparison.Ordinal);
    }

    [Fact]
    public void The_scale_spread_is_the_90th_over_the_10th_percentile_of_the_series_rms()
    {
        // Eleven constant series of values 1 … 11 (RMS = value): the 10th percentile is the second (2), the 90th the tenth (10).
        LabeledSequence[] series = [.. Enumerable.Range(1, 11).Select(v => new LabeledSequence([v, v, -v], 3, 0))];
        Assert.Equal(5.0, Commands.TrainCommand.FrontEndOptions.ScaleSpread(series), 12);
        Assert.Equal(1.0, Commands.TrainCommand.FrontEndOptions.ScaleSpread([.. series.Take(1)]), 12);
        LabeledSequence[] silent = [.. series.Select((s, i) => i < 2 ? new LabeledSequence([0, 0, 0], 3, 0) : s)];
        Assert.True(double.IsPositiveInfinity(Commands.TrainCommand.FrontEndOptions.ScaleSpread(silent)));
    }

    [Fact]
    public void Series_whose_scales_spread_over_two_orders_of_magnitude_get_the_running_normalisation_by_default()
    {
        WriteUcr("Alike", 12, 1);
        WriteUcr("Spread", 12, 1, quiet: 1e-3);
        string[] quick = ["--hidden", "8", "--epochs", "2", "--ensemble", "1", "--conv-layers", "0"];
        string Normalization(string set, params string[] extra)
        {
            string model = Path.Combine(_dir, set + extra.Length + ".sigm");
            Assert.Equal(0, Program.Main(["train", "--data", Path.Combine(_dir, set), "--out", model, .. quick, .. extra]));
            return Signal.Models.Networks.RecurrentModel.Load(model).Architecture.InputNormalization;
        }

        Assert.Equal("none", Normalization("Alike"));
        Assert.Equal("running", Normalization("Spread"));
        Assert.Equal("none", Normalization("Spread", "--input-norm", "none"));
        Assert.Equal("running", Normalization("Alike", "--input-norm", "running"));
    }

    [Fact]
    public void A_convolutional_front_end_trains_in_the_model_and_is_refused_where_it_does_not_apply()
    {
        WriteUcr("Sines", 20, 1);
        string model = Path.Combine(_dir, "conv.sigm");
        Assert.Equal(0, Program.Main(["train", "--data", Path.Combine(_dir, "Sines"), "--out", model, "--hidden", "16", "--epochs", "40", "--seed", "3",
            "--ensemble", "2", "--conv-layers", "2", "--conv-channels", "8"]));
        var loaded = Signal.Models.Networks.RecurrentModel.Load(model);
        Assert.Equal([(16, 3, 1, false), (16, 3, 2, true)], loaded.Architecture.Convolutions.Select(c => (c.Channels, c.Kernel, c.Dilation, c.Residual)));
        using var doc = JsonDocument.Parse(Cli.Output("eval", "--model", model, "--data", Path.Combine(_dir, "Sines"), "--json"));
        Assert.True(doc.RootElement.GetProperty("accuracy").GetDouble() >= 0.9, doc.RootElement.ToString());

        (int code, string error) = Cli.Fails("train", "--task", "forecast", "--data", Path.Combine(_dir, "Sines"), "--out", model, "--conv-layers", "2");
        Assert.Equal(1, code);
        Assert.Contains("--conv-layers, --ensemble, --budget and --augment-slice are for classifiers", error, StringComparison.Ordinal);
        (code, error) = Cli.Fails("train", "--data", Path.Combine(_dir, "Sines"), "--out", model, "--conv-layers", "2", "--conv-kernel", "0");
        Assert.Equal(1, code);
        Assert.Contains("--conv-kernel 1 to 64", error, StringComparison.Ordinal);
    }

    [Fact]
    public void A_uea_arff_folder_is_read_channel_by_channel()
    {
        string folder = Path.Combine(_dir, "Tiny");
        Directory.CreateDirectory(folder);
        string[] arff =
        [
            "@relation 'Tiny'", "@attribute series relational", "@attribute t0 numeric", "@end series", "@attribute activity {Rest,Move}", "@data",
            "'1,2,3\\n4,5,6',Rest", "'0,0,1\\n1,1,0',Move",
        ];
        File.WriteAllLines(Path.Combine(folder, "Tiny_TRAIN.arff"), arff);
        File.WriteAllLines(Path.Combine(folder, "Tiny_TEST.arff"), arff);
        var set = Signal.Engine.Data.LabeledDataSet.Load(folder);
        Assert.Equal("uea-arff", set.Format);
        Assert.Equal(2, set.Channels);
        Assert.Equal(["Move", "Rest"], set.ClassNames);
        Assert.Equal([1f, 4f, 2f, 5f, 3f, 6f], set.Train[0].Values);
        Assert.Equal(3, set.Train[0].Steps);

        File.WriteAllLines(Path.Combine(folder, "Tiny_TEST.arff"), [.. arff[..6], "'1,2,3\\n4,5',Rest"]);
        var e = Assert.Throws<InvalidDataException>(() => Signal.Engine.Data.LabeledDataSet.Load(folder));
        Assert.Contains("line 7", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_folder_without_a_data_set_gives_one_clear_error()
    {
        var error = new StringWriter();
        TextWriter original = Console.Error;
        Console.SetError(error);
        try
        {
            Assert.Equal(1, Program.Main(["train", "--data", _dir, "--out", Path.Combine(_dir, "x.sigm")]));
        }
        finally
        {
            Console.SetError(original);
        }

        Assert.Contains("holds no data set", error.ToString(), StringComparison.Ordinal);
    }
}

[Collection("console")]
public sealed class CsvDataSetTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("signal-csv-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Our_csv_layout_is_split_by_recording_and_trains_and_evaluates_with_the_same_split()
    {
        var random = new Random(2);
        var lines = new List<string> { "recording,timestamp,x,y,label" };
        for (int r = 0; r < 30; r++)
        {
            string label = r % 2 == 0 ? "idle" : "spin";
            for (int t = 0; t < 20; t++)
            {
                double x = label == "spin" ? Math.Sin(t * 0.9) : 0.05 * (random.NextDouble() - 0.5);
                double y = label == "spin" ? Math.Cos(t * 0.9) : 0.05 * (random.NextDouble() - 0.5);
                lines.Add(string.Create(CultureInfo.InvariantCulture, $"rec{r},{t * 0.01:F2},{x:R},{y:R},{label}"));
            }
        }

        string csv = Path.Combine(_dir, "motions.csv");
        File.WriteAllLines(csv, lines);
        var set = Signal.Engine.Data.LabeledDataSet.Load(csv, seed: 4);
        Assert.Equal("csv", set.Format);
        Assert.Equal(2, set.Channels);
        Assert.Equal(30, set.Train.Count + set.Test.Count);
        Assert.Equal(6, set.Test.Count); // 20 % of each class's 15 recordings, whole recordings only
        Assert.All(set.Train.Concat(set.Test), s => Assert.Equal(20, s.Steps));
        Assert.Equal(100, set.SampleRate); // from the timestamps; 20 samples are one example each, not long recordings
        Assert.False(set.IsRecordings);

        string model = Path.Combine(_dir, "m.sigm");
        Assert.Equal(0, Program.Main(["train", "--data", csv, "--out", model, "--hidden", "8", "--epochs", "30", "--seed", "4"]));
        using var doc = JsonDocument.Parse(Cli.Output("eval", "--model", model, "--data", csv, "--json"));
        Assert.Equal(6, doc.RootElement.GetProperty("sequences").GetInt32());
        Assert.Equal(1.0, doc.RootElement.GetProperty("accuracy").GetDouble());

        lines[5] = lines[5].Replace("idle", "spin", StringComparison.Ordinal);
        File.WriteAllLines(csv, lines);
        var e = Assert.Throws<InvalidDataException>(() => Signal.Engine.Data.LabeledDataSet.Load(csv));
        Assert.Contains("line 6", e.Message, StringComparison.Ordinal);
        Assert.Contains("changes label", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Long_csv_recordings_take_their_rate_from_the_timestamps_and_train_on_features_by_default()
    {
        // 24 recordings of 5 s at 1 kHz: a 50 Hz tone ("low") or a 200 Hz tone ("high") in noise, each at its own phase.
        var random = new Random(5);
        var start = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        var lines = new List<string> { "recording,timestamp,vibration,label" };
        for (int r = 0; r < 24; r++)
        {
            string label = r % 2 == 0 ? "low" : "high";
            double frequency = label == "low" ? 50 : 200, phase = random.NextDouble() * 6;
            for (int t = 0; t < 5000; t++)
            {
                double v = Math.Sin((2 * Math.PI * frequency * t / 1000) + phase) + (0.3 * (random.NextDouble() - 0.5));
                string stamp = r % 3 == 0 ? start.AddMilliseconds(t).ToString("O", CultureInfo.InvariantCulture) : (t / 1000.0).ToString("0.###", CultureInfo.InvariantCulture);
                lines.Add(string.Create(CultureInfo.InvariantCulture, $"r{r},{stamp},{v:0.#####},{label}"));
            }
        }

        string csv = Path.Combine(_dir, "tones.csv");
        File.WriteAllLines(csv, lines);
        var set = Signal.Engine.Data.LabeledDataSet.Load(csv, seed: 2);
        Assert.Equal(1000, set.SampleRate);
        Assert.True(set.IsRecordings);

        string model = Path.Combine(_dir, "tones.sigm");
        Assert.Equal(0, Program.Main(["train", "--data", csv, "--out", model, "--hidden", "8", "--epochs", "15", "--seed", "2"]));
        Signal.Models.Networks.RecurrentModel trained = Signal.Models.Networks.RecurrentModel.Load(model);
        Signal.Features.Pipeline.FeatureSpec? spec = Signal.Engine.Data.FeatureSequences.SpecOf(trained.Metadata);
        Assert.NotNull(spec);
        Assert.Equal(1000, spec.SampleRate);
        using var doc = JsonDocument.Parse(Cli.Output("eval", "--model", model, "--data", csv, "--json"));
        Assert.Equal(1.0, doc.RootElement.GetProperty("accuracy").GetDouble());

        // Clocks that disagree (recording r1 at 500 Hz) give no rate, and the recordings are examples again.
        static string Slower(string line)
        {
            string[] cells = line.Split(',');
            cells[1] = (2 * double.Parse(cells[1], CultureInfo.InvariantCulture)).ToString("R", CultureInfo.InvariantCulture);
            return string.Join(',', cells);
        }

        File.WriteAllLines(csv, [.. lines.Select(l => l.StartsWith("r1,", StringComparison.Ordinal) ? Slower(l) : l)]);
        Signal.Engine.Data.LabeledDataSet mixed = Signal.Engine.Data.LabeledDataSet.Load(csv, seed: 2);
        Assert.Equal(0, mixed.SampleRate);
        Assert.False(mixed.IsRecordings);
    }
}
