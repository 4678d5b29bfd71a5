using Signal.Engine.Live;
using Signal.Engine.Payloads;

namespace Signal.Engine.Evaluation;

/// <summary>A recording with known anomalous intervals, fed to the engine as one stream.</summary>
/// <param name="Name">The stream's name.</param>
/// <param name="Samples">Interleaved samples.</param>
/// <param name="Channels">Channels per sample.</param>
/// <param name="Rate">Sample rate in Hz.</param>
/// <param name="Events">Anomalous intervals as [start, end) sample indices, in order, not overlapping.</param>
public sealed record LabeledSignal(string Name, float[] Samples, int Channels, double Rate, IReadOnlyList<(long Start, long End)> Events);

/// <summary>One event and when it was found.</summary>
/// <param name="Stream">The stream.</param>
/// <param name="StartSeconds">Event start, seconds into the stream.</param>
/// <param name="EndSeconds">Event end.</param>
/// <param name="DelaySeconds">Seconds from the event's start to the raise of the alert that overlaps it (0 when raised before), or null when missed.</param>
public sealed record EventOutcome(string Stream, double StartSeconds, double EndSeconds, double? DelaySeconds);

/// <summary>
/// Event-wise scores of anomaly alerts: an event counts as found when an alert (from its raise to its clear, or the end
/// of the stream) overlaps it; each alert that overlaps no event is a false positive. Precision = found / (found +
/// false positives), recall = found / events, F1 their harmonic mean; the delay of a found event runs from its start to
/// the raise of the first alert overlapping it (0 when that alert was already raised).
/// </summary>
/// <param name="Precision">Event-wise precision.</param>
/// <param name="Recall">Event-wise recall.</param>
/// <param name="F1">Their harmonic mean.</param>
/// <param name="MeanDelaySeconds">Mean delay over found events (NaN when none was found).</param>
/// <param name="Events">Every event and its outcome.</param>
/// <param name="FalsePositives">Alerts that overlap no event, as (stream, raise time in seconds).</param>
/// <param name="Streams">Streams evaluated.</param>
/// <param name="Steps">Engine steps run.</param>
public sealed record AnomalyEvaluation(double Precision, double Recall, double F1, double MeanDelaySeconds, IReadOnlyList<EventOutcome> Events,
    IReadOnlyList<(string Stream, double Seconds)> FalsePositives, int Streams, long Steps)
{
    /// <summary>Events found.</summary>
    public int Found => Events.Count(e => e.DelaySeconds is not null);

    /// <summary>
    /// Runs every stream through a live <see cref="SignalEngine"/> (binary messages with timestamps, as sensors send
    /// them) and scores the alerts of <paramref name="rule"/> against the streams' events.
    /// </summary>
    /// <param name="model">The model (with a forecasting head and a threshold, or an engine option that sets one).</param>
    /// <param name="streams">The labelled streams.</param>
    /// <param name="options">Engine options (alert rules, smoothing, warm-up); default the engine's. Its topic template is set to <c>eval/{index}/{name}</c>.</param>
    /// <param name="rule">The alert rule scored. Default <c>anomaly</c>.</param>
    /// <param name="chunk">Samples per message.</param>
    /// <returns>The scores.</returns>
    public static AnomalyEvaluation Run(EngineModel model, IReadOnlyList<LabeledSignal> streams, EngineOptions? options = null, string rule = "anomaly", int chunk = 600)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(streams);
        const long origin = 1_700_000_000_000_000_000;
        var alerts = new Dictionary<string, List<(long Raised, long? Cleared)>>(StringComparer.Ordinal);
        options ??= new EngineOptions();
        options.TopicTemplate = "eval/{index}/{name}";
        using var engine = new SignalEngine(model, options);
        if (!engine.Rules.Any(r => r.Name == rule))
        {
            throw new ArgumentException($"the engine has no alert rule '{rule}' (it has {string.Join(", ", engine.Rules.Select(r => r.Name))}); does the model have a forecasting head?");
        }

        using IDisposable subscription = engine.Alerts.Subscribe(a =>
        {
            if (a.Rule != rule)
            {
                return;
            }

            if (!alerts.TryGetValue(a.Stream, out List<(long Raised, long? Cleared)>? list))
            {
                alerts[a.Stream] = list = [];
            }

            if (a.State == AlertState.Raised)
            {
                list.Add((a.TimestampNs, null));
            }
            else if (list.Count > 0)
            {
                list[^1] = (list[^1].Raised, a.TimestampNs);
            }
        });

        for (int i = 0; i < streams.Count; i++)
        {
            LabeledSignal s = streams[i];
            int samples = s.Samples.Length / s.Channels;
            var payload = new byte[BinaryPayload.HeaderLength + (4 * chunk * s.Channels)];
            ulong sequence = 0;
            for (int at = 0; at < samples; at += chunk)
            {
                int n = Math.Min(chunk, samples - at);
                int length = BinaryPayload.Write(payload, sequence++, origin + (long)Math.Round(at * 1e9 / s.Rate), s.Rate, s.Channels, s.Samples.AsSpan(at * s.Channels, n * s.Channels));
                engine.Process($"eval/{i}/{TopicTemplate.Level(s.Name)}", payload.AsSpan(0, length));
            }

            engine.Flush();
        }

        var outcomes = new List<EventOutcome>();
        var falsePositives = new List<(string, double)>();
        for (int i = 0; i < streams.Count; i++)
        {
            LabeledSignal s = streams[i];
            string id = $"{i}/{TopicTemplate.Level(s.Name)}";
            List<(long Raised, long? Cleared)> raised = alerts.TryGetValue(id, out List<(long Raised, long? Cleared)>? list) ? list : [];
            double Seconds(long ns) => (ns - origin) / 1e9;
            bool[] useful = new bool[raised.Count];
            foreach ((long start, long end) in s.Events)
            {
                double from = start / s.Rate, to = end / s.Rate;
                double? delay = null;
                for (int a = 0; a < raised.Count; a++)
                {
                    double up = Seconds(raised[a].Raised), down = raised[a].Cleared is long c ? Seconds(c) : double.PositiveInfinity;
                    if (up < to && down > from)
                    {
                        useful[a] = true;
                        delay ??= Math.Max(0, up - from);
                    }
                }

                outcomes.Add(new EventOutcome(s.Name, from, to, delay));
            }

            for (int a = 0; a < raised.Count; a++)
            {
                if (!useful[a])
                {
                    falsePositives.Add((s.Name, Seconds(raised[a].Raised)));
                }
            }
        }

        int found = outcomes.Count(e => e.DelaySeconds is not null);
        double precision = found + falsePositives.Count == 0 ? 0 : (double)found / (found + falsePositives.Count);
        double recall = outcomes.Count == 0 ? 0 : (double)found / outcomes.Count;
        double f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
        double delayMean = found == 0 ? double.NaN : outcomes.Where(e => e.DelaySeconds is not null).Average(e => e.DelaySeconds!.Value);
        return new AnomalyEvaluation(precision, recall, f1, delayMean, outcomes, falsePositives, streams.Count, engine.Counters.Steps);
    }

}
