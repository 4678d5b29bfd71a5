using System.Buffers.Binary;

namespace Signal.Models.Networks;

/// <summary>
/// One stream's memory: h (and c for LSTM) of every layer, in one contiguous block. Reset it on a gap,
/// copy it, or serialise it for checkpoints. Not thread-safe: a state is stepped by one thread at a time.
/// </summary>
public sealed class RecurrentState
{
    private const uint Magic = 0x54534753; // "SGST" little-endian
    private const ushort Version = 1;
    private const int HeaderSize = 4 + 2 + 8 + 4;

    internal RecurrentState(RecurrentModel model)
    {
        Fingerprint = model.Fingerprint;
        Values = new float[model.StateSize];
    }

    /// <summary>The layout fingerprint of the model the state belongs to.</summary>
    public ulong Fingerprint { get; }

    /// <summary>Number of floats in the state.</summary>
    public int Size => Values.Length;

    /// <summary>The state's values (h and c of each layer, in layer order).</summary>
    public ReadOnlySpan<float> AsSpan() => Values;

    internal float[] Values { get; }

    /// <summary>Marks the state as taken by one batched step, so a stream cannot appear twice in it.</summary>
    internal long BatchToken { get; set; }

    internal RecurrentModel.Workspace? SingleWorkspace { get; set; }

    /// <summary>Zeroes the state (a stream starting over).</summary>
    public void Reset() => Array.Clear(Values);

    /// <summary>Copies this state's values into <paramref name="destination"/> (same architecture).</summary>
    /// <param name="destination">The state to overwrite.</param>
    public void CopyTo(RecurrentState destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (destination.Fingerprint != Fingerprint || destination.Values.Length != Values.Length)
        {
            throw new ArgumentException("the destination state belongs to a model of another architecture.", nameof(destination));
        }

        Values.CopyTo(destination.Values, 0);
    }

    /// <summary>Bytes needed by <see cref="WriteTo"/>.</summary>
    public int SerializedSize => HeaderSize + (4 * Values.Length);

    /// <summary>
    /// Writes the state: "SGST", version (u16), layout fingerprint (u64), float count (u32), then the floats,
    /// all little-endian.
    /// </summary>
    /// <param name="destination">At least <see cref="SerializedSize"/> bytes.</param>
    public void WriteTo(Span<byte> destination)
    {
        if (destination.Length < SerializedSize)
        {
            throw new ArgumentException($"destination holds {destination.Length} bytes; {SerializedSize} are needed.", nameof(destination));
        }

        BinaryPrimitives.WriteUInt32LittleEndian(destination, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[4..], Version);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[6..], Fingerprint);
        BinaryPrimitives.WriteInt32LittleEndian(destination[14..], Values.Length);
        for (int i = 0; i < Values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(destination[(HeaderSize + (4 * i))..], Values[i]);
        }
    }

    /// <summary>The state as bytes (see <see cref="WriteTo"/>).</summary>
    /// <returns>A new array.</returns>
    public byte[] ToBytes()
    {
        byte[] bytes = new byte[SerializedSize];
        WriteTo(bytes);
        return bytes;
    }

    /// <summary>Restores a state written by <see cref="WriteTo"/> for <paramref name="model"/>.</summary>
    /// <param name="model">The model the state is for.</param>
    /// <param name="bytes">The serialised state.</param>
    /// <returns>The state.</returns>
    /// <exception cref="FormatException">The bytes are not a state, or not one for this model's architecture.</exception>
    public static RecurrentState FromBytes(RecurrentModel model, ReadOnlySpan<byte> bytes)
    {
        ArgumentNullException.ThrowIfNull(model);
        RecurrentState state = model.CreateState();
        if (bytes.Length < HeaderSize || BinaryPrimitives.ReadUInt32LittleEndian(bytes) != Magic)
        {
            throw new FormatException("not a serialised recurrent state (missing 'SGST' header).");
        }

        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(bytes[4..]);
        if (version != Version)
        {
            throw new FormatException($"recurrent state version {version} is not supported (expected {Version}).");
        }

        if (BinaryPrimitives.ReadUInt64LittleEndian(bytes[6..]) != model.Fingerprint)
        {
            throw new FormatException("the recurrent state was saved for a model of another architecture.");
        }

        int count = BinaryPrimitives.ReadInt32LittleEndian(bytes[14..]);
        if (count != state.Values.Length || bytes.Length != HeaderSize + (4L * count))
        {
            throw new FormatException($"the recurrent state holds {count} values in {bytes.Length} bytes; this model needs {state.Values.Length}.");
        }

        for (int i = 0; i < count; i++)
        {
            float v = BinaryPrimitives.ReadSingleLittleEndian(bytes[(HeaderSize + (4 * i))..]);
            if (!float.IsFinite(v))
            {
                throw new FormatException($"the recurrent state holds {v} at index {i}.");
            }

            state.Values[i] = v;
        }

        return state;
    }
}
