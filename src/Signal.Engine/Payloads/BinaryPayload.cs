using System.Buffers.Binary;

namespace Signal.Engine.Payloads;

/// <summary>
/// The binary payload: a 32-byte little-endian header, then <c>count × channels</c> float32 values, sample-major.
/// </summary>
/// <remarks>
/// <code>
/// offset size field
///      0    2 magic 'S' 'G' (0x53 0x47)
///      2    1 version (1)
///      3    1 flags: bit 0 set = the values are feature vectors (one network step each), not samples
///      4    2 channels (values per sample or per vector), 1-4096
///      6    2 reserved, 0
///      8    8 sequence number of this message within its stream (uint64)
///     16    8 timestamp of the first sample, Unix nanoseconds (int64)
///     24    8 sample rate in Hz (float64; vectors per second for feature vectors)
///     32  4·n values (float32), n a multiple of channels
/// </code>
/// </remarks>
public static class BinaryPayload
{
    /// <summary>Header length in bytes.</summary>
    public const int HeaderLength = 32;

    /// <summary>The format version written and read.</summary>
    public const byte Version = 1;

    /// <summary>Writes a message.</summary>
    /// <param name="destination">At least <see cref="HeaderLength"/> + 4 × values.Length bytes.</param>
    /// <param name="sequence">The message's sequence number.</param>
    /// <param name="timestampNs">Unix nanoseconds of the first sample.</param>
    /// <param name="rate">Sample rate in Hz.</param>
    /// <param name="channels">Values per sample.</param>
    /// <param name="values">Interleaved values.</param>
    /// <param name="features">True when the values are feature vectors.</param>
    /// <returns>Bytes written.</returns>
    public static int Write(Span<byte> destination, ulong sequence, long timestampNs, double rate, int channels, ReadOnlySpan<float> values, bool features = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        int length = HeaderLength + (4 * values.Length);
        if (destination.Length < length || values.Length % channels != 0)
        {
            throw new ArgumentException($"the destination needs {length} bytes and the values a multiple of {channels}.", nameof(destination));
        }

        destination[0] = (byte)'S';
        destination[1] = (byte)'G';
        destination[2] = Version;
        destination[3] = features ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt16LittleEndian(destination[4..], (ushort)channels);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[6..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], sequence);
        BinaryPrimitives.WriteInt64LittleEndian(destination[16..], timestampNs);
        BinaryPrimitives.WriteDoubleLittleEndian(destination[24..], rate);
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(destination[(HeaderLength + (4 * i))..], values[i]);
        }

        return length;
    }

    internal static bool TryRead(ReadOnlySpan<byte> payload, DecodedPayload result, out string error)
    {
        error = string.Empty;
        if (payload.Length < HeaderLength || payload[0] != 'S' || payload[1] != 'G')
        {
            error = $"binary payload: {payload.Length} bytes without the 32-byte 'SG' header";
            return false;
        }

        if (payload[2] != Version)
        {
            error = $"binary payload: version {payload[2]} (this engine reads version {Version})";
            return false;
        }

        int channels = BinaryPrimitives.ReadUInt16LittleEndian(payload[4..]);
        int body = payload.Length - HeaderLength;
        if (channels is 0 or > 4096 || body % (4 * channels) != 0)
        {
            error = $"binary payload: {body} value bytes are not whole samples of {channels} float32 channels";
            return false;
        }

        double rate = BinaryPrimitives.ReadDoubleLittleEndian(payload[24..]);
        if (!double.IsFinite(rate) || rate < 0)
        {
            error = $"binary payload: sample rate {rate} is not a finite non-negative number";
            return false;
        }

        result.Kind = (payload[3] & 1) != 0 ? PayloadKind.Features : PayloadKind.Samples;
        result.Width = channels;
        result.Count = body / (4 * channels);
        result.Sequence = (long)BinaryPrimitives.ReadUInt64LittleEndian(payload[8..]);
        result.TimestampNs = BinaryPrimitives.ReadInt64LittleEndian(payload[16..]);
        result.Rate = rate;
        Span<float> values = result.Reserve(body / 4);
        if (BitConverter.IsLittleEndian)
        {
            System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(payload[HeaderLength..]).CopyTo(values);
        }
        else
        {
            for (int i = 0; i < values.Length; i++)
            {
                values[i] = BinaryPrimitives.ReadSingleLittleEndian(payload[(HeaderLength + (4 * i))..]);
            }
        }

        return true;
    }
}
