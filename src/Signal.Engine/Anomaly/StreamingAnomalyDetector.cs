using System.Globalization;
using System.Numerics.Tensors;

namespace Signal.Engine.Anomaly;

/// <summary>The settings of a <see cref="StreamingAnomalyDetector"/>. One default recipe serves every stream; validate once with <see cref="Validate"/>.</summary>
public sealed class AnomalyDetectorOptions
{
    /// <summary>Rows the detector learns from before it may flag. Default 750 (NAB's largest probationary period).</summary>
    public int WarmupRows { get; set; } = 750;

    /// <summary>The ensemble's score at which a row is anomalous: −log₁₀ of the combined tail probability, over 10. Default 0.45 (a combined tail probability of 10⁻⁴·⁵).</summary>
    public double Threshold { get; set; } = DefaultThreshold;

    /// <summary>The default <see cref="Threshold"/>, 0.45 (tuned once on nab-dev; one recipe for every stream).</summary>
    public const double DefaultThreshold = 0.45;

    /// <summary>Rows after a flag in which no new anomaly is flagged (the alert holds). Default 0: a fifth of <see cref="WarmupRows"/>.</summary>
    public int RefractoryRows { get; set; }

    /// <summary>Rows of each detector's past scores its likelihood is estimated from (older ones drop out). Default 4000.</summary>
    public int LikelihoodHistory { get; set; } = 4000;

    /// <summary>Raw scores in the likelihood's short moving average. Default 3.</summary>
    public int LikelihoodAverage { get; set; } = 3;

    /// <summary>Rows in the subsequences the pattern detector compares. Default 8.</summary>
    public int PatternLength { get; set; } = 8;

    /// <summary>Earlier rows the pattern detector searches for the nearest subsequence. Default 4096.</summary>
    public int PatternHistory { get; set; } = 4096;

    /// <summary>Rows over which the level statistics adapt (the time constant of their moving averages): a new level is normal after a few times this. Default 2000.</summary>
    public int AdaptationRows { get; set; } = 2000;


    /// <summary>Checks every setting; the message names the one that is wrong.</summary>
    public void Validate()
    {
        if (WarmupRows < 16)
        {
            throw new ArgumentException($"warmupRows must be at least 16 (got {WarmupRows}).");
        }

        if (!(Threshold is > 0 and < 1))
        {
            throw new ArgumentException($"threshold must be in (0, 1) (got {Threshold}).");
        }

        if (RefractoryRows < 0)
        {
            throw new ArgumentException($"refractoryRows must not be negative (0 picks a fifth of the warm-up; got {RefractoryRows}).");
        }

        if (AdaptationRows < 1)
        {
            throw new ArgumentException($"adaptationRows must be at least 1 (got {AdaptationRows}).");
        }

        if (LikelihoodHistory < 16)
        {
            throw new ArgumentException($"likelihoodHistory must be at least 16 (got {LikelihoodHistory}).");
        }

        if (LikelihoodAverage < 1 || PatternLength < 2 || PatternHistory < 2 * PatternLength)
        {
            throw new ArgumentException($"likelihoodAverage must be at least 1, patternLength at least 2 and patternHistory at least twice patternLength (got {LikelihoodAverage}, {PatternLength}, {PatternHistory}).");
        }
    }

    internal int Refractory => RefractoryRows > 0 ? RefractoryRows : Math.Max(1, WarmupRows / 5);

}

/// <summary>What the detector made of one row.</summary>
/// <param name="Score">The ensemble's score in [0, 1]: −log₁₀ of the combined tail probability of its detectors, over 10.</param>
/// <param name="Flag">True on the row an anomaly starts (onset only; the rows after it within the refractory period are not flagged again).</param>
/// <param name="Strongest">The index in <see cref="StreamingAnomalyDetector.Names"/> of the detector with the largest evidence.</param>
public readonly record struct AnomalyVerdict(double Score, bool Flag, int Strongest);

/// <summary>
/// An online anomaly detector for one slowly sampled stream (temperature, load, traffic, counts): an ensemble of cheap
/// detectors, each turned into an anomaly likelihood against its own recent history, flagged sparsely. A row is scored
/// and flagged from the rows up to it only.
/// </summary>
/// <remarks>
/// <para>Detectors (their raw scores are in units of the stream's normal variation, about 1 when normal):</para>
/// <list type="table">
/// <item><term>value</term><description>|x − μ| / σ, μ and σ moving averages of the values over <see cref="AnomalyDetectorOptions.AdaptationRows"/>: a level never seen lately.</description></item>
/// <item><term>difference</term><description>|xₜ − xₜ₋₁| over the moving mean absolute difference, or over that of the
/// row's time of day (15-minute bins) when rows carry times and it is larger: a jump, unusual even for the hour.</description></item>
/// <item><term>seasonal</term><description>|x − profile(time of day)| over the profile's mean absolute residual, when the warm-up shows a daily
/// pattern (the profile explains at least half of the variance) and rows carry times: a normal Monday morning is not an anomaly, a quiet
/// afternoon that is usually busy is.</description></item>
/// <item><term>change</term><description>a two-sided CUSUM of the standardised values (clipped to ±4) with drift ½ and leak 2 %: a small sustained shift.</description></item>
/// <item><term>pattern</term><description>the distance of the last <see cref="AnomalyDetectorOptions.PatternLength"/> rows to the nearest earlier
/// subsequence in the last <see cref="AnomalyDetectorOptions.PatternHistory"/> rows: a shape never seen before.</description></item>
/// <item><term>extreme</term><description>how far x lies beyond the largest or smallest of the last
/// <see cref="AnomalyDetectorOptions.PatternHistory"/> rows, over σ (0 inside, and within 0.01 σ of the edge): a new record.</description></item>
/// <item><term>external</term><description>raw scores given to <see cref="Step"/>, such as a recurrent forecaster's scaled error.</description></item>
/// </list>
/// <para>Each raw score passes through its own <see cref="AnomalyLikelihood"/> (fed from two fifths of the warm-up on);
/// their tail probabilities are combined by the stronger of Fisher's and Bonferroni's tests (times 2). A row
/// after the warm-up whose score reaches <see cref="AnomalyDetectorOptions.Threshold"/> is flagged unless a flag was
/// raised within the last <see cref="AnomalyDetectorOptions.RefractoryRows"/> rows: an operator (and NAB) counts
/// every flagged row, so the onset is flagged and the anomaly then holds. Every statistic is a moving one, so a new
/// level persists into normal.</para>
/// <para>Not thread-safe: one instance per stream. Steps allocate nothing.</para>
/// </remarks>
public sealed class StreamingAnomalyDetector
{
    private const int Value = 0, Difference = 1, Seasonal = 2, Change = 3, Pattern = 4, Extreme = 5, Own = 6;
    private const int DayBins = 96;
    private static readonly string[] s_own = ["value", "difference", "seasonal", "change", "pattern", "extreme"];

    private readonly AnomalyDetectorOptions _options;
    private readonly AnomalyLikelihood[] _likelihoods;
    private readonly double[] _raw;
    private readonly double[] _evidence;
    private readonly double[] _line;
    [ThreadStatic]
    private static double[]? t_distances, t_scratch; // scratch of the pattern search, shared by the detectors stepped on a thread
    private readonly double[] _profile = new double[DayBins];
    private readonly double[] _profileResidual = new double[DayBins];
    private readonly int[] _profileCount = new int[DayBins];
    private readonly double[] _jumps = new double[DayBins]; // moving mean |Δx| per time-of-day bin
    private readonly int[] _jumpCount = new int[DayBins];
    private readonly int _settle;
    private readonly MonotonicQueue _maxima, _minima;
    private long _rows;
    private long _lastFlag = long.MinValue / 2;
    private double _mean, _variance, _previous, _meanDifference, _cusumUp, _cusumDown;
    private double _firstSeconds = double.NaN, _lastSeconds = double.NaN;
    private double _warmResidual, _warmTotal, _warmMean;
    private bool _seasonal;

    /// <summary>Creates a detector for one stream.</summary>
    /// <param name="options">The settings (validated here).</param>
    /// <param name="external">Names of the raw scores given to each <see cref="Step"/> besides the value (e.g. "forecast").</param>
    public StreamingAnomalyDetector(AnomalyDetectorOptions options, params string[] external)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(external);
        options.Validate();
        _options = options;
        Names = [.. s_own, .. external];
        _likelihoods = [.. Names.Select(_ => new AnomalyLikelihood(options.LikelihoodHistory, options.LikelihoodAverage, Math.Max(2, options.WarmupRows / 2), 0.25))];
        _raw = new double[Names.Count];
        _evidence = new double[Names.Count];
        _line = new double[2 * options.PatternHistory];
        _maxima = new MonotonicQueue(options.PatternHistory);
        _minima = new MonotonicQueue(options.PatternHistory);
        // The level statistics settle over the warm-up's first rows; their raw scores would inflate the likelihoods' histories.
        _settle = Math.Max(2, options.WarmupRows * 2 / 5);
    }

    /// <summary>The detectors' names: value, difference, seasonal, change, pattern, extreme, then the external ones.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>Each detector's log-likelihood score at the last step, in the order of <see cref="Names"/>.</summary>
    public ReadOnlySpan<double> Evidence => _evidence;

    /// <summary>Rows seen.</summary>
    public long Rows => _rows;

    /// <summary>Whether the warm-up found a daily pattern (the seasonal detector is on).</summary>
    public bool IsSeasonal => _seasonal;

    /// <summary>Scores one row and decides whether an anomaly starts at it.</summary>
    /// <param name="seconds">The row's time in seconds (any epoch), or NaN when rows carry no time (no seasonal detector then).</param>
    /// <param name="value">The row's value (a non-finite value is read as the previous one).</param>
    /// <param name="external">The external raw scores, one per external name.</param>
    public AnomalyVerdict Step(double seconds, double value, ReadOnlySpan<double> external = default)
    {
        if (external.Length != _raw.Length - Own)
        {
            throw new ArgumentException($"{_raw.Length - Own} external score(s) expected, got {external.Length}.", nameof(external));
        }

        if (!double.IsFinite(value))
        {
            value = _rows == 0 ? 0 : _previous;
        }

        ScoreValue(value);
        ScoreSeasonal(seconds, value);
        ScoreExtreme(value);
        ScorePattern(value);
        external.CopyTo(_raw.AsSpan(Own));
        UpdateLevel(value);

        // Fisher's method: −2 Σ ln qᵢ is χ² with 2k degrees of freedom when the k detectors are calm and independent,
        // so several detectors that are each a little surprised add up, while one detector's noise does not.
        // Fisher's test dilutes one detector's strong surprise among k calm ones; Bonferroni's (k · the smallest q) keeps
        // it. The row takes the stronger of the two, paying a factor 2 for having looked twice.
        double strongestScore = 0, fisher = 0, minTail = 1;
        int strongest = 0;
        bool scored = _rows >= _settle;
        for (int i = 0; i < _raw.Length; i++)
        {
            _evidence[i] = scored ? _likelihoods[i].Update(_raw[i]) : 0;
            fisher += -2 * Math.Log(Math.Max(_likelihoods[i].Tail, 1e-300));
            minTail = Math.Min(minTail, _likelihoods[i].Tail);
            if (_evidence[i] > strongestScore)
            {
                strongestScore = _evidence[i];
                strongest = i;
            }
        }

        double logTail = Math.Log(2) + Math.Min(ChiSquareLogTail(fisher, _raw.Length), Math.Log(_raw.Length * Math.Max(minTail, 1e-300)));

        double score = scored ? Math.Min(1, -logTail / Math.Log(10) / 10) : 0;
        bool flag = _rows >= _options.WarmupRows && score >= _options.Threshold && _rows - _lastFlag > _options.Refractory;
        _lastFlag = flag ? _rows : _lastFlag;
        _rows++;
        return new AnomalyVerdict(score, flag, strongest);
    }

    /// <summary>ln P(X ≥ x) for X ~ χ² with 2k degrees of freedom: ln(e^(−x/2) Σ_{j&lt;k} (x/2)ʲ/j!).</summary>
    internal static double ChiSquareLogTail(double x, int k)
    {
        double term = 1, sum = 1;
        for (int j = 1; j < k; j++)
        {
            term *= x / 2 / j;
            sum += term;
        }

        return (-x / 2) + Math.Log(sum);
    }

    /// <summary>The detectors with evidence at the last step, strongest first, at most <paramref name="top"/> (allocates; for alerts and reports).</summary>
    public IReadOnlyList<(string Name, double Evidence)> TopEvidence(int top = 3) =>
        [.. Enumerable.Range(0, _evidence.Length).Where(i => _evidence[i] > 0).OrderByDescending(i => _evidence[i]).Take(top).Select(i => (Names[i], _evidence[i]))];

    /// <summary>The evidence of the last step as text, strongest first, e.g. "pattern 0.82, value 0.61" (allocates; for alerts and reports).</summary>
    public string DescribeEvidence(int top = 3) =>
        string.Join(", ", TopEvidence(top).Select(e => string.Create(CultureInfo.InvariantCulture, $"{e.Name} {e.Evidence:0.00}")));

    private double Deviation => Math.Max(Math.Sqrt(_variance), 1e-6 * (Math.Abs(_mean) + 1e-3));

    private void ScoreValue(double x)
    {
        if (_rows == 0)
        {
            Array.Clear(_raw);
            return;
        }

        double sd = Deviation;
        double z = (x - _mean) / sd;
        _raw[Value] = Math.Abs(z);
        double difference = Math.Abs(x - _previous);
        _raw[Difference] = difference / Math.Max(_meanDifference, 1e-3 * sd);
        // Clipped, so one wild row cannot hold the sums up for hundreds of rows, and only once the level is known.
        double clipped = _rows >= _settle ? Math.Clamp(z, -4, 4) : 0;
        _cusumUp = Math.Max(0, (0.98 * _cusumUp) + clipped - 0.5);
        _cusumDown = Math.Max(0, (0.98 * _cusumDown) - clipped - 0.5);
        _raw[Change] = Math.Max(_cusumUp, _cusumDown);
    }

    private void UpdateLevel(double x)
    {
        double alpha = Math.Max(1.0 / (_rows + 1), 1.0 / _options.AdaptationRows);
        if (_rows == 0)
        {
            _mean = x;
        }
        else
        {
            double difference = Math.Abs(x - _previous);
            _meanDifference += (difference - _meanDifference) * alpha;
            double delta = x - _mean;
            _mean += alpha * delta;
            _variance = (1 - alpha) * (_variance + (alpha * delta * delta));
        }

        _previous = x;
    }

    private void ScoreSeasonal(double seconds, double x)
    {
        _raw[Seasonal] = 0;
        if (!double.IsFinite(seconds))
        {
            return;
        }

        _firstSeconds = double.IsNaN(_firstSeconds) ? seconds : _firstSeconds;
        _lastSeconds = seconds;
        int bin = (int)(((seconds % 86400) + 86400) % 86400 / (86400 / DayBins)) % DayBins;
        double residual = x - _profile[bin];
        if (_rows > 0)
        {
            // A jump is judged against the jumps usual at this time of day when they are larger than the day's usual:
            // a busy hour's bursts are not anomalies (on nab-dev's tweet volumes most false positives fell in busy hours).
            double change = Math.Abs(x - _previous);
            if (_jumpCount[bin] >= 3)
            {
                _raw[Difference] = change / Math.Max(Math.Max(_jumps[bin], _meanDifference), 1e-3 * Deviation);
            }

            int visits = ++_jumpCount[bin];
            _jumps[bin] += Math.Max(1.0 / visits, 0.1) * (change - _jumps[bin]);
        }

        if (_profileCount[bin] > 0)
        {
            _raw[Seasonal] = _seasonal ? Math.Abs(residual) / Math.Max(_profileResidual[bin], 1e-3 * Deviation) : 0;
            if (_rows < _options.WarmupRows && _lastSeconds - _firstSeconds >= 86400)
            {
                // The second day on: how much of the variance the profile built so far explains.
                _warmResidual += residual * residual;
                _warmTotal += (x - _warmMean) * (x - _warmMean);
            }
        }

        if (_rows + 1 == _options.WarmupRows)
        {
            _seasonal = _warmTotal > 0 && _warmResidual < 0.5 * _warmTotal;
        }

        int n = ++_profileCount[bin];
        double alpha = Math.Max(1.0 / n, 0.2);
        _profile[bin] += alpha * (x - _profile[bin]);
        _profileResidual[bin] += (n == 1 ? 0 : alpha) * (Math.Abs(residual) - _profileResidual[bin]);
        _warmMean += (x - _warmMean) / (_rows + 1);
    }

    /// <summary>
    /// How far x lies beyond the largest and smallest of the rows before it in the pattern history: monotonic deques of
    /// row numbers (O(1) amortised per row instead of a scan of 4,096 rows).
    /// </summary>
    private void ScoreExtreme(double x)
    {
        int capacity = _line.Length / 2;
        long oldest = _rows - (capacity - 1);
        _maxima.Expire(oldest);
        _minima.Expire(oldest);
        double beyond = _maxima.Count < 2 ? 0 : Math.Max(x - _line[(int)(_maxima.Front % capacity)], _line[(int)(_minima.Front % capacity)] - x) / Deviation;

        // A hundredth of σ is a dead band: most rows score exactly 0 here, and a rounding difference must not make a row "beyond".
        _raw[Extreme] = beyond > 0.01 ? beyond : 0;
        _maxima.Push(_rows, x, _line.AsSpan(0, capacity), larger: true);
        _minima.Push(_rows, x, _line.AsSpan(0, capacity), larger: false);
    }

    /// <summary>
    /// The distance of the last m rows to the nearest earlier m-row subsequence that does not overlap them. Each row is
    /// kept twice (at p and p + capacity), so the last capacity rows are one contiguous span; the distance profile is
    /// built with <see cref="TensorPrimitives"/> one lag at a time (m passes over the candidates, vectorised, no
    /// allocation): about 10× faster than a scalar scan of each candidate with early abandoning, measured in
    /// AnomalyDetectorBenchmarks.
    /// </summary>
    private void ScorePattern(double x)
    {
        int m = _options.PatternLength, capacity = _line.Length / 2;
        int slot = (int)(_rows % capacity);
        _line[slot] = x;
        _line[slot + capacity] = x;
        _raw[Pattern] = 0;
        int length = (int)Math.Min(_rows + 1, capacity);
        int candidates = length - (2 * m) + 1;
        if (candidates <= 0)
        {
            return;
        }

        // y[0..length-1]: the last rows, oldest first, y[length-1] = x. Candidate c ends at y[c + m - 1].
        ReadOnlySpan<double> y = _line.AsSpan((int)((_rows - length + 1) % capacity), length);
        if (t_distances is null || t_distances.Length < candidates)
        {
            t_distances = new double[capacity];
            t_scratch = new double[capacity];
        }

        Span<double> distances = t_distances.AsSpan(0, candidates), scratch = t_scratch.AsSpan(0, candidates);
        distances.Clear();
        for (int k = 0; k < m; k++)
        {
            TensorPrimitives.Subtract(y.Slice(m - 1 - k, candidates), y[length - 1 - k], scratch);
            TensorPrimitives.MultiplyAdd(scratch, scratch, distances, distances);
        }

        _raw[Pattern] = Math.Sqrt(Math.Max(0, TensorPrimitives.Min(distances)) / m) / Deviation;
    }

    /// <summary>Row numbers whose values decrease (maxima) or increase (minima) from front to back: the front is the window's extreme.</summary>
    private sealed class MonotonicQueue(int capacity)
    {
        private readonly long[] _rows = new long[capacity + 1];
        private int _head, _count;

        public int Count => _count;

        public long Front => _rows[_head];

        public void Expire(long oldest)
        {
            while (_count > 0 && _rows[_head] < oldest)
            {
                _head = (_head + 1) % _rows.Length;
                _count--;
            }
        }

        public void Push(long row, double value, ReadOnlySpan<double> history, bool larger)
        {
            while (_count > 0)
            {
                double back = history[(int)(_rows[(_head + _count - 1) % _rows.Length] % history.Length)];
                if (larger ? back > value : back < value)
                {
                    break;
                }

                _count--;
            }

            _rows[(_head + _count) % _rows.Length] = row;
            _count++;
        }
    }
}
