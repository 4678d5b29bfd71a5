namespace Signal.Engine.Evaluation;

/// <summary>The weights of one NAB application profile: the reward of a true positive and the costs of a false positive and a false negative.</summary>
/// <param name="Name">The profile's name in NAB: standard, reward_low_FP_rate or reward_low_FN_rate.</param>
/// <param name="TruePositive">A_TP: the reward of a detection at the very start of a window.</param>
/// <param name="FalsePositive">A_FP: the cost of a detection far from any window.</param>
/// <param name="FalseNegative">A_FN: the cost of a window with no detection.</param>
public sealed record NabProfile(string Name, double TruePositive, double FalsePositive, double FalseNegative)
{
    /// <summary>NAB's standard profile (1, 0.11, 1).</summary>
    public static NabProfile Standard { get; } = new("standard", 1, 0.11, 1);

    /// <summary>NAB's reward_low_FP_rate profile (1, 0.22, 1).</summary>
    public static NabProfile RewardLowFalsePositives { get; } = new("reward_low_FP_rate", 1, 0.22, 1);

    /// <summary>NAB's reward_low_FN_rate profile (1, 0.11, 2).</summary>
    public static NabProfile RewardLowFalseNegatives { get; } = new("reward_low_FN_rate", 1, 0.11, 2);

    /// <summary>The three profiles of NAB v1.1, in its order.</summary>
    public static IReadOnlyList<NabProfile> All { get; } = [Standard, RewardLowFalsePositives, RewardLowFalseNegatives];
}

/// <summary>One file's NAB score under one profile.</summary>
/// <param name="Raw">The sum of the window rewards, window penalties and false-positive costs.</param>
/// <param name="Null">What a detector that flags nothing scores: −A_FN per scored window.</param>
/// <param name="Perfect">What a detector that flags the first row of every window scores: A_TP per scored window.</param>
/// <param name="Windows">Windows with at least one row after the probationary period (the ones that count).</param>
/// <param name="TruePositives">Scored windows with a detection.</param>
/// <param name="FalsePositives">Detections after the probationary period outside every window.</param>
public sealed record NabScore(double Raw, double Null, double Perfect, int Windows, int TruePositives, int FalsePositives)
{
    /// <summary>Windows without a detection.</summary>
    public int FalseNegatives => Windows - TruePositives;

    /// <summary>100 · (raw − null) / (perfect − null); NaN when the file has no scored window (its false positives still count in a sum).</summary>
    public double Normalized => Perfect > Null ? 100 * (Raw - Null) / (Perfect - Null) : double.NaN;

    /// <summary>The normalised score of several files together: the raw, null and perfect scores summed first, as NAB does.</summary>
    public static double NormalizedTotal(IEnumerable<NabScore> scores)
    {
        double raw = 0, none = 0, perfect = 0;
        foreach (NabScore s in scores)
        {
            raw += s.Raw;
            none += s.Null;
            perfect += s.Perfect;
        }

        return perfect > none ? 100 * (raw - none) / (perfect - none) : double.NaN;
    }
}

/// <summary>
/// The scoring of the Numenta Anomaly Benchmark v1.1 (Lavin and Ahmad 2015; Ahmad et al. 2017), as its
/// <c>nab/sweeper.py</c> computes it for one threshold: binary detections per row, windows in row indices.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>The first <see cref="ProbationRows"/> rows (15 %, at most 750) are probationary: their detections count for
/// nothing, and a window that lies wholly inside them is not scored.</item>
/// <item>Inside a window only the best (earliest) detection counts: A_TP · σ(−(end − i + 1)/width) / σ(−1), with
/// σ(x) = 2/(1 + e^(5x)) − 1 (<see cref="ScaledSigmoid"/>) and width the window's row count, so a detection on the
/// window's first row earns exactly A_TP.</item>
/// <item>A detection outside every window costs A_FP · σ(|i − end₀| / (width₀ − 1)), end₀ and width₀ being those of
/// the window before it (σ = −1 beyond 3 widths, and −1 before the first window): a detection just after a window costs
/// almost nothing, one far from it costs A_FP.</item>
/// <item>A scored window with no detection costs A_FN.</item>
/// </list>
/// </remarks>
public static class NabScoring
{
    /// <summary>NAB's probationary period: floor(0.15 · rows), at most 750 (0.15 · 5000).</summary>
    public static int ProbationRows(int rows) => Math.Min((int)Math.Floor(0.15 * rows), 750);

    /// <summary>NAB's scaled sigmoid: 2/(1 + e^(5x)) − 1, and −1 for x above 3.</summary>
    public static double ScaledSigmoid(double x) => x > 3 ? -1 : (2 / (1 + Math.Exp(5 * x))) - 1;

    /// <summary>Scores one file's detections.</summary>
    /// <param name="detections">One flag per row, in file order.</param>
    /// <param name="windows">The anomaly windows as inclusive row ranges, in order and not overlapping.</param>
    /// <param name="profile">The weights.</param>
    /// <param name="probation">Rows of the probationary period; <see cref="ProbationRows"/> of the file's length when null.</param>
    public static NabScore Score(ReadOnlySpan<bool> detections, IReadOnlyList<(int Start, int End)> windows, NabProfile profile, int? probation = null)
    {
        ArgumentNullException.ThrowIfNull(windows);
        ArgumentNullException.ThrowIfNull(profile);
        int rows = detections.Length;
        int skip = probation ?? ProbationRows(rows);
        for (int w = 0; w < windows.Count; w++)
        {
            (int start, int end) = windows[w];
            if (start < 0 || end < start || end >= rows || (w > 0 && start <= windows[w - 1].End))
            {
                throw new ArgumentException($"window {w} ({start}..{end}) is not an ordered, non-overlapping row range of a {rows}-row file.", nameof(windows));
            }
        }

        double maxTp = ScaledSigmoid(-1);
        double raw = 0;
        int scored = 0, found = 0, falsePositives = 0, next = 0;
        int previousEnd = -1, previousWidth = 0;
        for (int w = 0; w <= windows.Count; w++)
        {
            // The gap before window w (or after the last one): false positives.
            int gapEnd = w < windows.Count ? windows[w].Start : rows;
            for (int i = Math.Max(next, skip); i < gapEnd; i++)
            {
                if (detections[i])
                {
                    falsePositives++;
                    double position = previousEnd < 0 ? double.PositiveInfinity : Math.Abs(i - previousEnd) / (double)Math.Max(1, previousWidth - 1);
                    raw += profile.FalsePositive * (previousEnd < 0 ? -1 : ScaledSigmoid(position));
                }
            }

            if (w == windows.Count)
            {
                break;
            }

            (int start, int end) = windows[w];
            int width = end - start + 1;
            if (end >= skip)
            {
                scored++;
                double best = double.NaN;
                for (int i = Math.Max(start, skip); i <= end; i++)
                {
                    if (detections[i])
                    {
                        best = profile.TruePositive * ScaledSigmoid(-(end - i + 1) / (double)width) / maxTp;
                        break;
                    }
                }

                if (double.IsNaN(best))
                {
                    raw -= profile.FalseNegative;
                }
                else
                {
                    found++;
                    raw += best;
                }
            }

            previousEnd = end;
            previousWidth = width;
            next = end + 1;
        }

        return new NabScore(raw, -profile.FalseNegative * scored, profile.TruePositive * scored, scored, found, falsePositives);
    }

    /// <summary>
    /// Turns windows given as times into inclusive row ranges: from the first row at or after the window's start to the
    /// last row at or before its end, reading rows in file order (a clock that steps back does not move a window).
    /// Windows that hold no row are left out.
    /// </summary>
    public static List<(int Start, int End)> WindowRows(IReadOnlyList<DateTime> times, IEnumerable<(DateTime Start, DateTime End)> windows)
    {
        ArgumentNullException.ThrowIfNull(times);
        ArgumentNullException.ThrowIfNull(windows);
        var rows = new List<(int Start, int End)>();
        foreach ((DateTime from, DateTime to) in windows)
        {
            int start = -1, end = -1;
            for (int i = 0; i < times.Count; i++)
            {
                if (times[i] >= from && times[i] <= to)
                {
                    start = start < 0 ? i : start;
                    end = i;
                }
            }

            if (start >= 0)
            {
                rows.Add((start, end));
            }
        }

        return rows;
    }
}
