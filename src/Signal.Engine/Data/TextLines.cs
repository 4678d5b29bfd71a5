using System.Globalization;
using System.Text;

namespace Signal.Engine.Data;

/// <summary>
/// Line reading and number parsing shared by every text reader (CSV recordings, labelled data, <c>infer</c> and
/// <c>detect</c> inputs): lines are bounded in length, so one 200 MB line cannot take gigabytes, and numbers are read
/// the way numpy and pandas write them (<c>nan</c>, <c>inf</c>, <c>-inf</c> included).
/// </summary>
public static class TextLines
{
    /// <summary>The longest line read, in characters (1 Mi): a row of 100,000 numbers fits many times over.</summary>
    public const int MaxLineChars = 1 << 20;

    /// <summary>The lines of a file with their 1-based numbers; a line longer than <paramref name="maxChars"/> is refused.</summary>
    /// <param name="path">The file (UTF-8, BOM detected).</param>
    /// <param name="maxChars">The longest line accepted.</param>
    /// <returns>Line number and text, lazily.</returns>
    /// <exception cref="InvalidDataException">A line is longer than <paramref name="maxChars"/>; the message names file and line.</exception>
    public static IEnumerable<(int Number, string Text)> Read(string path, int maxChars = MaxLineChars)
    {
        using var reader = new BoundedLineReader(path, maxChars);
        while (reader.ReadLine() is { } line)
        {
            yield return (reader.LineNumber, line);
        }
    }

    /// <summary>A timestamp as the time-series and recording readers take it: ISO 8601 or <c>YYYY-MM-DD HH:MM:SS</c>, UTC unless it says otherwise.</summary>
    public static bool TryParseTime(string text, out DateTime time) =>
        DateTime.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out time);

    /// <summary>A time in seconds since 0001-01-01 (UTC): the clock the anomaly detectors and sample-rate estimates use.</summary>
    public static double Seconds(DateTime time) => time.Ticks / (double)TimeSpan.TicksPerSecond;

    /// <summary>
    /// Parses a number as numpy, pandas and spreadsheets write it: invariant culture, exponent allowed, and
    /// <c>nan</c>, <c>inf</c>, <c>-inf</c>, <c>+inf</c>, <c>infinity</c> in any case.
    /// </summary>
    /// <param name="text">The cell (surrounding blanks and quotes ignored).</param>
    /// <param name="value">The number.</param>
    /// <returns>False when the cell is not a number.</returns>
    public static bool TryParseFloat(ReadOnlySpan<char> text, out float value)
    {
        text = text.Trim().Trim('"');
        if (float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value))
        {
            return true;
        }

        ReadOnlySpan<char> unsigned = text.Length > 0 && text[0] is '+' or '-' ? text[1..] : text;
        if (unsigned.Equals("inf", StringComparison.OrdinalIgnoreCase) || unsigned.Equals("infinity", StringComparison.OrdinalIgnoreCase))
        {
            value = text[0] == '-' ? float.NegativeInfinity : float.PositiveInfinity;
            return true;
        }

        if (unsigned.Equals("nan", StringComparison.OrdinalIgnoreCase))
        {
            value = float.NaN;
            return true;
        }

        return false;
    }
}

/// <summary>
/// Reads the lines of a text file, refusing one longer than a limit before it is held whole. Scans a block buffer for
/// line ends (vectorised <c>IndexOf</c>), so it reads as fast as <see cref="File.ReadLines(string)"/>.
/// </summary>
/// <remarks>Not thread-safe.</remarks>
public sealed class BoundedLineReader : IDisposable
{
    private readonly StreamReader _reader;
    private readonly string _path;
    private readonly int _maxChars;
    private char[] _buffer = new char[1 << 16];
    private int _start, _end;
    private bool _eof;

    /// <summary>Opens the file.</summary>
    /// <param name="path">The file (UTF-8, BOM detected).</param>
    /// <param name="maxChars">The longest line accepted (default <see cref="TextLines.MaxLineChars"/>).</param>
    public BoundedLineReader(string path, int maxChars = TextLines.MaxLineChars)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxChars, 1);
        _path = path;
        _maxChars = maxChars;
        _reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
    }

    /// <summary>The 1-based number of the line last returned (0 before the first).</summary>
    public int LineNumber { get; private set; }

    /// <summary>The next line without its end of line (<c>\n</c> or <c>\r\n</c>), or null at the end.</summary>
    /// <exception cref="InvalidDataException">The line is longer than the limit; the message names file and line.</exception>
    public string? ReadLine()
    {
        int searched = 0;
        while (true)
        {
            int newline = _buffer.AsSpan(_start + searched, _end - _start - searched).IndexOf('\n');
            if (newline >= 0)
            {
                int length = searched + newline;
                return Take(length, length + 1);
            }

            searched = _end - _start;
            if (searched > _maxChars)
            {
                throw new InvalidDataException($"'{_path}' line {LineNumber + 1} is longer than {_maxChars:N0} characters (is the file text with one row per line?).");
            }

            if (_eof)
            {
                return searched == 0 ? null : Take(searched, searched);
            }

            Fill();
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _reader.Dispose();

    private string Take(int length, int consumed)
    {
        ReadOnlySpan<char> line = _buffer.AsSpan(_start, length);
        if (line.Length > 0 && line[^1] == '\r')
        {
            line = line[..^1];
        }

        if (line.Length > _maxChars)
        {
            throw new InvalidDataException($"'{_path}' line {LineNumber + 1} is longer than {_maxChars:N0} characters (is the file text with one row per line?).");
        }

        _start += consumed;
        LineNumber++;
        return new string(line);
    }

    private void Fill()
    {
        if (_start > 0)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }

        if (_end == _buffer.Length)
        {
            // A long line: grow, but never past the limit (plus room for its line end).
            Array.Resize(ref _buffer, (int)Math.Min((long)_buffer.Length * 2, _maxChars + 2L));
        }

        int read = _reader.Read(_buffer, _end, _buffer.Length - _end);
        _eof = read == 0;
        _end += read;
    }
}
