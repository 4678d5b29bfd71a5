using System.Text;
using Signal.Engine.Live;
using Signal.Engine.Payloads;

namespace Signal.Engine.Tests;

public sealed class PayloadTests
{
    private static DecodedPayload Decode(string text, PayloadFormat format = PayloadFormat.Auto)
    {
        var decoder = new PayloadDecoder();
        Assert.True(decoder.TryDecode(Encoding.UTF8.GetBytes(text), format, out DecodedPayload p, out string error), error);
        return p;
    }

    private static string Error(ReadOnlySpan<byte> payload)
    {
        Assert.False(new PayloadDecoder().TryDecode(payload, PayloadFormat.Auto, out _, out string error));
        return error;
    }

    [Fact]
    public void Json_with_one_channel_reads_time_rate_sequence_and_values()
    {
        DecodedPayload p = Decode("""{"ts": 1732190000123, "rate": 1000, "seq": 7, "values": [0.5, -1, 2e-3]}""");
        Assert.Equal((1_732_190_000_123_000_000L, 1000.0, 7L, 1, 3), (p.TimestampNs!.Value, p.Rate, p.Sequence!.Value, p.Width, p.Count));
        Assert.Equal([0.5f, -1f, 0.002f], p.Values.ToArray());
        Assert.Equal(PayloadKind.Samples, p.Kind);
    }

    [Fact]
    public void The_sequence_number_is_read_from_the_binary_header_alone_and_from_json()
    {
        var decoder = new PayloadDecoder();
        // A hand-made header (layout in BinaryPayload's docs): 'S' 'G', version 1, flags 0, 1 channel, sequence at 8.
        byte[] binary = new byte[32 + 8];
        binary[0] = (byte)'S';
        binary[1] = (byte)'G';
        binary[2] = 1;
        binary[4] = 1;
        BitConverter.TryWriteBytes(binary.AsSpan(8), 123_456_789_012UL);
        Assert.True(decoder.TryReadSequence(binary, PayloadFormat.Auto, out long sequence));
        Assert.Equal(123_456_789_012L, sequence);
        Assert.True(decoder.TryReadSequence("""{"ts": 1732190000123, "rate": 1000, "seq": 7, "values": [0.5]}"""u8, PayloadFormat.Auto, out sequence));
        Assert.Equal(7L, sequence);
        Assert.False(decoder.TryReadSequence("""{"ts": 1732190000123, "rate": 1000, "values": [0.5]}"""u8, PayloadFormat.Auto, out _));
        Assert.False(decoder.TryReadSequence("SG"u8, PayloadFormat.Auto, out _));
        Assert.False(decoder.TryReadSequence("{ not json"u8, PayloadFormat.Auto, out _));
    }

    [Fact]
    public void Json_with_named_channels_is_interleaved_in_the_order_given_and_reads_iso_times()
    {
        DecodedPayload p = Decode("""{"ts": "2026-11-21T10:00:00.5Z", "rate": 100, "channels": {"z": [1, 2], "x": [3, 4], "y": [5, 6]}, "extra": {"ignored": [1]}}""");
        Assert.Equal(["z", "x", "y"], p.ChannelNames);
        Assert.Equal([1f, 3, 5, 2, 4, 6], p.Values.ToArray());
        Assert.Equal(new DateTimeOffset(2026, 11, 21, 10, 0, 0, 500, TimeSpan.Zero).ToUnixTimeMilliseconds() * 1_000_000, p.TimestampNs);
    }

    [Fact]
    public void Json_feature_vectors_skip_the_feature_stage()
    {
        DecodedPayload one = Decode("""{"ts": 1, "features": [1, 2, 3, 4]}""");
        Assert.Equal((PayloadKind.Features, 4, 1), (one.Kind, one.Width, one.Count));
        DecodedPayload two = Decode("""{"features": [[1, 2], [3, 4], [5, 6]]}""");
        Assert.Equal((PayloadKind.Features, 2, 3), (two.Kind, two.Width, two.Count));
        Assert.Equal([1f, 2, 3, 4, 5, 6], two.Values.ToArray());
    }

    [Fact]
    public void SenML_records_resolve_base_name_time_and_value_per_rfc_8428()
    {
        // RFC 8428 §5.1.3-style pack: base name, base time, relative times, two sensors.
        DecodedPayload p = Decode("""
            [{"bn": "urn:dev:ow:10e2073a01080063/", "bt": 1.320067464e+09, "bv": 1, "n": "x", "v": 0.5, "t": 0},
             {"n": "y", "v": 1.5, "t": 0},
             {"n": "x", "v": 2.5, "t": 0.01},
             {"n": "y", "v": 3.5, "t": 0.01}]
            """);
        Assert.Equal(["urn:dev:ow:10e2073a01080063/x", "urn:dev:ow:10e2073a01080063/y"], p.ChannelNames);
        Assert.Equal([1.5f, 2.5f, 3.5f, 4.5f], p.Values.ToArray());
        Assert.Equal(100, p.Rate, 6);
        Assert.Equal(1_320_067_464_000_000_000L, p.TimestampNs);
        Assert.Contains("string, boolean or data", Error("""[{"n": "door", "vs": "open"}]"""u8), StringComparison.Ordinal);
        Assert.Contains("every name needs one record per sample", Error("""[{"n": "x", "v": 1}, {"n": "y", "v": 1}, {"n": "x", "v": 2}]"""u8), StringComparison.Ordinal);
    }

    [Fact]
    public void Binary_round_trips_and_a_bad_header_is_named()
    {
        float[] values = [1, 2, 3, 4, 5, 6];
        byte[] bytes = TestModels.Binary(42, 1_700_000_000_000_000_001, 12_000, 3, values);
        Assert.Equal(32 + 24, bytes.Length);
        var decoder = new PayloadDecoder();
        Assert.True(decoder.TryDecode(bytes, PayloadFormat.Auto, out DecodedPayload p, out _));
        Assert.Equal((42L, 1_700_000_000_000_000_001L, 12_000.0, 3, 2), (p.Sequence!.Value, p.TimestampNs!.Value, p.Rate, p.Width, p.Count));
        Assert.Equal(values, p.Values.ToArray());
        Assert.Contains("not whole samples of 3", Error(bytes.AsSpan(0, bytes.Length - 2)), StringComparison.Ordinal);
        bytes[2] = 9;
        Assert.Contains("version 9", Error(bytes), StringComparison.Ordinal);
    }

    [Fact]
    public void Malformed_payloads_give_errors_that_name_the_field()
    {
        Assert.Contains("'rate'", Error("""{"rate": -5, "values": [1]}"""u8), StringComparison.Ordinal);
        Assert.Contains("'ts'", Error("""{"ts": "yesterday", "values": [1]}"""u8), StringComparison.Ordinal);
        Assert.Contains("channel 'y' has 1 samples", Error("""{"channels": {"x": [1, 2], "y": [1]}}"""u8), StringComparison.Ordinal);
        Assert.Contains("invalid JSON", Error("""{"values": [1, 2"""u8), StringComparison.Ordinal);
        Assert.Contains("no values", Error("""{"values": []}"""u8), StringComparison.Ordinal);
        Assert.Contains("not JSON", Error("hello"u8), StringComparison.Ordinal);
    }

    [Fact]
    public void Topic_templates_capture_the_stream_id()
    {
        var t = new TopicTemplate("sensors/{device}/{sensor}");
        Assert.Equal("sensors/+/+", t.Filter);
        Assert.True(t.TryMatch("sensors/pump-1/vib", out string id));
        Assert.Equal("pump-1/vib", id);
        Assert.False(t.TryMatch("sensors/pump-1", out _));
        Assert.False(t.TryMatch("sensors/pump-1/vib/extra", out _));
        Assert.False(t.TryMatch("other/pump-1/vib", out _));
        var site = new TopicTemplate("site/+/{machine}/#");
        Assert.True(site.TryMatch("site/north/m7/vib/x", out id));
        Assert.Equal("m7", id);
        Assert.True(site.TryMatch("site/north/m7", out id));
        Assert.Equal("m7", id);
        Assert.False(site.TryMatch("site/north", out _));
        Assert.False(t.TryMatch("sensors//vib", out _));
        Assert.False(t.TryMatch("sensors/pump-1/", out _));
        var apart = new TopicTemplate("plant/{line}/raw/{sensor}");
        Assert.True(apart.TryMatch("plant/l2/raw/accel", out id));
        Assert.Equal("l2/accel", id);
        Assert.False(apart.TryMatch("plant/l2/cooked/accel", out _));
        var whole = new TopicTemplate("a/+/c");
        Assert.True(whole.TryMatch("a/b/c", out id));
        Assert.Equal("a/b/c", id);
        Assert.Throws<ArgumentException>(() => new TopicTemplate("a/#/b"));

        // Routing's Matches answers as TryMatch does, for every template and topic above.
        string[] topics = ["sensors/pump-1/vib", "sensors/pump-1", "sensors/pump-1/vib/extra", "other/pump-1/vib", "site/north/m7/vib/x", "site/north/m7", "site/north", "sensors//vib", "sensors/pump-1/", "plant/l2/raw/accel", "plant/l2/cooked/accel", "a/b/c"];
        foreach (TopicTemplate template in new[] { t, site, apart, whole })
        {
            foreach (string topic in topics)
            {
                Assert.Equal(template.TryMatch(topic, out _), template.Matches(topic));
            }
        }
    }
}
