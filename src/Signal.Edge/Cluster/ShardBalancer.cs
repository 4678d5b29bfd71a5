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

    /// <summary>
    /// Where each of <paramref name="keys"/> goes so that the counts end as even as they can: one at a time to the silo
    /// holding the fewest (ties: the first by address), counting each as it is placed.
    /// </summary>
    /// <param name="keys">The shards to place.</param>
    /// <param name="counts">Shards per receiving silo, keyed by the silo's address text; not changed.</param>
    /// <returns>Each shard and its silo.</returns>
    public static (string Key, string To)[] Spread(IEnumerable<string> keys, IReadOnlyDictionary<string, int> counts)
    {
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(counts);
        if (counts.Count == 0)
        {
            return [];
        }

        var now = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach ((string silo, int count) in counts)
        {
            now[silo] = count;
        }

        var placed = new List<(string, string)>();
        foreach (string key in keys)
        {
            string to = now.OrderBy(c => c.Value).First().Key; // stable: ties stay in address order
            now[to]++;
            placed.Add((key, to));
        }

        return [.. placed];
    }

    /// <summary>The active silos that are not handing their shards over (a silo in a graceful stop takes none).</summary>
    internal static async Task<SiloAddress[]> ReceiversAsync(ClusterNode node, IGrainFactory grains)
    {
        SiloAddress[] draining = await grains.GetGrain<IDrainRegistry>(0).Draining().ConfigureAwait(false);
        return [.. node.ActiveSilos.Where(s => !draining.Contains(s))];
    }

    /// <summary>Shards per silo of <paramref name="silos"/>, keyed by address text, from each silo's catalog.</summary>
    internal static async Task<Dictionary<string, int>> CountAsync(IGrainFactory grains, SiloAddress[] silos)
    {
        // One entry per activation; a shard counted on two silos while it moves counts on both.
        DetailedGrainStatistic[] statistics = await grains.GetGrain<IManagementGrain>(0).GetDetailedGrainStatistics(null, silos).ConfigureAwait(false);
        var counts = silos.ToDictionary(s => s.ToParsableString(), _ => 0, StringComparer.Ordinal);
        foreach (IGrouping<string, GrainId> silo in statistics
            .Where(s => s.GrainType.Contains(nameof(ShardGrain), StringComparison.Ordinal))
            .GroupBy(s => s.SiloAddress.ToParsableString(), s => s.GrainId))
        {
            if (counts.ContainsKey(silo.Key))
            {
                counts[silo.Key] = silo.Distinct().Count();
            }
        }

        return counts;
    }

    /// <summary>
    /// Moves every shard of this silo to the others (those not stopping themselves) before the silo stops, and waits
    /// until none is left here (up to <paramref name="timeout"/>); shards that reach this silo meanwhile (a move another
    /// silo started) are moved on too.
    /// </summary>
    /// <returns>How many shards moved, and how many were still here at the end (the silo's own shutdown hands those over).</returns>
    /// <remarks>
    /// Left to Orleans' shutdown, a shard was activated on another silo as soon as this one said it was shutting down
    /// (the other silos then drop its directory entries), so the new activation read the checkpoint before the old one
    /// wrote its last: the messages processed in between were missing there (seen: 54 streams of one shard with a gap
    /// after a SIGTERM, now and then). A move while this silo is still active hands the directory entry over only
    /// once the checkpoint is written.
    /// </remarks>
    /// <exception cref="TimeoutException">A call to another silo did not answer within what is left of <paramref name="timeout"/>.</exception>
    internal static async Task<(int Moved, int Left)> HandOverAsync(ClusterNode node, IGrainFactory grains, TimeSpan timeout)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var asked = new Dictionary<string, TimeSpan>(StringComparer.Ordinal);
        // Every call is bounded by what is left of the timeout: a silo slow to answer (Orleans waits 10 s per call)
        // must not stretch the stop past it; the shards left then go with the silo's shutdown.
        TimeSpan Left() => TimeSpan.FromTicks(Math.Max(1, (timeout - clock.Elapsed).Ticks));
        while (true)
        {
            string[] local = [.. node.LocalShardKeys.Order(StringComparer.Ordinal)];
            if (local.Length == 0 || clock.Elapsed > timeout)
            {
                return (asked.Count, local.Length);
            }

            // A move that has not happened within 3 s (its target left, the shard was busy) is asked again.
            string[] due = [.. local.Where(k => !asked.TryGetValue(k, out TimeSpan at) || clock.Elapsed - at > TimeSpan.FromSeconds(3))];
            if (due.Length > 0)
            {
                Dictionary<string, SiloAddress> receivers = (await ReceiversAsync(node, grains).WaitAsync(Left()).ConfigureAwait(false))
                    .Where(s => !s.Equals(node.Silo)).ToDictionary(s => s.ToParsableString(), StringComparer.Ordinal);
                if (receivers.Count == 0)
                {
                    return (asked.Count, local.Length); // the last silo: its shards wait in Redis for the next one
                }

                (string Key, string To)[] moves = Spread(due, await CountAsync(grains, [.. receivers.Values]).WaitAsync(Left()).ConfigureAwait(false));
                foreach ((string key, _) in moves)
                {
                    asked[key] = clock.Elapsed;
                }

                // Asked at once, so that one shard slow to answer does not hold up the others.
                await Task.WhenAll(moves.Select(m => grains.GetGrain<IShardGrain>(m.Key).MoveTo(receivers[m.To]))).WaitAsync(Left()).ConfigureAwait(false);
            }

            await Task.Delay(50).ConfigureAwait(false);
        }
    }

    /// <summary>One look: reads the shard counts of the silos that take shards and, when this silo is the donor, moves its share.</summary>
    private async Task BalanceAsync()
    {
        SiloAddress[] active = await ReceiversAsync(node, grains).ConfigureAwait(false);
        if (active.Length < 2 || !active.Contains(node.Silo))
        {
            return;
        }

        Dictionary<string, int> counts = await CountAsync(grains, active).ConfigureAwait(false);
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

/// <summary>The cluster's one <see cref="IDrainRegistry"/> activation.</summary>
/// <param name="node">This silo's view of the membership (silos that have left are forgotten).</param>
internal sealed class DrainRegistryGrain(ClusterNode node) : Grain, IDrainRegistry
{
    private readonly HashSet<SiloAddress> _draining = [];

    /// <inheritdoc/>
    public Task Add(SiloAddress silo)
    {
        _draining.RemoveWhere(node.IsTerminated);
        _draining.Add(silo);
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task<SiloAddress[]> Draining() => Task.FromResult<SiloAddress[]>([.. _draining]);
}
