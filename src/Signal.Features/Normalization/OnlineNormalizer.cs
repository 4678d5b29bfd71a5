using Signal.Features.Pipeline;

namespace Signal.Features.Normalization;

/// <summary>
/// Learns z-score statistics of feature rows one row at a time (Welford's algorithm in double
/// precision, numerically stable for long recordings), then yields <see cref="NormalizationStats"/>
/// to store in the <see cref="FeatureSpec"/> so that training and the live engine normalise alike.
/// </summary>
/// <remarks>Not thread-safe; merge per-thread instances with <see cref="Merge"/>.</remarks>
public sealed class OnlineNormalizer
{
    private readonly double[] _mean;
    private readonly double[] _m2;

    /// <summary>Creates a normaliser for rows of <paramref name="width"/> columns.</summary>
    /// <param name="width">Columns per row, at least 1.</param>
    public OnlineNormalizer(int width)
    {
        if (width < 1)
        {
            ThrowHelper.OutOfRange(nameof(width), width, "A row has at least one column.");
        }

        _mean = new double[width];
        _m2 = new double[width];
    }

    /// <summary>Columns per row.</summary>
    public int Width => _mean.Length;

    /// <summary>Rows seen.</summary>
    public long Count { get; private set; }

    /// <summary>Adds one row; rows holding NaN or infinities are refused.</summary>
    /// <param name="row">The row, <see cref="Width"/> values.</param>
    public void Add(ReadOnlySpan<float> row)
    {
        if (row.Length != Width)
        {
            ThrowHelper.ArgumentLength(nameof(row), Width, row.Length);
        }

        for (int i = 0; i < row.Length; i++)
        {
            if (!float.IsFinite(row[i]))
            {
                ThrowHelper.Argument(nameof(row), $"Column {i} of the row is {row[i]}; statistics are learned from finite values only.");
            }
        }

        Count++;
        for (int i = 0; i < row.Length; i++)
        {
            double delta = row[i] - _mean[i];
            _mean[i] += delta / Count;
            _m2[i] += delta * (row[i] - _mean[i]);
        }
    }

    /// <summary>Adds the statistics of another normaliser (Chan et al.'s parallel update).</summary>
    /// <param name="other">Another normaliser of the same width.</param>
    public void Merge(OnlineNormalizer other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.Width != Width)
        {
            ThrowHelper.ArgumentLength(nameof(other), Width, other.Width);
        }

        if (other.Count == 0)
        {
            return;
        }

        long n = Count + other.Count;
        for (int i = 0; i < Width; i++)
        {
            double delta = other._mean[i] - _mean[i];
            _m2[i] += other._m2[i] + (delta * delta * Count * other.Count / n);
            _mean[i] += delta * other.Count / n;
        }

        Count = n;
    }

    /// <summary>The learned statistics: mean and population standard deviation of each column.</summary>
    /// <returns>The statistics.</returns>
    /// <exception cref="InvalidOperationException">No row was added.</exception>
    public NormalizationStats ToStats()
    {
        if (Count == 0)
        {
            throw new InvalidOperationException("No rows were added; normalisation statistics need data.");
        }

        return new NormalizationStats
        {
            Mean = [.. _mean.Select(m => (float)m)],
            Std = [.. _m2.Select(m2 => (float)Math.Sqrt(m2 / Count))],
        };
    }
}
