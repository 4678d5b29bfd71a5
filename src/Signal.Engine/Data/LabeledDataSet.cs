using System.Globalization;
using Signal.Models.Training;

namespace Signal.Engine.Data;

/// <summary>
/// A labelled data set of multichannel sequences with its train/test split: UCR archive folders
/// (<c>&lt;Name&gt;_TRAIN.tsv</c>/<c>_TEST.tsv</c>, label first, NaN padding for variable length) and UEA
/// ARFF folders (<c>&lt;Name&gt;_TRAIN.arff</c> with a relational multichannel attribute), detected from the folder.
/// NaN padding at the end of a UCR series marks a shorter series; NaN inside one is a missing value, filled by
/// linear interpolation. Folders of NumPy recordings (<c>.npy</c>/<c>.npz</c>, labels from file names, see
/// <see cref="RecordingSetOptions"/>) and our CSV layout (<c>recording,timestamp,channel…,label</c>) have
/// no split of their own and are split by recording.
/// </summary>
/// <param name="Name">The data set's name.</param>
/// <param name="Channels">Inputs per step.</param>
/// <param name="ClassNames">Class labels, in index order (sorted as text, numerically when all are numbers).</param>
/// <param name="Train">The training split.</param>
/// <param name="Test">The test split.</param>
/// <param name="Format">What was detected (<c>ucr</c>, <c>uea-arff</c>, <c>npz</c> or <c>csv</c>).</param>
public sealed record LabeledDataSet(string Name, int Channels, IReadOnlyList<string> ClassNames, IReadOnlyList<LabeledSequence> Train, IReadOnlyList<LabeledSequence> Test, string Format)
{
    /// <summary>Samples per second of every sequence where the format knows it (NumPy recordings); 0 where it does not.</summary>
    public double SampleRate { get; init; }

    /// <summary>Whether each sequence is a long recording to be cut into segments (NumPy recordings, and CSV recordings with timestamps at least <see cref="LongRecordingSamples"/> long) rather than one example.</summary>
    public bool IsRecordings => Format == "npz" || LongRecordings;

    /// <summary>Set by the CSV reader when every recording carries a regular clock and is long: it is read as NumPy recordings are (features, segments, validation by recording).</summary>
    public bool LongRecordings { get; init; }

    /// <summary>Samples a CSV recording needs, at the least, to count as a long recording: 4 default feature frames (4,096).</summary>
    public const int LongRecordingSamples = 4096;

    /// <summary>", did you mean '…'?" naming the entry beside a missing path whose name is closest, or nothing.</summary>
    private static string NearestSibling(string path)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        string? parent = Path.GetDirectoryName(full);
        if (parent is null || !Directory.Exists(parent))
        {
            return string.Empty;
        }

        string name = Path.GetFileName(full);
        string? best = null;
        int bestDistance = int.MaxValue;
        try
        {
            foreach (string entry in Directory.EnumerateFileSystemEntries(parent).Take(10_000))
            {
                string candidate = Path.GetFileName(entry);
                int d = EditDistance.Between(name, candidate);
                if (d < bestDistance)
                {
                    (best, bestDistance) = (entry, d);
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return string.Empty;
        }

        return best is not null && bestDistance <= Math.Max(2, name.Length / 3) ? $" (did you mean '{best}'?)" : string.Empty;
    }

    /// <summary>Loads a data set folder, detecting its format.</summary>
    /// <param name="path">The folder (or one of its split files).</param>
    /// <returns>The data set.</returns>
    /// <exception cref="InvalidDataException">The folder holds no known layout, or a file does not parse (the message names file and line).</exception>
    /// <param name="seed">Seed of the split by recording for data without one of its own (our CSV layout).</param>
    /// <param name="recordings">How a folder of NumPy recordings is read; null for the defaults (CWRU's layout).</param>
    public static LabeledDataSet Load(string path, int seed = 1, RecordingSetOptions? recordings = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (File.Exists(path) && Path.GetExtension(path).Equals(".csv", StringComparison.OrdinalIgnoreCase))
        {
            return ReadCsv(path, seed);
        }

        if (!File.Exists(path) && !Directory.Exists(path))
        {
            // Never fall back to the parent folder: a typo would train on everything beside it.
            throw new DirectoryNotFoundException($"data set '{path}' does not exist{NearestSibling(path)}.");
        }

        string folder = Directory.Exists(path) ? path : Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".";

        string? trainTsv = Directory.GetFiles(folder, "*_TRAIN.tsv").FirstOrDefault();
        if (trainTsv is not null)
        {
            string name = Path.GetFileName(trainTsv)[..^"_TRAIN.tsv".Length];
            var train = ReadUcr(trainTsv);
            var test = ReadUcr(Path.Combine(folder, name + "_TEST.tsv"));
            return Build(name, 1, train, test, "ucr");
        }

        string? trainArff = Directory.GetFiles(folder, "*_TRAIN.arff").FirstOrDefault();
        if (trainArff is not null)
        {
            string name = Path.GetFileName(trainArff)[..^"_TRAIN.arff".Length];
            var train = ReadArff(trainArff, out int channels);
            var test = ReadArff(Path.Combine(folder, name + "_TEST.arff"), out int testChannels);
            if (testChannels != channels)
            {
                throw new InvalidDataException($"{name}: the test split has {testChannels} channels, the training split {channels}.");
            }

            return Build(name, channels, train, test, "uea-arff");
        }

        if (RecordingFolder.Holds(folder))
        {
            return RecordingFolder.Read(folder, recordings ?? new RecordingSetOptions(), seed);
        }

        throw new InvalidDataException($"'{folder}' holds no data set this reader knows: expected <Name>_TRAIN.tsv/_TEST.tsv (UCR), <Name>_TRAIN.arff/_TEST.arff (UEA), .npz/.npy recordings or a .csv file (recording,timestamp,channel…,label).");
    }

    /// <summary>
    /// Cuts a recording in time: the last <paramref name="fraction"/> of its steps (rounded) is the tail, the rest
    /// the head. Used where a class cannot be split by whole recordings, so the two parts never interleave.
    /// </summary>
    /// <param name="recording">The recording.</param>
    /// <param name="channels">Values per step.</param>
    /// <param name="fraction">The tail's share, between 0 and 1.</param>
    /// <returns>Head and tail, both with the recording's label.</returns>
    public static (LabeledSequence Head, LabeledSequence Tail) SplitByTime(LabeledSequence recording, int channels, double fraction)
    {
        ArgumentNullException.ThrowIfNull(recording);
        ((float[] Values, int Steps) head, (float[] Values, int Steps) tail) = SplitByTime(recording.Values, recording.Steps, channels, fraction);
        return (new LabeledSequence(head.Values, head.Steps, recording.Label), new LabeledSequence(tail.Values, tail.Steps, recording.Label));
    }

    internal static ((float[] Values, int Steps) Head, (float[] Values, int Steps) Tail) SplitByTime(float[] values, int steps, int channels, double fraction)
    {
        int cut = steps - (int)Math.Round(steps * fraction);
        return ((values[..(cut * channels)], cut), (values[(cut * channels)..(steps * channels)], steps - cut));
    }

    /// <summary>
    /// The split of a data set without one of its own: the class's recordings in a seeded order, of which the
    /// first <c>TestCount</c> (20 %, at least one when there are two or more) are the test split.
    /// </summary>
    internal static (List<T> Members, int TestCount) ChooseTest<T>(IEnumerable<T> members, Random random)
    {
        List<T> shuffled = [.. members.OrderBy(_ => random.Next())];
        return (shuffled, shuffled.Count >= 2 ? Math.Max(1, (int)Math.Round(shuffled.Count * 0.2)) : 0);
    }

    /// <summary>
    /// Our CSV layout: a header <c>recording,timestamp,&lt;channel&gt;…,label</c>, then one row per sample; the rows of
    /// a recording are contiguous and share its label, and form one sequence in timestamp order. With no split of
    /// its own the data is split by recording (never by segments of one recording): a seeded 20 % of each class's
    /// recordings is the test split. Timestamps (seconds, or ISO 8601) give the sample rate when every recording's
    /// clock agrees (<see cref="SampleRate"/>); when, besides, every recording holds at least
    /// <see cref="LongRecordingSamples"/> samples, the recordings are long ones (<see cref="IsRecordings"/>) and train
    /// as a folder of NumPy recordings does: the default feature pipeline, segments, validation by recording.
    /// </summary>
    private static LabeledDataSet ReadCsv(string path, int seed)
    {
        using var reader = new BoundedLineReader(path);
        string header = reader.ReadLine() ?? throw new InvalidDataException($"{path} is empty.");
        string[] names = header.Split(',');
        if (names.Length < 4 || !names[0].Trim().Equals("recording", StringComparison.OrdinalIgnoreCase) || !names[^1].Trim().Equals("label", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidDataException($"{path}, line 1: the header must be recording,timestamp,<channel>…,label (got '{header}').");
        }

        int channels = names.Length - 3;
        var recordings = new List<(string Id, string Label, List<float> Values)>();
        var clocks = new List<(double First, double Last)>();
        bool timed = true;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int lineNumber = 1;
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            string[] cells = line.Split(',');
            if (cells.Length != names.Length)
            {
                throw new InvalidDataException($"{path}, line {lineNumber}: {cells.Length} columns; the header has {names.Length}.");
            }

            string id = cells[0].Trim(), label = cells[^1].Trim();
            if (recordings.Count == 0 || recordings[^1].Id != id)
            {
                if (!seen.Add(id))
                {
                    throw new InvalidDataException($"{path}, line {lineNumber}: recording '{id}' appears again after other recordings; keep each recording's rows together.");
                }

                recordings.Add((id, label, []));
                clocks.Add((double.NaN, double.NaN));
            }
            else if (recordings[^1].Label != label)
            {
                throw new InvalidDataException($"{path}, line {lineNumber}: recording '{id}' changes label from '{recordings[^1].Label}' to '{label}'; a recording has one label.");
            }

            if (timed && TrySeconds(cells[1], out double seconds))
            {
                clocks[^1] = (double.IsNaN(clocks[^1].First) ? seconds : clocks[^1].First, seconds);
            }
            else
            {
                timed = false;
            }

            for (int c = 0; c < channels; c++)
            {
                if (!TextLines.TryParseFloat(cells[2 + c], out float v) || !float.IsFinite(v))
                {
                    throw new InvalidDataException($"{path}, line {lineNumber}, column '{names[2 + c]}': '{cells[2 + c]}' is not a finite number.");
                }

                recordings[^1].Values.Add(v);
            }
        }

        if (recordings.Count == 0)
        {
            throw new InvalidDataException($"{path} holds no rows.");
        }

        var random = new Random(seed);
        var train = new List<(float[], int, string)>();
        var test = new List<(float[], int, string)>();
        foreach (IGrouping<string, (string Id, string Label, List<float> Values)> group in recordings.GroupBy(r => r.Label))
        {
            (var members, int testCount) = ChooseTest(group, random);
            for (int i = 0; i < members.Count; i++)
            {
                (i < testCount ? test : train).Add(([.. members[i].Values], members[i].Values.Count / channels, members[i].Label));
            }
        }

        double rate = timed ? SampleRateOf(recordings.Select((r, i) => (r.Values.Count / channels, clocks[i].Last - clocks[i].First))) : 0;
        bool isLong = rate > 0 && recordings.All(r => r.Values.Count / channels >= LongRecordingSamples);
        return Build(Path.GetFileNameWithoutExtension(path), channels, train, test, "csv") with { SampleRate = rate, LongRecordings = isLong };
    }

    /// <summary>A timestamp in seconds: a number (seconds) or an ISO 8601 date and time.</summary>
    private static bool TrySeconds(string cell, out double seconds)
    {
        string text = cell.Trim();
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out seconds) && double.IsFinite(seconds))
        {
            return true;
        }

        if (TextLines.TryParseTime(text, out DateTime time))
        {
            seconds = TextLines.Seconds(time);
            return true;
        }

        return false;
    }

    /// <summary>
    /// The sample rate the recordings' clocks agree on: samples − 1 over the time from first to last sample, per
    /// recording; 0 when a recording has fewer than two samples or no time, or when two recordings differ by more than
    /// 1 %. A rate within 0.1 % of a whole number of hertz is rounded to it (timestamps are written rounded).
    /// </summary>
    private static double SampleRateOf(IEnumerable<(int Samples, double Seconds)> recordings)
    {
        double low = double.PositiveInfinity, high = 0, sum = 0;
        int count = 0;
        foreach ((int samples, double seconds) in recordings)
        {
            if (samples < 2 || !(seconds > 0))
            {
                return 0;
            }

            double rate = (samples - 1) / seconds;
            (low, high, sum, count) = (Math.Min(low, rate), Math.Max(high, rate), sum + rate, count + 1);
        }

        if (count == 0 || high > low * 1.01)
        {
            return 0;
        }

        double mean = sum / count;
        return Math.Abs(mean - Math.Round(mean)) <= 1e-3 * mean ? Math.Round(mean) : mean;
    }

    internal static LabeledDataSet Build(string name, int channels, List<(float[] Values, int Steps, string Label)> train, List<(float[] Values, int Steps, string Label)> test, string format)
    {
        string[] labels = [.. train.Select(s => s.Label).Concat(test.Select(s => s.Label)).Distinct()];
        bool numeric = labels.All(l => double.TryParse(l, NumberStyles.Float, CultureInfo.InvariantCulture, out _));
        Array.Sort(labels, numeric
            ? (a, b) => double.Parse(a, CultureInfo.InvariantCulture).CompareTo(double.Parse(b, CultureInfo.InvariantCulture))
            : StringComparer.Ordinal.Compare);
        var index = labels.Select((l, i) => (l, i)).ToDictionary(p => p.l, p => p.i, StringComparer.Ordinal);
        return new LabeledDataSet(name, channels, labels,
            [.. train.Select(s => new LabeledSequence(s.Values, s.Steps, index[s.Label]))],
            [.. test.Select(s => new LabeledSequence(s.Values, s.Steps, index[s.Label]))], format);
    }

    private static List<(float[] Values, int Steps, string Label)> ReadUcr(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"split file '{path}' is missing.", path);
        }

        var rows = new List<(float[], int, string)>();
        foreach ((int lineNumber, string line) in TextLines.Read(path))
        {
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            string[] cells = line.Split(line.Contains('\t', StringComparison.Ordinal) ? '\t' : ',');
            var values = new List<float>(cells.Length);
            for (int i = 1; i < cells.Length; i++)
            {
                if (!TextLines.TryParseFloat(cells[i], out float v))
                {
                    throw new InvalidDataException($"{path}, line {lineNumber}, column {i + 1}: '{cells[i]}' is not a number.");
                }

                values.Add(v);
            }

            // Variable-length sets pad the end with NaN: the sequence stops at the last number.
            int length = values.Count;
            while (length > 0 && float.IsNaN(values[length - 1]))
            {
                length--;
            }

            if (length == 0)
            {
                throw new InvalidDataException($"{path}, line {lineNumber}: the series has no values.");
            }

            float[] series = [.. values.Take(length)];
            int bad = Array.FindIndex(series, float.IsInfinity);
            if (bad >= 0)
            {
                throw new InvalidDataException($"{path}, line {lineNumber}: value {bad + 1} is {series[bad]}.");
            }

            FillGaps(series);
            rows.Add((series, length, cells[0].Trim()));
        }

        return rows;
    }

    /// <summary>
    /// Missing values inside a series (NaN, as in the archive's DodgerLoop sets) are filled by linear
    /// interpolation between their neighbours, or by the nearest value at the start.
    /// </summary>
    private static void FillGaps(float[] series)
    {
        int i = 0;
        while (i < series.Length)
        {
            if (!float.IsNaN(series[i]))
            {
                i++;
                continue;
            }

            int end = i;
            while (end < series.Length && float.IsNaN(series[end]))
            {
                end++;
            }

            float before = i > 0 ? series[i - 1] : series[end];
            float after = end < series.Length ? series[end] : before;
            for (int j = i; j < end; j++)
            {
                series[j] = before + ((after - before) * (j - i + 1) / (end - i + 1));
            }

            i = end;
        }
    }

    private static List<(float[] Values, int Steps, string Label)> ReadArff(string path, out int channels)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"split file '{path}' is missing.", path);
        }

        var rows = new List<(float[], int, string)>();
        channels = -1;
        bool data = false;
        foreach ((int lineNumber, string raw) in TextLines.Read(path))
        {
            string line = raw.Trim();
            if (!data)
            {
                data = line.StartsWith("@data", StringComparison.OrdinalIgnoreCase);
                continue;
            }

            if (line.Length == 0 || line[0] == '%')
            {
                continue;
            }

            int open = line.IndexOf('\''), close = line.LastIndexOf('\'');
            if (open < 0 || close <= open || close + 1 >= line.Length || line[close + 1] != ',')
            {
                throw new InvalidDataException($"{path}, line {lineNumber}: expected a quoted relational value followed by ,label.");
            }

            string[] series = line[(open + 1)..close].Split("\\n");
            if (channels < 0)
            {
                channels = series.Length;
            }
            else if (series.Length != channels)
            {
                throw new InvalidDataException($"{path}, line {lineNumber}: {series.Length} channels; earlier rows have {channels}.");
            }

            float[][] parsed = [.. series.Select(s => s.Split(',').Select(v => float.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out float f) ? f : float.NaN).ToArray())];
            int steps = parsed[0].Length;
            if (parsed.Any(p => p.Length != steps || p.Any(v => !float.IsFinite(v))))
            {
                throw new InvalidDataException($"{path}, line {lineNumber}: channels differ in length or hold a value that is not a finite number.");
            }

            float[] values = new float[steps * channels];
            for (int t = 0; t < steps; t++)
            {
                for (int c = 0; c < channels; c++)
                {
                    values[(t * channels) + c] = parsed[c][t];
                }
            }

            rows.Add((values, steps, line[(close + 2)..].Trim().Trim('\'')));
        }

        if (rows.Count == 0)
        {
            throw new InvalidDataException($"{path} holds no data rows.");
        }

        return rows;
    }
}
