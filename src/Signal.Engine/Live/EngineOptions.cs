using Signal.Engine.Payloads;

namespace Signal.Engine.Live;

/// <summary>How the engine routes, batches and checks input. Validated once by <see cref="Validate"/>.</summary>
public sealed class EngineOptions
{
    /// <summary>Topic → stream id template (see <see cref="TopicTemplate"/>). Default <c>sensors/{device}/{sensor}</c>.</summary>
    public string TopicTemplate { get; set; } = "sensors/{device}/{sensor}";

    /// <summary>Payload format. Default <see cref="PayloadFormat.Auto"/> (by first byte).</summary>
    public PayloadFormat Format { get; set; } = PayloadFormat.Auto;

    /// <summary>The most streams stepped together in one batch. Default 256.</summary>
    public int MaxBatch { get; set; } = 256;

    /// <summary>The longest a ready frame waits for others to join its batch. Default 5 ms.</summary>
    public TimeSpan MaxWait { get; set; } = TimeSpan.FromMilliseconds(5);

    /// <summary>
    /// How often at most <see cref="EngineRunner"/> steps waiting frames early because the intake ran empty. Default
    /// 1 ms: at low rates a frame is stepped as soon as it is complete; under load, frames of many streams gather into
    /// larger batches (cheaper per step) and wait at most this long, or <see cref="MaxWait"/> when no more messages come.
    /// Zero steps at every empty intake.
    /// </summary>
    public TimeSpan IdleFlushInterval { get; set; } = TimeSpan.FromMilliseconds(1);

    /// <summary>Frames a stream may have waiting; beyond it batches run at once. Default 32.</summary>
    public int MaxPendingFramesPerStream { get; set; } = 32;

    /// <summary>A stream with no data for this long is evicted (its state dropped). Default 10 minutes.</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// A message whose timestamp is further than this from where the stream's previous samples end is a gap (or, when
    /// earlier, time going backwards): the stream's state is reset. Default 2 ms or 2 sample periods, whichever is larger.
    /// </summary>
    public TimeSpan GapTolerance { get; set; } = TimeSpan.FromMilliseconds(2);

    /// <summary>Largest payload accepted, bytes. Default 1 MiB.</summary>
    public int MaxMessageBytes { get; set; } = 1 << 20;

    /// <summary>When set, only these stream ids are accepted; others are bad input (<c>unknown_stream</c>).</summary>
    public IReadOnlySet<string>? AllowedStreams { get; set; }

    /// <summary>
    /// The most streams held at once; a new stream beyond it is refused (<c>stream_limit</c>, counted and
    /// dead-lettered). Default 10,000, which fits an edge board: an idle stream of the bundled model holds about
    /// 12 KB (its framer, feature and recurrent state), so 10,000 streams cost about 120 MB (docs/engine.md).
    /// </summary>
    public int MaxStreams { get; set; } = 10_000;

    /// <summary>Bytes of a refused payload copied into its dead letter (the original size is reported beside). Default 1,024.</summary>
    public int DeadLetterBytes { get; set; } = 1024;

    /// <summary>Alert rules; null gives <see cref="AlertRule.Defaults"/>.</summary>
    public IReadOnlyList<AlertRule>? Alerts { get; set; }

    /// <summary>Smoothing of the anomaly score: weight of the newest step in the exponentially weighted mean. Default 0.2.</summary>
    public double AnomalySmoothing { get; set; } = 0.2;

    /// <summary>
    /// Per-stream calibration: a new (or reset) stream learns the mean and spread of its own smoothed anomaly score over
    /// this many steps and may not raise an anomaly alert before; after it, its threshold is the larger of the model's
    /// and mean + <see cref="AnomalyWarmupSigmas"/> × standard deviation of its warm-up scores. A stream starts from a
    /// zero recurrent state, so its first forecasts are poor: the warm-up keeps those start-up errors from raising alerts.
    /// Default 24 steps (about 1 s of 12 kHz vibration at a hop of 512); 0: off.
    /// </summary>
    public int AnomalyWarmupSteps { get; set; } = 24;

    /// <summary>Standard deviations above a stream's warm-up mean for its own threshold. Default 4.</summary>
    public double AnomalyWarmupSigmas { get; set; } = 4;

    /// <summary>
    /// Dynamic per-stream threshold (Hundman et al. 2018, <see cref="Anomaly.DynamicThreshold"/>): each stream keeps its
    /// last this-many smoothed scores, and an anomaly alert needs the step to lie in an anomalous run of that window
    /// that survives pruning, as well as to exceed the fixed threshold. 0 (default): the fixed threshold alone.
    /// </summary>
    public int AnomalyWindow { get; set; }

    /// <summary>
    /// Judges each stream's forecast errors by likelihood instead of a threshold (<see cref="Anomaly.StreamingAnomalyDetector"/>):
    /// the raw error of every step goes through the ensemble (level, jump, time of day, sustained change, new shape of
    /// the error series), and the anomaly score becomes the ensemble's score in [0, 1] with its threshold (0.45), so a
    /// stream whose errors are always large and one whose errors are always small alert alike. The value is the
    /// ensemble's warm-up in steps (no anomaly alert before it); 0 (default) keeps the calibrated threshold. Costs about
    /// 330 KB per stream (each detector's score history), so for slow sensors rather than ten thousand streams.
    /// </summary>
    public int AnomalyLikelihoodWarmup { get; set; }

    /// <summary>Threads a large batch is split over (0: the processor count). Default 1.</summary>
    public int Threads { get; set; } = 1;

    /// <summary>
    /// Where batched steps run: <c>cpu</c> (default: the SIMD kernels; ILGPU is never loaded), <c>cuda</c>, <c>opencl</c>,
    /// <c>auto</c> (a GPU when a CUDA driver is present and <see cref="MaxBatch"/> is large enough to win, else the CPU) or
    /// <c>ilgpu-cpu</c> (a test device). See docs/accelerators.md.
    /// </summary>
    public string Accelerator { get; set; } = "cpu";

    /// <summary>Checks every field.</summary>
    /// <exception cref="ArgumentException">A field is out of range; the message names it.</exception>
    public void Validate()
    {
        static void Fail(string field, string why) => throw new ArgumentException($"engine.{field}: {why}");
        _ = new TopicTemplate(TopicTemplate);
        if (MaxBatch is < 1 or > 65536)
        {
            Fail("maxBatch", $"{MaxBatch} is outside 1-65,536.");
        }

        if (MaxWait < TimeSpan.Zero || MaxWait > TimeSpan.FromSeconds(10))
        {
            Fail("maxWait", $"{MaxWait} is outside 0-10 s.");
        }

        if (IdleFlushInterval < TimeSpan.Zero || IdleFlushInterval > MaxWait)
        {
            Fail("idleFlushInterval", $"{IdleFlushInterval} is outside 0 to maxWait ({MaxWait}).");
        }

        if (MaxPendingFramesPerStream < 1)
        {
            Fail("maxPendingFramesPerStream", "is below 1.");
        }

        if (IdleTimeout <= TimeSpan.Zero)
        {
            Fail("idleTimeout", "must be positive.");
        }

        if (GapTolerance < TimeSpan.Zero)
        {
            Fail("gapTolerance", "is negative.");
        }

        if (MaxMessageBytes < 64)
        {
            Fail("maxMessageBytes", $"{MaxMessageBytes} is below 64 bytes.");
        }

        if (MaxStreams < 1)
        {
            Fail("maxStreams", "is below 1.");
        }

        if (DeadLetterBytes < 0 || DeadLetterBytes > MaxMessageBytes)
        {
            Fail("deadLetterBytes", $"{DeadLetterBytes} is not between 0 and maxMessageBytes ({MaxMessageBytes}).");
        }

        if (!(AnomalySmoothing > 0 && AnomalySmoothing <= 1))
        {
            Fail("anomalySmoothing", $"{AnomalySmoothing} is outside (0, 1].");
        }

        if (Threads < 0)
        {
            Fail("threads", "is negative.");
        }

        try
        {
            _ = Signal.Models.Accelerators.AcceleratorKinds.Parse(Accelerator);
        }
        catch (ArgumentException e)
        {
            Fail("accelerator", e.Message);
        }

        if (AnomalyWindow is not 0 and (< 10 or > 100_000))
        {
            Fail("anomalyWindow", $"{AnomalyWindow} is outside 10-100,000 (or 0 for off).");
        }

        if (AnomalyLikelihoodWarmup is not 0 and < 16)
        {
            Fail("anomalyLikelihoodWarmup", $"{AnomalyLikelihoodWarmup} is below 16 (or 0 for off).");
        }

        if (AnomalyWarmupSteps < 0)
        {
            Fail("anomalyWarmupSteps", "is negative.");
        }

        if (!(AnomalyWarmupSigmas >= 0))
        {
            Fail("anomalyWarmupSigmas", $"{AnomalyWarmupSigmas} is not a non-negative number.");
        }
    }
}
