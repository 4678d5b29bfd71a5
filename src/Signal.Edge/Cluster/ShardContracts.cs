using Orleans;
using Orleans.Concurrency;
using Orleans.Runtime;

namespace Signal.Edge.Cluster;

/// <summary>
/// A shard: the streams of one model whose ids map to one key (<c>{model}/{shard}</c>). Its activation owns their engine
/// state and steps them batched; Orleans places it on a silo and re-activates it elsewhere when that silo leaves.
/// </summary>
internal interface IShardGrain : IGrainWithStringKey
{
    /// <summary>Takes a batch of messages of this shard's streams, in the order one silo received them.</summary>
    /// <param name="batch">The messages.</param>
    /// <returns>The silo the shard runs on (the sender counts a message to another silo as forwarded).</returns>
    Task<SiloAddress> Deliver(ShardBatch batch);

    /// <summary>Moves the shard to <paramref name="target"/> once it is idle (its checkpoint goes with it).</summary>
    /// <param name="target">The silo to move to.</param>
    /// <returns>When the move is requested.</returns>
    Task MoveTo(SiloAddress target);
}

/// <summary>
/// The silos handing their shards over before they stop (a graceful stop, <see cref="ClusterHosting"/>): no shard is
/// moved to them while they do. One activation for the cluster, in memory only: what it records matters only while
/// those silos are still active.
/// </summary>
internal interface IDrainRegistry : IGrainWithIntegerKey
{
    /// <summary>Records that <paramref name="silo"/> is handing its shards over.</summary>
    /// <param name="silo">The silo.</param>
    /// <returns>When recorded.</returns>
    Task Add(SiloAddress silo);

    /// <summary>The silos recorded as handing their shards over.</summary>
    /// <returns>The silos (some may have stopped since).</returns>
    Task<SiloAddress[]> Draining();
}

/// <summary>Messages for one shard, packed: topics, payloads end to end, and when each was received.</summary>
[GenerateSerializer, Immutable]
internal sealed class ShardBatch
{
    /// <summary>Each message's topic.</summary>
    [Id(0)] public required string[] Topics { get; init; }

    /// <summary>Every payload, one after the other.</summary>
    [Id(1)] public required byte[] Payloads { get; init; }

    /// <summary>Each payload's length in <see cref="Payloads"/>.</summary>
    [Id(2)] public required int[] Lengths { get; init; }

    /// <summary>When the receiving silo took each message from the broker (UTC ticks): the order the shard processes them in.</summary>
    [Id(3)] public required long[] ReceivedTicks { get; init; }

    /// <summary>The silo that took these messages from the broker (null for messages a moved shard carried in its checkpoint).</summary>
    [Id(4)] public SiloAddress? Sender { get; init; }

    /// <summary>
    /// The sender has delivered every message it took from the broker before this time (UTC ticks): a batch's last
    /// receive time, or for an empty batch (<see cref="Idle"/>) the moment its outbox was found empty.
    /// </summary>
    [Id(5)] public long Watermark { get; init; }

    /// <summary>Messages in the batch.</summary>
    public int Count => Topics.Length;

    /// <summary>An empty batch saying that <paramref name="sender"/> holds nothing for the shard that it took before <paramref name="watermark"/>.</summary>
    /// <param name="sender">The silo.</param>
    /// <param name="watermark">UTC ticks.</param>
    /// <returns>The batch.</returns>
    public static ShardBatch Idle(SiloAddress sender, long watermark) => new() { Topics = [], Payloads = [], Lengths = [], ReceivedTicks = [], Sender = sender, Watermark = watermark };
}

/// <summary>A shard's state in Redis: the engine checkpoint of its streams (framers, features, recurrent state, anomaly statistics, alert states).</summary>
[GenerateSerializer]
internal sealed class ShardState
{
    /// <summary>The engine's checkpoint (<c>SignalEngine.WriteCheckpoint</c>), or empty before the first.</summary>
    [Id(0)] public byte[] Engine { get; set; } = [];

    /// <summary>When it was written (UTC).</summary>
    [Id(1)] public DateTime WrittenAt { get; set; }

    /// <summary>
    /// Messages the shard held when it moved (waiting for earlier ones of their streams, which may still be on their way
    /// through another silo): the next activation holds them again. Null in periodic checkpoints.
    /// </summary>
    [Id(3)] public ShardBatch? Held { get; set; }

    /// <summary>
    /// Per silo, the broker receive time (UTC ticks) up to which it had delivered everything to the shard: facts about
    /// the past, so the next activation may keep them (a shard restored after a move would otherwise wait for an idle
    /// silo's word again, up to <see cref="ClusterSettings.GapWaitLimit"/>).
    /// </summary>
    /// <remarks>Keyed by the silo's parsable address text: Orleans' Redis grain storage writes the state as JSON, which cannot key a dictionary by <see cref="SiloAddress"/>.</remarks>
    [Id(4)] public Dictionary<string, long>? Delivered { get; set; }
}
