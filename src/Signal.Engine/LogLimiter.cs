namespace Signal.Engine;

/// <summary>
/// Rate-limits log lines by reason: the first <see cref="Burst"/> lines of a reason in each window are written in
/// full, the rest are counted, and the count is reported once the window is over (by the next line of that reason,
/// or by <see cref="TakeSummaries"/> from a periodic timer). So 20,000 bad topics give a handful of lines and one
/// summary a minute, while a reason that recurs an hour later (a second gap on a stream) is logged again.
/// </summary>
/// <remarks>Safe to call from any thread (one lock; callers log outside it).</remarks>
public sealed class LogLimiter
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Entry> _reasons = new(StringComparer.Ordinal);
    private readonly long _windowTicks;

    /// <summary>Creates a limiter.</summary>
    /// <param name="burst">Lines written in full per reason and window (default 5).</param>
    /// <param name="window">The window (default one minute).</param>
    public LogLimiter(int burst = 5, TimeSpan? window = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(burst, 1);
        Burst = burst;
        _windowTicks = (window ?? TimeSpan.FromMinutes(1)).Ticks;
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(_windowTicks, 0, nameof(window));
    }

    /// <summary>Lines written in full per reason and window.</summary>
    public int Burst { get; }

    /// <summary>Whether a line of <paramref name="reason"/> at <paramref name="nowTicks"/> is written.</summary>
    /// <param name="reason">The reason (a short code such as <c>undecodable</c>).</param>
    /// <param name="nowTicks">The time, in ticks of any monotonic or wall clock the caller always uses.</param>
    /// <param name="suppressedBefore">Lines of this reason suppressed in the window that just ended (0 when none or
    /// when the window is still open); the caller says so in the line it writes.</param>
    /// <returns>True when the caller should write the line.</returns>
    public bool ShouldLog(string reason, long nowTicks, out long suppressedBefore)
    {
        lock (_gate)
        {
            if (!_reasons.TryGetValue(reason, out Entry? entry))
            {
                if (_reasons.Count >= 10_000)
                {
                    suppressedBefore = 0;
                    return false; // reasons are a small fixed set; this only bounds a caller's mistake
                }

                entry = new Entry { WindowStart = nowTicks };
                _reasons.Add(reason, entry);
            }

            suppressedBefore = 0;
            if (nowTicks - entry.WindowStart >= _windowTicks)
            {
                suppressedBefore = entry.Suppressed;
                entry.WindowStart = nowTicks;
                entry.Written = 0;
                entry.Suppressed = 0;
            }

            if (entry.Written < Burst)
            {
                entry.Written++;
                return true;
            }

            entry.Suppressed++;
            return false;
        }
    }

    /// <summary>
    /// The reasons whose window has ended with lines suppressed, with their counts; each is reported once (its window
    /// restarts). Call from a periodic timer so a burst followed by silence is still summarised.
    /// </summary>
    /// <param name="nowTicks">The time, on the clock <see cref="ShouldLog"/> is given.</param>
    /// <returns>Reason and count for each summary due (empty when none).</returns>
    public IReadOnlyList<(string Reason, long Suppressed)> TakeSummaries(long nowTicks)
    {
        lock (_gate)
        {
            List<(string, long)>? due = null;
            foreach ((string reason, Entry entry) in _reasons)
            {
                if (entry.Suppressed > 0 && nowTicks - entry.WindowStart >= _windowTicks)
                {
                    (due ??= []).Add((reason, entry.Suppressed));
                    entry.WindowStart = nowTicks;
                    entry.Written = 0;
                    entry.Suppressed = 0;
                }
            }

            return due ?? (IReadOnlyList<(string, long)>)[];
        }
    }

    private sealed class Entry
    {
        public long WindowStart;
        public int Written;
        public long Suppressed;
    }
}
