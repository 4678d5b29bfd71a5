using System.Reactive.Subjects;
using Microsoft.Extensions.Logging;
using Orleans;
using Orleans.GrainDirectory;
using Orleans.Runtime;
using Signal.Edge.Daemon;
using Signal.Engine.Live;

namespace Signal.Edge.Cluster;

/// <summary>
/// A shard's activation: one <see cref="SignalEngine"/> for the shard's streams, restored from the shard's last
/// checkpoint in Redis when it has one, checkpointed every <see cref="ClusterSettings.CheckpointInterval"/>, before it
/// publishes an alert, and when it deactivates (a move, a shutdown).
/// </summary>
/// <remarks>
/// <para><b>Order.</b> Messages of one stream may reach the shard through different silos (the broker spreads a shared
/// subscription's messages over its members). The shard holds each message for <see cref="ClusterSettings.ReorderWindow"/>
/// and processes what it holds in the order the silos received them from the broker.</para>
/// <para><b>Alerts exactly once.</b> An alert leaves the shard only after the checkpoint recording it is in Redis, so an
/// activation that starts from a checkpoint knows every alert already published and never raises one again.</para>
/// </remarks>
[GrainDirectory(GrainDirectoryName = ClusterHosting.Directory)]
// Placed on the silo with the fewest activations (of two picked at random) rather than by Orleans' default
// resource-optimised placement, which works from CPU and memory figures. Both work from figures the silos publish
// periodically, so a burst of first activations can still land on one silo (seen in the cluster test with either);
// ShardBalancer evens the counts out within a period or two.
[Orleans.Placement.ActivationCountBasedPlacement]
internal sealed partial class ShardGrain : Grain, IShardGrain, IDisposable
{
    private readonly ClusterNode _node;
    private readonly IPersistentState<ShardState> _state;
    private readonly ILogger _logger;
    private readonly List<Pending> _unsequenced = [];
    private readonly Dictionary<string, StreamQueue> _queues = new(StringComparer.Ordinal);
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _evicted = new();
    private readonly HashSet<StreamQueue> _waiting = [];
    private readonly Dictionary<SiloAddress, long> _delivered = []; // per sending silo: the latest broker receive time it delivered
    private readonly Signal.Engine.Payloads.PayloadDecoder _decoder = new();
    private readonly Signal.Engine.LogLimiter _limiter = new();
    private TopicTemplate? _template;
    private readonly List<Alert> _unpublished = [];
    private readonly Lock _alertsGate = new();
    private Subject<Alert> _released = new();
    private bool _releasedCompleted;
    private SignalEngine? _engine;
    private IAsyncDisposable? _subscribers;
    private System.Reactive.Disposables.CompositeDisposable? _alerts;
    private IGrainTimer? _checkpointTimer, _reorderTimer;
    private long _messages, _sequence;
    private string _key = string.Empty;
    private bool _restored, _dirty, _stopped;
    private long _checkpointTicks; // UTC ticks of the last checkpoint, 0 for none (read by Describe from any thread)

    /// <summary>Created by Orleans on activation.</summary>
    public ShardGrain(ClusterNode node, [PersistentState("shard", ClusterHosting.Storage)] IPersistentState<ShardState> state, ILoggerFactory logs)
    {
        _node = node;
        _state = state;
        _logger = logs.CreateLogger("signal-edge.cluster");
    }

    /// <inheritdoc/>
    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        Start();
        return Task.CompletedTask;
    }

    /// <summary>Creates the engine, restores the checkpoint (and the messages held when the shard last moved), starts the timers.</summary>
    private void Start()
    {
        _stopped = false;
        _queues.Clear();
        _waiting.Clear();
        _delivered.Clear();
        if (_state.RecordExists && _state.State.Delivered is { } delivered)
        {
            foreach ((string silo, long ticks) in delivered)
            {
                _delivered[SiloAddress.FromParsableString(silo)] = ticks;
            }
        }
        if (_released.IsDisposed || _releasedCompleted)
        {
            _released.Dispose();
            _released = new Subject<Alert>();
            _releasedCompleted = false;
        }

        string key = _key = this.GetPrimaryKeyString();
        ModelSlot slot = _node.SlotOf(key);
        (_engine, _subscribers) = slot.CreateShardEngine(_released);
        _template = slot.Template;
        _alerts = new System.Reactive.Disposables.CompositeDisposable(
            _engine.Alerts.Subscribe(a =>
            {
                lock (_alertsGate)
                {
                    _unpublished.Add(a);
                }
            }),
            // A stream the engine forgets (idle, evicted) takes its ordering state with it; held messages stay queued.
            _engine.StreamsEvicted.Subscribe(id => _evicted.Enqueue(id)));
        if (_state.RecordExists && _state.State.Engine.Length > 0)
        {
            try
            {
                CheckpointResult result = _engine.RestoreCheckpoint(new MemoryStream(_state.State.Engine, writable: false));
                _restored = true;
                Volatile.Write(ref _checkpointTicks, _state.State.WrittenAt.Ticks);
                Interlocked.Increment(ref _node.Counters._restored);
                LogRestored(_logger, key, result.Streams, result.Restored, (DateTime.UtcNow - _state.State.WrittenAt).TotalSeconds);
            }
            catch (FormatException e)
            {
                // Damaged, or written by a version whose checkpoint format this one does not read. Refusing to activate
                // would stop the shard's streams for good (every call would fail the same way); they start afresh
                // instead, and the next checkpoint replaces the unreadable one. The engine is unchanged by a failed restore.
                Interlocked.Increment(ref _node.Counters._unreadable);
                _dirty = true;
                LogUnreadable(_logger, key, e.Message, _state.State.WrittenAt);
            }
        }

        if (_state.RecordExists && _state.State.Held is { } held)
        {
            // Messages the previous activation held when it moved: they wait here again for their predecessors.
            long now = DateTime.UtcNow.Ticks;
            int at = 0;
            for (int i = 0; i < held.Count; i++)
            {
                Hold(new Pending(held.ReceivedTicks[i], now, _sequence++, held.Topics[i], new ReadOnlyMemory<byte>(held.Payloads, at, held.Lengths[i])));
                at += held.Lengths[i];
            }

            _state.State.Held = null;
        }

        ClusterSettings settings = _node.Settings;
        _checkpointTimer = this.RegisterGrainTimer(CheckpointAsync, new GrainTimerCreationOptions(settings.CheckpointInterval, settings.CheckpointInterval) { Interleave = false });
        if (settings.ReorderWindow > TimeSpan.Zero)
        {
            TimeSpan tick = TimeSpan.FromTicks(Math.Max(TimeSpan.TicksPerMillisecond, settings.ReorderWindow.Ticks / 2));
            _reorderTimer = this.RegisterGrainTimer(() => ProcessAsync(all: false), new GrainTimerCreationOptions(tick, tick) { Interleave = false });
        }

        _node.Register(this);
    }

    /// <inheritdoc/>
    public async Task<SiloAddress> Deliver(ShardBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (_stopped)
        {
            // Seen when Orleans' rebalancer migrated this shard to a silo that died at that moment: the migration failed
            // after OnDeactivateAsync had stopped the shard, and calls kept reaching this activation. It starts again
            // from the checkpoint it wrote on the way out instead of holding messages nobody processes.
            Interlocked.Increment(ref _node.Counters._revived);
            LogRevived(_logger, _key);
            Start();
        }

        long now = DateTime.UtcNow.Ticks;
        if (batch.Sender is { } sender)
        {
            // A silo delivers in the order it took messages from the broker: it holds nothing it took before this.
            _delivered[sender] = Math.Max(_delivered.GetValueOrDefault(sender, long.MinValue), batch.Watermark);
        }

        int at = 0;
        for (int i = 0; i < batch.Count; i++)
        {
            var message = new Pending(batch.ReceivedTicks[i], now, _sequence++, batch.Topics[i], new ReadOnlyMemory<byte>(batch.Payloads, at, batch.Lengths[i]));
            at += batch.Lengths[i];
            if (_node.Settings.ReorderWindow == TimeSpan.Zero)
            {
                _unsequenced.Add(message);
            }
            else
            {
                Hold(message);
            }
        }

        await ProcessAsync(all: _node.Settings.ReorderWindow == TimeSpan.Zero).ConfigureAwait(true);
        return _node.Silo;
    }

    /// <inheritdoc/>
    public Task MoveTo(SiloAddress target)
    {
        // The placement hint travels with the migration's request context; the checkpoint written on the way out
        // (OnDeactivateAsync) is what the next activation starts from.
        RequestContext.Set(Orleans.Runtime.Placement.IPlacementDirector.PlacementHintKey, target);
        this.MigrateOnIdle();
        return Task.CompletedTask;
    }

    /// <summary>Puts a message in its stream's queue, ordered by sequence number (or with the unsequenced ones).</summary>
    private void Hold(Pending message)
    {
        if (!_template!.TryMatch(message.Topic, out string stream)
            || !_decoder.TryReadSequence(message.Payload.Span, _engine!.Options.Format, out long sequence))
        {
            _unsequenced.Add(message);
            return;
        }

        if (!_queues.TryGetValue(stream, out StreamQueue? queue))
        {
            // A stream this activation has not seen: the engine knows its last sequence number when it was restored.
            _queues[stream] = queue = new StreamQueue(stream, _engine!.LastSequence(stream) is long last ? last + 1 : null);
        }

        // Usually in order: found from the end, without a closure per message.
        int index = queue.Held.Count;
        while (index > 0 && queue.Held[index - 1].Order > sequence)
        {
            index--;
        }

        queue.Held.Insert(index, message with { Order = sequence });
        _waiting.Add(queue);
    }

    /// <summary>The shard's key (<c>{model}/{shard}</c>); empty before activation.</summary>
    public string Key => _key;

    /// <summary>This shard for <c>/api/cluster</c>, from fields any thread may read (Orleans forbids touching the grain's state outside its turns).</summary>
    public ClusterShard Describe()
    {
        long at = Volatile.Read(ref _checkpointTicks);
        return new(_key, _engine?.StreamCount ?? 0, Interlocked.Read(ref _messages), _restored, at == 0 ? null : new DateTime(at, DateTimeKind.Utc));
    }

    /// <inheritdoc/>
    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _stopped = true;
        _reorderTimer?.Dispose();
        _checkpointTimer?.Dispose();
        // What may go now goes; what waits for earlier messages of its stream moves with the checkpoint.
        await ProcessAsync(all: false, unsequenced: true).ConfigureAwait(true);
        _state.State.Held = TakeHeld();
        _dirty = true; // the next activation gets the held messages and the silos' latest delivery marks
        await CheckpointAsync().ConfigureAwait(true);
        ReleaseAlerts(int.MaxValue);
        _node.Unregister(this);
        _alerts?.Dispose();
        if (_subscribers is not null)
        {
            await _subscribers.DisposeAsync().ConfigureAwait(true);
        }

        _engine?.Dispose();
        _released.OnCompleted();
        _releasedCompleted = true;
        LogDeactivated(_logger, _key, reason.Description);
    }

    /// <summary>Processes what may go (or, with <paramref name="all"/>, everything held), then checkpoints before releasing alerts.</summary>
    private async Task ProcessAsync(bool all, bool unsequenced = false)
    {
        SignalEngine engine = _engine!;
        while (_evicted.TryDequeue(out string? gone))
        {
            // The engine's eviction runs on its own timer, outside this grain's turns; the queue is dropped here.
            if (_queues.TryGetValue(gone, out StreamQueue? queue) && queue.Held.Count == 0)
            {
                _queues.Remove(gone);
            }
        }

        long now = DateTime.UtcNow.Ticks, window = _node.Settings.ReorderWindow.Ticks, gap = _node.Settings.GapWait.Ticks, limit = _node.Settings.GapWaitLimit.Ticks;
        int n = 0;
        if (_waiting.Count > 0)
        {
            // Every active silo has delivered what it took from the broker up to this time: a message a silo took before
            // it and that is still missing was lost (or is a duplicate), not late.
            // Read only when a stream waits on a gap (this runs on every reorder tick).
            long? settled = null;
            int gaps = 0;
            string? example = null;

            List<StreamQueue>? done = null;
            foreach (StreamQueue queue in _waiting)
            {
                while (queue.Held.Count > 0)
                {
                    Pending head = queue.Held[0];
                    // The next number goes at once; a later one waits for the numbers before it up to gapWaitLimit.
                    // It goes after gapWait already when a silo was lost (killed, cut off) since about when the message
                    // was received and every active silo has delivered past it: the missing one went with the lost silo.
                    // Without a lost silo nothing is lost on the way, only late: the broker queues a shared
                    // subscription's messages per member, so one silo can take a message more than a second after
                    // another took its successor (seen in CI: six streams' message 2 dropped as late, nothing had died;
                    // and under CPU starvation a stream's first messages reached a new shard 2 s apart). A stream this
                    // shard has no number for yet goes at once from 0 (its first message ever) and otherwise waits the
                    // same way.
                    long expected = queue.Expected ?? 0, waited = now - head.ArrivedTicks;
                    bool go = all || head.Order <= expected
                        || (waited >= gap && (waited >= limit || (_node.SiloLostSince(head.ReceivedTicks - limit) && head.ReceivedTicks < (settled ??= Settled()))));
                    if (!go)
                    {
                        break;
                    }

                    if (head.Order > expected && queue.Expected is not null)
                    {
                        // Waited in vain (or the shard is moving and cannot wait): what is missing was lost with a
                        // silo, or arrives too late and is dropped as a duplicate. The stream goes on with its state.
                        Interlocked.Increment(ref _node.Counters._gaps);
                        engine.AcceptGap(queue.Stream);
                        if (gaps++ == 0)
                        {
                            string why = waited >= limit ? "the wait limit passed" : "a silo was lost, and every active silo had delivered past it";
                            example = FormattableString.Invariant($"stream {queue.Stream} expected message {expected}, got {head.Order} after {waited / TimeSpan.TicksPerMillisecond} ms ({why})");
                        }
                    }

                    engine.Process(head.Topic, head.Payload.Span);
                    queue.Expected = Math.Max(queue.Expected ?? long.MinValue, head.Order + 1);
                    queue.Held.RemoveAt(0);
                    n++;
                }

                if (queue.Held.Count == 0)
                {
                    (done ??= []).Add(queue);
                }
            }

            foreach (StreamQueue queue in done ?? [])
            {
                _waiting.Remove(queue);
            }

            if (gaps > 0 && _limiter.ShouldLog("gap", now, out long suppressed))
            {
                LogGaps(_logger, _key, gaps, example!, suppressed);
            }
        }

        if (_unsequenced.Count > 0)
        {
            _unsequenced.Sort(static (a, b) => a.ReceivedTicks != b.ReceivedTicks ? a.ReceivedTicks.CompareTo(b.ReceivedTicks) : a.Order.CompareTo(b.Order));
            int k = 0;
            while (k < _unsequenced.Count && (all || unsequenced || now - _unsequenced[k].ArrivedTicks >= window))
            {
                engine.Process(_unsequenced[k].Topic, _unsequenced[k].Payload.Span);
                k++;
            }

            _unsequenced.RemoveRange(0, k);
            n += k;
        }

        if (n > 0)
        {
            engine.Flush();
            Interlocked.Add(ref _messages, n);
            _dirty = true;
        }

        int alerts;
        lock (_alertsGate)
        {
            alerts = _unpublished.Count;
        }

        if (alerts > 0 && await CheckpointAsync().ConfigureAwait(true))
        {
            ReleaseAlerts(alerts);
        }
    }

    /// <summary>The earliest delivery mark of the active silos: every one of them has delivered what it took before it.</summary>
    private long Settled()
    {
        long settled = long.MaxValue;
        foreach (SiloAddress silo in _node.ActiveSilos)
        {
            settled = Math.Min(settled, _delivered.GetValueOrDefault(silo, long.MinValue));
        }

        return settled;
    }

    /// <summary>The held messages of every stream, in order, as one batch (null when none), and the queues emptied.</summary>
    private ShardBatch? TakeHeld()
    {
        List<Pending> held = [.. _waiting.SelectMany(q => q.Held)];
        foreach (StreamQueue queue in _waiting)
        {
            queue.Held.Clear();
        }

        _waiting.Clear();
        if (held.Count == 0)
        {
            return null;
        }

        byte[] payloads = new byte[held.Sum(p => p.Payload.Length)];
        int at = 0;
        foreach (Pending p in held)
        {
            p.Payload.Span.CopyTo(payloads.AsSpan(at));
            at += p.Payload.Length;
        }

        return new ShardBatch { Topics = [.. held.Select(p => p.Topic)], Payloads = payloads, Lengths = [.. held.Select(p => p.Payload.Length)], ReceivedTicks = [.. held.Select(p => p.ReceivedTicks)] };
    }

    /// <summary>Writes the engine's checkpoint to Redis; false when Redis refused (the next tick tries again).</summary>
    private async Task<bool> CheckpointAsync()
    {
        if (!_dirty && _state.RecordExists)
        {
            return true;
        }

        var buffer = new MemoryStream();
        _engine!.WriteCheckpoint(buffer);
        _state.State.Engine = buffer.ToArray();
        // Marks of silos that have left are dropped here, or every silo a shard ever heard from (a new address per
        // restart) would stay in its state for good.
        foreach (SiloAddress gone in _delivered.Keys.Where(_node.IsTerminated).ToList())
        {
            _delivered.Remove(gone);
        }

        _state.State.Delivered = _delivered.ToDictionary(d => d.Key.ToParsableString(), d => d.Value, StringComparer.Ordinal);
        _state.State.WrittenAt = DateTime.UtcNow;
        try
        {
            await _state.WriteStateAsync().ConfigureAwait(true);
            _dirty = false;
            Volatile.Write(ref _checkpointTicks, _state.State.WrittenAt.Ticks);
            Interlocked.Increment(ref _node.Counters._checkpoints);
            return true;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Interlocked.Increment(ref _node.Counters._checkpointFailures);
            LogCheckpointFailed(_logger, _key, e.Message);
            return false;
        }
    }

    /// <summary>Publishes the first <paramref name="count"/> waiting alerts, which the checkpoint just written records.</summary>
    private void ReleaseAlerts(int count)
    {
        Alert[] ready;
        lock (_alertsGate)
        {
            count = Math.Min(count, _unpublished.Count);
            ready = [.. _unpublished.Take(count)];
            _unpublished.RemoveRange(0, count);
        }

        foreach (Alert a in ready)
        {
            _released.OnNext(a);
        }
    }

    /// <summary>Releases the alert subject (after <see cref="OnDeactivateAsync"/> has completed it).</summary>
    public void Dispose() => _released.Dispose();

    /// <summary>A held message: when a silo took it from the broker and when it reached this shard (UTC ticks), its order (sequence number, or arrival), topic and payload.</summary>
    private readonly record struct Pending(long ReceivedTicks, long ArrivedTicks, long Order, string Topic, ReadOnlyMemory<byte> Payload);

    /// <summary>One stream's held messages, by sequence number, and the number it expects next (null: not known yet).</summary>
    private sealed class StreamQueue(string stream, long? expected)
    {
        public string Stream { get; } = stream;

        public long? Expected { get; set; } = expected;

        public List<Pending> Held { get; } = [];
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "shard {Shard} resumed from its checkpoint: {Streams} streams ({Restored} with their state), written {Age:0.0} s ago")]
    private static partial void LogRestored(ILogger logger, string shard, int streams, int restored, double age);

    [LoggerMessage(Level = LogLevel.Error, Message = "shard {Shard}: its checkpoint in Redis (written {WrittenAt:o}) cannot be restored ({Problem}); its streams start afresh, and the next checkpoint replaces it")]
    private static partial void LogUnreadable(ILogger logger, string shard, string problem, DateTime writtenAt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "shard {Shard}: a message reached it after it stopped (a move that failed); it starts again from its checkpoint")]
    private static partial void LogRevived(ILogger logger, string shard);

    [LoggerMessage(Level = LogLevel.Warning, Message = "shard {Shard}: {Gaps} streams went on past missing messages, e.g. {Example} ({Suppressed} such lines suppressed before)")]
    private static partial void LogGaps(ILogger logger, string shard, int gaps, string example, long suppressed);

    [LoggerMessage(Level = LogLevel.Information, Message = "shard {Shard} left this silo ({Reason})")]
    private static partial void LogDeactivated(ILogger logger, string shard, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "shard {Shard}: checkpoint not written ({Problem}); alerts wait for the next one")]
    private static partial void LogCheckpointFailed(ILogger logger, string shard, string problem);
}
