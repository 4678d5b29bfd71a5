using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Signal.Engine.Live;
using Signal.Engine.Mqtt;
using Signal.Engine.Storage;

namespace Signal.Edge.Daemon;

/// <summary>
/// The daemon's work as a hosted service: takes messages from the broker connection, routes each to the model whose
/// topic template matches, runs the engines, and on shutdown drains the pipeline, flushes storage and checkpoints
/// every stream. Models are reloaded on a file change or SIGHUP.
/// </summary>
internal sealed partial class EdgeDaemon : BackgroundService
{
    private readonly EdgeSettings _settings;
    private readonly IConfiguration _configuration;
    private readonly ILogger _logger;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly List<FileSystemWatcher> _watchers = [];
    private readonly Dictionary<ModelSlot, Timer> _debounce = [];
    private PosixSignalRegistration? _hangup;
    private volatile bool _running;
    private volatile Exception? _fault;
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Loads every model and opens the connection and storage (nothing runs until the host starts).</summary>
    /// <exception cref="ArgumentException">A model file is missing or a setting does not validate.</exception>
    /// <exception cref="FormatException">A model file does not validate.</exception>
    public EdgeDaemon(EdgeSettings settings, IConfiguration configuration, IMqttConnection connection, StreamBoard board, ILoggerFactory logs, IHostApplicationLifetime lifetime, IServiceProvider services)
    {
        _settings = settings;
        _configuration = configuration;
        _lifetime = lifetime;
        _logger = logs.CreateLogger("signal-edge");
        Board = board;
        Connection = connection;
        Influx = settings.Influx is null ? null : OpenStorage(settings.Influx, logs);
        var slots = new List<ModelSlot>();
        foreach (ModelSettings model in settings.AllModels())
        {
            slots.Add(ModelSlot.Create(model, () => EngineOptionsFor(model), connection, settings.Publish, Influx, board, _logger, settings.Logging.ClassChanges));
        }

        Slots = slots;
        if (settings.Cluster is not null)
        {
#if SIGNAL_NO_CLUSTER
            throw new ArgumentException("cluster: this build (NativeAOT) cannot run Orleans; run a cluster silo with the JIT build (docs/cluster.md).");
#else
            Cluster = Signal.Edge.Cluster.ClusterHosting.Attach(services, this);
#endif
        }
    }

    /// <summary>The cluster this daemon is a silo of, or null (then nothing of Orleans is loaded).</summary>
    public Signal.Edge.Cluster.IClusterIngest? Cluster { get; }

    /// <summary>The topic filters subscribed to (shared subscriptions in a cluster).</summary>
    public IReadOnlyList<string> SubscribedFilters { get; private set; } = [];

    // A method of its own so that a daemon without storage never loads System.Net.Http (measured: 0.8 MB of RSS).
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static InfluxWriter OpenStorage(Signal.Engine.Storage.InfluxOptions options, ILoggerFactory logs) =>
        new(options, logs.CreateLogger("signal-edge.influx"));

    /// <summary>The models, in routing order.</summary>
    public IReadOnlyList<ModelSlot> Slots { get; }

    /// <summary>The broker connection (or the demo's simulated sensors).</summary>
    public IMqttConnection Connection { get; }

    /// <summary>The storage writer, or null.</summary>
    public InfluxWriter? Influx { get; }

    /// <summary>The latest of every stream.</summary>
    public StreamBoard Board { get; }

    /// <summary>Time from a message's arrival to the end of its processing (steps it completed included).</summary>
    public Histogram MessageLatency { get; } = new(Histogram.LatencyBuckets);

    /// <summary>Messages whose topic no model's template matched.</summary>
    public long Unrouted => Interlocked.Read(ref _unrouted);

    private long _unrouted, _ownResults, _internalErrors;
    private readonly Signal.Engine.LogLimiter _limiter = new();
    private volatile bool _shuttingDown;

    /// <summary>Messages whose processing failed outside the engine's own containment (counted as <c>internal_error</c>).</summary>
    public long InternalErrors => Interlocked.Read(ref _internalErrors);

    /// <summary>Messages skipped because they are this daemon's own results (a subscription such as <c>#</c> takes them in too).</summary>
    public long OwnResults => Interlocked.Read(ref _ownResults);

    /// <summary>When the process started (for uptime and start-to-ready).</summary>
    public DateTimeOffset StartedAt { get; } = Process.GetCurrentProcess().StartTime.ToUniversalTime();

    /// <summary>Seconds from process start to the first moment the daemon was ready, or null before.</summary>
    public double? SecondsToReady { get; private set; }

    /// <summary>Why the message loop failed, or null.</summary>
    public Exception? Fault => _fault;

    /// <summary>True while the message loop runs and has not failed.</summary>
    public bool IsAlive => _running && _fault is null;

    /// <summary>
    /// The checks behind <c>/readyz</c>: models loaded and running, broker connected with every subscription granted,
    /// storage writable.
    /// </summary>
    public (bool Ready, bool Running, bool Broker, bool Storage, string? StorageProblem) Readiness()
    {
        bool storage = Influx?.IsWritable ?? true;
        bool broker = Connection.IsConnected && Connection.SubscriptionProblem is null;
        bool ready = IsAlive && broker && storage;
        if (ready && SecondsToReady is null)
        {
            SecondsToReady = (DateTimeOffset.UtcNow - StartedAt).TotalSeconds;
        }

        return (ready, IsAlive, broker, storage, Influx?.Problem ?? Connection.SubscriptionProblem);
    }

    /// <summary>Completes when the loop has stopped and everything is flushed and checkpointed.</summary>
    public Task Stopped => _stopped.Task;

    /// <summary>Reloads every model (as on SIGHUP).</summary>
    public async Task ReloadAllAsync()
    {
        foreach (ModelSlot slot in Slots)
        {
            await slot.ReloadAsync().ConfigureAwait(false);
        }
    }

    /// <inheritdoc/>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await RunAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _fault = e;
            LogFault(_logger, e);
            _lifetime.StopApplication();
        }
        finally
        {
            _running = false;
            _stopped.TrySetResult();
        }
    }

    private async Task RunAsync(CancellationToken stop)
    {
        // In a cluster the shards keep their state in Redis; the state folder is not used.
        string? folder = Cluster is null ? _settings.State.Folder : null;
        foreach (ModelSlot slot in Slots)
        {
            if (folder is not null && slot.Restore(folder) is { } restored)
            {
                LogRestored(_logger, slot.Name, restored.Streams, restored.Restored, restored.Reset);
            }
        }

        WatchModels();
        _hangup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c =>
        {
            c.Cancel = true;
            LogHangup(_logger);
            _ = Task.Run(ReloadAllAsync, CancellationToken.None);
        });

        if (Cluster is not null)
        {
            // Messages go to shards, which need the silo in the cluster first.
            await Cluster.WaitReadyAsync(stop).ConfigureAwait(false);
        }

        SubscribedFilters = [.. Filters().Select(f => Cluster?.Subscription(f) ?? f)];
        foreach (string filter in SubscribedFilters)
        {
            Connection.Subscribe(filter, _settings.Qos);
        }

        Connection.ConnectionChanged += OnConnectionChanged;
        _running = true;
        _ = ConnectAsync(stop);
        TimeSpan tick = _systemd.WatchdogInterval is { } watchdog ? TimeSpan.FromTicks(Math.Min(watchdog.Ticks / 3, TimeSpan.TicksPerSecond)) : TimeSpan.FromSeconds(1);
        Timer?[] timers =
        [
            new Timer(_ => Summary(), null, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10)),
            _systemd.Enabled ? new Timer(_ => NotifySystemd(), null, TimeSpan.Zero, tick) : null,
            new Timer(_ => TrimWhenIdle(), null, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(2)),
            folder is not null && _settings.State.CheckpointInterval > TimeSpan.Zero
                ? new Timer(_ => CheckpointAll(folder, "periodic"), null, _settings.State.CheckpointInterval, _settings.State.CheckpointInterval)
                : null,
        ];
        try
        {
            await EngineRunner.RunAsync(Connection, Take, FlushAll, _settings.Engine.IdleFlushInterval, stop).ConfigureAwait(false);
        }
        finally
        {
            // Every timer stops, and a callback in flight (a periodic checkpoint, say) finishes, before the shutdown
            // disposes the engines those callbacks use (a checkpoint of a disposed engine once crashed the process).
            foreach (Timer? timer in timers)
            {
                if (timer is not null)
                {
                    await timer.DisposeAsync().ConfigureAwait(false);
                }
            }
        }

        await ShutdownAsync(folder).ConfigureAwait(false);
    }

    /// <summary>Routes one message to its model (or skips our own results) and times it.</summary>
    private void Take(in MqttMessage message)
    {
        if (message.Topic.StartsWith(_settings.Publish.Prefix, StringComparison.Ordinal))
        {
            // Our own results, when the subscription is as wide as '#': not sensor data.
            Interlocked.Increment(ref _ownResults);
            return;
        }

        ModelSlot slot = Route(message.Topic);
        try
        {
            if (Cluster is not null)
            {
                Cluster.Take(slot, message);
            }
            else
            {
                lock (slot.Gate)
                {
                    slot.Engine.Process(message);
                }
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The engine contains its own failures per message; this guards what lies around it (a result observer,
            // a reload in between). The message is counted and the loop goes on: one message never ends the daemon.
            Interlocked.Increment(ref _internalErrors);
            if (_limiter.ShouldLog("internal_error", Environment.TickCount64 * TimeSpan.TicksPerMillisecond, out long suppressed))
            {
                LogMessageFailed(_logger, message.Topic, suppressed, e);
            }
        }

        MessageLatency.Observe(Stopwatch.GetElapsedTime(message.ReceivedTimestamp).TotalSeconds);
    }

    private async Task ShutdownAsync(string? folder)
    {
        var clock = Stopwatch.StartNew();
        lock (_notifyGate)
        {
            // Under the gate, so no watchdog ping from the timer follows STOPPING=1.
            _shuttingDown = true;
            _systemd.Notify("STOPPING=1\nSTATUS=draining, flushing storage and checkpointing");
        }

        _hangup?.Dispose();
        foreach (FileSystemWatcher w in _watchers)
        {
            w.Dispose();
        }

        FlushAll();
        if (folder is not null)
        {
            CheckpointAll(folder, "shutdown");
        }

        foreach (ModelSlot slot in Slots)
        {
            await slot.DisposeAsync().ConfigureAwait(false);
        }

        if (Influx is not null)
        {
            await Influx.DisposeAsync().ConfigureAwait(false);
            if (_logger.IsEnabled(LogLevel.Information))
            {
                LogStorageClosed(_logger, Influx.Counters.Written, Influx.SpoolPoints, Influx.Counters.Dropped);
            }
        }

        // A clean disconnect suppresses the last will, so say "offline" ourselves.
        Connection.Publish(_settings.Publish.StatusTopic, "offline"u8, 1, retain: true);
        await Task.Delay(100, CancellationToken.None).ConfigureAwait(false);
        await Connection.DisposeAsync().ConfigureAwait(false);
        long messages = Slots.Sum(s => s.Engine.Counters.Messages), steps = Slots.Sum(s => s.Engine.Counters.Steps);
        LogStopped(_logger, messages, steps, clock.Elapsed.TotalMilliseconds);
    }

    private async Task ConnectAsync(CancellationToken stop)
    {
        try
        {
            await Connection.ConnectAsync(TimeSpan.FromSeconds(10), stop).ConfigureAwait(false);
        }
        catch (MqttException e)
        {
            // The connection keeps retrying in the background; /readyz says not ready meanwhile.
            LogConnectProblem(_logger, e.Message);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private ModelSlot Route(string topic)
    {
        if (Slots.Count > 1)
        {
            foreach (ModelSlot slot in Slots)
            {
                if (slot.Template.Matches(topic))
                {
                    return slot;
                }
            }

            Interlocked.Increment(ref _unrouted);
        }

        // The first engine counts and dead-letters a topic no template matches.
        return Slots[0];
    }

    private IEnumerable<string> Filters() =>
        _settings.Topic is { } topic ? [topic] : Slots.Select(s => s.Engine.TopicFilter).Distinct(StringComparer.Ordinal);

    private EngineOptions EngineOptionsFor(ModelSettings model)
    {
        // Each engine gets its own copy of the shared "engine" section, then the model's own template.
        var options = new EngineOptions();
        _configuration.GetSection("engine").Bind(options);
        if (model.TopicTemplate is { } template)
        {
            options.TopicTemplate = template;
        }

        return options;
    }

    private void FlushAll()
    {
        foreach (ModelSlot slot in Slots)
        {
            lock (slot.Gate)
            {
                slot.Engine.Flush();
            }
        }
    }

    private void CheckpointAll(string folder, string why)
    {
        foreach (ModelSlot slot in Slots)
        {
            try
            {
                var clock = Stopwatch.StartNew();
                int streams = slot.Checkpoint(folder);
                LogCheckpoint(_logger, why, slot.Name, streams, folder, clock.Elapsed.TotalMilliseconds);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                LogCheckpointFailed(_logger, slot.Name, folder, e.Message);
            }
        }
    }

    private void WatchModels()
    {
        foreach (IGrouping<string, ModelSlot> folder in Slots.GroupBy(s => Path.GetDirectoryName(Path.GetFullPath(s.Path))!))
        {
            var watcher = new FileSystemWatcher(folder.Key) { NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.Size };
            ModelSlot[] slots = [.. folder];
            void OnChange(object? sender, FileSystemEventArgs e)
            {
                foreach (ModelSlot slot in slots)
                {
                    if (string.Equals(Path.GetFullPath(slot.Path), e.FullPath, StringComparison.Ordinal))
                    {
                        Debounce(slot);
                    }
                }
            }

            watcher.Changed += OnChange;
            watcher.Created += OnChange;
            watcher.Renamed += (s, e) => OnChange(s, e);
            watcher.EnableRaisingEvents = true;
            _watchers.Add(watcher);
        }
    }

    /// <summary>Writers touch a file several times; reload once it has been quiet for half a second.</summary>
    private void Debounce(ModelSlot slot)
    {
        lock (_debounce)
        {
            if (_debounce.TryGetValue(slot, out Timer? timer))
            {
                timer.Change(TimeSpan.FromMilliseconds(500), Timeout.InfiniteTimeSpan);
                return;
            }

            _debounce[slot] = new Timer(_ => _ = slot.ReloadAsync(), null, TimeSpan.FromMilliseconds(500), Timeout.InfiniteTimeSpan);
        }
    }

    private void OnConnectionChanged(object? sender, MqttConnectionEventArgs e)
    {
        if (e.Connected)
        {
            LogConnected(_logger, e.Reason);
        }
        else if (_shuttingDown)
        {
            LogDisconnectedAtStop(_logger, e.Reason);
        }
        else
        {
            LogDisconnected(_logger, e.Reason);
        }
    }

    private readonly SystemdNotifier _systemd = new();
    private readonly Lock _notifyGate = new();
    private long _takenAtLastTick = -1, _queuedAtLastTick;
    private bool _readySent;

    /// <summary>
    /// systemd: READY=1 once the daemon is first ready (broker connected, subscriptions granted, storage writable);
    /// WATCHDOG=1 while the message loop makes progress. The loop is stalled when messages wait for it and it took none
    /// since the last tick; an idle loop with nothing waiting is healthy. systemd restarts a stalled daemon.
    /// </summary>
    private void NotifySystemd()
    {
        lock (_notifyGate)
        {
            if (!_shuttingDown)
            {
                NotifyRunning();
            }
        }
    }

    private void NotifyRunning()
    {
        if (!_readySent && Readiness().Ready)
        {
            _readySent = _systemd.Notify($"READY=1\nSTATUS=ready: {Slots.Count} model(s), subscribed");
        }

        // Every message the loop took is counted by an engine or as our own result (engine counters survive reloads).
        long taken = OwnResults + Slots.Sum(s => s.Engine.Counters.Messages);
        MqttCounters c = Connection.Counters;
        long waiting = c.Received - c.Qos0Dropped - taken;
        bool stalled = taken == _takenAtLastTick && waiting > 0 && _queuedAtLastTick > 0;
        _takenAtLastTick = taken;
        _queuedAtLastTick = waiting;
        if (IsAlive && !stalled && _systemd.WatchdogInterval is not null)
        {
            _systemd.Notify("WATCHDOG=1");
        }
    }

    private long _lastSteps, _trimSeen = -1, _trims;
    private bool _trimDue;

    /// <summary>Aggressive collections made after traffic stopped (see <see cref="TrimWhenIdle"/>).</summary>
    public long Trims => Interlocked.Read(ref _trims);

    /// <summary>
    /// When traffic stops after a burst, one aggressive full collection hands the burst's garbage and free heap back
    /// to the OS, so an idle edge daemon stays small (measured in docs/daemon.md). At most once per idle period, and
    /// never while messages flow (ticks every 2 s; a tick that saw traffic only arms the next one).
    /// </summary>
    private void TrimWhenIdle()
    {
        long seen = Connection.Counters.Received + Slots.Sum(s => s.Engine.Counters.Messages);
        if (seen != _trimSeen)
        {
            _trimSeen = seen;
            _trimDue = true;
            return;
        }

        if (_trimDue)
        {
            _trimDue = false;
            GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            Signal.Engine.NativeHeap.Trim();
            Interlocked.Increment(ref _trims);
        }
    }

    private void Summary()
    {
        long steps = Slots.Sum(s => s.Engine.Counters.Steps);
        string state = Connection.IsConnected ? "connected" : "DISCONNECTED";
        int streams = Slots.Sum(s => s.Engine.StreamCount);
        long messages = Slots.Sum(s => s.Engine.Counters.Messages), rejected = Slots.Sum(s => s.Engine.Counters.RejectedTotal);
        long written = Influx?.Counters.Written ?? 0, spooled = Influx?.SpoolPoints ?? 0, active = Board.ActiveAlerts;
        LogSummary(_logger, state, streams, (steps - _lastSteps) / 10.0, messages, rejected, active, written, spooled);
        _lastSteps = steps;
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        _systemd.Dispose();
        lock (_debounce)
        {
            foreach (Timer t in _debounce.Values)
            {
                t.Dispose();
            }
        }

        base.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "{State}: {Streams} streams, {StepsPerSecond:0.#} steps/s, {Messages} messages, {Rejected} rejected, {ActiveAlerts} active alerts, storage {Written} written / {Spooled} spooled")]
    private static partial void LogSummary(ILogger logger, string state, int streams, double stepsPerSecond, long messages, long rejected, long activeAlerts, long written, long spooled);

    [LoggerMessage(Level = LogLevel.Information, Message = "model {Model}: restored {Streams} streams from the checkpoint ({Restored} continue where they were, {Reset} start afresh)")]
    private static partial void LogRestored(ILogger logger, string model, int streams, int restored, int reset);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Why} checkpoint of model {Model}: {Streams} streams to {Folder} in {Milliseconds:0.#} ms")]
    private static partial void LogCheckpoint(ILogger logger, string why, string model, int streams, string folder, double milliseconds);

    [LoggerMessage(Level = LogLevel.Error, Message = "checkpoint of model {Model} to {Folder} failed: {Problem}")]
    private static partial void LogCheckpointFailed(ILogger logger, string model, string folder, string problem);

    [LoggerMessage(Level = LogLevel.Information, Message = "SIGHUP: reloading every model")]
    private static partial void LogHangup(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "broker connected: {Reason}")]
    private static partial void LogConnected(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "broker connection lost: {Reason} (reconnecting)")]
    private static partial void LogDisconnected(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "broker connection closed: {Reason}")]
    private static partial void LogDisconnectedAtStop(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "a message on {Topic} failed: counted as internal_error, the loop goes on ({Suppressed} more suppressed in the last window)")]
    private static partial void LogMessageFailed(ILogger logger, string topic, long suppressed, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "broker: {Problem} (still trying)")]
    private static partial void LogConnectProblem(ILogger logger, string problem);

    [LoggerMessage(Level = LogLevel.Information, Message = "storage closed: {Written} points written, {Spooled} left in the spool, {Dropped} dropped")]
    private static partial void LogStorageClosed(ILogger logger, long written, long spooled, long dropped);

    [LoggerMessage(Level = LogLevel.Information, Message = "stopped after {Messages} messages and {Steps} steps; shutdown took {Milliseconds:0} ms")]
    private static partial void LogStopped(ILogger logger, long messages, long steps, double milliseconds);

    [LoggerMessage(Level = LogLevel.Critical, Message = "the message loop failed; stopping")]
    private static partial void LogFault(ILogger logger, Exception exception);
}
