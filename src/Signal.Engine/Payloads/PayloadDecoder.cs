using System.Globalization;
using System.Text.Json;

namespace Signal.Engine.Payloads;

/// <summary>
/// Decodes MQTT payloads (our JSON, SenML JSON, binary) into <see cref="DecodedPayload"/>. Uses <see cref="Utf8JsonReader"/>
/// over the bytes and reuses its buffers, so a steady stream of messages decodes without allocating.
/// </summary>
/// <remarks>
/// <para>JSON, one channel: <c>{"ts": 1732190000000, "rate": 1000, "seq": 7, "values": [0.1, 0.2]}</c>;
/// several: <c>{"ts": "2026-11-21T10:00:00Z", "rate": 100, "channels": {"x": [..], "y": [..], "z": [..]}}</c>
/// (every channel the same length, kept in the order given); feature vectors: <c>{"ts":.., "features": [..]}</c>
/// or <c>"features": [[..], [..]]</c>. <c>ts</c> is Unix milliseconds or ISO 8601; <c>seq</c> is optional.</para>
/// <para>SenML (RFC 8428): an array of records; <c>bn</c>, <c>bt</c>, <c>bv</c>, <c>n</c>, <c>v</c>, <c>t</c> are read.
/// Each distinct name is a channel (first appearance order), its k-th record is sample k; the sample rate is
/// the inverse of the first channel's time step. Records with string, boolean or data values are refused.</para>
/// <para>Not thread-safe: one decoder per thread.</para>
/// </remarks>
public sealed class PayloadDecoder
{
    private const int MaxSenMLNames = 1024;
    private const double RelativeTimeLimit = 268_435_456; // 2^28 s: SenML times below this are relative to "now"
    private readonly DecodedPayload _result = new();
    private float[] _scratch = new float[256];
    private readonly List<(int Start, int Length)> _channelRanges = [];
    private readonly List<int> _senmlName = [];
    private readonly List<(double Base, double Offset)> _senmlTime = [];

    /// <summary>Decodes one payload.</summary>
    /// <param name="payload">The bytes.</param>
    /// <param name="format">The format, or <see cref="PayloadFormat.Auto"/>.</param>
    /// <param name="result">The decoded message (owned by this decoder, valid until the next call).</param>
    /// <param name="error">Why it failed, naming the field.</param>
    /// <returns>True when decoded.</returns>
    public bool TryDecode(ReadOnlySpan<byte> payload, PayloadFormat format, out DecodedPayload result, out string error)
    {
        result = _result;
        _result.Clear();
        if (format == PayloadFormat.Auto)
        {
            format = Detect(payload);
        }

        try
        {
            bool ok = format switch
            {
                PayloadFormat.Binary => BinaryPayload.TryRead(payload, _result, out error),
                PayloadFormat.SenML => TryReadSenML(payload, out error),
                PayloadFormat.Json => TryReadJson(payload, out error),
                _ => Fail("payload: not JSON ('{'), SenML ('[') or binary ('SG')", out error),
            };
            if (ok && _result.Count == 0)
            {
                return Fail("payload: holds no values", out error);
            }

            return ok;
        }
        catch (JsonException e)
        {
            error = "payload: invalid JSON: " + e.Message;
            return false;
        }
        catch (FormatException e)
        {
            error = "payload: " + e.Message;
            return false;
        }
        catch (InvalidOperationException e)
        {
            // Utf8JsonReader's getters throw this on a token of the wrong type; every field is checked before it is
            // read, so reaching here is a decoder defect, but the message is still refused, never the loop ended.
            error = "payload: " + e.Message;
            return false;
        }
    }

    /// <summary>
    /// The message's sequence number, if it has one: read from the header alone for binary payloads (no values are
    /// copied), by a full decode for JSON and SenML. For callers that must order messages before the engine decodes them.
    /// </summary>
    /// <param name="payload">The bytes.</param>
    /// <param name="format">The format, or <see cref="PayloadFormat.Auto"/>.</param>
    /// <param name="sequence">The sequence number.</param>
    /// <returns>False when the payload has none or does not decode.</returns>
    public bool TryReadSequence(ReadOnlySpan<byte> payload, PayloadFormat format, out long sequence)
    {
        if (format == PayloadFormat.Auto)
        {
            format = Detect(payload);
        }

        if (format == PayloadFormat.Binary)
        {
            bool header = payload.Length >= BinaryPayload.HeaderLength && payload[0] == 'S' && payload[1] == 'G' && payload[2] == BinaryPayload.Version;
            sequence = header ? (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(payload[8..]) : 0;
            return header;
        }

        if (TryDecode(payload, format, out DecodedPayload decoded, out _) && decoded.Sequence is long s)
        {
            sequence = s;
            return true;
        }

        sequence = 0;
        return false;
    }

    private static PayloadFormat Detect(ReadOnlySpan<byte> payload)
    {
        foreach (byte b in payload)
        {
            switch (b)
            {
                case (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n': continue;
                case (byte)'{': return PayloadFormat.Json;
                case (byte)'[': return PayloadFormat.SenML;
                case (byte)'S': return payload.Length > 1 && payload[1] == 'G' ? PayloadFormat.Binary : PayloadFormat.Auto;
                default: return PayloadFormat.Auto;
            }
        }

        return PayloadFormat.Auto;
    }

    private static bool Fail(string why, out string error)
    {
        error = why;
        return false;
    }

    private bool TryReadJson(ReadOnlySpan<byte> payload, out string error)
    {
        var reader = new Utf8JsonReader(payload);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            return Fail("json: the payload is not an object", out error);
        }

        int used = 0;
        _channelRanges.Clear();
        bool sawValues = false;
        int featureWidth = -1;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("ts"u8))
            {
                reader.Read();
                if (!TryReadTime(ref reader, out long ns, out error))
                {
                    return false;
                }

                _result.TimestampNs = ns;
            }
            else if (reader.ValueTextEquals("rate"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.Number || !reader.TryGetDouble(out double rate) || !(rate > 0) || !double.IsFinite(rate))
                {
                    return Fail("json: 'rate' is not a positive number of Hz", out error);
                }

                _result.Rate = rate;
            }
            else if (reader.ValueTextEquals("seq"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out long seq) || seq < 0)
                {
                    return Fail("json: 'seq' is not a non-negative integer", out error);
                }

                _result.Sequence = seq;
            }
            else if (reader.ValueTextEquals("values"u8))
            {
                reader.Read();
                int start = used;
                if (!TryReadNumbers(ref reader, ref used, "values", out error))
                {
                    return false;
                }

                _channelRanges.Add((start, used - start));
                sawValues = true;
            }
            else if (reader.ValueTextEquals("channels"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    return Fail("json: 'channels' is not an object of arrays", out error);
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    string name = reader.GetString()!;
                    reader.Read();
                    int start = used;
                    if (!TryReadNumbers(ref reader, ref used, "channels." + name, out error))
                    {
                        return false;
                    }

                    _result.ChannelNames.Add(name);
                    _channelRanges.Add((start, used - start));
                }

                sawValues = true;
            }
            else if (reader.ValueTextEquals("features"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartArray)
                {
                    return Fail("json: 'features' is not an array", out error);
                }

                int start = used;
                int rows = 0;
                var peek = reader;
                peek.Read();
                if (peek.TokenType == JsonTokenType.StartArray)
                {
                    reader.Read();
                    while (reader.TokenType == JsonTokenType.StartArray)
                    {
                        int rowStart = used;
                        if (!TryReadNumbers(ref reader, ref used, $"features[{rows}]", out error))
                        {
                            return false;
                        }

                        int width = used - rowStart;
                        if (featureWidth >= 0 && width != featureWidth)
                        {
                            return Fail($"json: features[{rows}] has {width} values, features[0] has {featureWidth}", out error);
                        }

                        featureWidth = width;
                        rows++;
                        reader.Read();
                    }
                }
                else
                {
                    if (!TryReadNumbers(ref reader, ref used, "features", out error))
                    {
                        return false;
                    }

                    featureWidth = used - start;
                    rows = 1;
                }

                _channelRanges.Add((start, used - start));
                _result.Kind = PayloadKind.Features;
                _result.Width = featureWidth;
                _result.Count = featureWidth == 0 ? 0 : rows;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (_result.Kind == PayloadKind.Features)
        {
            if (sawValues)
            {
                return Fail("json: a message holds either 'features' or samples ('values'/'channels'), not both", out error);
            }

            _scratch.AsSpan(0, _result.Count * _result.Width).CopyTo(_result.Reserve(_result.Count * _result.Width));
            error = string.Empty;
            return true;
        }

        if (!sawValues || _channelRanges.Count == 0)
        {
            return Fail("json: no 'values', 'channels' or 'features'", out error);
        }

        int samples = _channelRanges[0].Length;
        for (int c = 1; c < _channelRanges.Count; c++)
        {
            if (_channelRanges[c].Length != samples)
            {
                string name = c < _result.ChannelNames.Count ? _result.ChannelNames[c] : c.ToString(CultureInfo.InvariantCulture);
                return Fail($"json: channel '{name}' has {_channelRanges[c].Length} samples, the first channel {samples}", out error);
            }
        }

        Interleave(samples);
        error = string.Empty;
        return true;
    }

    private void Interleave(int samples)
    {
        int width = _channelRanges.Count;
        Span<float> values = _result.Reserve(samples * width);
        for (int c = 0; c < width; c++)
        {
            ReadOnlySpan<float> channel = _scratch.AsSpan(_channelRanges[c].Start, samples);
            for (int i = 0; i < samples; i++)
            {
                values[(i * width) + c] = channel[i];
            }
        }

        _result.Width = width;
        _result.Count = samples;
    }

    private bool TryReadNumbers(ref Utf8JsonReader reader, ref int used, string field, out string error)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            return Fail($"json: '{field}' is not an array of numbers", out error);
        }

        int index = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetDouble(out double v))
            {
                return Fail($"json: {field}[{index}] is not a number", out error);
            }

            if (used == _scratch.Length)
            {
                Array.Resize(ref _scratch, _scratch.Length * 2);
            }

            _scratch[used++] = (float)v;
            index++;
        }

        error = string.Empty;
        return true;
    }

    private static bool TryReadTime(ref Utf8JsonReader reader, out long ns, out string error)
    {
        ns = 0;
        error = string.Empty;
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out long wholeMs) && wholeMs is > -9_000_000_000_000 and < 9_000_000_000_000)
        {
            ns = wholeMs * 1_000_000;
            return true;
        }

        if (reader.TokenType == JsonTokenType.Number && reader.TryGetDouble(out double ms) && double.IsFinite(ms) && Math.Abs(ms) < 9e12)
        {
            double whole = Math.Floor(ms);
            ns = ((long)whole * 1_000_000) + (long)Math.Round((ms - whole) * 1e6);
            return true;
        }

        if (reader.TokenType == JsonTokenType.String && DateTimeOffset.TryParse(reader.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out DateTimeOffset time))
        {
            ns = (time.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100;
            return true;
        }

        error = "json: 'ts' is neither Unix milliseconds nor an ISO 8601 time";
        return false;
    }

    /// <summary>Reads a SenML numeric field, naming the record and field when it is not a finite number.</summary>
    private static bool TryNumber(ref Utf8JsonReader reader, int record, string field, out double value, out string error)
    {
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetDouble(out value) && double.IsFinite(value))
        {
            error = string.Empty;
            return true;
        }

        value = 0;
        return Fail($"senml: record {record} field '{field}' is {Describe(reader.TokenType)}, not a finite number", out error);
    }

    /// <summary>Reads a SenML string field, naming the record and field when it is not a string.</summary>
    private static bool TryString(ref Utf8JsonReader reader, int record, string field, out string value, out string error)
    {
        if (reader.TokenType == JsonTokenType.String)
        {
            value = reader.GetString() ?? string.Empty;
            error = string.Empty;
            return true;
        }

        value = string.Empty;
        return Fail($"senml: record {record} field '{field}' is {Describe(reader.TokenType)}, not a string", out error);
    }

    private static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.Number => "a number",
        JsonTokenType.String => "a string",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.Null => "null",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.StartObject => "an object",
        _ => "missing",
    };

    private bool TryReadSenML(ReadOnlySpan<byte> payload, out string error)
    {
        var reader = new Utf8JsonReader(payload);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartArray)
        {
            return Fail("senml: the payload is not an array of records", out error);
        }

        string baseName = string.Empty;
        double baseTime = 0, baseValue = 0;
        int used = 0, record = 0;
        _senmlName.Clear();
        _senmlTime.Clear();
        while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
        {
            string? name = null;
            double time = 0;
            double? value = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("bn"u8))
                {
                    reader.Read();
                    if (!TryString(ref reader, record, "bn", out string? bn, out error))
                    {
                        return false;
                    }

                    baseName = bn;
                }
                else if (reader.ValueTextEquals("bt"u8))
                {
                    reader.Read();
                    if (!TryNumber(ref reader, record, "bt", out baseTime, out error))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("bv"u8))
                {
                    reader.Read();
                    if (!TryNumber(ref reader, record, "bv", out baseValue, out error))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("n"u8))
                {
                    reader.Read();
                    if (!TryString(ref reader, record, "n", out name, out error))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("t"u8))
                {
                    reader.Read();
                    if (!TryNumber(ref reader, record, "t", out time, out error))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("v"u8))
                {
                    reader.Read();
                    if (!TryNumber(ref reader, record, "v", out double v, out error))
                    {
                        return false;
                    }

                    value = v;
                }
                else if (reader.ValueTextEquals("vs"u8) || reader.ValueTextEquals("vb"u8) || reader.ValueTextEquals("vd"u8))
                {
                    return Fail($"senml: record {record} holds a string, boolean or data value; only numeric 'v' is a sensor sample", out error);
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            if (value is null)
            {
                if (name is null)
                {
                    record++;
                    continue; // a record that only sets base fields
                }

                return Fail($"senml: record {record} ('{name}') has no numeric 'v'", out error);
            }

            string full = baseName + (name ?? string.Empty);
            int channel = _result.ChannelNames.IndexOf(full);
            if (channel < 0)
            {
                if (_result.ChannelNames.Count == MaxSenMLNames)
                {
                    // The name lookup is linear: a bound keeps a hostile message of many names from costing seconds.
                    return Fail($"senml: more than {MaxSenMLNames} distinct names", out error);
                }

                channel = _result.ChannelNames.Count;
                _result.ChannelNames.Add(full);
            }

            if (used == _scratch.Length)
            {
                Array.Resize(ref _scratch, _scratch.Length * 2);
            }

            _scratch[used++] = (float)(baseValue + value.Value);
            _senmlName.Add(channel);
            _senmlTime.Add((baseTime, time));
            record++;
        }

        int width = _result.ChannelNames.Count;
        if (width == 0)
        {
            return Fail("senml: no record with a numeric value", out error);
        }

        Span<int> seen = width <= 256 ? stackalloc int[width] : new int[width];
        seen.Clear();
        for (int i = 0; i < _senmlName.Count; i++)
        {
            seen[_senmlName[i]]++;
        }

        int samples = seen[0];
        for (int c = 1; c < width; c++)
        {
            // Every name the same count (a total that merely adds up is not enough: 2 + 3 + 1 + 2 = 4 × 2).
            if (seen[c] != samples)
            {
                return Fail($"senml: name '{_result.ChannelNames[c]}' has {seen[c]} records, '{_result.ChannelNames[0]}' has {samples}; every name needs one record per sample", out error);
            }
        }

        seen.Clear();
        Span<float> values = _result.Reserve(used);
        (double Base, double Offset) firstTime = (double.NaN, 0), secondTime = (double.NaN, 0);
        for (int i = 0; i < used; i++)
        {
            int c = _senmlName[i];
            if (c == 0)
            {
                if (seen[0] == 0)
                {
                    firstTime = _senmlTime[i];
                }
                else if (seen[0] == 1)
                {
                    secondTime = _senmlTime[i];
                }
            }

            values[(seen[c]++ * width) + c] = _scratch[i];
        }

        _result.Width = width;
        _result.Count = samples;
        // Base and offset are kept apart: an absolute time in seconds as one double has only ~0.1 µs resolution.
        double step = (secondTime.Base - firstTime.Base) + (secondTime.Offset - firstTime.Offset);
        if (samples > 1 && step > 0)
        {
            _result.Rate = 1.0 / step;
        }

        if (firstTime.Base + firstTime.Offset >= RelativeTimeLimit)
        {
            double whole = Math.Floor(firstTime.Base);
            _result.TimestampNs = ((long)whole * 1_000_000_000) + (long)Math.Round(((firstTime.Base - whole) + firstTime.Offset) * 1e9);
        }

        error = string.Empty;
        return true;
    }
}
