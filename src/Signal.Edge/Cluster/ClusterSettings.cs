using System.Globalization;
using System.Net;

namespace Signal.Edge.Cluster;

/// <summary>
/// The <c>cluster</c> section of the configuration: with it, <c>signal-edge run</c> joins an Orleans cluster as one silo
/// (docs/cluster.md); without it nothing of Orleans is loaded.
/// </summary>
internal sealed class ClusterSettings
{
    /// <summary>The Redis server holding membership and shard checkpoints (a StackExchange.Redis configuration string).</summary>
    public string Redis { get; set; } = "127.0.0.1:6379";

    /// <summary>The cluster's id: silos with the same id (and service id) form one cluster.</summary>
    public string ClusterId { get; set; } = "signal";

    /// <summary>The service's id; shard checkpoints are kept under it, so it must stay the same across deployments.</summary>
    public string ServiceId { get; set; } = "signal-edge";

    /// <summary>The address other silos reach this one on. Default: 127.0.0.1 (one machine); set it on a real cluster.</summary>
    public string AdvertisedAddress { get; set; } = "127.0.0.1";

    /// <summary>The port silos talk to each other on.</summary>
    public int SiloPort { get; set; } = 11111;

    /// <summary>The port Orleans clients connect to (0: none; the engines need none).</summary>
    public int GatewayPort { get; set; }

    /// <summary>How many shards each model's streams are spread over (with <see cref="ShardBy"/> <c>hash</c>).</summary>
    public int Shards { get; set; } = 64;

    /// <summary>
    /// How a stream finds its shard: <c>hash</c> (a stable hash of the stream id, modulo <see cref="Shards"/>), or
    /// <c>level:N</c> (the topic's level N, counted from 0: <c>level:1</c> puts <c>sensors/site-a/…</c> in shard
    /// <c>site-a</c>).
    /// </summary>
    public string ShardBy { get; set; } = "hash";

    /// <summary>The group of the MQTT 5 shared subscription <c>$share/{group}/{filter}</c> every silo takes messages through.</summary>
    public string Group { get; set; } = "signal";

    /// <summary>How often a shard writes its checkpoint to Redis (it also writes one before it publishes an alert and when it moves).</summary>
    public TimeSpan CheckpointInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Messages of one stream may reach its shard through different silos, out of order. A message with a sequence
    /// number that is not the next one waits up to <see cref="GapWait"/> for the ones before it (a stream's first message
    /// counts from 0); messages without a sequence number wait this long for earlier ones (0: no reordering at all).
    /// </summary>
    public TimeSpan ReorderWindow { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// How long a message whose predecessors are missing waits for them at least before the stream goes on without them
    /// (a gap), when a silo was lost (killed, cut off: declared dead without having shut down gracefully) about when the
    /// message was received and every active silo has since delivered to the shard a message it took from the broker
    /// after this one. Otherwise the missing ones are late, not lost (the broker queues a shared subscription's messages
    /// per member; a silo starved of CPU; a shard still activating), and the message waits up to <see cref="GapWaitLimit"/>.
    /// </summary>
    public TimeSpan GapWait { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The longest a message waits for its missing predecessors (a publisher that skipped a number, a silo that stays
    /// silent or is starved of CPU, messages dropped beyond <see cref="ForwardCapacity"/>). Default 8 s.
    /// </summary>
    public TimeSpan GapWaitLimit { get; set; } = TimeSpan.FromSeconds(8);

    /// <summary>Messages a silo holds per shard while the shard cannot be reached (a failover); beyond, the oldest are dropped and counted.</summary>
    public int ForwardCapacity { get; set; } = 100_000;

    /// <summary>How long a silo may go unanswered before the others declare it dead (Orleans' probe timeout; three missed probes).</summary>
    public TimeSpan ProbeTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How often the silos compare their shard counts and even them out (the shard balancer; first this long after start).</summary>
    public TimeSpan RebalancePeriod { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>The level of <c>level:N</c>, or -1 for <c>hash</c>.</summary>
    public int ShardLevel => ShardBy.StartsWith("level:", StringComparison.Ordinal) && int.TryParse(ShardBy.AsSpan(6), NumberStyles.None, CultureInfo.InvariantCulture, out int level) ? level : -1;

    /// <summary>Checks every value; the message names the key.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Redis))
        {
            throw new ArgumentException("cluster:redis: no Redis server given (e.g. \"127.0.0.1:6379\").");
        }

        if (string.IsNullOrWhiteSpace(ClusterId) || string.IsNullOrWhiteSpace(ServiceId))
        {
            throw new ArgumentException("cluster:clusterId and cluster:serviceId must not be empty.");
        }

        if (!IPAddress.TryParse(AdvertisedAddress, out _))
        {
            throw new ArgumentException($"cluster:advertisedAddress: '{AdvertisedAddress}' is not an IP address.");
        }

        if (SiloPort is < 1 or > 65535 || GatewayPort is < 0 or > 65535 || (GatewayPort != 0 && GatewayPort == SiloPort))
        {
            throw new ArgumentException($"cluster:siloPort / gatewayPort: {SiloPort} / {GatewayPort} are not two distinct ports (gatewayPort 0 = none).");
        }

        if (Shards is < 1 or > 65536)
        {
            throw new ArgumentException($"cluster:shards: {Shards} is not between 1 and 65,536.");
        }

        if (ShardBy != "hash" && ShardLevel < 0)
        {
            throw new ArgumentException($"cluster:shardBy: '{ShardBy}' is not \"hash\" or \"level:N\" (N a topic level counted from 0).");
        }

        if (string.IsNullOrWhiteSpace(Group) || Group.AsSpan().IndexOfAny("/+#") >= 0)
        {
            throw new ArgumentException($"cluster:group: '{Group}' must be a non-empty name without '/', '+' or '#'.");
        }

        if (CheckpointInterval <= TimeSpan.Zero)
        {
            throw new ArgumentException("cluster:checkpointInterval: must be positive (e.g. \"00:00:05\").");
        }

        if (ReorderWindow < TimeSpan.Zero || ReorderWindow > TimeSpan.FromSeconds(10))
        {
            throw new ArgumentException("cluster:reorderWindow: must be between 0 and 10 s.");
        }

        if (GapWait < ReorderWindow || GapWait > TimeSpan.FromMinutes(1))
        {
            throw new ArgumentException("cluster:gapWait: must be at least reorderWindow and at most a minute.");
        }

        if (GapWaitLimit < GapWait || GapWaitLimit > TimeSpan.FromMinutes(5))
        {
            throw new ArgumentException("cluster:gapWaitLimit: must be at least gapWait and at most five minutes.");
        }

        if (ForwardCapacity < 1)
        {
            throw new ArgumentException("cluster:forwardCapacity: must be at least 1.");
        }

        if (RebalancePeriod < TimeSpan.FromSeconds(3))
        {
            throw new ArgumentException("cluster:rebalancePeriod: must be at least 3 s (a move takes a checkpoint write and a restore; counts read sooner would still include moves under way).");
        }

        if (ProbeTimeout < TimeSpan.FromMilliseconds(100))
        {
            throw new ArgumentException("cluster:probeTimeout: must be at least 100 ms.");
        }
    }
}
