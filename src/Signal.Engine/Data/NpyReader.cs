using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;

namespace Signal.Engine.Data;

/// <summary>
/// Reads NumPy <c>.npy</c> arrays (format versions 1-3) and <c>.npz</c> archives of them: 1-D arrays are one
/// channel, 2-D arrays of shape (samples, channels) are multichannel; C or Fortran order; dtypes
/// f4, f8, i1, i2, i4, i8, u1, u2 in either byte order. Values are converted to float32.
/// </summary>
/// <remarks>Hand-written: no package on our feed reads .npy. Format: numpy.org/doc/stable/reference/generated/numpy.lib.format.html.</remarks>
public static partial class NpyReader
{
    /// <summary>Reads a .npy file.</summary>
    /// <param name="path">The file.</param>
    /// <returns>The recording.</returns>
    public static Recording ReadNpy(string path)
    {
        using FileStream stream = File.OpenRead(path);
        return Read(stream, path, Path.GetFileNameWithoutExtension(path));
    }

    /// <summary>Reads one array of a .npz archive.</summary>
    /// <param name="path">The archive.</param>
    /// <param name="key">The array name (without .npy), or null for the first array.</param>
    /// <returns>The recording.</returns>
    public static Recording ReadNpz(string path, string? key)
    {
        ZipArchive zip;
        try
        {
            zip = ZipFile.OpenRead(path);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{path}' is not a readable .npz archive (truncated or damaged: {e.Message})", e);
        }

        using (zip)
        {
            ZipArchiveEntry? entry = key is null
                ? zip.Entries.FirstOrDefault(e => e.Name.EndsWith(".npy", StringComparison.Ordinal))
                : zip.GetEntry(key + ".npy");
            if (entry is null)
            {
                string names = string.Join(", ", zip.Entries.Select(e => Path.GetFileNameWithoutExtension(e.Name)));
                throw new InvalidDataException(key is null
                    ? $"'{path}' holds no .npy array."
                    : $"'{path}' has no array '{key}'; it holds: {names}.");
            }

            string source = $"{path}:{entry.Name}";
            if (entry.Length > MaxArrayBytes)
            {
                throw new InvalidDataException($"'{source}' unpacks to {entry.Length:N0} bytes; arrays of more than {MaxArrayBytes:N0} bytes are refused.");
            }

            try
            {
                using Stream stream = entry.Open();
                using var buffered = new MemoryStream((int)entry.Length);
                stream.CopyTo(buffered);
                buffered.Position = 0;
                return Read(buffered, source, Path.GetFileNameWithoutExtension(entry.Name));
            }
            catch (InvalidDataException e) when (!e.Message.Contains(source, StringComparison.Ordinal))
            {
                throw new InvalidDataException($"'{source}' is truncated or damaged: {e.Message}", e);
            }
        }
    }

    /// <summary>The largest array read, in bytes of its data (1 GiB): a header cannot make the reader allocate more.</summary>
    public const long MaxArrayBytes = 1L << 30;

    /// <summary>Reads a .npy array from a stream.</summary>
    /// <param name="stream">The stream, positioned at the magic string.</param>
    /// <param name="source">A name for messages.</param>
    /// <param name="name">The array's name, used for a single channel's name.</param>
    /// <returns>The recording.</returns>
    public static Recording Read(Stream stream, string source, string name)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var reader = new BinaryReader(stream, Encoding.Latin1, leaveOpen: true);
        byte[] magic = reader.ReadBytes(6);
        if (magic.Length != 6 || magic[0] != 0x93 || Encoding.ASCII.GetString(magic, 1, 5) != "NUMPY")
        {
            throw new InvalidDataException($"'{source}' is not a .npy array (bad magic string).");
        }

        byte major = reader.ReadByte();
        reader.ReadByte();
        if (major is < 1 or > 3)
        {
            throw new InvalidDataException($"'{source}' is .npy format version {major}; versions 1-3 are read.");
        }

        long headerLength = major == 1 ? reader.ReadUInt16() : reader.ReadUInt32();
        if (headerLength > 1 << 20)
        {
            throw new InvalidDataException($"'{source}' has a .npy header of {headerLength:N0} bytes (more than 1 MiB: damaged).");
        }

        byte[] headerBytes = reader.ReadBytes((int)headerLength);
        if (headerBytes.Length != headerLength)
        {
            throw new InvalidDataException($"'{source}' ends inside its .npy header.");
        }

        string header = Encoding.Latin1.GetString(headerBytes);
        string descr = Field(header, DescrPattern(), "descr", source);
        bool fortran = Field(header, FortranPattern(), "fortran_order", source) == "True";
        string shapeText = Field(header, ShapePattern(), "shape", source);
        var dims = new List<long>();
        foreach (string part in shapeText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!long.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out long dim))
            {
                throw new InvalidDataException($"'{source}' has shape ({shapeText}): '{part}' is not a non-negative whole number.");
            }

            dims.Add(dim);
        }

        if (dims.Count is < 1 or > 2)
        {
            throw new InvalidDataException($"'{source}' has shape ({shapeText}); a recording is 1-D (samples) or 2-D (samples, channels).");
        }

        if (descr.Length < 3 || descr[0] is not ('<' or '>' or '|' or '=') || !int.TryParse(descr.AsSpan(2), NumberStyles.None, CultureInfo.InvariantCulture, out int size)
            || (descr[1], size) is not (('f', 4) or ('f', 8) or ('i', 1) or ('u', 1) or ('i', 2) or ('u', 2) or ('i', 4) or ('i', 8)))
        {
            throw new InvalidDataException($"'{source}' has dtype '{descr}'; supported: f4, f8, i1, i2, i4, i8, u1, u2 (numbers, not objects or strings).");
        }

        long samplesLong = dims[0], channelsLong = dims.Count == 2 ? dims[1] : 1;
        if (channelsLong < 1)
        {
            throw new InvalidDataException($"'{source}' has no channels (shape ({shapeText})).");
        }

        // Checked in this order so no product overflows: each dimension, then the element count, then the bytes.
        if (samplesLong > Array.MaxLength || channelsLong > Array.MaxLength || samplesLong * channelsLong > Array.MaxLength
            || samplesLong * channelsLong * size > MaxArrayBytes)
        {
            throw new InvalidDataException($"'{source}' has shape ({shapeText}) of dtype '{descr}': more than {MaxArrayBytes:N0} bytes of data are refused.");
        }

        if (stream.CanSeek && stream.Length - stream.Position < samplesLong * channelsLong * size)
        {
            throw new InvalidDataException($"'{source}' ends after {stream.Length - stream.Position:N0} of {samplesLong * channelsLong * size:N0} data bytes that shape ({shapeText}) needs.");
        }

        int samples = (int)samplesLong, channels = (int)channelsLong;
        bool bigEndian = descr[0] == '>';
        char kind = descr[1];
        long count = (long)samples * channels;
        byte[] raw = reader.ReadBytes((int)(count * size));
        if (raw.Length != count * size)
        {
            throw new InvalidDataException($"'{source}' ends after {raw.Length} of {count * size} data bytes.");
        }

        var values = new float[count];
        for (long i = 0; i < count; i++)
        {
            // Interleave by channel whatever the storage order.
            long target = fortran ? ((i % samples) * channels) + (i / samples) : i;
            values[target] = Convert(raw.AsSpan((int)(i * size), size), kind, size, bigEndian, source, descr);
        }

        IReadOnlyList<string> names = channels == 1 ? [name] : [.. Enumerable.Range(0, channels).Select(c => $"{name}{c}")];
        return new Recording(values, channels, names, source);
    }

    private static float Convert(ReadOnlySpan<byte> b, char kind, int size, bool bigEndian, string source, string descr) => (kind, size) switch
    {
        ('f', 4) => bigEndian ? BinaryPrimitives.ReadSingleBigEndian(b) : BinaryPrimitives.ReadSingleLittleEndian(b),
        ('f', 8) => (float)(bigEndian ? BinaryPrimitives.ReadDoubleBigEndian(b) : BinaryPrimitives.ReadDoubleLittleEndian(b)),
        ('i', 1) => (sbyte)b[0],
        ('u', 1) => b[0],
        ('i', 2) => bigEndian ? BinaryPrimitives.ReadInt16BigEndian(b) : BinaryPrimitives.ReadInt16LittleEndian(b),
        ('u', 2) => bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(b) : BinaryPrimitives.ReadUInt16LittleEndian(b),
        ('i', 4) => bigEndian ? BinaryPrimitives.ReadInt32BigEndian(b) : BinaryPrimitives.ReadInt32LittleEndian(b),
        ('i', 8) => bigEndian ? BinaryPrimitives.ReadInt64BigEndian(b) : BinaryPrimitives.ReadInt64LittleEndian(b),
        _ => throw new InvalidDataException($"'{source}' has dtype '{descr}'; supported: f4, f8, i1, i2, i4, i8, u1, u2."),
    };

    private static string Field(string header, Regex pattern, string field, string source)
    {
        Match m = pattern.Match(header);
        return m.Success ? m.Groups[1].Value : throw new InvalidDataException($"'{source}' has a .npy header without '{field}'.");
    }

    [GeneratedRegex(@"'descr'\s*:\s*'([^']*)'")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")]
    private static partial Regex FortranPattern();

    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();
}
