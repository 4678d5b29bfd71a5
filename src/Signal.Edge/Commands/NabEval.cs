using System.Text.Json.Serialization;
using System.Globalization;
using System.Text.Json;
using Signal.Engine.Data;
using Signal.Engine.Evaluation;
using Spectre.Console;

namespace Signal.Edge.Commands;

/// <summary>
/// <c>signal-edge eval --task anomaly --data &lt;NAB-style folder&gt;</c>: runs the default streaming detector
/// (the one <c>detect</c> and the live engine use) over every labelled file and scores it with NAB v1.1's rules.
/// </summary>
internal static partial class NabEval
{

    public static int Run(string folder, RowOrder order, bool json, bool forecaster)
    {
        IReadOnlyList<NabFile> files = NabBenchmark.Load(folder);
        if (files.Count == 0)
        {
            throw new InvalidDataException($"'{folder}': labels/combined_windows.json names no file.");
        }

        int done = 0;
        Func<TimeSeriesCsv, int, bool[]> detector = !forecaster ? NabBenchmark.DefaultDetector : (series, probation) =>
            DetectCommand.Ensemble(series, probation, DetectCommand.Fit(series.Values, series.Columns, probation, seed: 1)).Flags;
        IReadOnlyList<NabFileResult> results = NabBenchmark.Run(files, detector, order, r =>
        {
            int n = Interlocked.Increment(ref done);
            if (!json)
            {
                Console.Error.WriteLine($"[{n}/{files.Count}] {r.File.Name}: {r.Flags} flag(s), {r.Seconds:0.00} s");
            }
        });
        foreach (string warning in results.Select(r => r.Irregularities.Describe(r.File.Name, order)).OfType<string>())
        {
            Console.Error.WriteLine($"warning: {warning}");
        }

        IReadOnlyList<NabProfile> profiles = NabProfile.All;
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new Report(
                Path.GetFullPath(folder),
                results.Count,
                results.Sum(r => r.Scores[0].Windows),
                [.. profiles.Select((p, i) => new ProfileScore(p.Name, Nullable(NabScore.NormalizedTotal(results.Select(r => r.Scores[i])))))],
                [.. results.GroupBy(r => r.File.Category).Select(g => new CategoryScores(
                    g.Key,
                    [.. profiles.Select((p, i) => new ProfileScore(p.Name, Nullable(NabScore.NormalizedTotal(g.Select(r => r.Scores[i])))))]))],
                [.. results.Select(r => new FileReport(
                    r.File.Name,
                    r.Rows,
                    r.Scores[0].Windows,
                    r.Flags,
                    r.Scores[0].TruePositives,
                    r.Scores[0].FalsePositives,
                    [.. profiles.Select((p, i) => new ProfileRaw(p.Name, r.Scores[i].Raw))],
                    r.Seconds))]), NabEvalJson.Default.Report));
            return 0;
        }

        var table = new Table().AddColumns("file", "rows", "windows", "found", "false pos.", "raw (standard)", "standard");
        foreach (NabFileResult r in results)
        {
            NabScore s = r.Scores[0];
            table.AddRow(Markup.Escape(r.File.Name), r.Rows.ToString("N0", CultureInfo.InvariantCulture), s.Windows.ToString(CultureInfo.InvariantCulture),
                s.TruePositives.ToString(CultureInfo.InvariantCulture), s.FalsePositives.ToString(CultureInfo.InvariantCulture),
                s.Raw.ToString("0.00", CultureInfo.InvariantCulture), double.IsNaN(s.Normalized) ? "-" : s.Normalized.ToString("0.0", CultureInfo.InvariantCulture));
        }

        AnsiConsole.Write(table);
        var totals = new Table().AddColumns(["category", .. profiles.Select(p => p.Name)]);
        foreach (IGrouping<string, NabFileResult> g in results.GroupBy(r => r.File.Category))
        {
            totals.AddRow([g.Key, .. profiles.Select((p, i) => Format(NabScore.NormalizedTotal(g.Select(r => r.Scores[i]))))]);
        }

        totals.AddRow(["[bold]all[/]", .. profiles.Select((p, i) => $"[bold]{Format(NabScore.NormalizedTotal(results.Select(r => r.Scores[i])))}[/]")]);
        AnsiConsole.Write(totals);
        AnsiConsole.MarkupLineInterpolated($"NAB v1.1 scores (100 = every window found at its start and no false positive, 0 = nothing flagged) of {results.Count} files, {results.Sum(r => r.Scores[0].Windows)} windows, detector time {results.Sum(r => r.Seconds):0.0} s.");
        return 0;
    }

    private static string Format(double score) => double.IsNaN(score) ? "-" : score.ToString("0.00", CultureInfo.InvariantCulture);

    private static double? Nullable(double score) => double.IsNaN(score) ? null : score;

    private sealed record Report(string Corpus, int Files, int Windows, List<ProfileScore> Scores, List<CategoryScores> Categories, List<FileReport> PerFile);

    private sealed record ProfileScore(string Profile, double? Score);

    private sealed record ProfileRaw(string Profile, double Raw);

    private sealed record CategoryScores(string Category, List<ProfileScore> Scores);

    private sealed record FileReport(string File, int Rows, int Windows, int Detections, int TruePositives, int FalsePositives, List<ProfileRaw> Raw, double Seconds);

    /// <summary>The report's JSON, source-generated (snake_case, indented): works in the NativeAOT build too.</summary>
    [JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
    [JsonSerializable(typeof(Report))]
    private sealed partial class NabEvalJson : JsonSerializerContext;
}
