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
    public static async Task RunAsync(SignalEngine engine, IMqttConnection connection, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(connection);
        long interval = (long)(engine.Options.IdleFlushInterval.TotalSeconds * Stopwatch.Frequency), lastFlush = 0;
        try
        {
            while (await connection.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                while (connection.TryRead(out MqttMessage message))
                {
                    try
                    {
                        engine.Process(message);
                    }
                    finally
                    {
                        message.Release();
                    }
                }

                long now = Stopwatch.GetTimestamp();
                if (now - lastFlush >= interval)
                {
                    engine.Flush();
                    lastFlush = now;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }

        engine.Flush();
    }
}
