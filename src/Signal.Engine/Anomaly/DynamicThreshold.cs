namespace Signal.Engine.Anomaly;

/// <summary>Parameters of <see cref="DynamicThreshold"/>, with the defaults of Hundman et al. 2018 (telemanom).</summary>
public sealed class DynamicThresholdOptions
{
    /// <summary>Trailing smoothed scores the threshold is chosen from (telemanom's window h). Default 250.</summary>
    public int Window { get; set; } = 250;

    /// <summary>Smallest z of the candidates ε = μ + zσ. Default 2.</summary>
    public double MinZ { get; set; } = 2;

    /// <summary>Largest z. Default 10.</summary>
    public double MaxZ { get; set; } = 10;

    /// <summary>Step between candidate z values. Default 0.5.</summary>
    public double StepZ { get; set; } = 0.5;

    /// <summary>Pruning: the minimum percentage decrease p between consecutive anomaly maxima. Default 0.13.</summary>
    public double Pruning { get; set; } = 0.13;

    /// <summary>Checks the values; the message names the bad one.</summary>
    public void Validate()
    {
        if (Window < 10)
        {
            throw new ArgumentException($"window: {Window} is below 10 scores.");
        }

        if (!(MinZ > 0 && MaxZ >= MinZ && StepZ > 0))
        {
            throw new ArgumentException($"z range: need 0 < minZ ≤ maxZ and stepZ > 0 (got {MinZ}, {MaxZ}, {StepZ}).");
        }

        if (Pruning is < 0 or >= 1)
        {
            throw new ArgumentException($"pruning: {Pruning} is outside [0, 1).");
        }
    }
}

/// <summary>
/// The non-parametric dynamic threshold of Hundman et al. 2018 ("Detecting Spacecraft Anomalies Using LSTMs and
/// Nonparametric Dynamic Thresholding", the telemanom method), on a window of smoothed errors eₛ.
/// </summary>
/// <remarks>
/// <para><b>Threshold.</b> Among ε = μ(eₛ) + z·σ(eₛ) for z in [<see cref="DynamicThresholdOptions.MinZ"/>,
/// <see cref="DynamicThresholdOptions.MaxZ"/>], choose the one that maximises
/// (Δμ/μ(eₛ) + Δσ/σ(eₛ)) / (|eₐ| + |E_seq|²), where eₐ are the errors above ε, E_seq their runs of consecutive
/// steps, and Δμ, Δσ the drop in mean and standard deviation when eₐ is removed: the threshold that removes the most
/// spread with the fewest, most compact anomalous runs. When no candidate has errors above it, the window holds no
/// anomaly and the largest candidate is returned.</para>
/// <para><b>Pruning.</b> The maxima of the anomalous runs are sorted in decreasing order, followed by the largest error
/// below ε; where the decrease from one maximum to the next is below p (<see cref="DynamicThresholdOptions.Pruning"/>)
/// for that and every later pair, those runs are reclassified as normal — weak anomalies that do not stand out from
/// the next weaker one are noise.</para>
/// <para>Everything is computed from the window alone: fed the scores up to step t, the result never depends on later
/// steps.</para>
/// </remarks>
public static class DynamicThreshold
{
    /// <summary>Chooses the threshold for a window of smoothed scores and returns the anomalous runs that survive pruning.</summary>
    /// <param name="scores">The window (oldest first).</param>
    /// <param name="options">Parameters.</param>
    /// <returns>The threshold and the surviving runs as [start, end) indices into <paramref name="scores"/>.</returns>
    public static (double Threshold, IReadOnlyList<(int Start, int End)> Anomalies) Evaluate(ReadOnlySpan<double> scores, DynamicThresholdOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (scores.IsEmpty)
        {
            return (double.PositiveInfinity, []);
        }

        (double mean, double std) = MeanStd(scores, double.PositiveInfinity);
        if (!(std > 0))
        {
            return (mean, []);
        }

        double best = double.NegativeInfinity, chosen = mean + (options.MaxZ * std);
        for (double z = options.MinZ; z <= options.MaxZ + 1e-9; z += options.StepZ)
        {
            double epsilon = mean + (z * std);
            int above = 0, runs = 0;
            bool inRun = false;
            foreach (double e in scores)
            {
                bool high = e > epsilon;
                above += high ? 1 : 0;
                runs += high && !inRun ? 1 : 0;
                inRun = high;
            }

            if (above == 0)
            {
                continue;
            }

            (double belowMean, double belowStd) = MeanStd(scores, epsilon);
            double score = (((mean - belowMean) / mean) + ((std - belowStd) / std)) / (above + ((double)runs * runs));
            if (score > best)
            {
                best = score;
                chosen = epsilon;
            }
        }

        return (chosen, Prune(scores, chosen, options.Pruning));
    }

    private static List<(int Start, int End)> Prune(ReadOnlySpan<double> scores, double epsilon, double p)
    {
        var runs = new List<(int Start, int End, double Max)>();
        double normalMax = double.NegativeInfinity;
        for (int i = 0; i < scores.Length;)
        {
            if (scores[i] <= epsilon)
            {
                normalMax = Math.Max(normalMax, scores[i]);
                i++;
                continue;
            }

            int start = i;
            double max = double.NegativeInfinity;
            while (i < scores.Length && scores[i] > epsilon)
            {
                max = Math.Max(max, scores[i]);
                i++;
            }

            runs.Add((start, i, max));
        }

        if (runs.Count == 0)
        {
            return [];
        }

        var order = runs.OrderByDescending(r => r.Max).ToList();
        double[] maxima = [.. order.Select(r => r.Max), double.IsNegativeInfinity(normalMax) ? 0 : normalMax];

        // Keep runs up to the last position whose decrease to the next value reaches p.
        int keep = 0;
        for (int i = 0; i < order.Count; i++)
        {
            if ((maxima[i] - maxima[i + 1]) / maxima[i] >= p)
            {
                keep = i + 1;
            }
        }

        return [.. order.Take(keep).Select(r => (r.Start, r.End)).OrderBy(r => r.Start)];
    }

    private static (double Mean, double Std) MeanStd(ReadOnlySpan<double> values, double below)
    {
        double sum = 0, squares = 0;
        int n = 0;
        foreach (double v in values)
        {
            if (v < below)
            {
                sum += v;
                squares += v * v;
                n++;
            }
        }

        if (n == 0)
        {
            return (0, 0);
        }

        double mean = sum / n;
        return (mean, Math.Sqrt(Math.Max(0, (squares / n) - (mean * mean))));
    }
}
