using System.Numerics;

namespace Signal.Engine.Live;

/// <summary>
/// When to raise and clear an alert for a stream: raise when the watched value is at or above <see cref="Raise"/> for
/// <see cref="K"/> of the last <see cref="N"/> steps; clear after <see cref="ClearSteps"/> consecutive steps below
/// <see cref="Clear"/> (hysteresis). Only state changes are emitted.
/// </summary>
public sealed class AlertRule
{
    /// <summary>The rule's name, unique per engine (e.g. <c>class:inner_race</c>, <c>anomaly</c>).</summary>
    public string Name { get; set; } = string.Empty;

    /// <summary>The watched class label (its probability is the value), or null to watch the anomaly score.</summary>
    public string? Class { get; set; }

    /// <summary>Raise threshold. For the anomaly score, NaN means the model's calibrated threshold.</summary>
    public double Raise { get; set; } = 0.8;

    /// <summary>Clear threshold, at most <see cref="Raise"/>. For the anomaly score, NaN means 0.8 × the raise threshold.</summary>
    public double Clear { get; set; } = 0.5;

    /// <summary>Steps (of the last <see cref="N"/>) that must reach the raise threshold. Default 3.</summary>
    public int K { get; set; } = 3;

    /// <summary>The window of recent steps, 1-64. Default 5.</summary>
    public int N { get; set; } = 5;

    /// <summary>Consecutive steps below the clear threshold that clear a raised alert. Default 5.</summary>
    public int ClearSteps { get; set; } = 5;

    /// <summary>The alert's severity. Default <see cref="AlertSeverity.Warning"/>.</summary>
    public AlertSeverity Severity { get; set; } = AlertSeverity.Warning;

    /// <summary>After a clear, a new raise of this rule on this stream within this data time is suppressed (counted). Default zero.</summary>
    public TimeSpan Suppression { get; set; }

    /// <summary>Checks the fields.</summary>
    /// <param name="labels">The model's labels.</param>
    /// <exception cref="ArgumentException">A field is invalid; the message names the rule and field.</exception>
    public void Validate(IReadOnlyList<string> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        string where = $"alerts['{Name}']";
        if (string.IsNullOrWhiteSpace(Name))
        {
            throw new ArgumentException("alerts[].name: every rule needs a name.");
        }

        if (Class is not null && !labels.Contains(Class))
        {
            throw new ArgumentException($"{where}.class: '{Class}' is not one of the model's labels ({string.Join(", ", labels)}).");
        }

        if (N is < 1 or > 64 || K < 1 || K > N)
        {
            throw new ArgumentException($"{where}: need 1 ≤ k ≤ n ≤ 64 (k = {K}, n = {N}).");
        }

        if (ClearSteps < 1)
        {
            throw new ArgumentException($"{where}.clearSteps: {ClearSteps} is below 1.");
        }

        if (Clear > Raise)
        {
            throw new ArgumentException($"{where}.clear: {Clear} is above the raise threshold {Raise}; hysteresis needs clear ≤ raise.");
        }

        if (Suppression < TimeSpan.Zero)
        {
            throw new ArgumentException($"{where}.suppression: is negative.");
        }
    }

    /// <summary>
    /// The class of normal behaviour among <paramref name="labels"/>: the first named normal, ok, healthy, idle or
    /// background (any case), or -1 when none is. The default alert rules skip it, the dashboard's fault probability
    /// leaves it out, and forecasters learn from it.
    /// </summary>
    /// <param name="labels">Class labels.</param>
    /// <returns>Its index, or -1.</returns>
    public static int NormalIndex(IReadOnlyList<string> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        for (int i = 0; i < labels.Count; i++)
        {
            if (labels[i].ToLowerInvariant() is "normal" or "ok" or "healthy" or "idle" or "background")
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>
    /// The rules used when none are configured: one per class except the first whose label looks normal
    /// (<c>normal</c>, <c>ok</c>, <c>healthy</c>, <c>idle</c>, <c>background</c>), and one for the anomaly score when
    /// the model forecasts (critical).
    /// </summary>
    /// <param name="model">The model.</param>
    /// <returns>The rules.</returns>
    public static IReadOnlyList<AlertRule> Defaults(EngineModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        int index = NormalIndex(model.Labels);
        string? normal = index < 0 ? null : model.Labels[index];
        var rules = model.Labels.Where(l => l != normal).Select(l => new AlertRule { Name = "class:" + l, Class = l }).ToList();
        if (model.HasForecast)
        {
            rules.Add(new AlertRule { Name = "anomaly", Raise = double.NaN, Clear = double.NaN, Severity = AlertSeverity.Critical });
        }

        return rules;
    }
}

/// <summary>One rule's state on one stream: the last n outcomes as bits, whether raised, the clear run.</summary>
internal struct AlertTracker
{
    private ulong _history;
    private int _below;
    private long _clearedAt;

    public bool IsRaised { get; private set; }

    public readonly void Write(BinaryWriter writer)
    {
        writer.Write(_history);
        writer.Write(_below);
        writer.Write(_clearedAt);
        writer.Write(IsRaised);
    }

    public static AlertTracker Read(BinaryReader reader) => new()
    {
        _history = reader.ReadUInt64(),
        _below = reader.ReadInt32(),
        _clearedAt = reader.ReadInt64(),
        IsRaised = reader.ReadBoolean(),
    };

    /// <summary>Feeds one step; returns the new state when it changed.</summary>
    public AlertState? Update(AlertRule rule, double value, double raise, double clear, long timestampNs, out bool suppressed)
    {
        suppressed = false;
        ulong window = rule.N == 64 ? ulong.MaxValue : (1UL << rule.N) - 1;
        _history = ((_history << 1) | (value >= raise ? 1UL : 0UL)) & window;
        if (!IsRaised)
        {
            if (BitOperations.PopCount(_history) < rule.K)
            {
                return null;
            }

            if (_clearedAt != 0 && timestampNs - _clearedAt < rule.Suppression.Ticks * 100)
            {
                suppressed = true;
                return null;
            }

            IsRaised = true;
            _below = 0;
            return AlertState.Raised;
        }

        _below = value < clear ? _below + 1 : 0;
        if (_below < rule.ClearSteps)
        {
            return null;
        }

        IsRaised = false;
        _history = 0;
        _below = 0;
        _clearedAt = timestampNs == 0 ? 1 : timestampNs;
        return AlertState.Cleared;
    }
}
