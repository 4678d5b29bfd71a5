using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Signal.Engine.Live;
using Signal.Engine.Mqtt;
using Signal.Engine.Storage;
using Signal.Models.Networks;

namespace Signal.Edge.Daemon;

/// <summary>
/// One model the daemon runs: its engine and the engine's subscribers (MQTT results, storage, the stream board),
/// swapped as one on a hot reload with every stream's state carried over when the architecture allows.
/// </summary>
/// <remarks>The message loop and reloads take <see cref="Gate"/>; everything else reads the current engine as it is.</remarks>
internal sealed partial class ModelSlot : IAsyncDisposable
{
    private readonly ModelSettings _settings;
    private readonly Func<EngineOptions> _options;
    private readonly IMqttConnection _connection;
    private readonly PublishOptions _publish;
    private readonly InfluxWriter? _influx;
    private readonly StreamBoard _board;
    private readonly ILogger _logger;
    private readonly bool _logClasses;
    private ResultPublisher _publisher;
    private InfluxSink? _sink;
    private IDisposable _follow;
    private IDisposable _age;
    private IDisposable _log;
    private long _reloads, _reloadFailures, _resets;

    private ModelSlot(ModelSettings settings, EngineModel model, Func<EngineOptions> options, IMqttConnection connection, PublishOptions publish, InfluxWriter? influx, StreamBoard board, ILogger logger, bool logClasses)
    {
        _logClasses = logClasses;
        _settings = settings;
        _options = options;
        _connection = connection;
        _publish = publish;
        _influx = influx;
        _board = board;
        _logger = logger;
        Name = settings.DisplayName;
        Engine = new SignalEngine(model, options(), logger: logger);
        Template = new TopicTemplate(Engine.Options.TopicTemplate);
        (_publisher, _sink, _follow, _age, _log) = Attach(Engine);
    }

    /// <summary>The model's name (results, metrics, checkpoint file).</summary>
    public string Name { get; }

    /// <summary>The model file.</summary>
    public string Path => _settings.Path;

    /// <summary>The engine now running.</summary>
    public SignalEngine Engine { get; private set; }

    /// <summary>This model's topics.</summary>
    public TopicTemplate Template { get; }

    private readonly Signal.Engine.LogLimiter _storageLog = new();

    /// <summary>Held while a message is processed or the engine is swapped.</summary>
    public Lock Gate { get; } = new();

    /// <summary>Data time of a step's last sample → its result, in seconds.</summary>
    public Histogram ResultAge { get; } = new(Histogram.LatencyBuckets);

    /// <summary>Reloads that kept the streams' state.</summary>
    public long Reloads => Interlocked.Read(ref _reloads);

    /// <summary>Reloads that had to reset the streams (another architecture or feature layout).</summary>
    public long ReloadResets => Interlocked.Read(ref _resets);

    /// <summary>Reloads refused (the new file did not load); the old model kept running.</summary>
    public long ReloadFailures => Interlocked.Read(ref _reloadFailures);

    /// <summary>Results dropped or unsent by the MQTT publisher, over every engine this slot has run.</summary>
    public long PublisherDropped => _publisher.Dropped + _publisher.Unsent;

    /// <summary>Loads the model and starts its engine.</summary>
    /// <exception cref="FormatException">The model file does not validate; the message names the file and the problem.</exception>
    public static ModelSlot Create(ModelSettings settings, Func<EngineOptions> options, IMqttConnection connection, PublishOptions publish, InfluxWriter? influx, StreamBoard board, ILogger logger, bool logClasses) =>
        new(settings, Load(settings), options, connection, publish, influx, board, logger, logClasses);

    /// <summary>Loads the model file again and swaps the engine, carrying every stream's state over when it can.</summary>
    /// <returns>True when the new model runs.</returns>
    public async Task<bool> ReloadAsync()
    {
        EngineModel next;
        try
        {
            next = Load(_settings);
        }
        catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException or ArgumentException or InvalidDataException or ModelFormatException)
        {
            Interlocked.Increment(ref _reloadFailures);
            LogReloadFailed(_logger, Name, Path, e.Message);
            return false;
        }

        var clock = Stopwatch.StartNew();
        SignalEngine old;
        ResultPublisher oldPublisher;
        CheckpointResult result;
        lock (Gate)
        {
            old = Engine;
            var state = new MemoryStream();
            old.WriteCheckpoint(state);
            state.Position = 0;
            var engine = new SignalEngine(next, _options(), logger: _logger, counters: old.Counters);
            result = engine.RestoreCheckpoint(state);
            oldPublisher = _publisher;
            _sink?.Dispose();
            _follow.Dispose();
            _age.Dispose();
            _log.Dispose();
            (_publisher, _sink, _follow, _age, _log) = Attach(engine);
            Engine = engine;
        }

        old.Dispose();
        await oldPublisher.DisposeAsync().ConfigureAwait(false);
        Interlocked.Increment(ref result.Compatible ? ref _reloads : ref _resets);
        string outcome = (result.Compatible, result.Streams) switch
        {
            (true, 0) => "same architecture and features (no streams held)",
            (true, _) => "same architecture and features: stream state kept",
            (false, 0) => "another architecture or feature layout (no streams held)",
            (false, _) => "another architecture or feature layout: streams start afresh",
        };
        LogReloaded(_logger, Name, Path, outcome, result.Streams, clock.Elapsed.TotalMilliseconds);
        return true;
    }

    /// <summary>Writes every stream's state to <c>{folder}/{name}.ckpt</c> (atomically: a temporary file, flushed, then renamed).</summary>
    /// <returns>Streams written.</returns>
    public int Checkpoint(string folder)
    {
        Directory.CreateDirectory(folder);
        string path = CheckpointPath(folder), temporary = path + ".tmp";
        int streams;
        using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            lock (Gate)
            {
                streams = Engine.WriteCheckpoint(file);
            }

            file.Flush(flushToDisk: true);
        }

        File.Move(temporary, path, overwrite: true);
        return streams;
    }

    /// <summary>Restores the streams of <c>{folder}/{name}.ckpt</c> when it exists; a damaged file is set aside as <c>.corrupt</c>.</summary>
    public CheckpointResult? Restore(string folder)
    {
        string path = CheckpointPath(folder);
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            using FileStream file = File.OpenRead(path);
            lock (Gate)
            {
                return Engine.RestoreCheckpoint(file);
            }
        }
        catch (FormatException e)
        {
            File.Move(path, path + ".corrupt", overwrite: true);
            LogCorruptCheckpoint(_logger, path, e.Message);
            return null;
        }
    }

    /// <summary>Steps what waits, stops the subscribers (the publisher drains its queue) and disposes the engine.</summary>
    public async ValueTask DisposeAsync()
    {
        lock (Gate)
        {
            Engine.Flush();
        }

        await _publisher.DisposeAsync().ConfigureAwait(false);
        _sink?.Dispose();
        _follow.Dispose();
        _age.Dispose();
        _log.Dispose();
        Engine.Dispose();
    }

    private string CheckpointPath(string folder)
    {
        string safe = string.Concat(Name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_'));
        return System.IO.Path.Combine(folder, safe + ".ckpt");
    }

    private static EngineModel Load(ModelSettings settings)
    {
        if (!File.Exists(settings.Path))
        {
            throw new ArgumentException($"model '{settings.DisplayName}': '{settings.Path}' does not exist.");
        }

        return EngineModel.From(RecurrentModel.Load(settings.Path), settings.DisplayName);
    }

    /// <summary>
    /// A further engine of this model for a cluster shard: the slot's model and options, counted in the slot's counters,
    /// with the same subscribers (MQTT results, storage, the stream board, logs), its alerts published from
    /// <paramref name="alerts"/> (which the shard feeds once its checkpoint is written).
    /// </summary>
    /// <param name="alerts">The alerts to publish.</param>
    /// <returns>The engine, and what stops its subscribers (the publisher drains its queue).</returns>
    public (SignalEngine Engine, IAsyncDisposable Subscribers) CreateShardEngine(IObservable<Alert> alerts)
    {
        SignalEngine current = Engine;
        var engine = new SignalEngine(current.Model, _options(), logger: _logger, counters: current.Counters);
        (ResultPublisher publisher, InfluxSink? sink, IDisposable follow, IDisposable age, IDisposable log) = Attach(engine, alerts);
        return (engine, new Subscribers(publisher, [sink, follow, age, log]));
    }

    private sealed class Subscribers(ResultPublisher publisher, IDisposable?[] others) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await publisher.DisposeAsync().ConfigureAwait(false);
            foreach (IDisposable? d in others)
            {
                d?.Dispose();
            }
        }
    }

    private (ResultPublisher, InfluxSink?, IDisposable, IDisposable, IDisposable) Attach(SignalEngine engine, IObservable<Alert>? alerts = null)
    {
        var publisher = new ResultPublisher(engine, _connection, _publish, alerts);
        InfluxSink? sink = _influx is null ? null : new InfluxSink(engine, _influx, e =>
        {
            // A stream id that cannot be stored fails on every point: a few lines a minute, then a count.
            if (_storageLog.ShouldLog("storage", Environment.TickCount64 * TimeSpan.TicksPerMillisecond, out long suppressed))
            {
                LogStorageError(_logger, Name, e.Message, suppressed);
            }
        });
        IDisposable follow = _board.Follow(Name, engine);
        IObservable<long> times = engine.Model.Labels.Count > 0
            ? System.Reactive.Linq.Observable.Select(engine.Classifications, c => c.TimestampNs)
            : System.Reactive.Linq.Observable.Select(engine.AnomalyScores, a => a.TimestampNs);
        IDisposable age = times.Subscribe(
            ns => ResultAge.Observe(Math.Max(0, ((DateTimeOffset.UtcNow.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100) - ns) / 1e9),
            _ => { });
        var last = new Dictionary<string, string>(StringComparer.Ordinal);
        IDisposable classes = !_logClasses ? System.Reactive.Disposables.Disposable.Empty : engine.Classifications.Subscribe(c =>
        {
            if (!last.TryGetValue(c.Stream, out string? was) || was != c.Label)
            {
                last[c.Stream] = c.Label;
                LogClass(_logger, Name, c.Stream, c.Label, c.Confidence);
            }
        }, _ => { });
        IDisposable evicted = engine.StreamsEvicted.Subscribe(id => last.Remove(id), _ => { });
        IDisposable alerted = (alerts ?? engine.Alerts).Subscribe(a => Alerted(a), _ => { });
        return (publisher, sink, follow, age, new System.Reactive.Disposables.CompositeDisposable(classes, evicted, alerted));
    }

    private void Alerted(Alert a)
    {
        LogLevel level = a.State == AlertState.Raised ? LogLevel.Warning : LogLevel.Information;
        if (!_logger.IsEnabled(level))
        {
            return;
        }

        string state = a.State == AlertState.Raised ? "RAISED" : "CLEARED";
        string severity = a.Severity switch { AlertSeverity.Critical => "critical", AlertSeverity.Warning => "warning", _ => "info" };
        LogAlert(_logger, level, Name, a.Stream, a.Rule, state, severity, a.Reason, a.DominantBand ?? "-");
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "{Model} {Stream}: {Label} ({Confidence:P0})")]
    private static partial void LogClass(ILogger logger, string model, string stream, string label, float confidence);

    [LoggerMessage(Message = "{Model} {Stream}: ALERT {Rule} {State} [{Severity}] {Reason}; dominant band {Band}")]
    private static partial void LogAlert(ILogger logger, LogLevel level, string model, string stream, string rule, string state, string severity, string reason, string band);

    [LoggerMessage(Level = LogLevel.Information, Message = "model {Model} reloaded from {Path}: {Outcome} ({Streams} streams, {Milliseconds:0.#} ms)")]
    private static partial void LogReloaded(ILogger logger, string model, string path, string outcome, int streams, double milliseconds);

    [LoggerMessage(Level = LogLevel.Error, Message = "model {Model}: the new {Path} does not load, the running model stays: {Problem}")]
    private static partial void LogReloadFailed(ILogger logger, string model, string path, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "checkpoint {Path} is damaged and was set aside as .corrupt; streams start afresh: {Problem}")]
    private static partial void LogCorruptCheckpoint(ILogger logger, string path, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "model {Model}: a result could not be stored: {Problem} ({Suppressed} more such errors in the last minute were not logged)")]
    private static partial void LogStorageError(ILogger logger, string model, string problem, long suppressed);
}
