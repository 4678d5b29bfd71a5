namespace Signal.Engine.Anomaly;

/// <summary>
/// Numenta's anomaly likelihood (Ahmad et al. 2017, §4): how improbable the recent raw scores of a detector are under
/// the distribution of that detector's own past scores. A noisy stream and a quiet one, or a detector whose scores run
/// in tens and one whose scores run in hundredths, get comparable likelihoods.
/// </summary>
/// <remarks>
/// <para>Each step the raw score enters a short moving average (<see cref="Average"/> steps); the averages of the last
/// <see cref="History"/> steps (older ones excluded: the distribution adapts) give a mean μ and a standard deviation σ
/// (at least <see cref="MinimumDeviation"/>, and at least 5 % of |μ|, so a flat history does not make every change
/// infinitely improbable). The tail probability of the current average is q = ½ erfc((a − μ)/(σ√2)) for a above μ,
/// and ½ otherwise. <see cref="Update"/> returns the log score −log₁₀(q)/10 capped at 1, Numenta's
/// <c>computeLogLikelihood</c>: 0.5 means q = 10⁻⁵.</para>
/// <para>During the first <see cref="Learning"/> steps the score is 0 (nothing is known yet). The current average
/// is compared with the history before it is added. Not thread-safe: one instance per stream and detector.</para>
/// </remarks>
public sealed class AnomalyLikelihood
{
    private readonly double[] _averages;
    private readonly double[] _recent;
    private double _sum, _sumSquares, _recentSum;
    private long _steps;

    /// <summary>Creates a likelihood over a history of <paramref name="history"/> steps.</summary>
    /// <param name="history">Steps of averaged scores the distribution is estimated from (older ones drop out).</param>
    /// <param name="average">Raw scores in the short moving average (1 scores each raw score alone).</param>
    /// <param name="learning">Steps before the first score (at least 2).</param>
    /// <param name="minimumDeviation">The least σ, in the raw score's units.</param>
    public AnomalyLikelihood(int history, int average, int learning, double minimumDeviation)
    {
        if (history < 2 || average < 1 || learning < 2 || !(minimumDeviation > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(history), $"history ({history}) and learning ({learning}) must be at least 2, average ({average}) at least 1, minimumDeviation ({minimumDeviation}) positive.");
        }

        _averages = new double[history];
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

    /// <summary>The last short moving average of raw scores.</summary>
    public double Current { get; private set; }

    /// <summary>Adds one raw score; returns its log score in [0, 1] (0.5 ⇔ a tail probability of 10⁻⁵).</summary>
    public double Update(double raw)
    {
        if (!double.IsFinite(raw))
        {
            raw = double.IsNaN(raw) ? 0 : double.MaxValue / 1e10;
        }

        int slot = (int)(_steps % _recent.Length);
        _recentSum += raw - _recent[slot];
        _recent[slot] = raw;
        long filled = Math.Min(_steps + 1, _recent.Length);
        double average = _recentSum / filled;
        Current = average;
        long known = Math.Min(_steps, _averages.Length);
        double score = 0;
        Tail = 1;
        if (_steps >= Learning && known >= 2)
        {
            double mean = _sum / known;
            double variance = Math.Max(0, (_sumSquares / known) - (mean * mean));
            double deviation = Math.Max(Math.Max(Math.Sqrt(variance), MinimumDeviation), 0.05 * Math.Abs(mean));
            Tail = average > mean ? 0.5 * Erfc((average - mean) / (deviation * Math.Sqrt(2))) : 0.5;
            score = Math.Min(1, -Math.Log10(Math.Max(Tail, 1e-300)) / 10);
        }

        int h = (int)(_steps % _averages.Length);
        if (_steps >= _averages.Length)
        {
            double old = _averages[h];
            _sum -= old;
            _sumSquares -= old * old;
        }

        _averages[h] = average;
        _sum += average;
        _sumSquares += average * average;
        _steps++;
        if (_steps % _averages.Length == 0)
        {
            // Re-sum now and then, so rounding in the running sums cannot drift over a long stream.
            _sum = 0;
            _sumSquares = 0;
            foreach (double a in _averages)
            {
                _sum += a;
                _sumSquares += a * a;
            }
        }

        return score;
    }

    /// <summary>Forgets everything (a stream that starts afresh).</summary>
    public void Reset()
    {
        Array.Clear(_averages);
        Array.Clear(_recent);
        _sum = _sumSquares = _recentSum = 0;
        _steps = 0;
        Tail = 1;
        Current = 0;
    }

    /// <summary>The complementary error function: Numerical Recipes' Chebyshev fit <c>erfcc</c>, fractional error below 1.2·10⁻⁷ everywhere (enough for tail probabilities read on a log scale).</summary>
    public static double Erfc(double x)
    {
        double z = Math.Abs(x);
        double t = 1 / (1 + (0.5 * z));
        ReadOnlySpan<double> c = [-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277];
        double poly = 0;
        for (int k = c.Length - 1; k >= 0; k--)
        {
            poly = (poly * t) + c[k];
        }

        double r = t * Math.Exp(-(z * z) + poly);
        return x >= 0 ? r : 2 - r;
    }
}
