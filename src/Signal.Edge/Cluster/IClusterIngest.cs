using Signal.Edge.Daemon;
using Signal.Engine.Mqtt;

namespace Signal.Edge.Cluster;

/// <summary>
/// The daemon's view of the cluster. It names no Orleans type, so a daemon without a <c>cluster</c> section, which never
/// creates one, never loads Orleans.
/// </summary>
internal interface IClusterIngest
{
    /// <summary>The subscription that takes this silo's share of a filter's messages (<c>$share/{group}/{filter}</c>).</summary>
    /// <param name="filter">The topic filter.</param>
    /// <returns>The shared subscription.</returns>
    string Subscription(string filter);

    /// <summary>Completes once the silo has joined the cluster and messages can be forwarded.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    Task WaitReadyAsync(CancellationToken cancellationToken);

    /// <summary>Queues a message for the shard that owns its stream (the message loop's thread; the payload is copied).</summary>
    /// <param name="slot">The model whose topic template matched.</param>
    /// <param name="message">The message.</param>
    void Take(ModelSlot slot, in MqttMessage message);

    /// <summary>What this silo does now, for <c>/api/cluster</c>.</summary>
    ClusterStatus Status();

    /// <summary>Counters, read without asking any shard (for <c>/metrics</c>).</summary>
    ClusterCounters Counters { get; }

    /// <summary>Shards active on this silo now.</summary>
    int LocalShards { get; }
}

/// <summary>A silo's ingest counters.</summary>
internal sealed class ClusterCounters
{
    internal long _received, _forwarded, _local, _dropped, _retries, _activations, _deactivations, _restored, _checkpoints, _checkpointFailures, _gaps, _revived, _unreadable;

    /// <summary>Messages this silo took from the broker.</summary>
    public long Received => Interlocked.Read(ref _received);

    /// <summary>Messages sent to a shard on another silo.</summary>
    public long Forwarded => Interlocked.Read(ref _forwarded);

    /// <summary>Messages delivered to a shard on this silo.</summary>
    public long Local => Interlocked.Read(ref _local);

    /// <summary>Messages dropped because a shard stayed unreachable while its queue was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Deliveries retried (a shard moving, a silo failing).</summary>
    public long Retries => Interlocked.Read(ref _retries);

    /// <summary>Shard activations on this silo.</summary>
    public long Activations => Interlocked.Read(ref _activations);

    /// <summary>Shard deactivations on this silo (moves, shutdown).</summary>
    public long Deactivations => Interlocked.Read(ref _deactivations);

    /// <summary>Activations that started from a checkpoint in Redis.</summary>
    public long Restored => Interlocked.Read(ref _restored);

    /// <summary>Checkpoints written to Redis.</summary>
    public long Checkpoints => Interlocked.Read(ref _checkpoints);

    /// <summary>Checkpoints that failed (Redis unreachable); retried.</summary>
    public long CheckpointFailures => Interlocked.Read(ref _checkpointFailures);

    /// <summary>Shards started again after a move that failed (a message reached the stopped activation).</summary>
    public long Revived => Interlocked.Read(ref _revived);

    /// <summary>Activations whose checkpoint in Redis could not be restored (damaged, or written by an incompatible version): their streams started afresh.</summary>
    public long Unreadable => Interlocked.Read(ref _unreadable);

    /// <summary>Times a shard went on with a stream after waiting <see cref="ClusterSettings.GapWait"/> for messages that never came.</summary>
    public long Gaps => Interlocked.Read(ref _gaps);
}

/// <summary>One silo's part of the cluster, as <c>/api/cluster</c> returns it.</summary>
/// <param name="Silo">This silo's address.</param>
/// <param name="ClusterId">The cluster's id.</param>
/// <param name="Silos">The active silos, this one included.</param>
/// <param name="Shards">The shards active on this silo.</param>
/// <param name="Counters">This silo's ingest and shard counters (also on <c>/metrics</c>).</param>
internal sealed record ClusterStatus(string Silo, string ClusterId, IReadOnlyList<string> Silos, IReadOnlyList<ClusterShard> Shards, ClusterCounters Counters);

/// <summary>A shard active on this silo.</summary>
/// <param name="Key">Its key (<c>{model}/{shard}</c>).</param>
/// <param name="Streams">Streams it holds.</param>
/// <param name="Messages">Messages it processed since it activated here.</param>
/// <param name="Restored">Whether it started from a checkpoint.</param>
/// <param name="CheckpointAt">Its last checkpoint (UTC), or null.</param>
internal sealed record ClusterShard(string Key, int Streams, long Messages, bool Restored, DateTime? CheckpointAt);
