namespace Signal.Features.Filters;

/// <summary>
/// A finite impulse response filter, <c>y[n] = Σₖ h[k]·x[n−k]</c> (what <c>scipy.signal.lfilter(h, 1, x)</c> computes),
/// with the last taps − 1 inputs kept in double precision between calls.
/// </summary>
/// <remarks>One instance per stream and channel; not thread-safe; allocates nothing per sample.</remarks>
public sealed class FirFilter : StreamFilter
{
    private readonly double[] _taps;
    private readonly double[] _history; // the last inputs, newest at _position, twice over so a window is contiguous
    private int _position;

    /// <summary>Creates a filter from its impulse response, with zero initial state.</summary>
    /// <param name="taps">h[0], h[1], … (at least one, finite).</param>
    public FirFilter(IReadOnlyList<double> taps)
    {
        ArgumentNullException.ThrowIfNull(taps);
        if (taps.Count == 0 || taps.Any(t => !double.IsFinite(t)))
        {
            ThrowHelper.Argument(nameof(taps), "An FIR filter needs at least one finite tap.");
        }

        _taps = [.. taps];
        _history = new double[2 * _taps.Length];
    }

    /// <summary>The impulse response h[0], h[1], ….</summary>
    public IReadOnlyList<double> Taps => _taps;

    /// <inheritdoc/>
    public override void Reset()
    {
        Array.Clear(_history);
        _position = 0;
    }

    /// <inheritdoc/>
    public override double Process(double x)
    {
        // The ring holds each input twice (at p and p + n), so x[n−k] for k = 0 … n−1 is one contiguous run.
        int n = _taps.Length;
        _position = _position == 0 ? n - 1 : _position - 1;
        _history[_position] = x;
        _history[_position + n] = x;
        double y = 0;
        ReadOnlySpan<double> window = _history.AsSpan(_position, n);
        for (int k = 0; k < n; k++)
        {
            y += _taps[k] * window[k];
        }

        return y;
    }

    /// <inheritdoc/>
    internal override void WriteState(BinaryWriter writer)
    {
        writer.Write(_position);
        for (int i = 0; i < _taps.Length; i++)
        {
            writer.Write(_history[i]);
        }
    }

    /// <inheritdoc/>
    internal override void ReadState(BinaryReader reader)
    {
        int position = reader.ReadInt32();
        if (position < 0 || position >= _taps.Length)
        {
            throw new FormatException($"the FIR state says its position is {position}; the filter has {_taps.Length} taps.");
        }

        _position = position;
        for (int i = 0; i < _taps.Length; i++)
        {
            _history[i] = _history[i + _taps.Length] = reader.ReadDouble();
        }
    }
}
