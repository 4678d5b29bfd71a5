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
        using ZipArchive zip = ZipFile.OpenRead(path);
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

        using Stream stream = entry.Open();
        using var buffered = new MemoryStream();
        stream.CopyTo(buffered);
        buffered.Position = 0;
        return Read(buffered, $"{path}:{entry.Name}", Path.GetFileNameWithoutExtension(entry.Name));
    }

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
        int headerLength = major == 1 ? reader.ReadUInt16() : (int)reader.ReadUInt32();
        string header = Encoding.Latin1.GetString(reader.ReadBytes(headerLength));
        string descr = Field(header, DescrPattern(), "descr", source);
        bool fortran = Field(header, FortranPattern(), "fortran_order", source) == "True";
        int[] shape = [.. Field(header, ShapePattern(), "shape", source)
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => int.Parse(s, CultureInfo.InvariantCulture))];
        if (shape.Length is < 1 or > 2)
        {
            throw new InvalidDataException($"'{source}' has shape ({string.Join(", ", shape)}); a recording is 1-D (samples) or 2-D (samples, channels).");
        }

        int samples = shape[0], channels = shape.Length == 2 ? shape[1] : 1;
        if (channels < 1)
        {
            throw new InvalidDataException($"'{source}' has no channels (shape ({string.Join(", ", shape)})).");
        }

        bool bigEndian = descr[0] == '>';
        char kind = descr[1];
        int size = int.Parse(descr.AsSpan(2), CultureInfo.InvariantCulture);
        long count = (long)samples * channels;
        byte[] raw = reader.ReadBytes(checked((int)(count * size)));
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

    [GeneratedRegex(@"'descr'\s*:\s*'([<>|=][a-z]\d+)'")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")]
    private static partial Regex FortranPattern();

    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();
}
