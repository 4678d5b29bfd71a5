using System.Buffers;

namespace Signal.Engine.Mqtt;

/// <summary>
/// One received MQTT message. The payload lives in a buffer rented from <see cref="ArrayPool{T}.Shared"/>:
/// whoever takes the message from <see cref="IMqttConnection.TryRead"/> owns it and calls <see cref="Release"/> once.
/// </summary>
/// <param name="Topic">The topic it was published on.</param>
/// <param name="Buffer">The rented buffer; the payload is its first <paramref name="Length"/> bytes.</param>
/// <param name="Length">Payload length in bytes.</param>
/// <param name="Qos">The QoS it was delivered with (0, 1 or 2).</param>
/// <param name="Retain">True when the broker delivered a retained message.</param>
/// <param name="ReceivedTimestamp">When it was received, in <see cref="System.Diagnostics.Stopwatch"/> ticks.</param>
public readonly record struct MqttMessage(string Topic, byte[] Buffer, int Length, int Qos, bool Retain, long ReceivedTimestamp)
{
    /// <summary>The payload bytes.</summary>
    public ReadOnlySpan<byte> Payload => Buffer.AsSpan(0, Length);

    /// <summary>Creates a message with a copy of <paramref name="payload"/> in a rented buffer.</summary>
    /// <param name="topic">The topic.</param>
    /// <param name="payload">The payload.</param>
    /// <param name="qos">The QoS.</param>
    /// <param name="retain">The retain flag.</param>
    /// <returns>The message; call <see cref="Release"/> when done.</returns>
    public static MqttMessage Copy(string topic, ReadOnlySpan<byte> payload, int qos = 0, bool retain = false)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(1, payload.Length));
        payload.CopyTo(buffer);
        return new MqttMessage(topic, buffer, payload.Length, qos, retain, System.Diagnostics.Stopwatch.GetTimestamp());
    }

    /// <summary>Returns the payload buffer to the pool; the message must not be used afterwards.</summary>
    public void Release() => ArrayPool<byte>.Shared.Return(Buffer);
}
