namespace Signal.Features.Filters;

/// <summary>
/// A filter run on one channel of a stream with state kept between calls (so streaming in chunks gives exactly the
/// output of one call on the whole signal): an IIR cascade (<see cref="SosFilter"/>) or an FIR (<see cref="FirFilter"/>).
/// </summary>
/// <remarks>One instance per stream and channel; not thread-safe; allocates nothing per sample.</remarks>
public abstract class StreamFilter
{
    /// <summary>Clears the state, as at the start of a new stream.</summary>
    public abstract void Reset();

    /// <summary>Filters one sample.</summary>
    /// <param name="x">The input sample.</param>
    /// <returns>The output sample.</returns>
    public abstract double Process(double x);

    /// <summary>Filters samples in place; <paramref name="stride"/> &gt; 1 filters one channel of interleaved data.</summary>
    /// <param name="samples">The samples, overwritten with the filter's output.</param>
    /// <param name="offset">The index of the first sample of this channel.</param>
    /// <param name="stride">The distance between consecutive samples of this channel (the channel count).</param>
    public void Process(Span<float> samples, int offset = 0, int stride = 1)
    {
        if (stride < 1)
        {
            ThrowHelper.OutOfRange(nameof(stride), stride, "The stride must be at least 1.");
        }

        for (int i = offset; i < samples.Length; i += stride)
        {
            samples[i] = (float)Process(samples[i]);
        }
    }

    /// <summary>Writes the state (for a checkpoint).</summary>
    internal abstract void WriteState(BinaryWriter writer);

    /// <summary>Reads what <see cref="WriteState"/> wrote for a filter of the same design.</summary>
    internal abstract void ReadState(BinaryReader reader);
}
