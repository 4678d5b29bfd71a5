using System.Collections.Concurrent;
using System.IO.Hashing;
using System.Text;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans;
using Orleans.Runtime;
using Signal.Edge.Daemon;
using Signal.Engine.Mqtt;

namespace Signal.Edge.Cluster;

/// <summary>
/// One silo's ingest: every message taken from the shared subscription goes to the outbox of the shard that owns its
/// stream; each outbox has at most one delivery in flight, so a shard receives one silo's messages in the order that
/// silo received them, in batches of whatever arrived while the previous delivery was under way. A delivery that fails
/// (the shard moving, its silo dying) is retried with back-off, ahead of anything queued after it.
/// </summary>
internal sealed partial class ClusterNode : IClusterIngest
{
    private readonly ClusterSettings _settings;
    private readonly IGrainFactory _grains;
    private readonly ILocalSiloDetails _silo;
    private readonly IClusterMembershipService _membership;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger _logger;
    private readonly Dictionary<string, Outbox> _byTopic = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Outbox> _outboxes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<ShardGrain, byte> _local = new();
    private readonly Signal.Engine.LogLimiter _limiter = new();
    private EdgeDaemon? _daemon;
    private long _deathTimestamp; // Stopwatch timestamp of the last silo declared dead, 0 before any
    private long _lossTicks = long.MinValue; // UTC ticks when a silo that had not shut down gracefully was last declared dead

    /// <summary>Creates the ingest of this silo (the silo's services give its parts).</summary>
    public ClusterNode(ClusterSettings settings, IGrainFactory grains, ILocalSiloDetails silo, IClusterMembershipService membership, IHostApplicationLifetime lifetime, ILoggerFactory logs)
    {
        _settings = settings;
        _grains = grains;
        _silo = silo;
        _membership = membership;
        _lifetime = lifetime;
        _logger = logs.CreateLogger("signal-edge.cluster");
    }

    /// <inheritdoc/>
    public ClusterCounters Counters { get; } = new();

    /// <summary>The cluster settings.</summary>
    public ClusterSettings Settings => _settings;

    /// <summary>This silo's address.</summary>
    public SiloAddress Silo => _silo.SiloAddress;

    /// <summary>The daemon whose models, connection and sinks the shards use.</summary>
    public EdgeDaemon Daemon => _daemon ?? throw new InvalidOperationException("the cluster node is not attached to a daemon yet.");

    /// <summary>Gives the node the daemon it serves (once, when the daemon is built).</summary>
    public void Attach(EdgeDaemon daemon) => _daemon = daemon;

    /// <summary>The model slot of a shard key (<c>{model}/{shard}</c>).</summary>
    public ModelSlot SlotOf(string key)
    {
        int slash = key.LastIndexOf('/');
        string model = slash < 0 ? key : key[..slash];
        return Daemon.Slots.FirstOrDefault(s => s.Name == model)
            ?? throw new InvalidOperationException($"shard '{key}': this silo runs no model named '{model}' (every silo must run the same models).");
    }

    /// <summary>A shard activated on this silo.</summary>
    public void Register(ShardGrain shard)
    {
        _local[shard] = 0;
        Interlocked.Increment(ref Counters._activations);
    }

    /// <summary>A shard left this silo.</summary>
    public void Unregister(ShardGrain shard)
    {
        _local.TryRemove(shard, out _);
        Interlocked.Increment(ref Counters._deactivations);
    }

    /// <inheritdoc/>
    public string Subscription(string filter) => $"$share/{_settings.Group}/{filter}";

    /// <inheritdoc/>
    public async Task WaitReadyAsync(CancellationToken cancellationToken)
    {
        // Every hosted service, the silo included, has started once the host says so.
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using CancellationTokenRegistration a = _lifetime.ApplicationStarted.Register(() => started.TrySetResult());
        using CancellationTokenRegistration b = cancellationToken.Register(() => started.TrySetCanceled(cancellationToken));
        await started.Task.ConfigureAwait(false);
        _ = WatchDeathsAsync(_lifetime.ApplicationStopping);
    }

    /// <summary>The shard of a stream: a stable hash of its id (xxHash32, the same on every silo and every run), or a topic level.</summary>
    public static string ShardOf(ClusterSettings settings, string model, string topic, string? stream)
    {
        if (settings.ShardLevel is int level and >= 0)
        {
            string[] levels = topic.Split('/');
            return model + "/" + (level < levels.Length ? levels[level] : "_");
        }

        int length = Encoding.UTF8.GetByteCount(stream ?? topic);
        Span<byte> bytes = length <= 256 ? stackalloc byte[length] : new byte[length];
        Encoding.UTF8.GetBytes(stream ?? topic, bytes);
        uint hash = XxHash32.HashToUInt32(bytes);
        return model + "/" + (hash % (uint)settings.Shards).ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <inheritdoc/>
    public void Take(ModelSlot slot, in MqttMessage message)
    {
        Interlocked.Increment(ref Counters._received);
        string topic = message.Topic;
        if (message.Length > slot.Engine.Options.MaxMessageBytes)
        {
            // Refused here as a single daemon refuses it (the slot's own engine dead-letters it as oversized), not
            // copied and sent to another silo first.
            lock (slot.Gate)
            {
                slot.Engine.Process(message);
            }

            return;
        }

        if (!_byTopic.TryGetValue(topic, out Outbox? outbox))
        {
            // A topic that no template matches goes to a shard too: its engine dead-letters it, as a single daemon does.
            string? stream = slot.Template.TryMatch(topic, out string id) ? id : null;
            string key = ShardOf(_settings, slot.Name, topic, stream);
            outbox = _outboxes.GetOrAdd(key, k => new Outbox(k, _grains.GetGrain<IShardGrain>(k)));
            if (_byTopic.Count >= 1_000_000)
            {
                _byTopic.Clear();
            }

            _byTopic[topic] = outbox;
        }

        bool start;
        lock (outbox)
        {
            outbox.Add(topic, message.Payload, DateTime.UtcNow.Ticks);
            if (outbox.Count > _settings.ForwardCapacity)
            {
                int excess = outbox.Count - _settings.ForwardCapacity;
                outbox.DropOldest(excess);
                Interlocked.Add(ref Counters._dropped, excess);
            }

            start = !outbox.Busy;
            outbox.Busy = true;
        }

        if (start)
        {
            _ = SendAsync(outbox);
        }
    }

    private async Task SendAsync(Outbox outbox)
    {
        int failures = 0;
        bool delivered = false;
        while (true)
        {
            ShardBatch batch;
            lock (outbox)
            {
                if (outbox.Count == 0)
                {
                    outbox.Busy = false;
                    if (delivered)
                    {
                        _ = NoticeIdleAsync(outbox);
                    }

                    return;
                }

                batch = outbox.Take(Silo);
                outbox.InFlight = batch.Count;
            }

            try
            {
                SiloAddress at = await DeliverAsync(outbox.Grain, batch).ConfigureAwait(false);
                Interlocked.Add(ref at.Equals(Silo) ? ref Counters._local : ref Counters._forwarded, batch.Count);
                failures = 0;
                delivered = true;
                lock (outbox)
                {
                    outbox.InFlight = 0;
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // The shard is moving or its silo died: keep the batch first in line and try again (Orleans places the
                // shard on a live silo once membership has declared the dead one).
                lock (outbox)
                {
                    outbox.PutBack(batch);
                    outbox.InFlight = 0;
                }

                failures++;
                Interlocked.Increment(ref Counters._retries);
                if (_limiter.ShouldLog("deliver", DateTime.UtcNow.Ticks, out long suppressed))
                {
                    LogDeliveryFailed(_logger, outbox.Key, batch.Count, e.GetType().Name, e.Message, suppressed);
                }

                if (_lifetime.ApplicationStopped.IsCancellationRequested)
                {
                    lock (outbox)
                    {
                        outbox.Busy = false;
                    }

                    return;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(2000, 50 << Math.Min(failures - 1, 6)))).ConfigureAwait(false);
            }
        }
    }

    /// <summary>How long an outbox stays empty after a burst before it tells its shard that it holds nothing older.</summary>
    internal static readonly TimeSpan IdleNotice = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// After a burst: once the outbox has stayed empty for <see cref="IdleNotice"/>, tells the shard that every message
    /// this silo took from the broker until now has been delivered, so a stream waiting there for a missing message need
    /// not wait for this silo (<see cref="ClusterSettings.GapWait"/>). One call per burst, none while messages flow.
    /// </summary>
    private async Task NoticeIdleAsync(Outbox outbox)
    {
        await Task.Delay(IdleNotice).ConfigureAwait(false);
        long watermark;
        lock (outbox)
        {
            if (outbox.Busy || outbox.Count > 0)
            {
                return; // a newer burst is under way; it ends with its own notice
            }

            outbox.Busy = true;
            watermark = DateTime.UtcNow.Ticks;
        }

        try
        {
            await DeliverAsync(outbox.Grain, ShardBatch.Idle(Silo, watermark)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Only a hint: without it the shard waits at most ClusterSettings.GapWaitLimit.
        }

        bool more;
        lock (outbox)
        {
            more = outbox.Count > 0;
            outbox.Busy = more;
        }

        if (more)
        {
            _ = SendAsync(outbox);
        }
    }

    /// <summary>
    /// One delivery, given up (and so sent again) when it is still under way <see cref="DeathGrace"/> after a silo was
    /// declared dead, or after 15 s in any case.
    /// </summary>
    /// <remarks>
    /// Orleans fails the calls addressed to a silo when it is declared dead, but not a call addressed to a live silo
    /// that forwarded it to the dead one (a shard that had just moved there): that call waited out Orleans' 10 s response
    /// timeout, and streams resumed 12.3 s after the kill in the cluster test. A delivery given up this way may still
    /// have been processed: the shard drops what its sequence numbers show it has seen, as it does for any delivery sent
    /// again after a failure (results are at least once across a silo's death).
    /// </remarks>
    private async Task<SiloAddress> DeliverAsync(IShardGrain grain, ShardBatch batch)
    {
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        Task<SiloAddress> call = grain.Deliver(batch);
        while (true)
        {
            try
            {
                return await call.WaitAsync(TimeSpan.FromMilliseconds(250)).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                long death = Volatile.Read(ref _deathTimestamp);
                if (death > started && System.Diagnostics.Stopwatch.GetElapsedTime(death) >= DeathGrace)
                {
                    Observe(call);
                    throw new TimeoutException("the delivery was under way when a silo was declared dead; it is sent again");
                }

                if (System.Diagnostics.Stopwatch.GetElapsedTime(started) >= TimeSpan.FromSeconds(15))
                {
                    Observe(call);
                    throw new TimeoutException("no answer to the delivery within 15 s; it is sent again");
                }
            }
        }

        // The abandoned call's own failure, if it comes, is not an unobserved task exception.
        static void Observe(Task task) => task.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>
    /// Whether a silo that had not shut down gracefully (killed, cut off) was declared dead at or after
    /// <paramref name="utcTicks"/>: only such a silo can have taken messages from the broker and never delivered them.
    /// </summary>
    public bool SiloLostSince(long utcTicks) => Volatile.Read(ref _lossTicks) >= utcTicks;

    /// <summary>How long a delivery under way when a silo is declared dead may still take before it is sent again.</summary>
    internal static readonly TimeSpan DeathGrace = TimeSpan.FromSeconds(2);

    /// <summary>Records when the membership last declared a silo dead (for <see cref="DeliverAsync"/>), until <paramref name="stopping"/>.</summary>
    private async Task WatchDeathsAsync(CancellationToken stopping)
    {
        var watch = new DeathWatch();
        try
        {
            await foreach (ClusterMembershipSnapshot snapshot in _membership.MembershipUpdates.WithCancellation(stopping).ConfigureAwait(false))
            {
                (bool died, bool lost) = watch.See(snapshot.Members.Values.Select(m => (m.SiloAddress, m.Status)));
                if (died)
                {
                    Volatile.Write(ref _deathTimestamp, System.Diagnostics.Stopwatch.GetTimestamp());
                }

                if (lost)
                {
                    Volatile.Write(ref _lossTicks, DateTime.UtcNow.Ticks);
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// Waits (up to <paramref name="timeout"/>) until every outbox is delivered and nothing new has arrived for
    /// <paramref name="quiet"/>: after an unsubscribe the broker still hands over what it had queued for this silo's
    /// session (QoS 1 messages in flight and queued), and those must reach their shards too.
    /// </summary>
    /// <param name="received">Messages taken from the broker so far (a counter that only grows).</param>
    /// <param name="quiet">How long nothing may arrive before the drain is complete.</param>
    /// <param name="timeout">The bound of the whole wait.</param>
    /// <returns>Messages still undelivered (queued, or in a delivery still under way).</returns>
    public async Task<int> DrainAsync(Func<long> received, TimeSpan quiet, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(received);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long seen = received();
        TimeSpan since = TimeSpan.Zero;
        while (true)
        {
            int left = 0;
            foreach (Outbox o in _outboxes.Values)
            {
                lock (o)
                {
                    left += o.Count + o.InFlight;
                }
            }

            long now = received();
            if (now != seen)
            {
                (seen, since) = (now, clock.Elapsed);
            }

            if ((left == 0 && clock.Elapsed - since >= quiet) || clock.Elapsed > timeout)
            {
                return left;
            }

            await Task.Delay(20).ConfigureAwait(false);
        }
    }

    /// <inheritdoc/>
    public ClusterStatus Status()
    {
        string[] silos = [.. ActiveSilos.Select(s => s.ToParsableString()).Order(StringComparer.Ordinal)];
        ClusterShard[] shards = [.. _local.Keys.Select(s => s.Describe()).OrderBy(s => s.Key, StringComparer.Ordinal)];
        return new ClusterStatus(Silo.ToParsableString(), _settings.ClusterId, silos, shards, Counters);
    }

    /// <summary>The silos the membership holds active now (this one included).</summary>
    public IEnumerable<SiloAddress> ActiveSilos => _membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress);

    /// <summary>Whether the membership holds <paramref name="silo"/> as shutting down, stopping or dead (its delivery marks and drain entry no longer matter).</summary>
    public bool IsTerminated(SiloAddress silo) => _membership.CurrentSnapshot.Members.TryGetValue(silo, out ClusterMember? m) && m.Status.IsTerminating();

    /// <summary>Shards active on this silo now.</summary>
    public int LocalShards => _local.Count;

    /// <summary>The keys of the shards active on this silo now.</summary>
    public IEnumerable<string> LocalShardKeys => _local.Keys.Select(s => s.Key);

    /// <summary>
    /// Tells, from successive membership snapshots, when a silo is declared dead, and whether it was lost: dead without
    /// having been seen shutting down or stopping (killed, cut off), so messages it took from the broker may be gone
    /// with it. A silo that shuts down gracefully drains and hands its shards over first.
    /// </summary>
    internal sealed class DeathWatch
    {
        private readonly HashSet<SiloAddress> _dead = [];
        private readonly HashSet<SiloAddress> _leaving = [];

        /// <summary>Takes one snapshot's members; says whether a silo is newly dead, and whether one of those was lost.</summary>
        public (bool Died, bool Lost) See(IEnumerable<(SiloAddress Silo, SiloStatus Status)> members)
        {
            ArgumentNullException.ThrowIfNull(members);
            bool died = false, lost = false;
            foreach ((SiloAddress silo, SiloStatus status) in members)
            {
                if (status is SiloStatus.ShuttingDown or SiloStatus.Stopping)
                {
                    _leaving.Add(silo);
                }
                else if (status == SiloStatus.Dead && _dead.Add(silo))
                {
                    died = true;
                    lost |= !_leaving.Remove(silo);
                }
            }

            return (died, lost);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "shard {Shard}: {Count} messages not delivered yet ({Kind}: {Problem}); retrying ({Suppressed} more such lines suppressed)")]
    private static partial void LogDeliveryFailed(ILogger logger, string shard, int count, string kind, string problem, long suppressed);

    /// <summary>
    /// The messages waiting for one shard, packed as they arrive (topics, lengths, receive times, payloads end to end in
    /// one growing buffer), so a delivery copies each payload once more, into its batch.
    /// </summary>
    private sealed class Outbox(string key, IShardGrain grain)
    {
        /// <summary>
        /// At most this many payload bytes per delivery (and <see cref="MaxBatchMessages"/> messages): a backlog built up
        /// during a failover goes out in several calls, well below Orleans' message size limit, instead of one call
        /// it would refuse every time.
        /// </summary>
        private const int MaxBatchBytes = 4 << 20;
        private const int MaxBatchMessages = 20_000;
        private readonly List<string> _topics = [];
        private readonly List<int> _lengths = [];
        private readonly List<long> _ticks = [];
        private byte[] _payloads = new byte[4096];
        private int _start, _end; // the queued payload bytes are _payloads[_start.._end]

        public string Key { get; } = key;

        public IShardGrain Grain { get; } = grain;

        /// <summary>A delivery is in flight (or about to be).</summary>
        public bool Busy { get; set; }

        /// <summary>Messages of the delivery in flight.</summary>
        public int InFlight { get; set; }

        public int Count => _topics.Count;

        public void Add(string topic, ReadOnlySpan<byte> payload, long ticks)
        {
            if (_end + payload.Length > _payloads.Length)
            {
                int live = _end - _start;
                byte[] next = live + payload.Length <= _payloads.Length / 2 ? _payloads : new byte[Math.Max(_payloads.Length * 2, live + payload.Length)];
                Buffer.BlockCopy(_payloads, _start, next, 0, live);
                (_payloads, _start, _end) = (next, 0, live);
            }

            payload.CopyTo(_payloads.AsSpan(_end));
            _end += payload.Length;
            _topics.Add(topic);
            _lengths.Add(payload.Length);
            _ticks.Add(ticks);
        }

        public void DropOldest(int n)
        {
            for (int i = 0; i < n; i++)
            {
                _start += _lengths[i];
            }

            _topics.RemoveRange(0, n);
            _lengths.RemoveRange(0, n);
            _ticks.RemoveRange(0, n);
        }

        public ShardBatch Take(SiloAddress sender)
        {
            int n = 0, bytes = 0;
            while (n < _topics.Count && n < MaxBatchMessages && (n == 0 || bytes + _lengths[n] <= MaxBatchBytes))
            {
                bytes += _lengths[n++];
            }

            var batch = new ShardBatch
            {
                Topics = [.. _topics.GetRange(0, n)],
                Payloads = _payloads.AsSpan(_start, bytes).ToArray(),
                Lengths = [.. _lengths.GetRange(0, n)],
                ReceivedTicks = [.. _ticks.GetRange(0, n)],
                Sender = sender,
                Watermark = _ticks[n - 1],
            };
            _topics.RemoveRange(0, n);
            _lengths.RemoveRange(0, n);
            _ticks.RemoveRange(0, n);
            _start += bytes;
            if (_start == _end)
            {
                _start = _end = 0;
            }

            return batch;
        }

        /// <summary>Puts a batch that could not be delivered back in front of what queued meanwhile.</summary>
        public void PutBack(ShardBatch batch)
        {
            int live = _end - _start;
            var next = new byte[Math.Max(_payloads.Length, batch.Payloads.Length + live)];
            batch.Payloads.CopyTo(next, 0);
            Buffer.BlockCopy(_payloads, _start, next, batch.Payloads.Length, live);
            (_payloads, _start, _end) = (next, 0, batch.Payloads.Length + live);
            _topics.InsertRange(0, batch.Topics);
            _lengths.InsertRange(0, batch.Lengths);
            _ticks.InsertRange(0, batch.ReceivedTicks);
        }
    }
}
