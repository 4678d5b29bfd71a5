namespace Signal.Features.Filters;

/// <summary>
/// A cascade of second-order sections run on a stream of samples, in transposed direct form II
/// with double-precision state (the structure of <c>scipy.signal.sosfilt</c>), so streaming in
/// chunks gives exactly the output of one call on the whole signal.
/// </summary>
/// <remarks>Holds one channel's state: one instance per stream and channel, not thread-safe. Allocates nothing per sample.</remarks>
public sealed class SosFilter : StreamFilter
{
    private readonly Biquad[] _sections;
    private readonly double[] _z1;
    private readonly double[] _z2;

    /// <summary>Creates a filter from its sections, with zero initial state.</summary>
    /// <param name="sections">The sections in cascade order (at least one).</param>
    public SosFilter(IReadOnlyList<Biquad> sections)
    {
        ArgumentNullException.ThrowIfNull(sections);
        if (sections.Count == 0)
        {
            ThrowHelper.Argument(nameof(sections), "A filter needs at least one section.");
        }

        _sections = [.. sections];
        _z1 = new double[_sections.Length];
        _z2 = new double[_sections.Length];
    }

    /// <summary>The sections in cascade order.</summary>
    public IReadOnlyList<Biquad> Sections => _sections;

    /// <inheritdoc/>
    public override void Reset()
    {
        Array.Clear(_z1);
        Array.Clear(_z2);
    }

    /// <summary>Writes the section states (for a checkpoint).</summary>
    internal override void WriteState(BinaryWriter writer)
    {
        for (int s = 0; s < _sections.Length; s++)
        {
            writer.Write(_z1[s]);
            writer.Write(_z2[s]);
        }
    }

    /// <summary>Reads what <see cref="WriteState"/> wrote for a filter with the same sections.</summary>
    internal override void ReadState(BinaryReader reader)
    {
        for (int s = 0; s < _sections.Length; s++)
        {
            _z1[s] = reader.ReadDouble();
            _z2[s] = reader.ReadDouble();
        }
    }

    /// <inheritdoc/>
    public override double Process(double x)
    {
        for (int s = 0; s < _sections.Length; s++)
        {
            ref readonly Biquad q = ref _sections[s];
            double y = (q.B0 * x) + _z1[s];
            _z1[s] = (q.B1 * x) - (q.A1 * y) + _z2[s];
            _z2[s] = (q.B2 * x) - (q.A2 * y);
            x = y;
        }

        return x;
    }
}
