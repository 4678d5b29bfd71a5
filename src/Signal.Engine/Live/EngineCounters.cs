using System.Collections.Concurrent;

namespace Signal.Engine.Live;

/// <summary>What the engine has seen and done; every member is safe to read from any thread.</summary>
public sealed class EngineCounters
{
    internal long _messages, _samples, _frames, _steps, _batches, _classifications, _alerts, _streamsCreated, _duplicates, _restoreGaps, _internalErrors;
    private readonly ConcurrentDictionary<string, long> _rejected = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _resets = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _evictions = new(StringComparer.Ordinal);

    private readonly long[] _batchSizes = new long[BatchBuckets];

    /// <summary>Buckets of <see cref="BatchSizes"/>: batches of 1, ≤ 2, ≤ 4, … ≤ 2^15 and more streams.</summary>
    public const int BatchBuckets = 17;

    /// <summary>
    /// Batched steps by size, cumulative as Prometheus histograms are: entry i counts the batches of at most 2^i
    /// streams; the last entry counts them all.
    /// </summary>
    public IReadOnlyList<long> BatchSizes
    {
        get
        {
            var cumulative = new long[BatchBuckets];
            long sum = 0;
            for (int i = 0; i < BatchBuckets; i++)
            {
                sum += Interlocked.Read(ref _batchSizes[i]);
                cumulative[i] = sum;
            }

            return cumulative;
        }
    }

    /// <summary>Messages taken in.</summary>
    public long Messages => Interlocked.Read(ref _messages);

    /// <summary>Samples (or feature vectors) accepted.</summary>
    public long Samples => Interlocked.Read(ref _samples);

    /// <summary>Frames (network inputs) produced.</summary>
    public long Frames => Interlocked.Read(ref _frames);

    /// <summary>Stream steps run.</summary>
    public long Steps => Interlocked.Read(ref _steps);

    /// <summary>Batched steps run.</summary>
    public long Batches => Interlocked.Read(ref _batches);

    /// <summary>Alert state changes emitted.</summary>
    public long Alerts => Interlocked.Read(ref _alerts);

    /// <summary>Streams created (including re-creations after eviction).</summary>
    public long StreamsCreated => Interlocked.Read(ref _streamsCreated);

    /// <summary>Messages dropped as redeliveries of a sequence number already taken (normal with QoS 1 after a reconnect).</summary>
    public long Duplicates => Interlocked.Read(ref _duplicates);

    /// <summary>
    /// Streams restored from a checkpoint whose first message jumped forward (the messages between the checkpoint and
    /// a crash are gone); the stream continued with its state, no reset.
    /// </summary>
    public long RestoreGaps => Interlocked.Read(ref _restoreGaps);

    /// <summary>
    /// Exceptions the engine contained (defects, never bad input): while processing a message (that message is also
    /// rejected as <c>internal_error</c>) or on the batching timer.
    /// </summary>
    public long InternalErrors => Interlocked.Read(ref _internalErrors);

    /// <summary>Rejected messages by reason (<c>undecodable</c>, <c>non_finite</c>, <c>channel_count</c>, <c>oversized</c>, …).</summary>
    public IReadOnlyDictionary<string, long> Rejected => _rejected;

    /// <summary>Stream state resets by reason (<c>sequence_gap</c>, <c>time_gap</c>, <c>time_backwards</c>).</summary>
    public IReadOnlyDictionary<string, long> Resets => _resets;

    /// <summary>Stream evictions by reason (<c>idle</c>).</summary>
    public IReadOnlyDictionary<string, long> Evictions => _evictions;

    /// <summary>All rejected messages.</summary>
    /// <remarks>
    /// Summed by enumerating, which takes no lock: <c>Values</c> takes every lock of the dictionary, and the first such
    /// call initialises the concurrent collections' event source, whose attribute reflection crashed the JIT build under
    /// qemu-aarch64 once (the daemon's 10-second summary, in the arm64 demo check).
    /// </remarks>
    public long RejectedTotal
    {
        get
        {
            long total = 0;
            foreach (KeyValuePair<string, long> r in _rejected)
            {
                total += r.Value;
            }

            return total;
        }
    }

    internal void Batch(int size)
    {
        Interlocked.Increment(ref _batches);
        Interlocked.Add(ref _steps, size);
        int bucket = size <= 1 ? 0 : Math.Min(BatchBuckets - 1, 32 - System.Numerics.BitOperations.LeadingZeroCount((uint)(size - 1)));
        Interlocked.Increment(ref _batchSizes[bucket]);
    }

    internal void Reject(string reason) => _rejected.AddOrUpdate(reason, 1, (_, n) => n + 1);

    internal void Reset(string reason) => _resets.AddOrUpdate(reason, 1, (_, n) => n + 1);

    internal void Evict(string reason) => _evictions.AddOrUpdate(reason, 1, (_, n) => n + 1);
}
