namespace Signal.Engine.Data;

/// <summary>A recording loaded into memory: samples interleaved by channel.</summary>
/// <param name="Samples">The samples, <c>[s0c0, s0c1, .., s1c0, ..]</c>.</param>
/// <param name="Channels">Channels per sample.</param>
/// <param name="ChannelNames">One name per channel (from a CSV header or an array name), or generated names.</param>
/// <param name="Source">Where it came from, for messages.</param>
public sealed record Recording(float[] Samples, int Channels, IReadOnlyList<string> ChannelNames, string Source)
{
    /// <summary>Multichannel samples in the recording.</summary>
    public int Length => Samples.Length / Channels;

    /// <summary>
    /// For text recordings, where samples sit in <see cref="Source"/> so errors can name the line: from each entry's
    /// sample on, sample <c>i</c> is on line <c>Line + (i - Sample)</c> (a new entry after each skipped header, comment or
    /// blank line; one entry for a plain file). Null for binary recordings.
    /// </summary>
    public IReadOnlyList<(int Sample, int Line)>? LineRuns { get; init; }

    /// <summary>Where sample <paramref name="sample"/> is in the source: <c>line N</c> for text, <c>sample N</c> otherwise.</summary>
    /// <param name="sample">The multichannel sample's index.</param>
    /// <returns>The place, for messages.</returns>
    public string Where(int sample)
    {
        if (LineRuns is { Count: > 0 } runs && (uint)sample < (uint)Length)
        {
            int run = runs.Count - 1;
            while (run > 0 && runs[run].Sample > sample)
            {
                run--; // runs are few (one per skipped line): a scan from the end is enough for an error message
            }

            return "line " + (runs[run].Line + sample - runs[run].Sample).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return "sample " + sample.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Loads a recording by its extension: <c>.npy</c>, <c>.npz</c> (the array named <paramref name="key"/>, else the
    /// first one) or CSV (<c>.csv</c>, <c>.txt</c>, <c>.tsv</c>: one column per channel, optional header).
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="key">For .npz: the array to read (for example <c>DE</c> in CWRU files); null for the first.</param>
    /// <returns>The recording.</returns>
    /// <exception cref="InvalidDataException">The file does not parse; the message names the file and the problem.</exception>
    public static Recording Load(string path, string? key = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"The recording '{path}' does not exist.", path);
        }

        return Path.GetExtension(path).ToLowerInvariant() switch
        {
            ".npy" => NpyReader.ReadNpy(path),
            ".npz" => NpyReader.ReadNpz(path, key),
            _ => CsvRecordingReader.Read(path),
        };
    }
}
