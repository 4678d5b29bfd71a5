namespace Signal.Features.Spectra;

/// <summary>
/// Streaming regression deltas of a feature vector (HTK's formula, which is also
/// <c>scipy.signal.savgol_filter(x, 2N+1, polyorder=1, deriv=1, mode='nearest')</c>):
/// <c>d[c] = Σ_{n=1..N} n·(x[c+n] - x[c-n]) / (2·Σ n²)</c>, frames before the first repeating it.
/// </summary>
/// <remarks>
/// A stream cannot look ahead, so the delta emitted with frame t is the one centred on frame
/// <c>c = t - N</c>: deltas lag their frames by N frames, and the first N frames give zeros.
/// Holds per-stream state: one instance per stream, not thread-safe. Allocates nothing per frame.
/// </remarks>
public sealed class DeltaFilter
{
    private readonly float[] _history; // ring of the last 2N+1 vectors
    private readonly int _width;
    private readonly float _norm;
    private long _frames;

    /// <summary>Creates a filter for vectors of <paramref name="dimension"/> values.</summary>
    /// <param name="dimension">The vector length, at least 1.</param>
    /// <param name="width">N, the number of frames on each side (HTK's DELTAWINDOW, default 2).</param>
    public DeltaFilter(int dimension, int width = 2)
    {
        if (dimension < 1)
        {
            ThrowHelper.OutOfRange(nameof(dimension), dimension, "The delta filter needs vectors of at least one value.");
        }

        if (width < 1)
        {
            ThrowHelper.OutOfRange(nameof(width), width, "The delta width must be at least 1 frame.");
        }

        Dimension = dimension;
        _width = width;
        _history = new float[((2 * width) + 1) * dimension];
        float sum = 0;
        for (int n = 1; n <= width; n++)
        {
            sum += n * n;
        }

        _norm = 1f / (2f * sum);
    }

    /// <summary>The vector length.</summary>
    public int Dimension { get; }

    /// <summary>Forgets every frame (call on a gap in the stream).</summary>
    public void Reset() => _frames = 0;

    /// <summary>Writes the frame count and history (for a checkpoint).</summary>
    internal void WriteState(BinaryWriter writer)
    {
        writer.Write(_frames);
        foreach (float v in _history)
        {
            writer.Write(v);
        }
    }

    /// <summary>Reads what <see cref="WriteState"/> wrote for a filter of the same shape.</summary>
    internal void ReadState(BinaryReader reader)
    {
        long frames = reader.ReadInt64();
        if (frames < 0)
        {
            throw new FormatException($"delta filter state has {frames} frames.");
        }

        for (int i = 0; i < _history.Length; i++)
        {
            _history[i] = reader.ReadSingle();
        }

        _frames = frames;
    }

    /// <summary>Pushes the vector of frame t and writes the delta centred on frame t - N.</summary>
    /// <param name="current">The vector of the newest frame.</param>
    /// <param name="delta">Receives <see cref="Dimension"/> values: zeros for the first N frames.</param>
    public void Process(ReadOnlySpan<float> current, Span<float> delta)
    {
        if (current.Length != Dimension)
        {
            ThrowHelper.ArgumentLength(nameof(current), Dimension, current.Length);
        }

        if (delta.Length < Dimension)
        {
            ThrowHelper.ArgumentTooShort(nameof(delta), Dimension, delta.Length);
        }

        int slots = (2 * _width) + 1;
        current.CopyTo(_history.AsSpan((int)(_frames % slots) * Dimension, Dimension));

        long t = _frames++;
        Span<float> d = delta[..Dimension];
        d.Clear();
        if (t < _width)
        {
            return;
        }

        long c = t - _width;
        for (int n = 1; n <= _width; n++)
        {
            // Edge replication: frames before the first one repeat it.
            ReadOnlySpan<float> ahead = Row(c + n, slots), behind = Row(Math.Max(c - n, 0), slots);
            for (int i = 0; i < Dimension; i++)
            {
                d[i] += n * (ahead[i] - behind[i]);
            }
        }

        for (int i = 0; i < Dimension; i++)
        {
            d[i] *= _norm;
        }
    }

    // Every frame asked for lies within the last 2N+1, so it is still in the ring.
    private ReadOnlySpan<float> Row(long frame, int slots) => _history.AsSpan((int)(frame % slots) * Dimension, Dimension);
}
