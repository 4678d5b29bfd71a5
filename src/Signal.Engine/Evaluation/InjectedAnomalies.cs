using Signal.Engine.Data;

namespace Signal.Engine.Evaluation;

/// <summary>
/// Normal data with injected anomalies of four kinds, each in its own stream between stretches of normal data:
/// <c>signal-edge eval --task anomaly</c> on generated bearing vibration (<c>--data generated</c>, <see cref="Generate"/>)
/// and on a user's own normal recordings when they hold no faults (<see cref="Inject"/>).
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><c>spikes</c>: an impulse of 8× each channel's RMS every 0.1 s;</item>
/// <item><c>level-shift</c>: an offset of 3× each channel's RMS;</item>
/// <item><c>frequency-drift</c>: the machine speeds up, every frequency rising linearly to 1.5× over the event
/// (a resampling of the normal signal), then back to normal;</item>
/// <item><c>dropout</c>: one channel reads 0 (a dropped channel; the <c>i</c>-th dropout stream drops channel
/// <c>i mod channels</c>).</item>
/// </list>
/// Each stream is <c>normal</c> seconds of normal data, the event, then <c>normal</c> seconds again; the RMS is that
/// of the stream's own leading normal data.
/// </remarks>
public static class InjectedAnomalies
{
    /// <summary>The kinds, in the order streams are made.</summary>
    public static IReadOnlyList<string> Kinds { get; } = ["spikes", "level-shift", "frequency-drift", "dropout"];

    /// <summary>
    /// Generated healthy bearing vibration (<see cref="VibrationSource"/>) with the anomalies injected, plus one stream
    /// of normal data alone. Seeds differ from every stream to the next and from the demo's sensors and training data.
    /// </summary>
    /// <param name="rate">Sample rate in Hz.</param>
    /// <param name="perKind">Streams per kind.</param>
    /// <param name="normalSeconds">Normal data before and after each event.</param>
    /// <param name="eventSeconds">Length of each event.</param>
    /// <param name="seed">First seed.</param>
    /// <returns>The streams, the normal-only one last.</returns>
    public static List<LabeledSignal> Generate(double rate, int perKind = 5, double normalSeconds = 3, double eventSeconds = 2, int seed = 50_000)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(rate, 0);
        List<LabeledSignal> streams = Inject(frames =>
        {
            var x = new float[frames];
            new VibrationSource(rate, seed++).Next(x, null);
            return x;
        }, 1, rate, perKind, normalSeconds, eventSeconds);
        var alone = new float[(int)(4 * perKind * (normalSeconds + eventSeconds) * rate)];
        new VibrationSource(rate, seed).Next(alone, null);
        streams.Add(new LabeledSignal("normal-only", alone, 1, rate, []));
        return streams;
    }

    /// <summary>Injects the anomalies into stretches of normal data, one stream per kind and index.</summary>
    /// <param name="normal">Gives the next stretch of normal data: the argument is its length in frames (samples per
    /// channel), the result that many frames, channels interleaved.</param>
    /// <param name="channels">Channels per frame.</param>
    /// <param name="rate">Sample rate in Hz.</param>
    /// <param name="perKind">Streams per kind.</param>
    /// <param name="normalSeconds">Normal data before and after each event.</param>
    /// <param name="eventSeconds">Length of each event.</param>
    /// <returns>The streams, named <c>{kind}-{i}</c>, each with its one event.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A count or length is not positive.</exception>
    public static List<LabeledSignal> Inject(Func<int, float[]> normal, int channels, double rate, int perKind = 5, double normalSeconds = 3, double eventSeconds = 2)
    {
        ArgumentNullException.ThrowIfNull(normal);
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(rate, 0);
        ArgumentOutOfRangeException.ThrowIfLessThan(perKind, 1);
        int lead = (int)(normalSeconds * rate), length = (int)(eventSeconds * rate), total = (2 * lead) + length;
        ArgumentOutOfRangeException.ThrowIfLessThan(lead, 1, nameof(normalSeconds));
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1, nameof(eventSeconds));
        int spacing = Math.Max(1, (int)(0.1 * rate));
        var streams = new List<LabeledSignal>();
        foreach (string kind in Kinds)
        {
            for (int i = 0; i < perKind; i++)
            {
                float[] x = normal((int)(total * 1.5) + 2);
                double[] rms = new double[channels];
                for (int c = 0; c < channels; c++)
                {
                    double sum = 0;
                    for (int t = 0; t < lead; t++)
                    {
                        sum += (double)x[(t * channels) + c] * x[(t * channels) + c];
                    }

                    rms[c] = Math.Sqrt(sum / lead);
                }

                float[] y = kind == "frequency-drift" ? Drift(x, channels, lead, length, total) : x[..(total * channels)];
                for (int t = lead; t < lead + length; t++)
                {
                    for (int c = 0; c < channels; c++)
                    {
                        ref float v = ref y[(t * channels) + c];
                        switch (kind)
                        {
                            case "spikes" when (t - lead) % spacing == 0:
                                v += (float)(8 * rms[c]);
                                break;
                            case "level-shift":
                                v += (float)(3 * rms[c]);
                                break;
                            case "dropout" when c == i % channels:
                                v = 0;
                                break;
                        }
                    }
                }

                streams.Add(new LabeledSignal($"{kind}-{i}", y, channels, rate, [(lead, lead + length)]));
            }
        }

        return streams;
    }

    /// <summary>Reads the signal faster and faster during the event (speed 1 → 1.5), at speed 1 before and after.</summary>
    private static float[] Drift(float[] x, int channels, int lead, int length, int total)
    {
        var y = new float[total * channels];
        int frames = x.Length / channels;
        double position = 0;
        for (int t = 0; t < total; t++)
        {
            int i = (int)position;
            double f = position - i;
            for (int c = 0; c < channels; c++)
            {
                y[(t * channels) + c] = (float)((x[(i * channels) + c] * (1 - f)) + (x[(Math.Min(i + 1, frames - 1) * channels) + c] * f));
            }

            position += t >= lead && t < lead + length ? 1 + (0.5 * (t - lead) / length) : 1;
        }

        return y;
    }
}
