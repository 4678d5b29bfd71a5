using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Signal.Engine.Mqtt;

/// <summary>
/// What both MQTT clients (<see cref="MosquittoConnection"/>, <see cref="MqttNetConnection"/>) keep alike: the wait for
/// the first session, the connected flag and its event, the back-off after sessions that end soon after they began
/// (another client taking the session over), refusals, and the log lines.
/// </summary>
/// <param name="options">The connection's options.</param>
/// <param name="logger">Its logger.</param>
/// <param name="client">The client's name in log lines: empty for libmosquitto, " (MQTTnet)" for MQTTnet.</param>
internal sealed partial class MqttSession(MqttOptions options, ILogger logger, string client)
{
    private static readonly TimeSpan ShortSession = TimeSpan.FromSeconds(10);
    private readonly TaskCompletionSource _first = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _connected;
    private long _connectedAt;

    /// <summary>True while a session is established.</summary>
    public bool Connected => _connected;

    /// <summary>The extra wait before the next connect after a short session (zero after a long one).</summary>
    public TimeSpan FlapDelay { get; private set; }

    /// <summary>Checks a subscription's filter and QoS.</summary>
    /// <exception cref="ArgumentException">The filter is not valid or the QoS is not 0, 1 or 2.</exception>
    public static void CheckSubscription(string pattern, int qos)
    {
        ArgumentException.ThrowIfNullOrEmpty(pattern);
        if (MqttTopics.FilterProblem(pattern) is { } problem)
        {
            throw new ArgumentException($"mqtt: cannot subscribe to '{pattern}': {problem}.", nameof(pattern));
        }

        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)qos, 2u, nameof(qos));
    }

    /// <summary>Waits for the first session.</summary>
    /// <exception cref="MqttException">No session within <paramref name="timeout"/>, or the broker refused it.</exception>
    public async Task WaitForFirstAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            await _first.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException e)
        {
            throw new MqttException($"mqtt: no session with {options} after {timeout.TotalSeconds:0.#} s (is the broker running? the engine keeps retrying).", e);
        }
    }

    /// <summary>A session began: counted; the first one releases <see cref="WaitForFirstAsync"/> (call after subscribing).</summary>
    public void Began(MqttCounters counters)
    {
        Interlocked.Increment(ref counters._connects);
        _first.TrySetResult();
    }

    /// <summary>The broker refused the connection in its CONNACK.</summary>
    public void Refused(MqttCounters counters, string why)
    {
        Interlocked.Increment(ref counters._refused);
        LogRefused(logger, client, options, why);
        _first.TrySetException(new MqttException($"mqtt: {options} refused the connection: {why}."));
    }

    /// <summary>An established session was lost: counted, and a short one makes the next connect wait longer.</summary>
    public void Lost(MqttCounters counters)
    {
        if (!_connected)
        {
            return;
        }

        Interlocked.Increment(ref counters._connectionsLost);
        TimeSpan lived = Stopwatch.GetElapsedTime(Interlocked.Read(ref _connectedAt));
        if (lived < ShortSession)
        {
            FlapDelay = FlapDelay == TimeSpan.Zero ? options.ReconnectDelay : Backoff.Next(FlapDelay, options.ReconnectDelayMax);
            Interlocked.Increment(ref counters._shortSessions);
            LogShortSession(logger, client, options, lived.TotalSeconds, options.ClientId, FlapDelay.TotalSeconds);
        }
        else
        {
            FlapDelay = TimeSpan.Zero;
        }
    }

    /// <summary>Sets the connected flag, logs the change and raises the connection's event through <paramref name="raise"/>.</summary>
    public void SetConnected(bool connected, string reason, bool stopping, object sender, EventHandler<MqttConnectionEventArgs>? raise)
    {
        if (_connected == connected)
        {
            return;
        }

        _connected = connected;
        if (connected)
        {
            Interlocked.Exchange(ref _connectedAt, Stopwatch.GetTimestamp());
            LogConnected(logger, client, options, options.ClientId);
        }
        else if (stopping)
        {
            LogClosed(logger, client, options);
        }
        else
        {
            LogLost(logger, client, options, reason);
        }

        try
        {
            raise?.Invoke(sender, new MqttConnectionEventArgs(connected, reason));
        }
        catch (Exception e)
        {
            LogHandlerFailed(logger, client, e);
        }
    }

    /// <summary>Logs a failed connect and the delay before the next.</summary>
    public void Unreachable(string reason, TimeSpan delay) => LogUnreachable(logger, client, options, reason, delay.TotalSeconds);

    /// <summary>Logs a subscription that failed or was refused.</summary>
    public void SubscribeFailed(string pattern, string reason) => LogSubscribeFailed(logger, client, pattern, reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "MQTT{Client}: cannot reach {Broker}: {Reason}; retrying in {Delay:0.0} s")]
    private static partial void LogUnreachable(ILogger logger, string client, MqttOptions broker, string reason, double delay);

    [LoggerMessage(Level = LogLevel.Warning, Message = "MQTT{Client}: the session with {Broker} ended {Seconds:0.###} s after it began; if another client uses the client id '{ClientId}' the broker hands the session back and forth (give each daemon its own mqtt.clientId); reconnecting in {Delay:0.0} s")]
    private static partial void LogShortSession(ILogger logger, string client, MqttOptions broker, double seconds, string clientId, double delay);

    [LoggerMessage(Level = LogLevel.Information, Message = "MQTT{Client}: connected to {Broker} as {ClientId}")]
    private static partial void LogConnected(ILogger logger, string client, MqttOptions broker, string clientId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "MQTT{Client}: connection to {Broker} lost: {Reason}")]
    private static partial void LogLost(ILogger logger, string client, MqttOptions broker, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "MQTT{Client}: disconnected from {Broker}")]
    private static partial void LogClosed(ILogger logger, string client, MqttOptions broker);

    [LoggerMessage(Level = LogLevel.Error, Message = "MQTT{Client}: a ConnectionChanged handler threw")]
    private static partial void LogHandlerFailed(ILogger logger, string client, Exception error);

    [LoggerMessage(Level = LogLevel.Error, Message = "MQTT{Client}: {Broker} refused the connection: {Reason}")]
    private static partial void LogRefused(ILogger logger, string client, MqttOptions broker, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "MQTT{Client}: subscribing to {Pattern} failed: {Reason}")]
    private static partial void LogSubscribeFailed(ILogger logger, string client, string pattern, string reason);
}
