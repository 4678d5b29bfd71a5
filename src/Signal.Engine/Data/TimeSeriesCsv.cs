using System.Globalization;

namespace Signal.Engine.Data;

/// <summary>How <see cref="TimeSeriesCsv.Read"/> treats rows whose timestamp is earlier than the row before.</summary>
public enum RowOrder
{
    /// <summary>Keep the file's order (as the rows arrived); count the steps back and warn once. The default.</summary>
    File,

    /// <summary>Sort the rows by time (stable: rows with equal timestamps keep their file order).</summary>
    Time,

    /// <summary>Refuse the file at the first row that steps back, naming its line.</summary>
    Reject,
}

/// <summary>What was irregular in a time-series file: each count is of rows, and nothing was dropped.</summary>
/// <param name="StepsBack">Rows whose timestamp is earlier than the row before (a clock that stepped back).</param>
/// <param name="Duplicates">Rows with the same timestamp as the row before.</param>
/// <param name="Gaps">Intervals longer than twice the median interval.</param>
/// <param name="Missing">Cells that were empty or not a number (nan, null, NA), filled by linear interpolation between the neighbouring values of their column.</param>
public sealed record TimeSeriesIrregularities(int StepsBack, int Duplicates, int Gaps, int Missing)
{
    /// <summary>One line for an operator, or null when the file is regular.</summary>
    public string? Describe(string path, RowOrder order)
    {
        var parts = new List<string>();
        if (StepsBack > 0)
        {
            parts.Add(string.Create(CultureInfo.InvariantCulture, $"{StepsBack} row(s) step back in time ({(order == RowOrder.Time ? "sorted by time" : "read in file order; --order time sorts them, --order reject refuses the file")})"));
        }

        if (Duplicates > 0)
        {
            parts.Add(string.Create(CultureInfo.InvariantCulture, $"{Duplicates} duplicated timestamp(s) (kept)"));
        }

        if (Gaps > 0)
        {
            parts.Add(string.Create(CultureInfo.InvariantCulture, $"{Gaps} gap(s) longer than twice the usual interval"));
        }

        if (Missing > 0)
        {
            parts.Add(string.Create(CultureInfo.InvariantCulture, $"{Missing} missing value(s) interpolated"));
        }

        return parts.Count == 0 ? null : $"'{path}': {string.Join("; ", parts)}.";
    }
}

/// <summary>A time series read from a CSV file: timestamps and one or more value columns, row-major.</summary>
/// <param name="Stamps">Each row's timestamp as written.</param>
/// <param name="Times">Each row's timestamp (UTC).</param>
/// <param name="Values">Row-major values, <see cref="Columns"/> per row.</param>
/// <param name="Columns">Value columns per row.</param>
/// <param name="Names">The value columns' names from the header.</param>
/// <param name="Irregularities">What was irregular and how it was handled.</param>
public sealed record TimeSeriesCsv(string[] Stamps, DateTime[] Times, float[] Values, int Columns, string[] Names, TimeSeriesIrregularities Irregularities)
{
    /// <summary>Rows in the series.</summary>
    public int Rows => Stamps.Length;

    /// <summary>Parses a <see cref="RowOrder"/> from its command-line name (file, time or reject).</summary>
    public static RowOrder ParseOrder(string text) => text switch
    {
        "file" => RowOrder.File,
        "time" => RowOrder.Time,
        "reject" => RowOrder.Reject,
        _ => throw new ArgumentException($"--order must be file, time or reject (got '{text}')."),
    };

    /// <summary>
    /// Reads <c>timestamp,value[,value…]</c> with a header. Timestamps are ISO 8601 or <c>YYYY-MM-DD HH:MM:SS</c>; a
    /// value cell that is empty or nan/null/NA is missing and filled by linear interpolation (the nearest value at the
    /// ends); anything else that is not a finite number is refused naming its line and column.
    /// </summary>
    /// <exception cref="InvalidDataException">A row that cannot be read, or (with <see cref="RowOrder.Reject"/>) a row out of order.</exception>
    public static TimeSeriesCsv Read(string path, RowOrder order = RowOrder.File)
    {
        using var reader = new BoundedLineReader(path);
        string header = reader.ReadLine() ?? throw new InvalidDataException($"'{path}' is empty.");
        string[] names = header.Split(',');
        int columns = names.Length - 1;
        if (columns < 1)
        {
            throw new InvalidDataException($"'{path}': the header '{header}' has no value column after the timestamp.");
        }

        var stamps = new List<string>();
        var times = new List<DateTime>();
        var values = new List<float>();
        int line = 1, stepsBack = 0, duplicates = 0, missing = 0;
        for (string? text = reader.ReadLine(); text is not null; text = reader.ReadLine())
        {
            line++;
            if (text.Length == 0)
            {
                continue;
            }

            string[] cells = text.Split(',');
            if (cells.Length != names.Length)
            {
                throw new InvalidDataException($"'{path}' line {line}: {cells.Length} fields; the header has {names.Length}.");
            }

            string stamp = cells[0].Trim().Trim('"');
            if (!TextLines.TryParseTime(stamp, out DateTime time))
            {
                throw new InvalidDataException($"'{path}' line {line}: timestamp '{stamp}' is not ISO 8601 or YYYY-MM-DD HH:MM:SS.");
            }

            if (times.Count > 0 && time < times[^1])
            {
                stepsBack++;
                if (order == RowOrder.Reject)
                {
                    throw new InvalidDataException($"'{path}' line {line}: timestamp {stamp} is earlier than the row before (--order file reads rows as they come, --order time sorts them).");
                }
            }

            duplicates += times.Count > 0 && time == times[^1] ? 1 : 0;
            stamps.Add(stamp);
            times.Add(time);
            for (int c = 1; c < cells.Length; c++)
            {
                string cell = cells[c].Trim().Trim('"');
                if (IsMissing(cell))
                {
                    missing++;
                    values.Add(float.NaN);
                }
                else if (TextLines.TryParseFloat(cell, out float v) && float.IsFinite(v))
                {
                    values.Add(v);
                }
                else
                {
                    throw new InvalidDataException($"'{path}' line {line}, column '{names[c].Trim()}': '{cells[c]}' is not a finite number.");
                }
            }
        }

        if (times.Count < 2)
        {
            throw new InvalidDataException($"'{path}' has {times.Count} data row(s); at least two are needed.");
        }

        float[] all = [.. values];
        for (int c = 0; c < columns; c++)
        {
            if (!Interpolate(all, c, columns))
            {
                throw new InvalidDataException($"'{path}', column '{names[c + 1].Trim()}': no value in any row.");
            }
        }

        string[] stampArray = [.. stamps];
        DateTime[] timeArray = [.. times];
        if (order == RowOrder.Time && stepsBack > 0)
        {
            int[] index = [.. Enumerable.Range(0, timeArray.Length).OrderBy(i => timeArray[i])];
            stampArray = [.. index.Select(i => stamps[i])];
            timeArray = [.. index.Select(i => times[i])];
            var sorted = new float[all.Length];
            for (int r = 0; r < index.Length; r++)
            {
                all.AsSpan(index[r] * columns, columns).CopyTo(sorted.AsSpan(r * columns));
            }

            all = sorted;
        }

        var irregular = new TimeSeriesIrregularities(stepsBack, duplicates, CountGaps(timeArray), missing);
        return new TimeSeriesCsv(stampArray, timeArray, all, columns, [.. names.Skip(1).Select(n => n.Trim())], irregular);
    }

    private static bool IsMissing(string cell) =>
        cell.Length == 0 || cell.Equals("nan", StringComparison.OrdinalIgnoreCase) || cell.Equals("null", StringComparison.OrdinalIgnoreCase) || cell.Equals("NA", StringComparison.OrdinalIgnoreCase);

    /// <summary>Fills the NaNs of column <paramref name="c"/> linearly between their neighbours; false when the column has no value at all.</summary>
    private static bool Interpolate(float[] values, int c, int columns)
    {
        int rows = values.Length / columns;
        int last = -1;
        for (int r = 0; r < rows; r++)
        {
            float v = values[(r * columns) + c];
            if (float.IsNaN(v))
            {
                continue;
            }

            for (int g = last + 1; g < r; g++)
            {
                values[(g * columns) + c] = last < 0 ? v : values[(last * columns) + c] + ((v - values[(last * columns) + c]) * (g - last) / (r - last));
            }

            last = r;
        }

        if (last < 0)
        {
            return false;
        }

        for (int g = last + 1; g < rows; g++)
        {
            values[(g * columns) + c] = values[(last * columns) + c];
        }

        return true;
    }

    private static int CountGaps(DateTime[] times)
    {
        if (times.Length < 3)
        {
            return 0;
        }

        double[] intervals = [.. Enumerable.Range(1, times.Length - 1).Select(i => (times[i] - times[i - 1]).TotalSeconds).Where(d => d > 0).Order()];
        if (intervals.Length == 0)
        {
            return 0;
        }

        double median = intervals[intervals.Length / 2];
        int gaps = 0;
        for (int i = 1; i < times.Length; i++)
        {
            gaps += (times[i] - times[i - 1]).TotalSeconds > 2 * median ? 1 : 0;
        }

        return gaps;
    }
}
