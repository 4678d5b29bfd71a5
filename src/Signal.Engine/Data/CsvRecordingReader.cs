namespace Signal.Engine.Data;

/// <summary>
/// Reads a recording from delimited text: one row per sample, one column per channel, separated by
/// commas, semicolons or tabs (detected from the first row); an optional first row of column names
/// (detected when it does not parse as numbers). Empty lines and lines starting with '#' are skipped.
/// </summary>
public static class CsvRecordingReader
{
    /// <summary>Reads the file.</summary>
    /// <param name="path">The file.</param>
    /// <returns>The recording.</returns>
    /// <exception cref="InvalidDataException">A row does not parse; the message names the line and column.</exception>
    public static Recording Read(string path)
    {
        var values = new List<float>();
        var runs = new List<(int Sample, int Line)>();
        int samples = 0, lastLine = -1;
        string[]? names = null;
        int channels = -1;
        char separator = ',';
        foreach ((int lineNumber, string line) in TextLines.Read(path))
        {
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            if (channels < 0)
            {
                separator = line.Contains('\t', StringComparison.Ordinal) ? '\t' : line.Contains(';', StringComparison.Ordinal) && !line.Contains(',', StringComparison.Ordinal) ? ';' : ',';
            }

            string[] fields = line.Split(separator);
            if (channels < 0)
            {
                channels = fields.Length;
                if (!fields.All(f => TextLines.TryParseFloat(f, out _)))
                {
                    names = [.. fields.Select(f => f.Trim().Trim('"'))];
                    continue;
                }
            }

            if (fields.Length != channels)
            {
                throw new InvalidDataException($"'{path}' line {lineNumber}: {fields.Length} columns, but the first row has {channels}.");
            }

            for (int c = 0; c < fields.Length; c++)
            {
                if (!TextLines.TryParseFloat(fields[c], out float v))
                {
                    throw new InvalidDataException($"'{path}' line {lineNumber}, column {c + 1}: '{fields[c]}' is not a number.");
                }

                values.Add(v);
            }

            if (lineNumber != lastLine + 1)
            {
                runs.Add((samples, lineNumber)); // a new run of consecutive lines (after a header, comment or blank)
            }

            lastLine = lineNumber;
            samples++;
        }

        if (channels < 0 || values.Count == 0)
        {
            throw new InvalidDataException($"'{path}' holds no samples.");
        }

        names ??= [.. Enumerable.Range(0, channels).Select(c => channels == 1 ? "value" : $"ch{c}")];
        return new Recording([.. values], channels, names, path) { LineRuns = [.. runs] };
    }
}
