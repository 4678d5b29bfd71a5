using System.Globalization;
using System.IO.Compression;
using System.Text.RegularExpressions;
using Signal.Features.Filters;
using Signal.Models.Training;

namespace Signal.Engine.Data;

/// <summary>
/// How a folder of NumPy recordings (<c>.npy</c>/<c>.npz</c>, one recording per file, in any sub-folder) becomes a
/// labelled data set. The defaults read the CWRU bearing archive as published.
/// </summary>
public sealed record RecordingSetOptions
{
    /// <summary>The CWRU convention: the letters after the leading speed, e.g. <c>1797_OR@3_7_DE12</c> → <c>OR</c>.</summary>
    public const string DefaultLabelPattern = @"^(?:\d+_)?(?<label>[A-Za-z]+)";

    /// <summary>The array of a .npz archive to read; null for <c>DE</c> when present, else the first array.</summary>
    public string? Key { get; init; }

    /// <summary>A regular expression on the file name (without extension) whose group <c>label</c> is the class.</summary>
    public string LabelPattern { get; init; } = DefaultLabelPattern;

    /// <summary>
    /// A regular expression on the file name: matching recordings are the test split (for CWRU, <c>^1750_</c>
    /// tests on a load never trained on). Null: a seeded 20 % of each class's recordings.
    /// </summary>
    public string? TestPattern { get; init; }

    /// <summary>
    /// Sample rates by file-name pattern, first match wins. The defaults are CWRU's: <c>DE48</c> files and the
    /// <c>Normal</c> baselines are 48 kHz (the baselines have as many entries as the 48 kHz files, see the
    /// archive's Contents.md), <c>DE12</c> and <c>FE</c> files 12 kHz.
    /// </summary>
    public IReadOnlyList<(string Pattern, double Rate)> FileRates { get; init; } =
        [("DE48", 48000), ("Normal", 48000), ("DE12", 12000), ("_FE$", 12000)];

    /// <summary>
    /// The rate every recording is brought to (integer decimation with an anti-alias filter); 0 for the lowest
    /// rate among the files. Files no pattern of <see cref="FileRates"/> matches are taken to be at this rate.
    /// </summary>
    public double SampleRate { get; init; }

    /// <summary>
    /// For a class with recordings on one side of the split only: the fraction at the end of each of its
    /// recordings that goes to the other side (disjoint time ranges, never interleaved segments). Default 0.25.
    /// </summary>
    public double TimeSplitFraction { get; init; } = 0.25;
}

/// <summary>Reads a folder of NumPy recordings as a <see cref="LabeledDataSet"/> (format <c>npz</c>).</summary>
internal static class RecordingFolder
{
    /// <summary>Whether <paramref name="folder"/> holds NumPy recordings.</summary>
    public static bool Holds(string folder) =>
        Directory.EnumerateFiles(folder, "*.npz", SearchOption.AllDirectories).Any()
        || Directory.EnumerateFiles(folder, "*.npy", SearchOption.AllDirectories).Any();

    public static LabeledDataSet Read(string folder, RecordingSetOptions options, int seed)
    {
        Regex labelPattern = Compile(options.LabelPattern, "label pattern");
        Regex? testPattern = options.TestPattern is null ? null : Compile(options.TestPattern, "test pattern");
        Regex[] ratePatterns = [.. options.FileRates.Select(r => Compile(r.Pattern, "file-rate pattern"))];
        string[] files = [.. Directory.EnumerateFiles(folder, "*.*", SearchOption.AllDirectories)
            .Where(f => f.EndsWith(".npz", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".npy", StringComparison.OrdinalIgnoreCase))
            .Order(StringComparer.Ordinal)];
        var recordings = new List<(string Name, string Label, double Rate, bool Test, Recording Data)>();
        foreach (string file in files)
        {
            string name = Path.GetFileNameWithoutExtension(file);
            Match m = labelPattern.Match(name);
            if (!m.Success || !m.Groups["label"].Success)
            {
                throw new InvalidDataException($"'{file}': the label pattern '{options.LabelPattern}' does not match the file name, so its class is unknown (rename it or pass a pattern with a (?<label>…) group).");
            }

            int rule = Array.FindIndex(ratePatterns, p => p.IsMatch(name));
            Recording data = file.EndsWith(".npz", StringComparison.OrdinalIgnoreCase)
                ? NpyReader.ReadNpz(file, options.Key ?? (HasArray(file, "DE") ? "DE" : null))
                : NpyReader.ReadNpy(file);
            recordings.Add((name, m.Groups["label"].Value, rule < 0 ? 0 : options.FileRates[rule].Rate, testPattern?.IsMatch(name) ?? false, data));
        }

        if (recordings.Count == 0)
        {
            throw new InvalidDataException($"'{folder}' holds no .npz or .npy recordings.");
        }

        int channels = recordings[0].Data.Channels;
        if (recordings.FirstOrDefault(r => r.Data.Channels != channels) is { Data: not null } odd)
        {
            throw new InvalidDataException($"'{odd.Name}' has {odd.Data.Channels} channel(s); '{recordings[0].Name}' has {channels}. Every recording needs the same channels.");
        }

        double rate = options.SampleRate > 0 ? options.SampleRate : recordings.Where(r => r.Rate > 0).Select(r => r.Rate).DefaultIfEmpty(0).Min();
        var train = new List<(float[] Values, int Steps, string Label)>();
        var test = new List<(float[] Values, int Steps, string Label)>();
        var random = new Random(seed);
        foreach (IGrouping<string, (string Name, string Label, double Rate, bool Test, Recording Data)> group in recordings.GroupBy(r => r.Label))
        {
            var members = group.Select(r => (r.Name, Samples: Resample(r.Data, r.Rate, rate), r.Test)).ToList();
            if (testPattern is null)
            {
                // No split of its own: a seeded 20 % of the class's recordings.
                (var shuffled, int testCount) = LabeledDataSet.ChooseTest(members, random);
                members = [.. shuffled.Select((r, i) => (r.Name, r.Samples, Test: i < testCount))];
            }

            bool bothSides = members.Any(r => r.Test) && members.Any(r => !r.Test);
            foreach ((string _, float[] samples, bool isTest) in members)
            {
                int length = samples.Length / channels;
                if (bothSides)
                {
                    (isTest ? test : train).Add((samples, length, group.Key));
                    continue;
                }

                // The class lives on one side only (CWRU's single Normal baseline): its recordings' last
                // fraction goes to the other side, a disjoint time range.
                var (head, tail) = LabeledDataSet.SplitByTime(samples, length, channels, options.TimeSplitFraction);
                train.Add(((isTest ? tail : head).Values, (isTest ? tail : head).Steps, group.Key));
                test.Add(((isTest ? head : tail).Values, (isTest ? head : tail).Steps, group.Key));
            }
        }

        return LabeledDataSet.Build(Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder))), channels, train, test, "npz") with
        {
            SampleRate = rate,
        };
    }

    private static Regex Compile(string pattern, string what)
    {
        try
        {
            return new Regex(pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException($"the {what} '{pattern}' is not a valid regular expression: {ex.Message}", ex);
        }
    }

    private static bool HasArray(string npz, string key)
    {
        using ZipArchive zip = ZipFile.OpenRead(npz);
        return zip.GetEntry(key + ".npy") is not null;
    }

    /// <summary>
    /// Brings a recording from <paramref name="from"/> Hz to <paramref name="to"/> Hz by integer decimation after an
    /// 8th-order Butterworth low-pass at 0.8 × the new Nyquist frequency (run forward, as a live filter would).
    /// </summary>
    private static float[] Resample(Recording recording, double from, double to)
    {
        if (from <= 0 || to <= 0 || from == to)
        {
            return recording.Samples;
        }

        double ratio = from / to;
        int factor = (int)Math.Round(ratio);
        if (factor < 1 || Math.Abs(ratio - factor) > 1e-9)
        {
            throw new InvalidDataException($"'{recording.Source}' is sampled at {from.ToString(CultureInfo.InvariantCulture)} Hz; only whole-number decimation to {to.ToString(CultureInfo.InvariantCulture)} Hz is supported.");
        }

        int channels = recording.Channels;
        float[] filtered = (float[])recording.Samples.Clone();
        for (int c = 0; c < channels; c++)
        {
            new SosFilter(Biquad.Butterworth(FilterMode.LowPass, 8, 0.4 * to, from)).Process(filtered, c, channels);
        }

        int length = recording.Length / factor;
        float[] result = new float[length * channels];
        for (int i = 0; i < length; i++)
        {
            filtered.AsSpan(i * factor * channels, channels).CopyTo(result.AsSpan(i * channels));
        }

        return result;
    }
}
