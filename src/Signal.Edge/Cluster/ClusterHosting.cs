using System.Net;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Hosting;
using Signal.Edge.Daemon;
using StackExchange.Redis;

namespace Signal.Edge.Cluster;

/// <summary>
/// Makes the daemon an Orleans silo: Redis membership (Orleans' Redis clustering) and shard state (Orleans' Redis grain
/// storage), the silo's endpoints, fast failure detection, and the <see cref="ShardBalancer"/> that spreads shards over the
/// silos as they join and leave. Placement, membership and failover are Orleans'; Signal only decides what a shard is.
/// </summary>
/// <remarks>
/// Everything here is reached only through methods that are not inlined, so a daemon without a <c>cluster</c> section
/// never loads an Orleans assembly (a test checks the process's mapped files); the NativeAOT build leaves this code and
/// Orleans out altogether (Orleans needs the JIT build).
/// </remarks>
internal static partial class ClusterHosting
{
    /// <summary>The grain storage holding shard checkpoints.</summary>
    public const string Storage = "shards";

    /// <summary>The grain directory recording where each shard is active.</summary>
    public const string Directory = "shards";

    /// <summary>Adds the silo and the cluster's services to the host (after the daemon's hosted service).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Add(IHostApplicationBuilder builder, ClusterSettings cluster)
    {
        ConfigurationOptions Redis()
        {
            ConfigurationOptions options = ConfigurationOptions.Parse(cluster.Redis);
            // Ride out a Redis restart: keep reconnecting instead of failing the silo.
            options.AbortOnConnectFail = false;
            return options;
        }

        builder.Services.AddSingleton(cluster);
        builder.Services.AddSingleton<ClusterNode>();
        builder.UseOrleans(silo =>
        {
            silo.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = cluster.ClusterId;
                o.ServiceId = cluster.ServiceId;
            });
            silo.ConfigureEndpoints(IPAddress.Parse(cluster.AdvertisedAddress), cluster.SiloPort, cluster.GatewayPort);
            silo.UseRedisClustering(o => o.ConfigurationOptions = Redis());
            silo.AddRedisGrainStorage(Storage, o => o.ConfigurationOptions = Redis());
            // Where each shard is active lives in Redis too, not in the silos' in-memory directory: a silo that dies
            // then takes only its own shards with it (with the default directory, shards elsewhere whose directory
            // entry it held were deactivated as well, and a few once stayed unreachable).
            silo.AddRedisGrainDirectory(Directory, o => o.ConfigurationOptions = Redis());
            silo.Configure<ClusterMembershipOptions>(o =>
            {
                // A killed silo is declared dead after three missed probes of ProbeTimeout (default 1 s), and the
                // survivors learn it at once by gossip; the table is re-read every 5 s besides.
                o.ProbeTimeout = cluster.ProbeTimeout;
                // Orleans adapts the probe timeout between half and MaxProbeTimeout (default four times ProbeTimeout),
                // and suppresses votes against a silo whose connection carried messages within MaxProbeTimeout × the
                // missed-probe limit. A shard silo talks to the others all the time, so a silo killed mid-traffic was
                // declared dead only after that window: 12.9 s once in CI against 2.5–4.3 s usually. Twice the probe
                // timeout bounds the window at 6 s while still allowing slow answers under load.
                o.MaxProbeTimeout = 2 * cluster.ProbeTimeout;
                o.NumMissedProbesLimit = 3;
                o.TableRefreshTimeout = TimeSpan.FromSeconds(5);
                o.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(10);
            });
            silo.Configure<SiloMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(10));
            silo.Configure<GrainCollectionOptions>(o => o.CollectionAge = TimeSpan.FromHours(1));
            // Shards are spread by ShardBalancer (by count), not by Orleans' activation rebalancer (see its remarks).
        });

        // Registered after the silo, so it stops first: it leaves the shared subscription and delivers what it holds
        // while the shards can still be reached; then the silo hands its shards over.
        builder.Services.AddHostedService<ClusterDrain>();
        builder.Services.AddHostedService<ShardBalancer>();
    }

    /// <summary>The cluster ingest for the daemon, attached to it.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static IClusterIngest Attach(IServiceProvider services, EdgeDaemon daemon)
    {
        ClusterNode node = services.GetRequiredService<ClusterNode>();
        node.Attach(daemon);
        return node;
    }

    /// <summary>Leaves the shared subscription and delivers what is queued before the silo stops.</summary>
    private sealed partial class ClusterDrain(ClusterNode node, Orleans.IGrainFactory grains, ILoggerFactory logs) : IHostedService
    {
        private readonly ILogger _logger = logs.CreateLogger("signal-edge.cluster");

        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public async Task StopAsync(CancellationToken cancellationToken)
        {
            try
            {
                // First, so that no other silo's balancer moves a shard here from now on.
                await grains.GetGrain<IDrainRegistry>(0).Add(node.Silo).WaitAsync(TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException and not OperationCanceledException)
            {
                LogNotRegistered(_logger, e.GetType().Name, e.Message);
            }

            EdgeDaemon daemon = node.Daemon;
            foreach (string filter in daemon.SubscribedFilters)
            {
                daemon.Connection.Unsubscribe(filter);
            }

            // What the broker had already queued for this silo keeps arriving after the unsubscribe (seen: 54 streams
            // with a gap after a SIGTERM when the drain ended at the first moment the outboxes were empty); the drain
            // ends once everything is delivered and nothing has arrived for half a second.
            int left = await node.DrainAsync(() => daemon.Connection.Counters.Received, TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            LogDrained(_logger, node.LocalShards, left);

            // The shards move while this silo is still active: each one's checkpoint is written before another silo
            // activates it (see ShardBalancer.HandOverAsync).
            var clock = System.Diagnostics.Stopwatch.StartNew();
            try
            {
                (int moved, int kept) = await ShardBalancer.HandOverAsync(node, grains, TimeSpan.FromSeconds(15)).ConfigureAwait(false);
                LogHandedOver(_logger, moved, clock.Elapsed.TotalSeconds, kept);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                LogHandOverFailed(_logger, e.GetType().Name, e.Message, node.LocalShards);
            }
        }

        [LoggerMessage(Level = LogLevel.Information, Message = "cluster: moved {Moved} shards to the other silos in {Seconds:0.0} s; {Left} left for the silo's shutdown to hand over")]
        private static partial void LogHandedOver(ILogger logger, int moved, double seconds, int left);

        [LoggerMessage(Level = LogLevel.Warning, Message = "cluster: moving the shards before the stop failed ({Kind}: {Problem}); the silo's shutdown hands the {Left} left over")]
        private static partial void LogHandOverFailed(ILogger logger, string kind, string problem, int left);

        [LoggerMessage(Level = LogLevel.Warning, Message = "cluster: could not tell the other silos that this one is stopping ({Kind}: {Problem}); their balancers may move shards here meanwhile, which are moved on")]
        private static partial void LogNotRegistered(ILogger logger, string kind, string problem);

        [LoggerMessage(Level = LogLevel.Information, Message = "cluster: left the shared subscription and delivered the queued messages ({Left} left undelivered); handing over {Shards} shards")]
        private static partial void LogDrained(ILogger logger, int shards, int left);
    }
}
