using System.Globalization;
using System.Numerics.Tensors;
using System.Reactive.Concurrency;
using System.Reactive.Linq;
using System.Reactive.Subjects;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Signal.Engine.Mqtt;
using Signal.Engine.Payloads;
using Signal.Features.Pipeline;
using Signal.Models.Accelerators;
using Signal.Models.Networks;

namespace Signal.Engine.Live;

/// <summary>
/// The live pipeline for one model: decode → route by stream → framer + features → step scheduler (batched across
/// streams) → heads → alerts, with results as Rx streams.
/// </summary>
/// <remarks>
/// <para><b>Step scheduler.</b> A stream with a frame ready joins a FIFO ready queue. A batch takes at most one frame of
/// each stream at the head of the queue, up to <see cref="EngineOptions.MaxBatch"/>, so a stream's frames are stepped in
/// order. A batch runs as soon as <see cref="EngineOptions.MaxBatch"/> streams are ready, when the oldest ready frame has
/// waited <see cref="EngineOptions.MaxWait"/> (timed on the engine's <see cref="IScheduler"/>), when a stream holds
/// <see cref="EngineOptions.MaxPendingFramesPerStream"/> frames, or on <see cref="Flush"/>.</para>
/// <para><b>Stream state</b> is created on a stream's first message; reset on a gap (sequence number jump, a timestamp
/// beyond <see cref="EngineOptions.GapTolerance"/> from where the previous samples end, time going backwards, a change of
/// sample rate), after its waiting frames are stepped; evicted after <see cref="EngineOptions.IdleTimeout"/> without data.
/// Each is counted by reason in <see cref="Counters"/> and logged, at most 5 lines a minute per reason with a summary of the rest.</para>
/// <para><b>Bad input</b> (oversized, topic not matching the template, unknown stream, undecodable, NaN/∞, wrong
/// channel count or width, sample-rate mismatch) is counted by reason, logged (rate-limited by reason), and
/// emitted on <see cref="DeadLetters"/> with a bounded prefix of the payload; state already accepted is untouched. An
/// exception while processing (a defect) is contained: counted, dead-lettered as <c>internal_error</c>, the streams
/// involved start afresh, and the engine goes on.</para>
/// <para><b>Threads.</b> Every public member is safe to call from any thread: calls are serialised by an internal lock,
/// and results are emitted under it, in order, on the calling (or timer) thread. Observers must be quick or hand off
/// (the MQTT publisher uses a bounded channel).</para>
/// </remarks>
public sealed partial class SignalEngine : IDisposable
{
    private readonly EngineModel _model;
    private readonly EngineOptions _options;
    private readonly IScheduler _scheduler;
    private readonly ILogger _logger;
    private readonly TopicTemplate _topics;
    private readonly IReadOnlyList<AlertRule> _rules;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, StreamState> _streams = new(StringComparer.Ordinal);
    private readonly Queue<StreamState> _ready = new();
    private readonly PayloadDecoder _decoder = new();
    private readonly FeatureWorkspace? _workspace;
    private readonly IRecurrentStepper _stepper;
    private readonly int _input, _classes;
    private readonly float[] _inputs, _probabilities, _forecasts, _rows;
    private readonly long[] _times;
    private readonly StreamState[] _batch;
    private readonly RecurrentState[] _states;
    private readonly int[] _bandColumns;
    private readonly int[] _ruleClass;
    private readonly string[] _columns;
    private readonly LogLimiter _limiter = new();
    private readonly Subject<Classification> _classifications = new();
    private readonly Subject<AnomalyScore> _anomalies = new();
    private readonly Subject<Alert> _alerts = new();
    private readonly Subject<DeadLetter> _deadLetters = new();
    private readonly Subject<string> _evicted = new();
    private readonly IDisposable _eviction;
    private IDisposable? _timer;
    private bool _disposed;

    /// <summary>Creates the engine.</summary>
    /// <param name="model">The model every stream runs.</param>
    /// <param name="options">Routing, batching and limits; validated here.</param>
    /// <param name="scheduler">The clock for batching waits and idle eviction (a <c>TestScheduler</c> in tests). Default: <see cref="DefaultScheduler.Instance"/>.</param>
    /// <param name="logger">Where stream events are logged, or null.</param>
    /// <param name="counters">Counters to continue (an engine that replaces another on a model reload keeps counting
    /// where the old one was, so Prometheus counters stay monotonic), or null for new ones.</param>
    public SignalEngine(EngineModel model, EngineOptions? options = null, IScheduler? scheduler = null, ILogger? logger = null, EngineCounters? counters = null)
    {
        Counters = counters ?? new EngineCounters();
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _options = options ?? new EngineOptions();
        _options.Validate();
        _scheduler = scheduler ?? DefaultScheduler.Instance;
        _logger = logger ?? NullLogger.Instance;
        _topics = new TopicTemplate(_options.TopicTemplate);
        _rules = _options.Alerts ?? AlertRule.Defaults(model);
        foreach (AlertRule rule in _rules)
        {
            rule.Validate(model.Labels);
        }

        if (_rules.Select(r => r.Name).Distinct().Count() != _rules.Count)
        {
            throw new ArgumentException("alerts: two rules have the same name.");
        }

        _ruleClass = [.. _rules.Select(r => r.Class is null ? -1 : model.Labels.ToList().IndexOf(r.Class))];
        _workspace = model.Pipeline?.CreateWorkspace();
        _stepper = AcceleratorSelection.CreateStepper(model.Network, _options.MaxBatch, AcceleratorKinds.Parse(_options.Accelerator),
            _options.Threads == 0 ? Environment.ProcessorCount : _options.Threads, line => LogAccelerator(_logger, model.Name, line), capacity: _options.MaxStreams);
        _input = model.Network.InputSize;
        _classes = model.Network.ClassCount;
        _inputs = new float[_options.MaxBatch * _input];
        _probabilities = new float[_options.MaxBatch * _classes];
        _forecasts = new float[model.HasForecast ? _options.MaxBatch * model.Network.ForecastSize : 0];
        _rows = new float[8 * _input];
        _times = new long[_options.MaxBatch];
        _batch = new StreamState[_options.MaxBatch];
        _states = new RecurrentState[_options.MaxBatch];
        _columns = model.Pipeline is { } p ? [.. p.ColumnNames] : [.. Enumerable.Range(0, _input).Select(i => "in" + i.ToString(CultureInfo.InvariantCulture))];
        _bandColumns = [.. Enumerable.Range(0, _columns.Length).Where(i => _columns[i].Contains("mel", StringComparison.Ordinal) || (_columns[i].Contains("band", StringComparison.Ordinal) && !_columns[i].Contains("dominant", StringComparison.Ordinal)))];
        TimeSpan period = TimeSpan.FromTicks(Math.Max(TimeSpan.TicksPerSecond, _options.IdleTimeout.Ticks / 4));
        _eviction = _scheduler.SchedulePeriodic(period, EvictIdle);
    }

    /// <summary>A class per stream step (models with a classification head).</summary>
    public IObservable<Classification> Classifications => _classifications.AsObservable();

    /// <summary>An anomaly score per stream step (models with a forecasting head).</summary>
    public IObservable<AnomalyScore> AnomalyScores => _anomalies.AsObservable();

    /// <summary>Alert raises and clears (state changes only).</summary>
    public IObservable<Alert> Alerts => _alerts.AsObservable();

    /// <summary>Rejected messages with their reason and a copy of the payload.</summary>
    public IObservable<DeadLetter> DeadLetters => _deadLetters.AsObservable();

    /// <summary>Ids of streams evicted after their idle timeout (their state is gone; new data starts them fresh).</summary>
    public IObservable<string> StreamsEvicted => _evicted.AsObservable();

    /// <summary>Counters by kind and reason.</summary>
    public EngineCounters Counters { get; }

    /// <summary>The model.</summary>
    public EngineModel Model => _model;

    /// <summary>The options it runs with (do not change them after construction).</summary>
    public EngineOptions Options => _options;

    /// <summary>The alert rules in force.</summary>
    public IReadOnlyList<AlertRule> Rules => _rules;

    /// <summary>The topic filter that matches the topic template (what to subscribe to).</summary>
    public string TopicFilter => _topics.Filter;

    /// <summary>Streams currently held.</summary>
    public int StreamCount
    {
        get
        {
            lock (_gate)
            {
                return _streams.Count;
            }
        }
    }

    /// <summary>Frames waiting for a step, over all streams.</summary>
    public int PendingFrames
    {
        get
        {
            lock (_gate)
            {
                return _streams.Values.Sum(s => s.PendingCount);
            }
        }
    }

    /// <summary>Takes one received message (the caller still owns and releases it).</summary>
    /// <param name="message">The message.</param>
    public void Process(in MqttMessage message) => Process(message.Topic, message.Payload);

    /// <summary>Takes one message: decodes it, routes it to its stream, and steps whatever batches become due.</summary>
    /// <param name="topic">The topic it came on (the stream id is read from it).</param>
    /// <param name="payload">The payload.</param>
    public void Process(string topic, ReadOnlySpan<byte> payload)
    {
        ArgumentNullException.ThrowIfNull(topic);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            Interlocked.Increment(ref Counters._messages);
            try
            {
                Accept(topic, payload);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                InternalError(topic, payload, e);
            }
        }
    }

    /// <summary>Steps every waiting frame now, in as many batches as needed.</summary>
    public void Flush()
    {
        lock (_gate)
        {
            while (_ready.Count > 0)
            {
                RunBatch();
            }

            CancelTimer();
        }
    }

    /// <summary>The sequence number of the last message taken from a stream, or null (no such stream, or no sequence numbers).</summary>
    /// <param name="stream">The stream id.</param>
    /// <returns>The sequence number, or null.</returns>
    public long? LastSequence(string stream)
    {
        lock (_gate)
        {
            return _streams.TryGetValue(stream, out StreamState? s) ? s.LastSequence : null;
        }
    }

    /// <summary>
    /// Lets a stream's next jump in sequence or time pass without a reset: the stream continues with its state, as after a
    /// restore (a cluster shard calls it after waiting in vain for messages lost with a failed silo).
    /// </summary>
    /// <param name="stream">The stream id.</param>
    /// <returns>False when the engine holds no such stream.</returns>
    public bool AcceptGap(string stream)
    {
        lock (_gate)
        {
            if (!_streams.TryGetValue(stream, out StreamState? s))
            {
                return false;
            }

            s.AcceptGap = true;
            return true;
        }
    }

    /// <summary>Forgets a stream's state (as after a gap).</summary>
    /// <param name="stream">The stream id.</param>
    /// <returns>False when the engine holds no such stream.</returns>
    public bool ResetStream(string stream)
    {
        lock (_gate)
        {
            if (!_streams.TryGetValue(stream, out StreamState? s))
            {
                return false;
            }

            ResetSignal(s, "requested", "reset on request");
            return true;
        }
    }

    /// <summary>Steps what is waiting, completes the result streams and releases the stepper.</summary>
    public void Dispose()
    {
        Exception? failure = null;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            while (_ready.Count > 0)
            {
                RunBatch();
            }

            _disposed = true;
            CancelTimer();
            _eviction.Dispose();
            try
            {
                _stepper.Dispose();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // A GPU stepper whose device failed throws after releasing the states: the streams below still
                // complete (sinks waiting for their end flush and stop), then the failure is passed on.
                failure = e;
            }
        }

        _classifications.OnCompleted();
        _anomalies.OnCompleted();
        _alerts.OnCompleted();
        _deadLetters.OnCompleted();
        _evicted.OnCompleted();
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }
    }

    private void Accept(string topic, ReadOnlySpan<byte> payload)
    {
        if (payload.Length > _options.MaxMessageBytes)
        {
            Reject(topic, null, "oversized", $"{payload.Length:N0} bytes exceed the limit of {_options.MaxMessageBytes:N0}", payload);
            return;
        }

        if (!_topics.TryMatch(topic, out string id))
        {
            Reject(topic, null, "topic_mismatch", $"the topic does not match the template '{_topics.Template}'", payload);
            return;
        }

        if (_options.AllowedStreams is { } allowed && !allowed.Contains(id))
        {
            Reject(topic, id, "unknown_stream", $"stream '{id}' is not in the configured list", payload);
            return;
        }

        if (!_decoder.TryDecode(payload, _options.Format, out DecodedPayload data, out string error))
        {
            Reject(topic, id, "undecodable", error, payload);
            return;
        }

        if (!TensorPrimitives.IsFiniteAll(data.Values))
        {
            int bad = IndexOfNonFinite(data.Values);
            Reject(topic, id, "non_finite", $"sample {bad / data.Width}, channel {bad % data.Width} is {data.Values[bad].ToString(CultureInfo.InvariantCulture)}", payload);
            return;
        }

        if (data.Kind == PayloadKind.Features ? data.Width != _input : data.Width != _model.Channels)
        {
            string what = data.Kind == PayloadKind.Features
                ? $"feature vectors have {data.Width} values; the model takes {_input}"
                : $"{data.Width} channel(s) per sample; the model takes {_model.Channels}";
            Reject(topic, id, data.Kind == PayloadKind.Features ? "feature_width" : "channel_count", what, payload);
            return;
        }

        if (data.Kind == PayloadKind.Samples && _model.InputRate > 0 && data.Rate > 0 && Math.Abs(data.Rate - _model.InputRate) > 1e-6 * _model.InputRate)
        {
            string expected = _model.InputRate == _model.SampleRate
                ? $"the model's features are for {_model.SampleRate.ToString(CultureInfo.InvariantCulture)} Hz (a feature spec's \"resample\": {{ \"inputRate\": … }} serves another rate)"
                : $"the model resamples from {_model.InputRate.ToString(CultureInfo.InvariantCulture)} Hz to {_model.SampleRate.ToString(CultureInfo.InvariantCulture)} Hz";
            Reject(topic, id, "rate_mismatch", $"{data.Rate.ToString(CultureInfo.InvariantCulture)} Hz; {expected}", payload);
            return;
        }

        if (!_streams.TryGetValue(id, out StreamState? stream))
        {
            if (_streams.Count >= _options.MaxStreams)
            {
                Reject(topic, id, "stream_limit", $"the engine already holds {_options.MaxStreams:N0} streams", payload);
                return;
            }

            stream = new StreamState(id, _model, _workspace, _rules.Count);
            _streams.Add(id, stream);
            Interlocked.Increment(ref Counters._streamsCreated);
        }

        stream.LastSeenTicks = _scheduler.Now.UtcTicks;
        // A stream restored from a checkpoint continues with its state: what arrived between the checkpoint and a
        // crash is gone (a jump forward is expected once), and starting afresh would throw the context away too.
        bool restored = stream.Restored || stream.AcceptGap, fromCheckpoint = stream.Restored;
        bool jumped = false;
        if (data.Sequence is long sequence)
        {
            if (stream.LastSequence is long last)
            {
                if (sequence <= last)
                {
                    Interlocked.Increment(ref Counters._duplicates);
                    return;
                }

                if (sequence != last + 1)
                {
                    if (restored)
                    {
                        jumped = true;
                        Log(stream.Id, "restore_gap", $"continues with its state: sequence {sequence} follows {last} ({sequence - last - 1} messages missing, {Since(fromCheckpoint)})");
                    }
                    else
                    {
                        ResetSignal(stream, "sequence_gap", $"sequence {sequence} follows {last}");
                    }
                }
            }

            stream.LastSequence = sequence;
        }

        stream.Restored = false;
        stream.AcceptGap = false;

        double rate = data.Rate > 0 ? data.Rate : stream.Rate > 0 ? stream.Rate : _model.SampleRate;
        if (stream.HasTime && stream.Rate > 0 && rate != stream.Rate)
        {
            ResetSignal(stream, "rate_change", $"sample rate changed from {stream.Rate} to {rate} Hz");
        }

        if (stream.HasTime && data.TimestampNs is long ts && rate > 0)
        {
            long expected = stream.TimeOf(stream.Samples);
            long tolerance = Math.Max(_options.GapTolerance.Ticks * 100, (long)(2e9 / rate));
            if (ts < expected - tolerance)
            {
                ResetSignal(stream, "time_backwards", $"data at {ts} ns, the stream had reached {expected} ns");
            }
            else if (ts > expected + tolerance && (restored || jumped))
            {
                // The same jump in time: the stream's clock moves on to the message, its state stays.
                stream.OriginNs += ts - expected;
                if (!jumped)
                {
                    jumped = true;
                    Log(stream.Id, "restore_gap", $"continues with its state: {(ts - expected) / 1e6:0.###} ms of samples missing, {Since(fromCheckpoint)}");
                }
            }
            else if (ts > expected + tolerance)
            {
                ResetSignal(stream, "time_gap", $"{(ts - expected) / 1e6:0.###} ms of samples missing");
            }
        }

        if (!stream.HasTime)
        {
            stream.OriginNs = data.TimestampNs ?? (_scheduler.Now.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100;
            stream.HasTime = true;
            stream.Samples = 0;
        }

        if (jumped)
        {
            Interlocked.Increment(ref Counters._restoreGaps);
        }

        stream.Rate = rate;
        Interlocked.Add(ref Counters._samples, data.Count);
        if (data.Kind == PayloadKind.Features)
        {
            for (int i = 0; i < data.Count; i++)
            {
                data.Values.Slice(i * _input, _input).CopyTo(Reserve(stream, stream.TimeOf(stream.Samples)));
                stream.Samples++;
                MarkReady(stream);
            }
        }
        else if (stream.Extractor is { } extractor)
        {
            FeedFeatures(stream, extractor, data.Values);
        }
        else
        {
            FeedRaw(stream, data.Values);
        }
    }

    private static string Since(bool fromCheckpoint) => fromCheckpoint ? "since the checkpoint" : "lost on the way (a cluster silo failed)";

    private void FeedFeatures(StreamState stream, FeatureExtractor extractor, ReadOnlySpan<float> values)
    {
        FeatureSpec spec = _model.Pipeline!.Spec;
        int channels = spec.Channels;
        int rowCapacity = _rows.Length / _input;
        // A frame's last sample is counted at the spec's rate; with resampling, input sample i lies at i·in/out of it.
        double inputPerSample = spec.InputRate / spec.SampleRate;
        int rows;
        do
        {
            long framesBefore = extractor.FramesEmitted;
            rows = extractor.Process(values, _rows.AsSpan(0, rowCapacity * _input), out int consumed);
            stream.Samples += consumed / channels;
            values = values[consumed..];
            for (int r = 0; r < rows; r++)
            {
                long frame = framesBefore + r;
                long lastSample = spec.FrameLength - 1 + (frame * spec.Hop);
                long inputSample = spec.Resample is null ? lastSample : (long)Math.Round(lastSample * inputPerSample);
                _rows.AsSpan(r * _input, _input).CopyTo(Reserve(stream, stream.TimeOf(inputSample)));
                MarkReady(stream);
            }
        }
        while (!values.IsEmpty || rows == rowCapacity); // a full row buffer may leave frames in the extractor
    }

    private void FeedRaw(StreamState stream, ReadOnlySpan<float> values)
    {
        int channels = _model.Channels;
        float[]? mean = _model.RawNormalization?.Mean;
        float[]? std = _model.RawNormalization?.Std;
        int samples = values.Length / channels;
        for (int i = 0; i < samples; i++)
        {
            ReadOnlySpan<float> sample = values.Slice(i * channels, channels);
            Span<float> row = stream.Raw is { } raw ? raw.AsSpan(stream.RawFill * channels, channels) : Reserve(stream, stream.TimeOf(stream.Samples));
            for (int c = 0; c < channels; c++)
            {
                row[c] = mean is null ? sample[c] : (sample[c] - mean[c]) / std![c];
            }

            stream.Samples++;
            if (stream.Raw is null)
            {
                MarkReady(stream);
            }
            else if (++stream.RawFill == _model.SamplesPerStep)
            {
                stream.RawFill = 0;
                stream.Raw.CopyTo(Reserve(stream, stream.TimeOf(stream.Samples - 1)));
                MarkReady(stream);
            }
        }
    }

    /// <summary>Room for one more waiting frame of <paramref name="stream"/>; runs batches first when it is full.</summary>
    /// <remarks>The caller fills the row, then calls <see cref="MarkReady"/>.</remarks>
    private Span<float> Reserve(StreamState stream, long timestampNs)
    {
        while (stream.PendingCount >= _options.MaxPendingFramesPerStream)
        {
            RunBatch();
        }

        Interlocked.Increment(ref Counters._frames);
        return stream.AppendRow(_input, timestampNs);
    }

    /// <summary>Puts a stream with a filled frame in the ready queue; runs a batch when enough streams are ready.</summary>
    private void MarkReady(StreamState stream)
    {
        if (stream.InReadyQueue)
        {
            return;
        }

        stream.InReadyQueue = true;
        _ready.Enqueue(stream);
        if (_ready.Count >= _options.MaxBatch)
        {
            RunBatch();
        }
        else if (_timer is null)
        {
            _timer = _scheduler.Schedule(_options.MaxWait, OnWaitElapsed);
        }
    }

    private void OnWaitElapsed()
    {
        lock (_gate)
        {
            _timer = null;
            if (_disposed)
            {
                return;
            }

            try
            {
                while (_ready.Count > 0)
                {
                    RunBatch();
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // On a timer thread an exception would end the process: contain it as Process does.
                Contained(null, e);
            }
        }
    }

    private void CancelTimer()
    {
        _timer?.Dispose();
        _timer = null;
    }

    /// <summary>One batched step over the streams at the head of the ready queue.</summary>
    private void RunBatch()
    {
        int take = Math.Min(_options.MaxBatch, _ready.Count), n = 0;
        for (int k = 0; k < take; k++)
        {
            StreamState s = _ready.Dequeue();
            s.InReadyQueue = false;
            ReadOnlySpan<float> row = s.PeekRow(_input, out long time);
            if (!TensorPrimitives.IsFiniteAll(row))
            {
                // Finite samples can still give an infinite feature (a power of 1e38 overflows float): the network
                // would refuse the whole batch, so this stream's frames go and its signal state starts afresh.
                int column = IndexOfNonFinite(row);
                s.ClearPending();
                s.ResetSignal();
                Counters.Reset("non_finite_features");
                Log(s.Id, "non_finite_features", $"feature '{_columns[column]}' is {row[column].ToString(CultureInfo.InvariantCulture)}; the stream starts afresh");
                continue;
            }

            _batch[n] = s;
            _states[n] = s.State;
            _times[n] = time;
            row.CopyTo(_inputs.AsSpan(n * _input, _input));
            s.PopRow();
            n++;
        }

        if (n == 0)
        {
            if (_ready.Count == 0)
            {
                CancelTimer();
            }

            return;
        }

        _stepper.Step(_states.AsSpan(0, n), _inputs.AsSpan(0, n * _input), _probabilities.AsSpan(0, n * _classes), _forecasts.Length == 0 ? default : _forecasts.AsSpan(0, n * _input));
        Counters.Batch(n);
        for (int i = 0; i < n; i++)
        {
            StreamState s = _batch[i];
            Emit(s, _inputs.AsSpan(i * _input, _input), _probabilities.AsSpan(i * _classes, _classes), _forecasts.Length == 0 ? default : _forecasts.AsSpan(i * _input, _input), _times[i]);
            s.Steps++;
            if (s.PendingCount > 0 && !s.InReadyQueue)
            {
                s.InReadyQueue = true;
                _ready.Enqueue(s);
            }

            _batch[i] = null!;
            _states[i] = null!;
        }

        if (_ready.Count == 0)
        {
            CancelTimer();
        }
    }

    private void Emit(StreamState s, ReadOnlySpan<float> input, ReadOnlySpan<float> probabilities, ReadOnlySpan<float> forecast, long timestampNs)
    {
        float[] p = [];
        string? label = null;
        if (_classes > 0)
        {
            p = probabilities.ToArray();
            int best = TensorPrimitives.IndexOfMax(probabilities);
            label = _model.Labels[best];
            _classifications.OnNext(new Classification(s.Id, timestampNs, s.Steps, best, label, p[best], p));
        }

        double score = double.NaN, threshold = _model.AnomalyThreshold, alertThreshold = threshold;
        Contribution[]? evidence = null;
        bool warming = false;
        if (!forecast.IsEmpty)
        {
            if (s.LastForecast is { } previous)
            {
                // One pass over the inputs gives the raw score (AnomalyCalibration.RawScore's definition) and the evidence.
                Span<int> top = [-1, -1, -1];
                Span<double> parts = [-1, -1, -1];
                double raw = TopErrors(input, previous, top, parts) / input.Length;
                s.SmoothedScore = double.IsNaN(s.SmoothedScore) ? raw : s.SmoothedScore + (_options.AnomalySmoothing * (raw - s.SmoothedScore));
                score = s.SmoothedScore;
                if (_options.AnomalyLikelihoodWarmup > 0)
                {
                    score = Likelihood(s, timestampNs, input, raw);
                    threshold = Anomaly.AnomalyDetectorOptions.DefaultThreshold;
                    warming = s.Detector!.Rows <= _options.AnomalyLikelihoodWarmup;
                }
                else
                {
                    (warming, threshold) = Calibrate(s, score);
                }

                alertThreshold = threshold;
                if (_options.AnomalyWindow > 0 && !double.IsNaN(threshold) && score > threshold)
                {
                    alertThreshold = Math.Max(threshold, Dynamic(s, score));
                }
                else if (_options.AnomalyWindow > 0)
                {
                    Remember(s, score);
                }
                // The evidence list is built only near or above the threshold, where it explains something; below, the top
                // feature alone (no allocation beyond the score record on this per-step path).
                if (double.IsNaN(threshold) || score >= 0.5 * threshold)
                {
                    evidence = s.Detector is { } detector && input.Length == 1 ? DetectorEvidence(detector) : Evidence(top, parts, raw * input.Length);
                }

                _anomalies.OnNext(new AnomalyScore(s.Id, timestampNs, score, raw, threshold, _columns[top[0]], evidence));
            }

            s.LastForecast ??= new float[input.Length];
            forecast.CopyTo(s.LastForecast);
        }

        for (int r = 0; r < _rules.Count; r++)
        {
            AlertRule rule = _rules[r];
            double value, raise, clear;
            if (rule.Class is { } cls)
            {
                value = p[_ruleClass[r]];
                (raise, clear) = (rule.Raise, rule.Clear);
            }
            else
            {
                raise = double.IsNaN(rule.Raise) ? alertThreshold : rule.Raise;
                clear = double.IsNaN(rule.Clear) ? 0.8 * (double.IsNaN(rule.Raise) ? threshold : rule.Raise) : rule.Clear;
                if (double.IsNaN(score) || double.IsNaN(raise) || warming)
                {
                    continue;
                }

                value = score;
            }

            AlertState? change = s.Trackers[r].Update(rule, value, raise, clear, timestampNs, out bool suppressed);
            if (suppressed)
            {
                Log(s.Id, "alert_suppressed", $"rule {rule.Name} would raise within its suppression window");
            }

            if (change is { } state)
            {
                Interlocked.Increment(ref Counters._alerts);
                string what = rule.Class is null ? "anomaly score" : $"P({rule.Class})";
                string reason = state == AlertState.Raised
                    ? $"{what} reached {raise:0.###} in {rule.K} of the last {rule.N} steps"
                    : $"{what} stayed below {clear:0.###} for {rule.ClearSteps} steps";
                IReadOnlyList<Contribution>? why = rule.Class is null ? evidence : null;
                if (why is not null && state == AlertState.Raised)
                {
                    reason += "; largest forecast errors: " + string.Join(", ", why.Select(c => $"{c.Feature} {c.Share:P0}"));
                }

                _alerts.OnNext(new Alert(s.Id, rule.Name, state, rule.Severity, timestampNs, reason, value, state == AlertState.Raised ? raise : clear, label, p, DominantBand(input), why));
            }
        }
    }

    /// <summary>
    /// The sum of the scaled squared forecast errors, and the three inputs with the largest (indices and values,
    /// largest first).
    /// </summary>
    private double TopErrors(ReadOnlySpan<float> input, ReadOnlySpan<float> forecast, Span<int> top, Span<double> value)
    {
        float[]? scale = _model.AnomalyScale;
        double sum = 0;
        for (int j = 0; j < input.Length; j++)
        {
            double e = (input[j] - forecast[j]) / (scale is null ? 1.0 : scale[j]);
            e *= e;
            sum += e;
            for (int k = 0; k < top.Length; k++)
            {
                if (e > value[k])
                {
                    for (int m = top.Length - 1; m > k; m--)
                    {
                        (value[m], top[m]) = (value[m - 1], top[m - 1]);
                    }

                    (value[k], top[k]) = (e, j);
                    break;
                }
            }
        }

        return sum;
    }

    /// <summary>The top errors as named shares of the raw score's sum.</summary>
    private Contribution[] Evidence(ReadOnlySpan<int> top, ReadOnlySpan<double> value, double total)
    {
        int n = top[2] >= 0 ? 3 : top[1] >= 0 ? 2 : 1;
        var result = new Contribution[n];
        for (int k = 0; k < n; k++)
        {
            result[k] = new Contribution(_columns[top[k]], total > 0 ? value[k] / total : 0);
        }

        return result;
    }

    /// <summary>A single-sample stream's evidence: the ensemble's three most surprised detectors, each with its share of their summed evidence.</summary>
    private static Contribution[] DetectorEvidence(Anomaly.StreamingAnomalyDetector detector)
    {
        double total = 0;
        foreach (double e in detector.Evidence)
        {
            total += Math.Max(0, e);
        }

        return [.. detector.TopEvidence().Select(e => new Contribution(e.Name, e.Evidence / total))];
    }

    private static readonly Anomaly.DynamicThresholdOptions s_dynamic = new();

    private void Remember(StreamState s, double score)
    {
        float[] ring = s.ScoreWindow ??= new float[_options.AnomalyWindow];
        ring[s.WindowNext] = (float)score;
        s.WindowNext = (s.WindowNext + 1) % ring.Length;
        s.WindowCount = Math.Min(ring.Length, s.WindowCount + 1);
    }

    /// <summary>
    /// The dynamic threshold for a step above the fixed one: Hundman et al.'s threshold of the stream's window, when
    /// this step lies in an anomalous run that survives pruning; +∞ (no alert) when pruning calls the run noise.
    /// Evaluated only for steps above the fixed threshold, so quiet streams cost one ring write per step.
    /// </summary>
    private double Dynamic(StreamState s, double score)
    {
        Remember(s, score);
        float[] ring = s.ScoreWindow!;
        int n = s.WindowCount;
        double[] window = new double[n];
        for (int i = 0; i < n; i++)
        {
            window[i] = ring[(s.WindowNext - n + i + ring.Length) % ring.Length];
        }

        (double epsilon, IReadOnlyList<(int Start, int End)> runs) = Anomaly.DynamicThreshold.Evaluate(window, s_dynamic);
        return runs.Count > 0 && runs[^1].End == n ? epsilon : double.PositiveInfinity;
    }

    /// <summary>
    /// The streaming ensemble's score of a step. A model that steps on single raw samples of one channel (a slow
    /// sensor: temperature, load, flow) gives the ensemble the value itself, with the forecaster's error as external
    /// evidence, as <c>signal-edge detect --model</c> does; any other model gives it the forecast error as the series.
    /// </summary>
    private double Likelihood(StreamState s, long timestampNs, ReadOnlySpan<float> input, double raw)
    {
        bool samples = _model.Pipeline is null && input.Length == 1;
        s.Detector ??= new Anomaly.StreamingAnomalyDetector(new Anomaly.AnomalyDetectorOptions { WarmupRows = _options.AnomalyLikelihoodWarmup }, samples ? s_forecastEvidence : []);
        if (!samples)
        {
            return s.Detector.Step(timestampNs / 1e9, raw).Score;
        }

        Span<double> external = [raw];
        return s.Detector.Step(timestampNs / 1e9, input[0], external).Score;
    }

    private static readonly string[] s_forecastEvidence = ["forecast"];

    /// <summary>Per-stream calibration: during warm-up collects the stream's scores (no anomaly alerts); after it, its own threshold.</summary>
    private (bool Warming, double Threshold) Calibrate(StreamState s, double score)
    {
        int warmup = _options.AnomalyWarmupSteps;
        if (warmup == 0)
        {
            return (false, _model.AnomalyThreshold);
        }

        if (s.WarmupCount < warmup)
        {
            s.WarmupCount++;
            double delta = score - s.WarmupMean;
            s.WarmupMean += delta / s.WarmupCount;
            s.WarmupM2 += delta * (score - s.WarmupMean);
            if (s.WarmupCount < warmup)
            {
                return (true, _model.AnomalyThreshold);
            }

            double own = s.WarmupMean + (_options.AnomalyWarmupSigmas * Math.Sqrt(s.WarmupM2 / Math.Max(1, s.WarmupCount - 1)));
            s.OwnThreshold = double.IsNaN(_model.AnomalyThreshold) ? own : Math.Max(own, _model.AnomalyThreshold);
            return (true, s.OwnThreshold);
        }

        return (false, s.OwnThreshold);
    }

    private string? DominantBand(ReadOnlySpan<float> input)
    {
        if (_bandColumns.Length == 0 || _model.Pipeline is null)
        {
            return null;
        }

        int best = _bandColumns[0];
        foreach (int c in _bandColumns)
        {
            if (input[c] > input[best])
            {
                best = c;
            }
        }

        return _columns[best];
    }

    private void ResetSignal(StreamState stream, string reason, string detail)
    {
        while (stream.PendingCount > 0)
        {
            RunBatch();
        }

        stream.ResetSignal();
        Counters.Reset(reason);
        Log(stream.Id, reason, detail);
    }

    private void EvictIdle()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            LogSummaries();
            long cutoff = _scheduler.Now.UtcTicks - _options.IdleTimeout.Ticks;
            List<string>? idle = null;
            foreach ((string id, StreamState s) in _streams)
            {
                if (s.LastSeenTicks <= cutoff && s.PendingCount == 0)
                {
                    (idle ??= []).Add(id);
                }
            }

            foreach (string id in idle ?? [])
            {
                _streams.Remove(id);
                Counters.Evict("idle");
                Log(id, "idle", $"no data for {_options.IdleTimeout}");
                _evicted.OnNext(id);
            }
        }
    }

    private void Reject(string topic, string? stream, string reason, string detail, ReadOnlySpan<byte> payload, bool log = true)
    {
        Counters.Reject(reason);
        if (log)
        {
            Log(stream ?? topic, reason, detail);
        }

        if (_deadLetters.HasObservers)
        {
            // A prefix only: a hostile 50 MB message must not be copied (and re-published) whole.
            int keep = Math.Min(payload.Length, _options.DeadLetterBytes);
            _deadLetters.OnNext(new DeadLetter(topic, stream, reason, detail, payload[..keep].ToArray(), payload.Length));
        }
    }

    /// <summary>
    /// The last line of defence: a message whose processing threw (a defect, never bad input, which is refused with a
    /// reason before this) is counted as <c>internal_error</c> and dead-lettered, and the engine takes the next one.
    /// The stream it was for starts afresh, since its state may be half-updated.
    /// </summary>
    private void InternalError(string topic, ReadOnlySpan<byte> payload, Exception error)
    {
        string? id = _topics.TryMatch(topic, out string matched) ? matched : null;
        Contained(id, error, topic);
        Reject(topic, id, "internal_error", error.GetType().Name + ": " + error.Message, payload, log: false);
    }

    /// <summary>
    /// After an exception inside the engine: the streams of the batch that was being stepped (a step may have updated
    /// some of their states) and <paramref name="stream"/> (the message's) start afresh, and the ready queue is rebuilt
    /// from what streams hold (a batch may have been half taken). Counted in <see cref="EngineCounters.InternalErrors"/>.
    /// </summary>
    private void Contained(string? stream, Exception error, string? topic = null)
    {
        Interlocked.Increment(ref Counters._internalErrors);
        try
        {
            bool inBatch = false;
            for (int i = 0; i < _batch.Length && _batch[i] is not null; i++)
            {
                inBatch |= _batch[i].Id == stream;
                _batch[i].ResetSignal();
                Counters.Reset("internal_error");
                _batch[i] = null!;
                _states[i] = null!;
            }

            if (!inBatch && stream is not null && _streams.TryGetValue(stream, out StreamState? state))
            {
                state.ResetSignal();
                Counters.Reset("internal_error");
            }

            _ready.Clear();
            foreach (StreamState s in _streams.Values)
            {
                s.InReadyQueue = s.PendingCount > 0;
                if (s.InReadyQueue)
                {
                    _ready.Enqueue(s);
                }
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            if (stream is not null)
            {
                _streams.Remove(stream); // its state cannot be trusted; its next message starts it again
            }
        }

        if (_limiter.ShouldLog("internal_error", _scheduler.Now.UtcTicks, out long suppressed))
        {
            LogInternalError(_logger, topic ?? "(the batching timer)", suppressed, error);
        }
    }

    private void Log(string stream, string reason, string detail)
    {
        if (_limiter.ShouldLog(reason, _scheduler.Now.UtcTicks, out long suppressed))
        {
            LogStreamEvent(_logger, stream, reason, detail, suppressed);
        }
    }

    /// <summary>Writes the summaries of reasons whose lines were suppressed (from the periodic eviction tick).</summary>
    private void LogSummaries()
    {
        foreach ((string reason, long count) in _limiter.TakeSummaries(_scheduler.Now.UtcTicks))
        {
            LogSuppressed(_logger, reason, count);
        }
    }

    private static int IndexOfNonFinite(ReadOnlySpan<float> values)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                return i;
            }
        }

        return -1;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "model {Model}: {Choice}")]
    private static partial void LogAccelerator(ILogger logger, string model, string choice);

    [LoggerMessage(Level = LogLevel.Warning, Message = "stream {Stream}: {Reason}: {Detail} (at most 5 lines a minute per reason; {Suppressed} more suppressed in the last window)")]
    private static partial void LogStreamEvent(ILogger logger, string stream, string reason, string detail, long suppressed);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Reason}: {Count} more in the last minute (not logged one by one; see signal_rejected_total and signal_stream_resets_total)")]
    private static partial void LogSuppressed(ILogger logger, string reason, long count);

    [LoggerMessage(Level = LogLevel.Error, Message = "internal error on a message of {Topic}: counted as internal_error, dead-lettered, the message loop goes on ({Suppressed} more suppressed in the last window)")]
    private static partial void LogInternalError(ILogger logger, string topic, long suppressed, Exception exception);
}
