namespace Signal.Engine;

/// <summary>Exponential back-off with jitter, shared by MQTT reconnects and InfluxDB retries.</summary>
internal static class Backoff
{
    /// <summary>The delay after <paramref name="delay"/>: doubled, ±20 % jitter, at most <paramref name="max"/>.</summary>
    /// <param name="delay">The delay just waited.</param>
    /// <param name="max">The longest delay.</param>
    /// <returns>The next delay.</returns>
    public static TimeSpan Next(TimeSpan delay, TimeSpan max) =>
        TimeSpan.FromTicks(Math.Min(max.Ticks, (long)(delay.Ticks * 2 * (0.8 + (0.4 * Random.Shared.NextDouble())))));
}
