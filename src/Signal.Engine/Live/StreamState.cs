using Signal.Features.Pipeline;
using Signal.Models.Networks;

namespace Signal.Engine.Live;

/// <summary>
/// One stream's state in the engine: its feature extractor (or raw-sample accumulator), recurrent state, timing,
/// the frames waiting for a batched step, and its alert trackers. Touched only under the engine's lock.
/// </summary>
internal sealed class StreamState
{
    private float[] _pending = [];
    private long[] _pendingTimes = [];
    private int _head, _count;

    public StreamState(string id, EngineModel model, FeatureWorkspace? workspace, int rules)
    {
        Id = id;
        State = model.Network.CreateState();
        Extractor = model.Pipeline is { } pipeline ? pipeline.CreateExtractor(workspace!) : null;
        Raw = model.Pipeline is null && model.SamplesPerStep > 1 ? new float[model.Network.InputSize] : null;
        Trackers = new AlertTracker[rules];
    }

    public string Id { get; }

    public RecurrentState State { get; }

    public FeatureExtractor? Extractor { get; }

    /// <summary>Raw samples of the step being filled (models without features that take several samples per step).</summary>
    public float[]? Raw { get; }

    public int RawFill { get; set; }

    public AlertTracker[] Trackers { get; }

    public long? LastSequence { get; set; }

    /// <summary>True from a checkpoint restore until the stream's next message: a jump forward then continues.</summary>
    public bool Restored { get; set; }

    /// <summary>
    /// The next jump is expected (a cluster shard waited for messages lost with a silo): the stream continues with its
    /// state, as after a restore.
    /// </summary>
    public bool AcceptGap { get; set; }

    /// <summary>Data time of this stream's sample 0 since the last reset, Unix ns; valid when <see cref="HasTime"/>.</summary>
    public long OriginNs { get; set; }

    public bool HasTime { get; set; }

    public double Rate { get; set; }

    /// <summary>Samples (or vectors) accepted since the last reset.</summary>
    public long Samples { get; set; }

    /// <summary>Steps since the last reset.</summary>
    public long Steps { get; set; }

    public long LastSeenTicks { get; set; }

    public bool InReadyQueue { get; set; }

    public float[]? LastForecast { get; set; }

    public double SmoothedScore { get; set; } = double.NaN;

    /// <summary>Warm-up scores seen (per-stream calibration), their running mean and sum of squared deviations (Welford).</summary>
    public long WarmupCount { get; set; }

    public double WarmupMean { get; set; }

    public double WarmupM2 { get; set; }

    /// <summary>The last smoothed scores (ring) for the dynamic threshold, or null when it is off.</summary>
    public float[]? ScoreWindow { get; set; }

    /// <summary>The stream's likelihood ensemble over its forecast errors (<see cref="EngineOptions.AnomalyLikelihoodWarmup"/>), created at its first score.</summary>
    public Anomaly.StreamingAnomalyDetector? Detector { get; set; }

    public int WindowCount { get; set; }

    public int WindowNext { get; set; }

    /// <summary>This stream's own anomaly threshold once warmed up, else NaN.</summary>
    public double OwnThreshold { get; set; } = double.NaN;

    public int PendingCount => _count;

    /// <summary>Data time of the sample with index <paramref name="sample"/> since the last reset.</summary>
    public long TimeOf(long sample) => Rate > 0 ? OriginNs + (long)Math.Round(sample * 1e9 / Rate) : OriginNs;

    public Span<float> AppendRow(int width, long timestampNs)
    {
        if (_count == _pendingTimes.Length)
        {
            Grow(width);
        }

        int slot = (_head + _count) % _pendingTimes.Length;
        _pendingTimes[slot] = timestampNs;
        _count++;
        return _pending.AsSpan(slot * width, width);
    }

    public ReadOnlySpan<float> PeekRow(int width, out long timestampNs)
    {
        timestampNs = _pendingTimes[_head];
        return _pending.AsSpan(_head * width, width);
    }

    public void PopRow()
    {
        _head = (_head + 1) % _pendingTimes.Length;
        _count--;
        if (_count == 0)
        {
            _head = 0;
        }
    }

    /// <summary>Drops the frames waiting for a step.</summary>
    public void ClearPending()
    {
        _head = 0;
        _count = 0;
    }

    /// <summary>Forgets everything learned from the signal (after a gap); keeps the id and the alert trackers.</summary>
    public void ResetSignal()
    {
        State.Reset();
        Extractor?.Reset();
        RawFill = 0;
        HasTime = false;
        Samples = 0;
        Steps = 0;
        LastForecast = null;
        SmoothedScore = double.NaN;
        WarmupCount = 0;
        WarmupMean = 0;
        WarmupM2 = 0;
        OwnThreshold = double.NaN;
        Detector = null;
        WindowCount = 0;
        WindowNext = 0;
    }

    private void Grow(int width)
    {
        int capacity = Math.Max(2, _pendingTimes.Length * 2);
        var rows = new float[capacity * width];
        var times = new long[capacity];
        for (int i = 0; i < _count; i++)
        {
            int from = (_head + i) % Math.Max(1, _pendingTimes.Length);
            _pending.AsSpan(from * width, width).CopyTo(rows.AsSpan(i * width, width));
            times[i] = _pendingTimes[from];
        }

        _pending = rows;
        _pendingTimes = times;
        _head = 0;
    }
}
