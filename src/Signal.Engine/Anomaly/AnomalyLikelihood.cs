namespace Signal.Engine.Anomaly;

/// <summary>
/// An anomaly likelihood after Numenta's (Ahmad et al. 2017, §4): how improbable the recent raw scores of a detector
/// are under the distribution of that detector's own past scores. A noisy stream and a quiet one, or a detector whose
/// scores run in tens and one whose scores run in hundredths, get comparable likelihoods.
/// </summary>
/// <remarks>
/// <para>Each step the raw score enters a short moving average (<see cref="Average"/> steps, summed afresh). The
/// averages of the last <see cref="History"/> steps (older ones drop out: the distribution adapts) are kept sorted. The
/// tail probability q of the current average a: below their 90th percentile u, the share of the history at or above a
/// (at least 0.1); above u, an exponential tail 0.1 · e^(−(a − u)/β) with β the mean excess of the history over u (at
/// least <see cref="MinimumDeviation"/> and 5 % of u), the peaks-over-threshold model, which goes on past the largest
/// score seen. Numenta fits a normal distribution instead; raw scores are heavy-tailed, and with a normal fit a row in
/// every few hundred looked like a 10⁻⁵ event. <see cref="Update"/> returns the log score −log₁₀(q)/10 capped at 1, as
/// Numenta's <c>computeLogLikelihood</c>: 0.5 means q = 10⁻⁵.</para>
/// <para>During the first <see cref="Learning"/> steps (and until 10 averages are known) the score is 0 and q = 1. The
/// current average is compared with the history before it is added. Not thread-safe: one instance per stream and
/// detector.</para>
/// </remarks>
public sealed class AnomalyLikelihood
{
    private readonly float[] _averages; // single precision: a rank and a mean excess need no more, and a stream's detectors keep 2 × 6 of these
    private readonly double[] _recent;
    private readonly float[] _sorted;
    private int _count;
    private long _steps;

    /// <summary>Creates a likelihood over a history of <paramref name="history"/> steps.</summary>
    /// <param name="history">Steps of averaged scores the distribution is estimated from (older ones drop out).</param>
    /// <param name="average">Raw scores in the short moving average (1 scores each raw score alone).</param>
    /// <param name="learning">Steps before the first score (at least 2).</param>
    /// <param name="minimumDeviation">The least β of the exponential tail, in the raw score's units.</param>
    public AnomalyLikelihood(int history, int average, int learning, double minimumDeviation)
    {
        if (history < 2 || average < 1 || learning < 2 || !(minimumDeviation > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(history), $"history ({history}) and learning ({learning}) must be at least 2, average ({average}) at least 1, minimumDeviation ({minimumDeviation}) positive.");
        }

        _averages = new float[history];
        _sorted = new float[history];
        _recent = new double[average];
        Learning = learning;
        MinimumDeviation = minimumDeviation;
    }

    /// <summary>Steps of averaged scores the distribution is estimated from.</summary>
    public int History => _averages.Length;

    /// <summary>Raw scores in the short moving average.</summary>
    public int Average => _recent.Length;

    /// <summary>Steps before the first score.</summary>
    public int Learning { get; }

    /// <summary>The least standard deviation of the averaged scores.</summary>
    public double MinimumDeviation { get; }

    /// <summary>The last tail probability q (1 before the first score).</summary>
    public double Tail { get; private set; } = 1;

    /// <summary>Adds one raw score; returns its log score in [0, 1] (0.5 ⇔ a tail probability of 10⁻⁵).</summary>
    public double Update(double raw)
    {
        if (!double.IsFinite(raw))
        {
            raw = double.IsNaN(raw) ? 0 : 1e30;
        }

        // Summed afresh (a few values): a running sum would leave rounding dust after a burst, and dust above a history of
        // exact zeros reads as an exceedance.
        _recent[(int)(_steps % _recent.Length)] = raw;
        long filled = Math.Min(_steps + 1, _recent.Length);
        double sum = 0;
        for (int i = 0; i < filled; i++)
        {
            sum += _recent[i];
        }

        double average = sum / filled;
        int known = _count;
        double score = 0;
        Tail = 1;
        if (_steps >= Learning && known >= 10)
        {
            Tail = TailProbability(average);
            score = Math.Min(1, -Math.Log10(Math.Max(Tail, 1e-300)) / 10);
        }

        if (_steps >= _averages.Length)
        {
            Remove(_averages[(int)(_steps % _averages.Length)]);
        }

        _averages[(int)(_steps % _averages.Length)] = (float)average;
        Insert((float)average);
        _steps++;
        return score;
    }

    /// <summary>
    /// P(A ≥ a) under the history: the empirical share below the 90th percentile u; above it, 0.1 · exp(−(a − u)/β) with β
    /// the mean excess over u (at least <see cref="MinimumDeviation"/> and 5 % of u): the exponential tail of peaks over a
    /// threshold, which goes on past the largest score seen (an empirical share cannot).
    /// </summary>
    private double TailProbability(double a)
    {
        int n = _count;
        int k = (int)(0.9 * n);
        double u = _sorted[k];
        if (a <= u)
        {
            int below = LowerBound(a);
            return Math.Max(0.1, 1 - ((double)below / n));
        }

        double excess = 0;
        for (int i = k; i < n; i++)
        {
            excess += _sorted[i] - u;
        }

        double beta = Math.Max(Math.Max(excess / (n - k), MinimumDeviation), 0.05 * Math.Abs(u));
        return (n - k) / (double)n * Math.Exp(-(a - u) / beta);
    }

    private int LowerBound(double value)
    {
        int lo = 0, hi = _count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_sorted[mid] < value)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }

    private void Insert(float value)
    {
        int at = LowerBound(value);
        Array.Copy(_sorted, at, _sorted, at + 1, _count - at);
        _sorted[at] = value;
        _count++;
    }

    private void Remove(float value)
    {
        int at = LowerBound(value);
        Array.Copy(_sorted, at + 1, _sorted, at, _count - at - 1);
        _count--;
    }

    /// <summary>Forgets everything (a stream that starts afresh).</summary>
    public void Reset()
    {
        Array.Clear(_averages);
        Array.Clear(_recent);
        _count = 0;
        _steps = 0;
        Tail = 1;
    }
}
