namespace Signal.Engine.Live;

/// <summary>One network step's class for one stream.</summary>
/// <param name="Stream">The stream id.</param>
/// <param name="TimestampNs">Data time of the step's last sample, Unix nanoseconds.</param>
/// <param name="Step">Steps of this stream since its state was created or reset (0-based).</param>
/// <param name="ClassIndex">Index of the most probable class.</param>
/// <param name="Label">Its label.</param>
/// <param name="Confidence">Its probability.</param>
/// <param name="Probabilities">Every class's probability, in label order.</param>
public sealed record Classification(string Stream, long TimestampNs, long Step, int ClassIndex, string Label, float Confidence, float[] Probabilities);

/// <summary>One step's anomaly score for one stream.</summary>
/// <param name="Stream">The stream id.</param>
/// <param name="TimestampNs">Data time, Unix nanoseconds.</param>
/// <param name="Score">The smoothed score.</param>
/// <param name="Raw">The unsmoothed score of this step.</param>
/// <param name="Threshold">The threshold in force (NaN when none is calibrated).</param>
/// <param name="TopFeature">The feature whose forecast error contributed most, or null.</param>
/// <param name="Evidence">The features (and frequency bands) whose scaled forecast errors contribute most to this step's raw score, largest first, with their share of it.</param>
public sealed record AnomalyScore(string Stream, long TimestampNs, double Score, double Raw, double Threshold, string? TopFeature, IReadOnlyList<Contribution>? Evidence = null);

/// <summary>One input's share of an anomaly score.</summary>
/// <param name="Feature">The feature column (e.g. <c>mel_12</c>, <c>rms</c>).</param>
/// <param name="Share">Its part of the raw score, 0-1.</param>
public sealed record Contribution(string Feature, double Share);

/// <summary>How urgent an alert is.</summary>
public enum AlertSeverity
{
    /// <summary>Worth a look.</summary>
    Info,

    /// <summary>Needs attention.</summary>
    Warning,

    /// <summary>Act now.</summary>
    Critical,
}

/// <summary>An alert's state.</summary>
public enum AlertState
{
    /// <summary>The condition started to hold.</summary>
    Raised,

    /// <summary>The condition stopped holding.</summary>
    Cleared,
}

/// <summary>A change of an alert's state for one stream, with its evidence.</summary>
/// <param name="Stream">The stream id.</param>
/// <param name="Rule">The rule's name.</param>
/// <param name="State">Raised or cleared.</param>
/// <param name="Severity">The rule's severity.</param>
/// <param name="TimestampNs">Data time of the step that changed the state, Unix nanoseconds.</param>
/// <param name="Reason">A sentence saying why, for people.</param>
/// <param name="Value">The watched value at that step (class probability or anomaly score).</param>
/// <param name="Threshold">The raise or clear threshold that was crossed.</param>
/// <param name="Label">The current most probable class.</param>
/// <param name="Probabilities">Every class's probability at that step (empty without a classifier).</param>
/// <param name="DominantBand">The frequency band (feature column) standing out most in that frame, or null.</param>
/// <param name="Evidence">For anomaly alerts: the features whose forecast errors contributed most, with their shares.</param>
public sealed record Alert(string Stream, string Rule, AlertState State, AlertSeverity Severity, long TimestampNs, string Reason, double Value, double Threshold, string? Label, float[] Probabilities, string? DominantBand, IReadOnlyList<Contribution>? Evidence = null);

/// <summary>A message the engine could not use, with the reason.</summary>
/// <param name="Topic">The topic it came on.</param>
/// <param name="Stream">The stream id, when the topic gave one.</param>
/// <param name="Reason">The reason code (e.g. <c>undecodable</c>, <c>non_finite</c>, <c>channel_count</c>).</param>
/// <param name="Detail">What exactly was wrong.</param>
/// <param name="Payload">A copy of the payload's first bytes, at most <see cref="EngineOptions.DeadLetterBytes"/>.</param>
/// <param name="PayloadLength">The original payload's length in bytes (more than <paramref name="Payload"/> holds when it was cut).</param>
public sealed record DeadLetter(string Topic, string? Stream, string Reason, string Detail, byte[] Payload, int PayloadLength)
{
    /// <summary>True when <see cref="Payload"/> holds only a prefix of the original payload.</summary>
    public bool Truncated => Payload.Length < PayloadLength;
}
