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
internal static class NabEval
{
    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true };

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
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                corpus = Path.GetFullPath(folder),
                files = results.Count,
                windows = results.Sum(r => r.Scores[0].Windows),
                scores = profiles.Select((p, i) => new { profile = p.Name, score = Nullable(NabScore.NormalizedTotal(results.Select(r => r.Scores[i]))) }),
                categories = results.GroupBy(r => r.File.Category).Select(g => new
                {
                    category = g.Key,
                    scores = profiles.Select((p, i) => new { profile = p.Name, score = Nullable(NabScore.NormalizedTotal(g.Select(r => r.Scores[i]))) }),
                }),
                per_file = results.Select(r => new
                {
                    file = r.File.Name,
                    rows = r.Rows,
                    windows = r.Scores[0].Windows,
                    detections = r.Flags,
                    true_positives = r.Scores[0].TruePositives,
                    false_positives = r.Scores[0].FalsePositives,
                    raw = profiles.Select((p, i) => new { profile = p.Name, raw = r.Scores[i].Raw }),
                    seconds = r.Seconds,
                }),
            }, s_json));
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
}
