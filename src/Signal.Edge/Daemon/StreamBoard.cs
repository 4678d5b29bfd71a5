using System.Collections.Concurrent;
using Signal.Engine.Live;

namespace Signal.Edge.Daemon;

/// <summary>
/// The latest of every stream, for <c>/api/streams</c>, the dashboard and the demo's table: current class and
/// confidence, the watched score with its threshold and recent history, active alerts, last seen.
/// </summary>
/// <remarks>
/// Updated from the engines' result streams on their thread (a dictionary lookup and a few stores per step, under a
/// per-stream lock); read from HTTP threads as snapshots.
/// </remarks>
internal sealed class StreamBoard
{
    /// <summary>Score points kept per stream for the sparkline.</summary>
    public const int History = 120;

    private readonly ConcurrentDictionary<(string Model, string Stream), Entry> _streams = new();
    private long _raised, _cleared;
    private readonly ConcurrentDictionary<AlertSeverity, long> _raisedBySeverity = new();

    /// <summary>Alert raises by severity since start.</summary>
    public IReadOnlyDictionary<AlertSeverity, long> RaisedBySeverity => _raisedBySeverity;

    /// <summary>Alerts now raised, over all streams.</summary>
    public long ActiveAlerts => Interlocked.Read(ref _raised) - Interlocked.Read(ref _cleared);

    /// <summary>Streams shown.</summary>
    public int Count => _streams.Count;

    /// <summary>Follows one engine's results until the returned handle is disposed.</summary>
    public IDisposable Follow(string model, SignalEngine engine)
    {
        // Without a forecasting head the watched score is the probability of the most likely fault class, against the
        // class alerts' raise threshold; both are fixed per engine, so they are found once here, not per step.
        bool faultScore = !engine.Model.HasForecast;
        int normal = AlertRule.NormalIndex(engine.Model.Labels);
        double raise = engine.Rules.FirstOrDefault(r => r.Class is not null)?.Raise ?? double.NaN;
        IDisposable classes = engine.Classifications.Subscribe(c =>
        {
            Entry e = Get(model, c.Stream);
            lock (e)
            {
                e.Label = c.Label;
                e.Confidence = c.Confidence;
                e.LastStepNs = c.TimestampNs;
                e.LastSeen = DateTimeOffset.UtcNow;
                e.Steps++;
                if (faultScore)
                {
                    float worst = 0;
                    for (int i = 0; i < c.Probabilities.Length; i++)
                    {
                        if (i != normal)
                        {
                            worst = Math.Max(worst, c.Probabilities[i]);
                        }
                    }

                    e.Push(worst, raise);
                }
            }
        }, _ => { });
        IDisposable scores = engine.AnomalyScores.Subscribe(a =>
        {
            Entry e = Get(model, a.Stream);
            lock (e)
            {
                e.ScoreKind = "anomaly_score";
                e.Push(a.Score, a.Threshold);
                e.TopFeature = a.TopFeature;
            }
        }, _ => { });
        IDisposable alerts = engine.Alerts.Subscribe(a =>
        {
            Entry e = Get(model, a.Stream);
            lock (e)
            {
                if (a.State == AlertState.Raised)
                {
                    if (e.Alerts.TryAdd(a.Rule, new ActiveAlert(a.Rule, a.Severity.ToString().ToLowerInvariant(), a.Reason, a.DominantBand, DateTimeOffset.FromUnixTimeMilliseconds(a.TimestampNs / 1_000_000))))
                    {
                        Interlocked.Increment(ref _raised);
                        _raisedBySeverity.AddOrUpdate(a.Severity, 1, (_, n) => n + 1);
                    }
                }
                else if (e.Alerts.Remove(a.Rule))
                {
                    Interlocked.Increment(ref _cleared);
                }
            }
        }, _ => { });
        IDisposable evicted = engine.StreamsEvicted.Subscribe(id =>
        {
            if (_streams.TryRemove((model, id), out Entry? e))
            {
                lock (e)
                {
                    Interlocked.Add(ref _cleared, e.Alerts.Count);
                }
            }
        }, _ => { });
        return new Handles(classes, scores, alerts, evicted);
    }

    /// <summary>A copy of every stream's view, ordered by model and stream id.</summary>
    public IReadOnlyList<StreamView> Snapshot() => Snapshot(0, int.MaxValue, out _);

    /// <summary>
    /// A page of the streams' views, ordered by model and stream id: only the page's views are built, so a request
    /// costs its page, not the whole board.
    /// </summary>
    /// <param name="offset">Streams to skip.</param>
    /// <param name="limit">The most streams returned.</param>
    /// <param name="total">Streams on the board.</param>
    public IReadOnlyList<StreamView> Snapshot(int offset, int limit, out int total)
    {
        var keys = new List<(string Model, string Stream)>(_streams.Count);
        foreach (KeyValuePair<(string, string), Entry> pair in _streams)
        {
            keys.Add(pair.Key);
        }

        total = keys.Count;
        keys.Sort((a, b) => (string.CompareOrdinal(a.Model, b.Model) * 2) + Math.Sign(string.CompareOrdinal(a.Stream, b.Stream)));
        var views = new List<StreamView>(Math.Clamp(keys.Count - offset, 0, limit));
        for (int i = Math.Max(0, offset); i < keys.Count && views.Count < limit; i++)
        {
            if (!_streams.TryGetValue(keys[i], out Entry? e))
            {
                continue; // evicted meanwhile
            }

            lock (e)
            {
                views.Add(new StreamView(keys[i].Model, keys[i].Stream, e.Label, e.Confidence, Finite(e.Score), Finite(e.Threshold), e.ScoreKind, e.Steps,
                    e.LastSeen, e.LastStepNs, [.. e.Alerts.Values], [.. e.Recent()], e.TopFeature));
            }
        }

        return views;
    }

    private static double? Finite(double v) => double.IsFinite(v) ? v : null;

    private Entry Get(string model, string stream) => _streams.GetOrAdd((model, stream), static _ => new Entry());

    private sealed class Entry
    {
        private readonly float[] _history = new float[History];
        private int _count, _next;

        public string? Label { get; set; }

        public float Confidence { get; set; }

        public double Score { get; set; } = double.NaN;

        public double Threshold { get; set; } = double.NaN;

        public string ScoreKind { get; set; } = "fault_probability";

        public long Steps { get; set; }

        public DateTimeOffset LastSeen { get; set; }

        public long LastStepNs { get; set; }

        public string? TopFeature { get; set; }

        public Dictionary<string, ActiveAlert> Alerts { get; } = new(StringComparer.Ordinal);

        public void Push(double score, double threshold)
        {
            Score = score;
            Threshold = threshold;
            _history[_next] = (float)score;
            _next = (_next + 1) % History;
            _count = Math.Min(History, _count + 1);
        }

        public IEnumerable<float> Recent()
        {
            for (int i = 0; i < _count; i++)
            {
                yield return _history[(_next - _count + i + History) % History];
            }
        }
    }

    private sealed class Handles(params IDisposable[] handles) : IDisposable
    {
        public void Dispose()
        {
            foreach (IDisposable h in handles)
            {
                h.Dispose();
            }
        }
    }
}

/// <summary>One stream as the API and dashboard show it.</summary>
/// <param name="Model">The model's name.</param>
/// <param name="Stream">The stream id.</param>
/// <param name="Label">The current class, or null before the first step.</param>
/// <param name="Confidence">Its probability.</param>
/// <param name="Score">The watched score (anomaly score, or the most likely fault's probability without a forecaster).</param>
/// <param name="Threshold">The score's alert threshold.</param>
/// <param name="ScoreKind"><c>anomaly_score</c> or <c>fault_probability</c>.</param>
/// <param name="Steps">Steps seen since the stream appeared here.</param>
/// <param name="LastSeen">Wall-clock time of its last step.</param>
/// <param name="LastStepNs">Data time of its last step, Unix ns.</param>
/// <param name="Alerts">Alerts now raised.</param>
/// <param name="History">The last scores, oldest first.</param>
/// <param name="TopFeature">The feature whose forecast error was largest at the last step, or null.</param>
internal sealed record StreamView(string Model, string Stream, string? Label, float Confidence, double? Score, double? Threshold, string ScoreKind,
    long Steps, DateTimeOffset LastSeen, long LastStepNs, IReadOnlyList<ActiveAlert> Alerts, IReadOnlyList<float> History, string? TopFeature);

/// <summary>An alert now raised on a stream.</summary>
/// <param name="Rule">The rule's name.</param>
/// <param name="Severity">info, warning or critical.</param>
/// <param name="Reason">Why it was raised.</param>
/// <param name="DominantBand">The band standing out most when it was raised.</param>
/// <param name="Since">When (data time).</param>
internal sealed record ActiveAlert(string Rule, string Severity, string Reason, string? DominantBand, DateTimeOffset Since);
