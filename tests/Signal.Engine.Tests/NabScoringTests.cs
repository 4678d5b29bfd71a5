using Signal.Engine.Anomaly;
using Signal.Engine.Evaluation;

namespace Signal.Engine.Tests;

/// <summary>
/// NAB v1.1 scoring on cases small enough to work out by hand (the expected values below were computed from NAB's
/// formulas with Python's math module, not by this code): σ(x) = 2/(1 + e^(5x)) − 1, σ(−1) = 0.9866142981514305.
/// </summary>
public sealed class NabScoringTests
{
    private static bool[] Flags(int rows, params int[] at)
    {
        var flags = new bool[rows];
        foreach (int i in at)
        {
            flags[i] = true;
        }

        return flags;
    }

    [Fact]
    public void The_probationary_period_is_15_percent_capped_at_750_rows()
    {
        Assert.Equal(3, NabScoring.ProbationRows(20));
        Assert.Equal(604, NabScoring.ProbationRows(4032));
        Assert.Equal(750, NabScoring.ProbationRows(15_902));
        Assert.Equal(0.9866142981514305, NabScoring.ScaledSigmoid(-1), 15);
        Assert.Equal(-1, NabScoring.ScaledSigmoid(3.01));
    }

    [Fact]
    public void A_detection_on_a_windows_first_row_earns_the_whole_true_positive_reward()
    {
        NabScore s = NabScoring.Score(Flags(20, 10), [(10, 14)], NabProfile.Standard);
        Assert.Equal(1.0, s.Raw, 12);
        Assert.Equal((-1.0, 1.0, 1, 1, 0), (s.Null, s.Perfect, s.Windows, s.TruePositives, s.FalsePositives));
        Assert.Equal(100.0, s.Normalized, 9);
    }

    [Fact]
    public void Only_the_earliest_detection_in_a_window_counts_and_later_ones_cost_nothing()
    {
        // Row 12 of window 10..14 (width 5): x = −(14 − 12 + 1)/5 = −0.6, σ(−0.6)/σ(−1) = 0.9174286804284079.
        NabScore s = NabScoring.Score(Flags(20, 12, 13, 14), [(10, 14)], NabProfile.Standard);
        Assert.Equal(0.9174286804284079, s.Raw, 12);
        Assert.Equal(0, s.FalsePositives);
        // The last row of the window: x = −1/5, 0.46838684390227814.
        Assert.Equal(0.46838684390227814, NabScoring.Score(Flags(20, 14), [(10, 14)], NabProfile.Standard).Raw, 12);
    }

    [Fact]
    public void False_positives_cost_by_their_distance_after_the_window_before_them()
    {
        // Row 5: no window before it, −A_FP. Row 16: |16 − 14| / (5 − 1) = 0.5, A_FP · σ(0.5) = −0.09331120039532642.
        NabScore standard = NabScoring.Score(Flags(20, 5, 16), [(10, 14)], NabProfile.Standard);
        Assert.Equal(-1 - 0.11 - 0.09331120039532642, standard.Raw, 12);
        Assert.Equal((2, 0, 1), (standard.FalsePositives, standard.TruePositives, standard.FalseNegatives));
        Assert.Equal(100 * (standard.Raw + 1) / 2, standard.Normalized, 12);
        NabScore lowFp = NabScoring.Score(Flags(20, 5, 16), [(10, 14)], NabProfile.RewardLowFalsePositives);
        Assert.Equal(-1 - 0.22 - 0.18662240079065284, lowFp.Raw, 12);
        NabScore lowFn = NabScoring.Score(Flags(20, 5, 16), [(10, 14)], NabProfile.RewardLowFalseNegatives);
        Assert.Equal(-2 - 0.11 - 0.09331120039532642, lowFn.Raw, 12);
        Assert.Equal((-2.0, 1.0), (lowFn.Null, lowFn.Perfect));
    }

    [Fact]
    public void Detections_in_the_probationary_period_count_for_nothing_and_windows_inside_it_are_not_scored()
    {
        // 20 rows: rows 0-2 are probationary. The flag at row 1 is neither a false positive nor a find of window 0..2.
        NabScore s = NabScoring.Score(Flags(20, 1), [(0, 2), (10, 14)], NabProfile.Standard);
        Assert.Equal((1, 0, 0), (s.Windows, s.TruePositives, s.FalsePositives));
        Assert.Equal(-1.0, s.Raw, 12);
        Assert.Equal(0.0, s.Normalized, 12);
    }

    [Fact]
    public void A_corpus_is_normalised_on_its_summed_scores_and_a_file_without_windows_only_costs()
    {
        NabScore found = NabScoring.Score(Flags(20, 10), [(10, 14)], NabProfile.Standard);
        NabScore quiet = NabScoring.Score(Flags(20, 8), [], NabProfile.Standard);
        Assert.Equal(-0.11, quiet.Raw, 12);
        Assert.True(double.IsNaN(quiet.Normalized));
        Assert.Equal(100 * (1 - 0.11 + 1) / 2, NabScore.NormalizedTotal([found, quiet]), 12);
    }

    [Fact]
    public void Windows_that_are_not_ordered_row_ranges_are_refused()
    {
        Assert.Throws<ArgumentException>(() => NabScoring.Score(Flags(20), [(10, 14), (12, 16)], NabProfile.Standard));
        Assert.Throws<ArgumentException>(() => NabScoring.Score(Flags(20), [(15, 25)], NabProfile.Standard));
    }

    [Fact]
    public void Window_times_become_the_rows_inside_them_in_file_order()
    {
        var t0 = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        DateTime[] times = [.. Enumerable.Range(0, 10).Select(i => t0.AddMinutes(5 * i))];
        List<(int, int)> rows = NabScoring.WindowRows(times, [(t0.AddMinutes(7), t0.AddMinutes(20)), (t0.AddHours(5), t0.AddHours(6))]);
        Assert.Equal([(2, 4)], rows);
    }

    [Fact]
    public void The_likelihood_fits_an_exponential_tail_above_the_90th_percentile()
    {
        // History k/1024 for k = 0 … 999 (exact in single precision, as the history is kept): u = 900/1024, mean excess
        // β = 4950/102400. For 1.2: q = 0.1 · e^(−(1.2 − u)/β).
        var likelihood = new AnomalyLikelihood(history: 1000, average: 1, learning: 2, minimumDeviation: 0.01);
        var order = new Random(3);
        foreach (int i in Enumerable.Range(0, 1000).OrderBy(_ => order.Next()))
        {
            likelihood.Update(i / 1024.0);
        }

        double score = likelihood.Update(1.2);
        Assert.Equal(0.00013038625305083, likelihood.Tail, 12);
        Assert.Equal(0.3884768194945236, score, 9);
        likelihood.Update(0.5);
        Assert.Equal(1 - (512 / 1000.0), likelihood.Tail, 2); // below u: the share of the history at or above 0.5 (about 488 of 1,000)
    }

    [Fact]
    public void Fishers_combination_uses_the_chi_square_tail_with_twice_the_detectors_degrees_of_freedom()
    {
        // k = 2: P(χ²₄ ≥ 10) = e^(−5)(1 + 5).
        Assert.Equal(Math.Log(Math.Exp(-5) * 6), StreamingAnomalyDetector.ChiSquareLogTail(10, 2), 12);
        Assert.Equal(-5.0, StreamingAnomalyDetector.ChiSquareLogTail(10, 1), 12);
    }
}
