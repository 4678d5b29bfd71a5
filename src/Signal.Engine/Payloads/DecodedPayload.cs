namespace Signal.Engine.Payloads;

/// <summary>What a payload carries.</summary>
public enum PayloadKind
{
    /// <summary>Raw sensor samples, framed and turned into features by the engine.</summary>
    Samples,

    /// <summary>Pre-extracted feature vectors (e.g. from a CNN on video frames), one network step each; the feature stage is skipped.</summary>
    Features,
}

/// <summary>The payload formats <see cref="PayloadDecoder"/> reads.</summary>
public enum PayloadFormat
{
    /// <summary>Chosen per message from its first byte: <c>{</c> JSON, <c>[</c> SenML, <c>SG</c> binary.</summary>
    Auto,

    /// <summary>Our JSON object (<c>ts</c>, <c>rate</c>, <c>values</c> or <c>channels</c>, or <c>features</c>).</summary>
    Json,

    /// <summary>SenML JSON (RFC 8428): an array of records.</summary>
    SenML,

    /// <summary>Little-endian binary: a 32-byte header then float32 values (see <see cref="BinaryPayload"/>).</summary>
    Binary,
}

/// <summary>
/// One decoded message: interleaved values with their timing. Owned by the <see cref="PayloadDecoder"/> that filled it and
/// valid until its next decode.
/// </summary>
public sealed class DecodedPayload
{
    private float[] _values = new float[256];

    /// <summary>Samples or feature vectors.</summary>
    public PayloadKind Kind { get; internal set; }

    /// <summary>Timestamp of the first sample (or vector), Unix nanoseconds; null when the message has none.</summary>
    public long? TimestampNs { get; internal set; }

    /// <summary>Sample rate in Hz (vectors per second for features); 0 when the message does not say.</summary>
    public double Rate { get; internal set; }

    /// <summary>The message's sequence number within its stream, or null.</summary>
    public long? Sequence { get; internal set; }

    /// <summary>Values per sample (channels), or per feature vector.</summary>
    public int Width { get; internal set; }

    /// <summary>Samples (or vectors) in this message.</summary>
    public int Count { get; internal set; }

    /// <summary>Channel names in payload order, when the format names them; else empty.</summary>
    public List<string> ChannelNames { get; } = [];

    /// <summary>Interleaved values: <c>Values[i·Width + c]</c> is channel c of sample i.</summary>
    public ReadOnlySpan<float> Values => _values.AsSpan(0, Count * Width);

    internal void Clear()
    {
        Kind = PayloadKind.Samples;
        TimestampNs = null;
        Rate = 0;
        Sequence = null;
        Width = 0;
        Count = 0;
        ChannelNames.Clear();
    }

    internal Span<float> Reserve(int length)
    {
        if (_values.Length < length)
        {
            Array.Resize(ref _values, Math.Max(length, _values.Length * 2));
        }

        return _values.AsSpan(0, length);
    }

    internal float[] Buffer => _values;
}
