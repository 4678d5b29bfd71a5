using Signal.Engine.Data;

namespace Signal.Engine.Evaluation;

/// <summary>
/// Generated bearing vibration (<see cref="VibrationSource"/>, healthy) with injected anomalies of four kinds, each in its
/// own stream between stretches of normal data, plus one stream of normal data alone: the generated half of
/// <c>signal-edge eval --task anomaly</c> (<c>--data generated</c>).
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><c>spikes</c>: an impulse of 8× the signal's RMS every 0.1 s;</item>
/// <item><c>level-shift</c>: an offset of 3× the RMS;</item>
/// <item><c>frequency-drift</c>: the machine speeds up, every frequency rising linearly to 1.5× over the event
/// (a resampling of the normal signal), then back to normal;</item>
/// <item><c>dropout</c>: the sensor reads 0 (a dropped channel).</item>
/// </list>
/// Each stream is <c>normal</c> seconds of normal data, the event, then <c>normal</c> seconds again. Seeds differ from
/// every stream to the next and from the demo's sensors and training data.
/// </remarks>
public static class InjectedAnomalies
{
    /// <summary>The kinds, in the order streams are made.</summary>
    public static IReadOnlyList<string> Kinds { get; } = ["spikes", "level-shift", "frequency-drift", "dropout"];

    /// <summary>Makes the streams.</summary>
    /// <param name="rate">Sample rate in Hz.</param>
    /// <param name="perKind">Streams per kind.</param>
    /// <param name="normalSeconds">Normal data before and after each event.</param>
    /// <param name="eventSeconds">Length of each event.</param>
    /// <param name="seed">First seed.</param>
    /// <returns>The streams, the normal-only one last.</returns>
    public static List<LabeledSignal> Generate(double rate, int perKind = 5, double normalSeconds = 3, double eventSeconds = 2, int seed = 50_000)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(rate, 0);
        ArgumentOutOfRangeException.ThrowIfLessThan(perKind, 1);
        int normal = (int)(normalSeconds * rate), length = (int)(eventSeconds * rate), total = (2 * normal) + length;
        var streams = new List<LabeledSignal>();
        foreach (string kind in Kinds)
        {
            for (int i = 0; i < perKind; i++)
            {
                var source = new VibrationSource(rate, seed++);
                float[] x = new float[(int)(total * 1.5) + 2];
                source.Next(x, null);
                double rms = Math.Sqrt(x.Take(normal).Average(v => (double)v * v));
                float[] y = kind == "frequency-drift" ? Drift(x, normal, length, total) : x[..total];
                for (int t = normal; t < normal + length; t++)
                {
                    switch (kind)
                    {
                        case "spikes" when (t - normal) % (int)(0.1 * rate) == 0:
                            y[t] += (float)(8 * rms);
                            break;
                        case "level-shift":
                            y[t] += (float)(3 * rms);
                            break;
                        case "dropout":
                            y[t] = 0;
                            break;
                    }
                }

                streams.Add(new LabeledSignal($"{kind}-{i}", y, 1, rate, [(normal, normal + length)]));
            }
        }

        var alone = new float[(int)(4 * perKind * (normalSeconds + eventSeconds) * rate)];
        new VibrationSource(rate, seed).Next(alone, null);
        streams.Add(new LabeledSignal("normal-only", alone, 1, rate, []));
        return streams;
    }

    /// <summary>Reads the signal faster and faster during the event (speed 1 → 1.5), at speed 1 before and after.</summary>
    private static float[] Drift(float[] x, int normal, int length, int total)
    {
        var y = new float[total];
        double position = 0;
        for (int t = 0; t < total; t++)
        {
            int i = (int)position;
            double f = position - i;
            y[t] = (float)((x[i] * (1 - f)) + (x[Math.Min(i + 1, x.Length - 1)] * f));
            position += t >= normal && t < normal + length ? 1 + (0.5 * (t - normal) / length) : 1;
        }

        return y;
    }
}
