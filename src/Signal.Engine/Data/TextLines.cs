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
        using var reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        int number = 0;
        while (ReadLine(reader, path, ++number, maxChars) is { } line)
        {
            yield return (number, line);
        }
    }

    /// <summary>Reads one line of at most <paramref name="maxChars"/> characters (without its end of line).</summary>
    /// <param name="reader">The reader.</param>
    /// <param name="path">The file, for the message.</param>
    /// <param name="number">The line's number, for the message.</param>
    /// <param name="maxChars">The longest line accepted.</param>
    /// <returns>The line, or null at the end.</returns>
    /// <exception cref="InvalidDataException">The line is longer than <paramref name="maxChars"/>.</exception>
    public static string? ReadLine(TextReader reader, string path, int number, int maxChars = MaxLineChars)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var line = new StringBuilder();
        int c;
        while ((c = reader.Read()) >= 0)
        {
            if (c == '\n')
            {
                return Trim(line);
            }

            if (line.Length == maxChars)
            {
                throw new InvalidDataException($"'{path}' line {number} is longer than {maxChars:N0} characters (is the file text with one row per line?).");
            }

            line.Append((char)c);
        }

        return line.Length == 0 ? null : Trim(line);
    }

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

    private static string Trim(StringBuilder line) =>
        line.Length > 0 && line[^1] == '\r' ? line.ToString(0, line.Length - 1) : line.ToString();
}
