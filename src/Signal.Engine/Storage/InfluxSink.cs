using System.Globalization;
using System.Text;
using Signal.Engine.Live;

namespace Signal.Engine.Storage;

/// <summary>
/// Stores what an engine emits through an <see cref="InfluxWriter"/>, in the schema of docs/storage.md:
/// <c>classification</c> (tags stream, model; fields label, class, confidence, <c>p_{label}</c> per class),
/// <c>anomaly</c> (tags stream, model; fields score, raw, threshold, state) and <c>alert</c> (tags stream, model,
/// rule, severity; fields state, reason, value, threshold, label, dominant_band, probabilities).
/// </summary>
/// <remarks>
/// Each point's timestamp is the data time of its step, so a stream's points have distinct timestamps and a point
/// written twice overwrites itself. The handlers run on the engine's thread and only format into the writer's open
/// batch; they never wait for the network.
/// </remarks>
public sealed class InfluxSink : IDisposable
{
    private readonly InfluxWriter _writer;
    private readonly string _model;
    private readonly string[] _probabilityKeys;
    private readonly Field[] _fields;
    private readonly IDisposable[] _subscriptions;
    private readonly Action<Exception>? _onError;

    /// <summary>Subscribes to the engine's results.</summary>
    /// <param name="engine">The engine.</param>
    /// <param name="writer">The writer (owned by the caller, disposed after this sink).</param>
    /// <param name="onError">Called when a point cannot be written (for example a label that line protocol cannot carry), or null.</param>
    public InfluxSink(SignalEngine engine, InfluxWriter writer, Action<Exception>? onError = null)
    {
        ArgumentNullException.ThrowIfNull(engine);
        _writer = writer ?? throw new ArgumentNullException(nameof(writer));
        _onError = onError;
        _model = engine.Model.Name;
        _probabilityKeys = [.. engine.Model.Labels.Select(l => "p_" + l)];
        _fields = new Field[_probabilityKeys.Length + 3];
        _subscriptions =
        [
            engine.Classifications.Subscribe(Guard<Classification>(OnClassification), OnStreamError),
            engine.AnomalyScores.Subscribe(Guard<AnomalyScore>(OnAnomaly), OnStreamError),
            engine.Alerts.Subscribe(Guard<Alert>(OnAlert), OnStreamError),
        ];
    }

    /// <summary>Stops storing (the writer stays open for the caller to flush and dispose).</summary>
    public void Dispose()
    {
        foreach (IDisposable s in _subscriptions)
        {
            s.Dispose();
        }
    }

    private Action<T> Guard<T>(Action<T> handler) => value =>
    {
        try
        {
            handler(value);
        }
        catch (ArgumentException e)
        {
            _onError?.Invoke(e);
        }
    };

    private void OnStreamError(Exception e) => _onError?.Invoke(e);

    private void OnClassification(Classification c)
    {
        // The engine emits on one thread at a time (under its lock), so one field array serves every step.
        int n = Math.Min(c.Probabilities.Length, _probabilityKeys.Length);
        _fields[0] = Field.Of("label", c.Label);
        _fields[1] = Field.Of("class", (long)c.ClassIndex);
        _fields[2] = Field.Of("confidence", (double)c.Confidence);
        for (int i = 0; i < n; i++)
        {
            _fields[3 + i] = Field.Of(_probabilityKeys[i], (double)c.Probabilities[i]);
        }

        _writer.Write("classification", [new("model", _model), new("stream", c.Stream)], _fields.AsSpan(0, n + 3), c.TimestampNs);
    }

    private void OnAnomaly(AnomalyScore a)
    {
        bool calibrated = double.IsFinite(a.Threshold);
        _writer.Write(
            "anomaly",
            [new("model", _model), new("stream", a.Stream)],
            [
                Field.Of("score", a.Score),
                Field.Of("raw", a.Raw),
                Field.Of("threshold", a.Threshold),
                Field.Of("state", !calibrated ? "uncalibrated" : a.Score >= a.Threshold ? "anomalous" : "normal"),
                Field.Of("top_feature", a.TopFeature ?? string.Empty),
            ],
            a.TimestampNs);
    }

    private void OnAlert(Alert a)
    {
        var probabilities = new StringBuilder("{");
        for (int i = 0; i < a.Probabilities.Length && i < _probabilityKeys.Length; i++)
        {
            probabilities.Append(CultureInfo.InvariantCulture, $"{(i == 0 ? "" : ",")}\"{_probabilityKeys[i][2..]}\":{a.Probabilities[i].ToString("R", CultureInfo.InvariantCulture)}");
        }

        _writer.Write(
            "alert",
            [new("model", _model), new("rule", a.Rule), new("severity", a.Severity.ToString().ToLowerInvariant()), new("stream", a.Stream)],
            [
                Field.Of("state", a.State == AlertState.Raised ? "raised" : "cleared"),
                Field.Of("reason", a.Reason),
                Field.Of("value", a.Value),
                Field.Of("threshold", a.Threshold),
                Field.Of("label", a.Label ?? string.Empty),
                Field.Of("dominant_band", a.DominantBand ?? string.Empty),
                Field.Of("probabilities", probabilities.Append('}').ToString()),
            ],
            a.TimestampNs,
            alert: true);
    }
}
