using System.Buffers;
using System.Buffers.Text;
using System.Text;

namespace Signal.Engine.Storage;

/// <summary>Timestamp precision of line protocol (the <c>precision</c> query parameter).</summary>
public enum WritePrecision
{
    /// <summary>Nanoseconds (<c>ns</c>).</summary>
    Nanoseconds,

    /// <summary>Microseconds (<c>us</c>).</summary>
    Microseconds,

    /// <summary>Milliseconds (<c>ms</c>).</summary>
    Milliseconds,

    /// <summary>Seconds (<c>s</c>).</summary>
    Seconds,
}

/// <summary>A tag of a point: a key and a string value (both escaped when written).</summary>
/// <param name="Key">The tag key.</param>
/// <param name="Value">The tag value; a null or empty value omits the tag (InfluxDB has no empty tags).</param>
public readonly record struct Tag(string Key, string? Value);

/// <summary>The type of a field value.</summary>
public enum FieldKind
{
    /// <summary>A 64-bit float.</summary>
    FloatValue,

    /// <summary>A signed 64-bit integer (<c>i</c> suffix).</summary>
    IntegerValue,

    /// <summary>An unsigned 64-bit integer (<c>u</c> suffix; InfluxDB 1.x only when built with uint support, 2.x and 3.x always).</summary>
    UnsignedValue,

    /// <summary>A boolean.</summary>
    BooleanValue,

    /// <summary>A string (quoted, with <c>"</c> and <c>\</c> escaped).</summary>
    StringValue,
}

/// <summary>A field of a point, without boxing: the kind says which value member holds it.</summary>
public readonly struct Field
{
    private Field(string key, FieldKind kind, double number, long integer, string? text)
    {
        Key = key;
        Kind = kind;
        Number = number;
        Bits = integer;
        Text = text;
    }

    /// <summary>The field key.</summary>
    public string Key { get; }

    /// <summary>The value's type.</summary>
    public FieldKind Kind { get; }

    /// <summary>The value of a <see cref="FieldKind.FloatValue"/> field.</summary>
    public double Number { get; }

    /// <summary>The value of an integer, unsigned (as bits) or boolean (0/1) field.</summary>
    public long Bits { get; }

    /// <summary>The value of a <see cref="FieldKind.StringValue"/> field.</summary>
    public string? Text { get; }

    /// <summary>A float field. NaN and infinities cannot be stored in InfluxDB; such a field is left out of the line.</summary>
    /// <param name="key">The key.</param>
    /// <param name="value">The value.</param>
    /// <returns>The field.</returns>
    public static Field Of(string key, double value) => new(key, FieldKind.FloatValue, value, 0, null);

    /// <summary>A signed integer field.</summary>
    /// <param name="key">The key.</param>
    /// <param name="value">The value.</param>
    /// <returns>The field.</returns>
    public static Field Of(string key, long value) => new(key, FieldKind.IntegerValue, 0, value, null);

    /// <summary>An unsigned integer field.</summary>
    /// <param name="key">The key.</param>
    /// <param name="value">The value.</param>
    /// <returns>The field.</returns>
    public static Field Of(string key, ulong value) => new(key, FieldKind.UnsignedValue, 0, unchecked((long)value), null);

    /// <summary>A boolean field.</summary>
    /// <param name="key">The key.</param>
    /// <param name="value">The value.</param>
    /// <returns>The field.</returns>
    public static Field Of(string key, bool value) => new(key, FieldKind.BooleanValue, 0, value ? 1 : 0, null);

    /// <summary>A string field (at most 64 KB in InfluxDB).</summary>
    /// <param name="key">The key.</param>
    /// <param name="value">The value.</param>
    /// <returns>The field.</returns>
    public static Field Of(string key, string value) => new(key, FieldKind.StringValue, 0, 0, value ?? throw new ArgumentNullException(nameof(value)));
}

/// <summary>
/// Writes InfluxDB line protocol (<c>measurement,tag=v field=1.5,n=3i 1700000000000000000\n</c>) as UTF-8 straight into
/// a buffer writer: no string is built per point. Escaping follows the InfluxDB line protocol reference: commas and
/// spaces in measurements; commas, equals signs and spaces in tag keys, tag values and field keys; double quotes and
/// backslashes in string field values.
/// </summary>
/// <remarks>
/// Line protocol cannot carry a newline in a measurement, tag or field key, or tag value; such a point is refused with
/// an <see cref="ArgumentException"/> naming the part. Non-finite floats are left out; a point left without fields is
/// not written. Hand-written: the InfluxDB client packages are not on our feed.
/// </remarks>
public static class LineProtocol
{
    private static readonly StandardFormat s_float = new('R');

    /// <summary>The <c>precision</c> query value of <paramref name="precision"/>.</summary>
    /// <param name="precision">The precision.</param>
    /// <returns><c>ns</c>, <c>us</c>, <c>ms</c> or <c>s</c>.</returns>
    public static string Name(WritePrecision precision) => precision switch
    {
        WritePrecision.Microseconds => "us",
        WritePrecision.Milliseconds => "ms",
        WritePrecision.Seconds => "s",
        _ => "ns",
    };

    /// <summary>Converts Unix nanoseconds to <paramref name="precision"/> (truncating toward negative infinity).</summary>
    /// <param name="ns">Unix nanoseconds.</param>
    /// <param name="precision">The target precision.</param>
    /// <returns>The timestamp in that unit.</returns>
    public static long Convert(long ns, WritePrecision precision) => precision switch
    {
        WritePrecision.Microseconds => Math.DivRem(ns, 1_000L) is var (q, r) && r < 0 ? q - 1 : q,
        WritePrecision.Milliseconds => Math.DivRem(ns, 1_000_000L) is var (q, r) && r < 0 ? q - 1 : q,
        WritePrecision.Seconds => Math.DivRem(ns, 1_000_000_000L) is var (q, r) && r < 0 ? q - 1 : q,
        _ => ns,
    };

    /// <summary>Appends one point as one line.</summary>
    /// <param name="output">Where the UTF-8 bytes go.</param>
    /// <param name="measurement">The measurement name.</param>
    /// <param name="tags">Its tags (empty values are left out). Sort them by key for the best write speed.</param>
    /// <param name="fields">Its fields; at least one must be writable.</param>
    /// <param name="timestampNs">Unix nanoseconds.</param>
    /// <param name="precision">The precision the timestamp is written in.</param>
    /// <returns>False when no field was writable (every float non-finite); nothing was written then.</returns>
    /// <exception cref="ArgumentException">A name or tag value is empty where it may not be, or holds a newline.</exception>
    public static bool Write(IBufferWriter<byte> output, string measurement, ReadOnlySpan<Tag> tags, ReadOnlySpan<Field> fields, long timestampNs, WritePrecision precision = WritePrecision.Nanoseconds)
    {
        ArgumentNullException.ThrowIfNull(output);
        bool any = false;
        foreach (ref readonly Field f in fields)
        {
            any |= f.Kind != FieldKind.FloatValue || double.IsFinite(f.Number);
        }

        if (!any)
        {
            return false;
        }

        Check(measurement, "measurement");
        foreach (ref readonly Tag t in tags)
        {
            if (!string.IsNullOrEmpty(t.Value))
            {
                Check(t.Key, "tag key");
                Check(t.Value, $"value of tag '{t.Key}'");
            }
        }

        foreach (ref readonly Field f in fields)
        {
            Check(f.Key, "field key");
        }

        Escaped(output, measurement, ", "u8);
        foreach (ref readonly Tag t in tags)
        {
            if (string.IsNullOrEmpty(t.Value))
            {
                continue;
            }

            Literal(output, ","u8);
            Escaped(output, t.Key, ",= "u8);
            Literal(output, "="u8);
            Escaped(output, t.Value, ",= "u8);
        }

        bool first = true;
        foreach (ref readonly Field f in fields)
        {
            if (f.Kind == FieldKind.FloatValue && !double.IsFinite(f.Number))
            {
                continue;
            }

            Literal(output, first ? " "u8 : ","u8);
            first = false;
            Escaped(output, f.Key, ",= "u8);
            Literal(output, "="u8);
            WriteValue(output, f);
        }

        Literal(output, " "u8);
        Span<byte> number = output.GetSpan(24);
        Utf8Formatter.TryFormat(Convert(timestampNs, precision), number, out int n);
        output.Advance(n);
        Literal(output, "\n"u8);
        return true;
    }

    private static void WriteValue(IBufferWriter<byte> output, in Field f)
    {
        Span<byte> span = output.GetSpan(32);
        int n;
        switch (f.Kind)
        {
            case FieldKind.FloatValue:
                Utf8Formatter.TryFormat(f.Number, span, out n, s_float);
                output.Advance(n);
                return;
            case FieldKind.IntegerValue:
                Utf8Formatter.TryFormat(f.Bits, span, out n);
                span[n++] = (byte)'i';
                output.Advance(n);
                return;
            case FieldKind.UnsignedValue:
                Utf8Formatter.TryFormat(unchecked((ulong)f.Bits), span, out n);
                span[n++] = (byte)'u';
                output.Advance(n);
                return;
            case FieldKind.BooleanValue:
                Literal(output, f.Bits != 0 ? "true"u8 : "false"u8);
                return;
            default:
                Literal(output, "\""u8);
                Escaped(output, f.Text!, "\"\\"u8);
                Literal(output, "\""u8);
                return;
        }
    }

    private static void Literal(IBufferWriter<byte> output, ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(output.GetSpan(bytes.Length));
        output.Advance(bytes.Length);
    }

    /// <summary>Throws when <paramref name="text"/> cannot be written as a name or tag value.</summary>
    /// <param name="text">The text.</param>
    /// <param name="what">The part's name for the error.</param>
    private static void Check(string text, string what)
    {
        if (text.Length == 0)
        {
            throw new ArgumentException($"line protocol: the {what} is empty.");
        }

        if (text.AsSpan().ContainsAny('\n', '\r'))
        {
            throw new ArgumentException($"line protocol: the {what} '{text.ReplaceLineEndings(" ")}' holds a newline, which line protocol cannot carry.");
        }

        // InfluxDB's parser takes a backslash as an escape of the next byte: one at the end, or before a comma,
        // equals sign or space, cannot be written so that it reads back as itself.
        int slash = text.IndexOf('\\', StringComparison.Ordinal);
        while (slash >= 0)
        {
            if (slash == text.Length - 1 || text[slash + 1] is ',' or '=' or ' ' or '\\')
            {
                throw new ArgumentException($"line protocol: the {what} '{text}' has a backslash at its end or before a comma, equals sign, space or backslash, which InfluxDB cannot read back.");
            }

            slash = text.IndexOf('\\', slash + 1);
        }
    }

    /// <summary>Writes <paramref name="text"/> as UTF-8 with a backslash before every byte in <paramref name="special"/>.</summary>
    /// <param name="output">Where it goes.</param>
    /// <param name="text">The text.</param>
    /// <param name="special">The bytes to escape.</param>
    private static void Escaped(IBufferWriter<byte> output, string text, ReadOnlySpan<byte> special)
    {
        int max = Encoding.UTF8.GetMaxByteCount(text.Length);
        Span<byte> span = output.GetSpan(2 * max);
        int length = Encoding.UTF8.GetBytes(text, span[max..]);
        ReadOnlySpan<byte> raw = span.Slice(max, length);
        if (raw.IndexOfAny(special) < 0)
        {
            raw.CopyTo(span);
            output.Advance(length);
            return;
        }

        // Escape in place, front to back: the raw bytes sit after the worst-case room for the escaped ones.
        int w = 0;
        for (int i = 0; i < length; i++)
        {
            byte b = span[max + i];
            if (special.Contains(b))
            {
                span[w++] = (byte)'\\';
            }

            span[w++] = b;
        }

        output.Advance(w);
    }
}
