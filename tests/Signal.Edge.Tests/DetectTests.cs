using System.Globalization;
using System.Text.Json;
using Xunit;

namespace Signal.Edge.Tests;

[Collection("console")]
public sealed class DetectTests
{
    /// <summary>Two periodic columns with noise; a level shift at 3000-3060 and a spike at 5200-5203.</summary>
    private static string WriteCsv(int rows = 6000)
    {
        var rng = new Random(1);
        string path = Path.Combine(Directory.CreateTempSubdirectory("signal-detect-").FullName, "machine.csv");
        var lines = new List<string> { "timestamp,temperature,vibration" };
        var start = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        for (int i = 0; i < rows; i++)
        {
            double a = Math.Sin(2 * Math.PI * i / 50) + (0.1 * ((rng.NextDouble() * 2) - 1) * 1.7);
            double b = Math.Cos(2 * Math.PI * i / 80) + (0.1 * ((rng.NextDouble() * 2) - 1) * 1.7);
            a += i is >= 3000 and < 3060 ? 2.5 : 0;
            a += i is >= 5200 and < 5203 ? 8 : 0;
            string stamp = i % 2 == 0 ? start.AddSeconds(i).ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) : start.AddSeconds(i).ToString("O", CultureInfo.InvariantCulture);
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"{stamp},{a:0.#####},{b:0.#####}"));
        }

        File.WriteAllLines(path, lines);
        return path;
    }

    private static (string[] Stamps, double[] Scores, int[] Flags) Read(string path)
    {
        string[] lines = File.ReadAllLines(path);
        Assert.True(lines[0] is "timestamp,score,anomaly" or "timestamp,score,anomaly,evidence", lines[0]);
        string[][] cells = [.. lines.Skip(1).Select(l => l.Split(',', 4))];
        return ([.. cells.Select(c => c[0])], [.. cells.Select(c => double.Parse(c[1], CultureInfo.InvariantCulture))], [.. cells.Select(c => int.Parse(c[2], CultureInfo.InvariantCulture))]);
    }

    [Fact]
    public void Detect_learns_from_the_warm_up_and_flags_the_injected_anomalies_only()
    {
        string csv = WriteCsv();
        string output = Path.Combine(Path.GetDirectoryName(csv)!, "scores.csv");
        string text = Cli.Output("detect", "--input", csv, "--output", output, "--warmup", "2000");
        Assert.Contains("6,000 rows × 2 column(s); learned from the first 2,000", text, StringComparison.Ordinal);
        (string[] stamps, double[] scores, int[] flags) = Read(output);
        Assert.Equal(6000, flags.Length);
        Assert.Equal("2026-01-01 00:00:00", stamps[0]);
        Assert.All(flags.Take(2000), f => Assert.Equal(0, f));
        int[] flagged = [.. Enumerable.Range(0, flags.Length).Where(i => flags[i] == 1)];
        Assert.Contains(flagged, i => i is >= 3000 and < 3060);
        Assert.Contains(flagged, i => i is >= 5200 and < 5215);
        Assert.All(flagged, i => Assert.True(i is (>= 3000 and < 3080) or (>= 5200 and < 5230), $"row {i} flagged outside the anomalies"));
        Assert.True(scores[3010] > 10 * scores[2500]);
    }

    [Fact]
    public void A_row_is_scored_without_looking_at_the_rows_after_it()
    {
        string csv = WriteCsv();
        string folder = Path.GetDirectoryName(csv)!;
        string model = Path.Combine(folder, "detector.sigm");
        Cli.Output("detect", "--input", csv, "--output", Path.Combine(folder, "full.csv"), "--warmup", "2000", "--save-model", model);
        string prefix = Path.Combine(folder, "prefix.csv");
        File.WriteAllLines(prefix, File.ReadAllLines(csv).Take(1 + 3030));
        Cli.Output("detect", "--input", csv, "--model", model, "--output", Path.Combine(folder, "full-model.csv"), "--warmup", "2000");
        Cli.Output("detect", "--input", prefix, "--model", model, "--output", Path.Combine(folder, "prefix-model.csv"), "--warmup", "2000");
        (_, double[] fullScores, int[] fullFlags) = Read(Path.Combine(folder, "full-model.csv"));
        (_, double[] prefixScores, int[] prefixFlags) = Read(Path.Combine(folder, "prefix-model.csv"));
        Assert.Equal(fullScores[..3030], prefixScores);
        Assert.Equal(fullFlags[..3030], prefixFlags);
        Assert.Contains(1, prefixFlags); // the level shift that starts at row 3000 is already flagged with only its first rows seen
        Assert.Equal(Read(Path.Combine(folder, "full.csv")).Flags, fullFlags); // the saved detector is the one the first run used
    }

    [Fact]
    public void Irregular_rows_are_read_in_file_order_with_one_warning_and_every_row_is_scored()
    {
        string csv = WriteCsv(3000);
        string folder = Path.GetDirectoryName(csv)!;
        List<string> lines = [.. File.ReadAllLines(csv)];
        (lines[2001], lines[2002]) = (lines[2002], lines[2001]); // the clock steps back once
        lines[2500] = lines[2500].Split(',')[0] + ",," + lines[2500].Split(',')[2]; // a missing temperature
        lines.Insert(2600, lines[2600]); // a duplicated row
        File.WriteAllLines(csv, lines);
        string output = Path.Combine(folder, "irregular.csv");
        (int code, string warning) = Cli.Fails("detect", "--input", csv, "--output", output, "--warmup", "1000");
        Assert.Equal(0, code);
        Assert.Contains("1 row(s) step back in time (read in file order", warning, StringComparison.Ordinal);
        Assert.Contains("1 duplicated timestamp(s)", warning, StringComparison.Ordinal);
        Assert.Contains("1 missing value(s) interpolated", warning, StringComparison.Ordinal);
        (string[] stamps, _, _) = Read(output);
        Assert.Equal(3001, stamps.Length);
        Assert.Equal(lines[2002].Split(',')[0], stamps[2001]); // file order kept

        (int refused, string error) = Cli.Fails("detect", "--input", csv, "--output", output, "--warmup", "1000", "--order", "reject");
        Assert.Equal(1, refused);
        Assert.Contains("line 2003: timestamp", error, StringComparison.Ordinal);
        Assert.Equal(0, Cli.Fails("detect", "--input", csv, "--output", output, "--warmup", "1000", "--order", "time").Code);
        (string[] sorted, _, _) = Read(output);
        Assert.Equal(lines[2001].Split(',')[0], sorted[2001]);
    }

    [Fact]
    public void Bad_rows_are_refused_naming_the_line_and_column()
    {
        string folder = Directory.CreateTempSubdirectory("signal-detect-bad-").FullName;
        string csv = Path.Combine(folder, "bad.csv");
        File.WriteAllLines(csv, ["timestamp,a", "2026-01-01 00:00:00,1", "2026-01-01 00:00:01,oops"]);
        var error = new StringWriter();
        TextWriter original = Console.Error;
        Console.SetError(error);
        try
        {
            Assert.Equal(1, Program.Main(["detect", "--input", csv, "--output", Path.Combine(folder, "o.csv")]));
            File.WriteAllLines(csv, ["timestamp,a", "yesterday,1", "2026-01-01 00:00:01,2"]);
            Assert.Equal(1, Program.Main(["detect", "--input", csv, "--output", Path.Combine(folder, "o.csv")]));
            Assert.Equal(1, Program.Main(["detect", "--input", WriteCsv(100), "--output", Path.Combine(folder, "o.csv"), "--warmup", "0.1"]));
        }
        finally
        {
            Console.SetError(original);
        }

        Assert.Contains("line 3, column 'a': 'oops' is not a finite number", error.ToString(), StringComparison.Ordinal);
        Assert.Contains("line 2: timestamp 'yesterday' is not ISO 8601", error.ToString(), StringComparison.Ordinal);
        Assert.Contains("--warmup: 10 rows are too few", error.ToString(), StringComparison.Ordinal);
        (int code, string message) = Cli.Fails("detect", "--input", WriteCsv(200), "--output", Path.Combine(folder, "o.csv"), "--threshold", "fixed");
        Assert.Equal(1, code);
        Assert.Contains("--threshold applies to --method forecaster", message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_trained_model_with_features_scores_the_rows_as_samples_and_finds_a_dropout()
    {
        // 10 s of 12 kHz vibration from the demo's generator; the sensor reads 0 from 6 s to 7 s.
        string folder = Directory.CreateTempSubdirectory("signal-detect-model-").FullName;
        string model = Path.Combine(folder, "demo.sigm");
        File.WriteAllBytes(model, Demo.DemoModel.Bundled());
        var samples = new float[120_000];
        new Signal.Engine.Data.VibrationSource(12_000, 901).Next(samples, null);
        Array.Clear(samples, 72_000, 12_000);
        var start = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        string csv = Path.Combine(folder, "vibration.csv");
        File.WriteAllLines(csv, ["timestamp,vibration", .. samples.Select((v, i) => string.Create(CultureInfo.InvariantCulture, $"{start.AddTicks(i * TimeSpan.TicksPerSecond / 12_000):O},{v:R}"))]);
        string output = Path.Combine(folder, "scores.csv");
        Cli.Output("detect", "--input", csv, "--model", model, "--warmup", "0.3", "--output", output, "--method", "forecaster");
        (_, double[] scores, int[] flags) = Read(output);
        Assert.Equal(120_000, flags.Length);
        int[] flagged = [.. Enumerable.Range(0, flags.Length).Where(i => flags[i] == 1)];
        Assert.NotEmpty(flagged);
        Assert.All(flagged, i => Assert.True(i is >= 72_000 and < 90_000, $"row {i} ({i / 12_000.0:0.00} s) flagged outside the dropout"));
        Assert.True(flagged[0] < 72_000 + 12_000 / 2, $"first flag at {flagged[0] / 12_000.0:0.00} s");
        Assert.Equal(0, scores[500]); // before the first 1024-sample frame is complete
    }
}

[Collection("console")]
public sealed class NabEvalTests
{
    /// <summary>
    /// A NAB-style corpus of two files: "spike" holds one window that starts exactly at a jump to 10× the level
    /// (row 1500 of 2,000), "quiet" holds noise and no window. A detector that flags the jump's onset and nothing else
    /// scores exactly 100 on every profile (reward A_TP for the window, no false positive): worked out from NAB's rules,
    /// not from this program.
    /// </summary>
    private static string Corpus()
    {
        string root = Directory.CreateTempSubdirectory("signal-nab-").FullName;
        Directory.CreateDirectory(Path.Combine(root, "data", "synthetic"));
        Directory.CreateDirectory(Path.Combine(root, "labels"));
        var start = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        string Stamp(int i) => start.AddMinutes(5 * i).ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);
        var rng = new Random(7);
        File.WriteAllLines(Path.Combine(root, "data", "synthetic", "spike.csv"),
            ["timestamp,value", .. Enumerable.Range(0, 2000).Select(i => string.Create(CultureInfo.InvariantCulture, $"{Stamp(i)},{(i is >= 1500 and < 1510 ? 100 : 10) + rng.NextDouble():0.###}"))]);
        File.WriteAllLines(Path.Combine(root, "data", "synthetic", "quiet.csv"),
            ["timestamp,value", .. Enumerable.Range(0, 2000).Select(i => string.Create(CultureInfo.InvariantCulture, $"{Stamp(i)},{10 + rng.NextDouble():0.###}"))]);
        File.WriteAllText(Path.Combine(root, "labels", "combined_windows.json"),
            $$"""{ "synthetic/quiet.csv": [], "synthetic/spike.csv": [["{{Stamp(1500)}}.000000", "{{Stamp(1600)}}.000000"]] }""");
        return root;
    }

    [Fact]
    public void Eval_scores_a_nab_style_corpus_with_nab_rules()
    {
        string root = Corpus();
        using JsonDocument doc = JsonDocument.Parse(Cli.Output("eval", "--task", "anomaly", "--data", root, "--json"));
        JsonElement json = doc.RootElement;
        Assert.Equal(2, json.GetProperty("files").GetInt32());
        Assert.Equal(1, json.GetProperty("windows").GetInt32());
        JsonElement spike = json.GetProperty("per_file").EnumerateArray().Single(f => f.GetProperty("file").GetString() == "synthetic/spike.csv");
        Assert.Equal((1, 0), (spike.GetProperty("true_positives").GetInt32(), spike.GetProperty("false_positives").GetInt32()));
        JsonElement quiet = json.GetProperty("per_file").EnumerateArray().Single(f => f.GetProperty("file").GetString() == "synthetic/quiet.csv");
        Assert.Equal(0, quiet.GetProperty("detections").GetInt32());
        foreach (JsonElement profile in json.GetProperty("scores").EnumerateArray())
        {
            Assert.Equal(100.0, profile.GetProperty("score").GetDouble(), 9);
        }

        // Without a scored window the normalised scores are undefined: null in JSON, "-" in the table.
        File.WriteAllText(Path.Combine(root, "labels", "combined_windows.json"), """{ "synthetic/quiet.csv": [] }""");
        using JsonDocument none = JsonDocument.Parse(Cli.Output("eval", "--task", "anomaly", "--data", root, "--json"));
        Assert.All(none.RootElement.GetProperty("scores").EnumerateArray(), p => Assert.Equal(JsonValueKind.Null, p.GetProperty("score").ValueKind));
        File.WriteAllText(Path.Combine(root, "labels", "combined_windows.json"),
            $$"""{ "synthetic/quiet.csv": [], "synthetic/spike.csv": [["{{File.ReadLines(Path.Combine(root, "data", "synthetic", "spike.csv")).ElementAt(1501).Split(',')[0]}}", "{{File.ReadLines(Path.Combine(root, "data", "synthetic", "spike.csv")).ElementAt(1601).Split(',')[0]}}"]] }""");
        string table = Cli.Output("eval", "--task", "anomaly", "--data", root);
        Assert.Contains("synthetic/spike.csv", table, StringComparison.Ordinal);
        Assert.Contains("100.00", table, StringComparison.Ordinal);
    }

    [Fact]
    public void A_clock_that_steps_back_is_read_in_file_order_with_a_warning_or_refused_on_request()
    {
        string root = Corpus();
        string file = Path.Combine(root, "data", "synthetic", "quiet.csv");
        List<string> lines = [.. File.ReadAllLines(file)];
        (lines[900], lines[901]) = (lines[901], lines[900]);
        File.WriteAllLines(file, lines);
        (int code, string error) = Cli.Fails("eval", "--task", "anomaly", "--data", root, "--order", "reject");
        Assert.Equal(1, code);
        Assert.Contains("line 902: timestamp", error, StringComparison.Ordinal);
        (int ok, string warnings) = Cli.Fails("eval", "--task", "anomaly", "--data", root, "--json");
        Assert.Equal(0, ok);
        Assert.Contains("synthetic/quiet.csv': 1 row(s) step back in time (read in file order", warnings, StringComparison.Ordinal);

        // A file that does not read is named with its line, as a plain error: exit 1, no stack trace.
        File.AppendAllLines(file, ["2026-01-09 00:00:00,not-a-number"]);
        (int bad, string error2) = Cli.Fails("eval", "--task", "anomaly", "--data", root);
        Assert.Equal(1, bad);
        Assert.Contains($"line {lines.Count + 1}, column 'value': 'not-a-number' is not a finite number", error2, StringComparison.Ordinal);
        Assert.DoesNotContain("AggregateException", error2, StringComparison.Ordinal);
    }
}
