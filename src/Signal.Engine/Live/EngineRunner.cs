using System.Diagnostics;
using Signal.Engine.Mqtt;

namespace Signal.Engine.Live;

/// <summary>
/// Feeds an engine from an MQTT connection: one compute task takes received messages in arrival order, processes them,
/// and flushes the step scheduler when the intake queue runs empty, at most once per
/// <see cref="EngineOptions.IdleFlushInterval"/> (so at low rates a frame is stepped at once, and at high rates batches
/// fill up; the engine's <see cref="EngineOptions.MaxWait"/> timer steps whatever is left waiting).
/// </summary>
/// <remarks>
/// The path is bounded end to end: the connection pauses reading at <see cref="MqttOptions.ReceiveCapacity"/>, the
/// engine holds at most <see cref="EngineOptions.MaxPendingFramesPerStream"/> frames per stream, and the publisher
/// queue is bounded with its own policy. A message is released only after the engine has taken it.
/// </remarks>
public static class EngineRunner
{
    /// <summary>Runs until <paramref name="cancellationToken"/> is cancelled or the connection is disposed; then steps what is waiting.</summary>
    /// <param name="engine">The engine.</param>
    /// <param name="connection">The connection (already subscribed; connected or connecting).</param>
    /// <param name="cancellationToken">Stops the loop.</param>
    /// <returns>A task that completes when the loop has stopped.</returns>
    public static Task RunAsync(SignalEngine engine, IMqttConnection connection, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(engine);
        return RunAsync(connection, engine.Process, engine.Flush, engine.Options.IdleFlushInterval, cancellationToken);
    }

    /// <summary>
    /// The same loop for any consumer (for example several engines routed by topic): <paramref name="process"/> takes
    /// each message in arrival order (the loop releases it afterwards), and <paramref name="flush"/> steps what waits
    /// when the intake runs empty, at most once per <paramref name="idleFlushInterval"/>, and once more at the end.
    /// </summary>
    /// <param name="connection">The connection (already subscribed; connected or connecting).</param>
    /// <param name="process">Takes one message; it must not keep the message's buffer.</param>
    /// <param name="flush">Steps every waiting frame.</param>
    /// <param name="idleFlushInterval">The least time between two early flushes.</param>
    /// <param name="cancellationToken">Stops the loop.</param>
    /// <returns>A task that completes when the loop has stopped.</returns>
    public static async Task RunAsync(IMqttConnection connection, MessageHandler process, Action flush, TimeSpan idleFlushInterval, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(process);
        ArgumentNullException.ThrowIfNull(flush);
        long interval = (long)(idleFlushInterval.TotalSeconds * Stopwatch.Frequency), lastFlush = 0;
        try
        {
            while (await connection.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                while (connection.TryRead(out MqttMessage message))
                {
                    try
                    {
                        process(in message);
                    }
                    finally
                    {
                        message.Release();
                    }
                }

                long now = Stopwatch.GetTimestamp();
                if (now - lastFlush >= interval)
                {
                    flush();
                    lastFlush = now;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }

        flush();
    }
}

/// <summary>Takes one received message (see <see cref="EngineRunner.RunAsync(IMqttConnection, MessageHandler, Action, TimeSpan, CancellationToken)"/>).</summary>
/// <param name="message">The message; its buffer is released after the call.</param>
public delegate void MessageHandler(in MqttMessage message);
