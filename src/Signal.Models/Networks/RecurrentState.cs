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

    private readonly float[] _values;

    internal RecurrentState(RecurrentModel model)
    {
        Fingerprint = model.Fingerprint;
        _values = new float[model.StateSize];
    }

    /// <summary>The layout fingerprint of the model the state belongs to.</summary>
    public ulong Fingerprint { get; }

    /// <summary>Number of floats in the state.</summary>
    public int Size => _values.Length;

    /// <summary>The state's values (h and c of each layer, in layer order).</summary>
    public ReadOnlySpan<float> AsSpan() => ReadValues;

    /// <summary>
    /// The host copy of the values, for reading and writing: fetched from the accelerator first when a device stepper
    /// holds a newer copy, and reported changed so that the device stepper uploads it before the stream's next step there.
    /// </summary>
    internal float[] Values
    {
        get
        {
            if (Residence is { } residence)
            {
                residence.Fetch(this);
                residence.HostChanged(this, discardDevice: false);
            }

            return _values;
        }
    }

    /// <summary>The host copy for reading only: fetched when the accelerator holds a newer one.</summary>
    internal float[] ReadValues
    {
        get
        {
            Residence?.Fetch(this);
            return _values;
        }
    }

    /// <summary>The host array as it is, for a device stepper's own transfers.</summary>
    internal float[] HostValues => _values;

    /// <summary>The device stepper holding a copy of this state in one of its slots, or null.</summary>
    internal IStateResidence? Residence { get; set; }

    /// <summary>The slot of this state in <see cref="Residence"/>.</summary>
    internal int Slot { get; set; } = -1;

    /// <summary>The host copy changed since it was last uploaded to <see cref="Residence"/> (kept by the stepper).</summary>
    internal bool HostChanged { get; set; }

    /// <summary>Marks the state as taken by one batched step, so a stream cannot appear twice in it.</summary>
    internal long BatchToken { get; set; }

    internal RecurrentModel.Workspace? SingleWorkspace { get; set; }

    /// <summary>Zeroes the state (a stream starting over).</summary>
    public void Reset()
    {
        // Nothing of the device's copy is needed: the zeros replace it at the next step there.
        Residence?.HostChanged(this, discardDevice: true);
        Array.Clear(_values);
    }

    /// <summary>Copies this state's values into <paramref name="destination"/> (same architecture).</summary>
    /// <param name="destination">The state to overwrite.</param>
    public void CopyTo(RecurrentState destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (destination.Fingerprint != Fingerprint || destination.Size != Size)
        {
            throw new ArgumentException("the destination state belongs to a model of another architecture.", nameof(destination));
        }

        float[] values = ReadValues;
        destination.Residence?.HostChanged(destination, discardDevice: true);
        values.CopyTo(destination._values, 0);
    }

    /// <summary>Bytes needed by <see cref="WriteTo"/>.</summary>
    public int SerializedSize => HeaderSize + (4 * Size);

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
        float[] values = ReadValues;
        BinaryPrimitives.WriteInt32LittleEndian(destination[14..], values.Length);
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(destination[(HeaderSize + (4 * i))..], values[i]);
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
        if (count != state.Size || bytes.Length != HeaderSize + (4L * count))
        {
            throw new FormatException($"the recurrent state holds {count} values in {bytes.Length} bytes; this model needs {state.Size}.");
        }

        for (int i = 0; i < count; i++)
        {
            float v = BinaryPrimitives.ReadSingleLittleEndian(bytes[(HeaderSize + (4 * i))..]);
            if (!float.IsFinite(v))
            {
                throw new FormatException($"the recurrent state holds {v} at index {i}.");
            }

            state._values[i] = v;
        }

        return state;
    }
}

/// <summary>
/// A device stepper that keeps copies of states in its own memory (see <see cref="RecurrentState.Residence"/>).
/// </summary>
internal interface IStateResidence
{
    /// <summary>Copies the device's copy of <paramref name="state"/> to its host array when the device's is newer.</summary>
    void Fetch(RecurrentState state);

    /// <summary>
    /// The host copy of <paramref name="state"/> is (about to be) changed: upload it before its next step; with
    /// <paramref name="discardDevice"/> the device's copy is no longer needed on the host (it is being overwritten).
    /// </summary>
    void HostChanged(RecurrentState state, bool discardDevice);
}
