namespace Signal.Engine.Mqtt;

/// <summary>
/// A connection to an MQTT broker that reconnects by itself and re-subscribes after every reconnect.
/// </summary>
/// <remarks>
/// Thread-safety: <see cref="Publish"/>, <see cref="Subscribe"/>, <see cref="IsConnected"/> and the counters are safe
/// from any thread. <see cref="TryRead"/> and <see cref="WaitToReadAsync"/> have a single consumer.
/// </remarks>
public interface IMqttConnection : IAsyncDisposable
{
    /// <summary>True while a session with the broker is established (CONNACK received, not yet lost).</summary>
    bool IsConnected { get; }

    /// <summary>
    /// Why the broker refused a subscription (a failed SUBACK: not authorised, or a filter it does not take), or null
    /// while every subscription is granted. A daemon with a refused subscription is not ready.
    /// </summary>
    string? SubscriptionProblem => null;

    /// <summary>True while intake is paused because the consumer holds <see cref="MqttOptions.ReceiveCapacity"/> unread messages.</summary>
    bool IsPaused { get; }

    /// <summary>Counters since creation.</summary>
    MqttCounters Counters { get; }

    /// <summary>Raised (on the network thread; keep handlers short) when the connection is established or lost.</summary>
    event EventHandler<MqttConnectionEventArgs>? ConnectionChanged;

    /// <summary>Starts the network loop and waits for the first CONNACK.</summary>
    /// <param name="timeout">How long to wait for the broker.</param>
    /// <param name="cancellationToken">Cancels the wait (the loop keeps trying to connect).</param>
    /// <returns>A task that completes once connected.</returns>
    /// <exception cref="MqttException">The broker refused the connection or did not answer in time.</exception>
    Task ConnectAsync(TimeSpan timeout, CancellationToken cancellationToken = default);

    /// <summary>Subscribes to a topic filter (wildcards <c>+</c> and <c>#</c> allowed), now if connected and after every reconnect.</summary>
    /// <param name="pattern">The topic filter.</param>
    /// <param name="qos">The maximum QoS to receive with (0, 1 or 2).</param>
    void Subscribe(string pattern, int qos);

    /// <summary>Stops a subscription made with <see cref="Subscribe"/> (now if connected, and it is not renewed on reconnects).</summary>
    /// <param name="pattern">The topic filter, as subscribed.</param>
    void Unsubscribe(string pattern);

    /// <summary>
    /// Publishes a message. Refused (false) while disconnected: a caller that must not lose it keeps it and retries
    /// once <see cref="IsConnected"/> is true again. Once accepted, QoS 1/2 messages are retried by libmosquitto until
    /// acknowledged, across reconnects.
    /// </summary>
    /// <param name="topic">The topic (no wildcards).</param>
    /// <param name="payload">The payload.</param>
    /// <param name="qos">0, 1 or 2.</param>
    /// <param name="retain">Ask the broker to retain it as the topic's current value.</param>
    /// <returns>True when handed to libmosquitto; false when disconnected or refused (counted in <see cref="MqttCounters.PublishFailures"/>).</returns>
    bool Publish(string topic, ReadOnlySpan<byte> payload, int qos = 0, bool retain = false);

    /// <summary>Takes the next received message, if any. The caller owns it and must <see cref="MqttMessage.Release"/> it.</summary>
    /// <param name="message">The message.</param>
    /// <returns>True when a message was taken.</returns>
    bool TryRead(out MqttMessage message);

    /// <summary>Waits until a message can be read.</summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>False once the connection is disposed and drained.</returns>
    ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default);
}

/// <summary>Connection established or lost.</summary>
/// <param name="connected">True when established.</param>
/// <param name="reason">Why (libmosquitto's text), for logs.</param>
public sealed class MqttConnectionEventArgs(bool connected, string reason) : EventArgs
{
    /// <summary>True when established.</summary>
    public bool Connected { get; } = connected;

    /// <summary>Why, for logs.</summary>
    public string Reason { get; } = reason;
}

/// <summary>An MQTT operation failed; the message says which and why.</summary>
public sealed class MqttException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What failed and why.</param>
    public MqttException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">What failed and why.</param>
    /// <param name="inner">The cause.</param>
    public MqttException(string message, Exception inner)
        : base(message, inner)
    {
    }

    /// <summary>Creates the exception.</summary>
    public MqttException()
    {
    }
}

/// <summary>Counters of one connection; every member is read atomically.</summary>
public sealed class MqttCounters
{
    internal long _received, _receivedBytes, _published, _publishFailures, _connects, _connectionsLost, _refused, _shortSessions, _pauses, _qos0Dropped;

    /// <summary>Messages received.</summary>
    public long Received => Interlocked.Read(ref _received);

    /// <summary>Payload bytes received.</summary>
    public long ReceivedBytes => Interlocked.Read(ref _receivedBytes);

    /// <summary>Messages handed to libmosquitto for publishing.</summary>
    public long Published => Interlocked.Read(ref _published);

    /// <summary>Publishes libmosquitto refused.</summary>
    public long PublishFailures => Interlocked.Read(ref _publishFailures);

    /// <summary>Sessions established (CONNACK accepted).</summary>
    public long Connects => Interlocked.Read(ref _connects);

    /// <summary>Established sessions that were lost (one outage counts once, however many reconnect attempts it takes).</summary>
    public long ConnectionsLost => Interlocked.Read(ref _connectionsLost);

    /// <summary>Connections the broker refused in its CONNACK (bad credentials, unauthorised client id, ...).</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>
    /// Sessions lost within 10 s of their start; each makes the next reconnect wait longer (doubling, up to the
    /// reconnect maximum). Two clients with one client id take the session from each other this way.
    /// </summary>
    public long ShortSessions => Interlocked.Read(ref _shortSessions);

    /// <summary>Times intake paused because the consumer was full.</summary>
    public long Pauses => Interlocked.Read(ref _pauses);

    /// <summary>QoS 0 messages dropped because the consumer stayed full beyond the reserve (QoS 1/2 are never dropped).</summary>
    public long Qos0Dropped => Interlocked.Read(ref _qos0Dropped);
}
