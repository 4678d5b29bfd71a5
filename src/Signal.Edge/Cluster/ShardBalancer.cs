using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans;
using Orleans.Runtime;

namespace Signal.Edge.Cluster;

/// <summary>
/// Spreads the shards evenly over the active silos by count: every <see cref="ClusterSettings.RebalancePeriod"/> each
/// silo reads how many shards every silo holds, and the silo holding the most (the same one in every silo's view) moves
/// half the difference to the silo holding the fewest, when they differ by two or more. A silo that joins gets shards
/// within a few periods; a balanced cluster moves nothing.
/// </summary>
/// <remarks>
/// This replaces Orleans' activation rebalancer, which weighs each silo's memory use as well as its activations: with
/// tens of shards the processes' memory dominated, and it kept migrating shards every cycle (nine moves from one silo
/// in 15 s of the cluster test, and a failover that overlapped them once left streams stalled past the test's 30 s).
/// </remarks>
internal sealed partial class ShardBalancer(ClusterNode node, IGrainFactory grains, ClusterSettings settings, ILoggerFactory logs) : BackgroundService
{
    private readonly ILogger _logger = logs.CreateLogger("signal-edge.cluster");

    /// <summary>
    /// The move that evens out the shard counts most: the silo holding the most (ties: the first by address) gives half
    /// the difference to the silo holding the fewest (ties: the first by address); none when they differ by less than two.
    /// </summary>
    /// <param name="counts">Shards per active silo, keyed by the silo's address text.</param>
    /// <returns>The donor, the receiver and how many shards move, or null when the counts are even.</returns>
    public static (string From, string To, int Count)? Plan(IReadOnlyDictionary<string, int> counts)
    {
        ArgumentNullException.ThrowIfNull(counts);
        if (counts.Count < 2)
        {
            return null;
        }

        KeyValuePair<string, int> most = counts.OrderByDescending(c => c.Value).ThenBy(c => c.Key, StringComparer.Ordinal).First();
        KeyValuePair<string, int> fewest = counts.OrderBy(c => c.Value).ThenBy(c => c.Key, StringComparer.Ordinal).First();
        int difference = most.Value - fewest.Value;
        return difference < 2 ? null : (most.Key, fewest.Key, difference / 2);
    }

    /// <inheritdoc/>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(settings.RebalancePeriod);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                try
                {
                    await BalanceAsync().ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    if (stoppingToken.IsCancellationRequested)
                    {
                        return; // the silo is stopping: a failed look then is expected, and no reason to fail the host
                    }

                    // A silo leaving while its counts are read: the next period looks again.
                    string kind = e.GetType().Name;
                    LogBalanceFailed(_logger, kind, e.Message);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>One look: reads the shard counts of the active silos and, when this silo is the donor, moves its share.</summary>
    private async Task BalanceAsync()
    {
        SiloAddress[] active = [.. node.ActiveSilos];
        if (active.Length < 2 || !active.Contains(node.Silo))
        {
            return;
        }

        // One entry per activation, read from each silo's catalog; a shard counted on two silos while it moves counts on both.
        DetailedGrainStatistic[] statistics = await grains.GetGrain<IManagementGrain>(0).GetDetailedGrainStatistics(null, active).ConfigureAwait(false);
        var counts = active.ToDictionary(s => s.ToParsableString(), _ => 0, StringComparer.Ordinal);
        foreach (IGrouping<string, GrainId> silo in statistics
            .Where(s => s.GrainType.Contains(nameof(ShardGrain), StringComparison.Ordinal))
            .GroupBy(s => s.SiloAddress.ToParsableString(), s => s.GrainId))
        {
            if (counts.ContainsKey(silo.Key))
            {
                counts[silo.Key] = silo.Distinct().Count();
            }
        }

        if (Plan(counts) is not (string from, string to, int count) || from != node.Silo.ToParsableString())
        {
            return;
        }

        SiloAddress target = active.First(s => s.ToParsableString() == to);
        string[] moving = [.. node.LocalShardKeys.Order(StringComparer.Ordinal).Take(count)];
        string spread = string.Join(", ", counts.Select(c => $"{c.Key} {c.Value}"));
        LogMoving(_logger, moving.Length, to, spread);
        foreach (string key in moving)
        {
            await grains.GetGrain<IShardGrain>(key).MoveTo(target).ConfigureAwait(false);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "cluster: moving {Count} shards to {Target} (shards per silo: {Counts})")]
    private static partial void LogMoving(ILogger logger, int count, string target, string counts);

    [LoggerMessage(Level = LogLevel.Debug, Message = "cluster: shard balance not checked this period ({Kind}: {Problem})")]
    private static partial void LogBalanceFailed(ILogger logger, string kind, string problem);
}
