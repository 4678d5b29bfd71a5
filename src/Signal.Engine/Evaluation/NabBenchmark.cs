using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Signal.Engine.Anomaly;
using Signal.Engine.Data;

namespace Signal.Engine.Evaluation;

/// <summary>One labelled file of a NAB-style corpus.</summary>
/// <param name="Name">The path under <c>data/</c>, e.g. <c>realTweets/Twitter_volume_AAPL.csv</c> (the key in the labels).</param>
/// <param name="Path">The file.</param>
/// <param name="Windows">The anomaly windows as times.</param>
public sealed record NabFile(string Name, string Path, IReadOnlyList<(DateTime Start, DateTime End)> Windows)
{
    /// <summary>The folder under <c>data/</c> (NAB's category).</summary>
    public string Category => Name.Contains('/', StringComparison.Ordinal) ? Name[..Name.IndexOf('/', StringComparison.Ordinal)] : string.Empty;
}

/// <summary>One file's detections and scores.</summary>
/// <param name="File">The file.</param>
/// <param name="Rows">Rows read.</param>
/// <param name="Flags">Rows flagged.</param>
/// <param name="Scores">The score under each of <see cref="NabProfile.All"/>, in that order.</param>
/// <param name="Seconds">Seconds the detector took (reading the file excluded).</param>
/// <param name="Irregularities">What was irregular in the file.</param>
public sealed record NabFileResult(NabFile File, int Rows, int Flags, IReadOnlyList<NabScore> Scores, double Seconds, TimeSeriesIrregularities Irregularities);

/// <summary>
/// Runs a detector over a corpus laid out as NAB's (<c>data/&lt;category&gt;/&lt;file&gt;.csv</c> and
/// <c>labels/combined_windows.json</c>) and scores it with <see cref="NabScoring"/>.
/// </summary>
public static class NabBenchmark
{
    /// <summary>Whether <paramref name="folder"/> looks like a NAB corpus (a data folder and labels/combined_windows.json).</summary>
    public static bool IsCorpus(string folder) =>
        Directory.Exists(System.IO.Path.Combine(folder, "data")) && File.Exists(System.IO.Path.Combine(folder, "labels", "combined_windows.json"));

    /// <summary>Reads the labels and finds every labelled file.</summary>
    /// <exception cref="InvalidDataException">The labels do not parse, or name a file that is not there.</exception>
    public static IReadOnlyList<NabFile> Load(string folder)
    {
        string labels = System.IO.Path.Combine(folder, "labels", "combined_windows.json");
        if (!IsCorpus(folder))
        {
            throw new FileNotFoundException($"'{folder}' is not a NAB-style corpus: it needs data/<category>/<file>.csv and labels/combined_windows.json.");
        }

        Dictionary<string, string[][]>? windows;
        try
        {
            windows = JsonSerializer.Deserialize(File.ReadAllText(labels), EngineJsonContext.Default.DictionaryStringStringArrayArray);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{labels}': {e.Message}", e);
        }

        var files = new List<NabFile>();
        foreach ((string name, string[][] list) in (windows ?? []).OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            string path = System.IO.Path.Combine(folder, "data", name);
            if (!File.Exists(path))
            {
                throw new InvalidDataException($"'{labels}' names '{name}', which is not under {System.IO.Path.Combine(folder, "data")}.");
            }

            var parsed = new List<(DateTime, DateTime)>();
            foreach (string[] w in list)
            {
                if (w.Length != 2 || !TextLines.TryParseTime(w[0], out DateTime start) || !TextLines.TryParseTime(w[1], out DateTime end) || end < start)
                {
                    throw new InvalidDataException($"'{labels}', '{name}': window [{string.Join(", ", w)}] is not [start, end] timestamps in order.");
                }

                parsed.Add((start, end));
            }

            files.Add(new NabFile(name, path, parsed));
        }

        return files;
    }

    /// <summary>Runs the default <see cref="StreamingAnomalyDetector"/> on one file: its warm-up is NAB's probationary period.</summary>
    public static bool[] DefaultDetector(TimeSeriesCsv series, int probation)
    {
        ArgumentNullException.ThrowIfNull(series);
        var detector = new StreamingAnomalyDetector(new AnomalyDetectorOptions { WarmupRows = Math.Max(16, probation) });
        var flags = new bool[series.Rows];
        for (int t = 0; t < series.Rows; t++)
        {
            flags[t] = detector.Step(TextLines.Seconds(series.Times[t]), series.Values[t * series.Columns]).Flag;
        }

        return flags;
    }

    /// <summary>Reads, detects and scores every file (files in parallel); progress, when given, hears of each file as it completes.</summary>
    /// <param name="files">The corpus.</param>
    /// <param name="detect">The detector: the series and NAB's probationary rows in, one flag per row out.</param>
    /// <param name="order">How rows that step back in time are read.</param>
    /// <param name="progress">Told each finished file.</param>
    public static IReadOnlyList<NabFileResult> Run(IReadOnlyList<NabFile> files, Func<TimeSeriesCsv, int, bool[]> detect, RowOrder order = RowOrder.File, Action<NabFileResult>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(files);
        ArgumentNullException.ThrowIfNull(detect);
        var results = new NabFileResult[files.Count];
        try
        {
            Parallel.For(0, files.Count, i => results[i] = RunFile(files[i], detect, order, progress));
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            // A bad file is reported as what it is (its reader names file and line), not as a parallel-loop failure.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerExceptions[0]);
        }

        return results;
    }

    private static NabFileResult RunFile(NabFile file, Func<TimeSeriesCsv, int, bool[]> detect, RowOrder order, Action<NabFileResult>? progress)
    {
        TimeSeriesCsv series = TimeSeriesCsv.Read(file.Path, order);
        int probation = NabScoring.ProbationRows(series.Rows);
        var clock = Stopwatch.StartNew();
        bool[] flags = detect(series, probation);
        double seconds = clock.Elapsed.TotalSeconds;
        List<(int Start, int End)> rows = NabScoring.WindowRows(series.Times, file.Windows);
        NabScore[] scores = [.. NabProfile.All.Select(p => NabScoring.Score(flags, rows, p, probation))];
        var result = new NabFileResult(file, series.Rows, flags.Count(f => f), scores, seconds, series.Irregularities);
        progress?.Invoke(result);
        return result;
    }
}
