using System.Numerics.Tensors;

namespace Signal.Features.Framing;

/// <summary>Options of a <see cref="Framer"/>.</summary>
/// <param name="FrameLength">Samples per frame and channel, at least 1.</param>
/// <param name="Hop">Samples between the starts of consecutive frames, 1 to <paramref name="FrameLength"/> (equal means no overlap).</param>
/// <param name="Channels">Channels per sample (3 for a 3-axis accelerometer), at least 1.</param>
/// <param name="RemoveDc">Subtract each channel's frame mean from the frame.</param>
public sealed record FramerOptions(int FrameLength, int Hop, int Channels = 1, bool RemoveDc = false)
{
    /// <summary>Returns null when the options are valid, else a message naming the field at fault.</summary>
    /// <returns>Null or the problem.</returns>
    public string? Validate()
    {
        if (FrameLength < 1)
        {
            return $"FrameLength is {FrameLength}; a frame holds at least one sample.";
        }

        if (Hop < 1)
        {
            return $"Hop is {Hop}; the hop must be at least one sample.";
        }

        if (Hop > FrameLength)
        {
            return $"Hop ({Hop}) is greater than FrameLength ({FrameLength}); samples between frames would be skipped.";
        }

        return Channels < 1 ? $"Channels is {Channels}; a stream has at least one channel." : null;
    }
}

/// <summary>
/// Cuts a stream of interleaved multichannel samples into overlapping frames. Frames start at
/// sample 0 with no centring pad and one is ready as soon as it is complete; afterwards every
/// <c>Hop</c> samples complete the next. A frame holds all channels, channel-major:
/// <c>frame[c·FrameLength + i]</c> is sample i of channel c.
/// </summary>
/// <remarks>
/// Streaming equals offline: any chunking of the same samples gives the same frames.
/// Holds one stream's state: not thread-safe. Allocates nothing after construction.
/// <code>
/// while (!samples.IsEmpty)
/// {
///     samples = samples[framer.Append(samples)..];
///     if (framer.IsFrameReady) framer.ReadFrame(frame);
/// }
/// </code>
/// </remarks>
public sealed class Framer
{
    private readonly float[] _buffer; // channel-major, FrameLength per channel
    private int _filled;

    /// <summary>Creates a framer.</summary>
    /// <param name="options">The framing options.</param>
    /// <exception cref="ArgumentException">The options are invalid; the message names the field.</exception>
    public Framer(FramerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        string? problem = options.Validate();
        if (problem is not null)
        {
            ThrowHelper.Argument(nameof(options), problem);
        }

        Options = options;
        _buffer = new float[options.FrameLength * options.Channels];
    }

    /// <summary>The framing options.</summary>
    public FramerOptions Options { get; }

    /// <summary>The number of floats in a frame: FrameLength × Channels.</summary>
    public int FrameSize => _buffer.Length;

    /// <summary>True when a complete frame waits to be read; <see cref="Append"/> takes nothing until it is.</summary>
    public bool IsFrameReady => _filled == Options.FrameLength;

    /// <summary>Multichannel samples still needed to complete the next frame.</summary>
    public int SamplesNeeded => Options.FrameLength - _filled;

    /// <summary>Appends interleaved samples until the next frame is complete.</summary>
    /// <param name="interleaved">Whole multichannel samples: <c>[s0c0, s0c1, .., s1c0, ..]</c>; its length is a multiple of the channel count.</param>
    /// <returns>The number of floats consumed (a multiple of the channel count); 0 while a frame waits to be read.</returns>
    public int Append(ReadOnlySpan<float> interleaved)
    {
        int channels = Options.Channels;
        if (interleaved.Length % channels != 0)
        {
            ThrowHelper.Argument(nameof(interleaved),
                $"'interleaved' holds {interleaved.Length} floats, not a whole number of {channels}-channel samples.");
        }

        int take = Math.Min(SamplesNeeded, interleaved.Length / channels);
        int frameLength = Options.FrameLength;
        if (channels == 1)
        {
            interleaved[..take].CopyTo(_buffer.AsSpan(_filled));
        }
        else
        {
            for (int c = 0; c < channels; c++)
            {
                Span<float> dst = _buffer.AsSpan((c * frameLength) + _filled, take);
                for (int i = 0; i < take; i++)
                {
                    dst[i] = interleaved[(i * channels) + c];
                }
            }
        }

        _filled += take;
        return take * channels;
    }

    /// <summary>Copies the ready frame into <paramref name="frame"/> and advances the stream by one hop.</summary>
    /// <param name="frame">Receives <see cref="FrameSize"/> floats, channel-major; DC removed per channel when configured.</param>
    /// <exception cref="InvalidOperationException">No frame is ready.</exception>
    public void ReadFrame(Span<float> frame)
    {
        if (!IsFrameReady)
        {
            throw new InvalidOperationException($"No frame is ready: {SamplesNeeded} more samples are needed.");
        }

        if (frame.Length < FrameSize)
        {
            ThrowHelper.ArgumentTooShort(nameof(frame), FrameSize, frame.Length);
        }

        int frameLength = Options.FrameLength, hop = Options.Hop;
        _buffer.CopyTo(frame);
        for (int c = 0; c < Options.Channels; c++)
        {
            if (Options.RemoveDc)
            {
                Span<float> channel = frame.Slice(c * frameLength, frameLength);
                TensorPrimitives.Subtract(channel, TensorPrimitives.Sum(channel) / frameLength, channel);
            }

            // Keep the overlap for the next frame.
            _buffer.AsSpan((c * frameLength) + hop, frameLength - hop).CopyTo(_buffer.AsSpan(c * frameLength));
        }

        _filled = frameLength - hop;
    }

    /// <summary>Forgets buffered samples, as at the start of a new stream (call on a gap).</summary>
    public void Reset() => _filled = 0;

    /// <summary>Writes the buffered samples (for a checkpoint; see <see cref="Pipeline.FeatureExtractor.WriteState"/>).</summary>
    internal void WriteState(BinaryWriter writer)
    {
        writer.Write(_filled);
        for (int c = 0; c < Options.Channels; c++)
        {
            foreach (float v in _buffer.AsSpan(c * Options.FrameLength, _filled))
            {
                writer.Write(v);
            }
        }
    }

    /// <summary>Reads what <see cref="WriteState"/> wrote for a framer with the same options.</summary>
    internal void ReadState(BinaryReader reader)
    {
        int filled = reader.ReadInt32();
        if (filled < 0 || filled > Options.FrameLength)
        {
            throw new FormatException($"framer state holds {filled} samples; frames here are {Options.FrameLength} long.");
        }

        for (int c = 0; c < Options.Channels; c++)
        {
            Span<float> channel = _buffer.AsSpan(c * Options.FrameLength, filled);
            for (int i = 0; i < filled; i++)
            {
                channel[i] = reader.ReadSingle();
            }
        }

        _filled = filled;
    }
}
