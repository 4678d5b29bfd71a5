using System.Numerics.Tensors;
using Signal.Features.Fft;
using Signal.Features.Filters;
using Signal.Features.Framing;
using Signal.Features.Spectra;
using Signal.Features.Statistics;

namespace Signal.Features.Pipeline;

/// <summary>
/// One stream's feature state: pre-filters, framer, previous spectrum (flux), delta history and
/// scratch. Samples pushed in chunks of any size give exactly the rows of one offline call.
/// </summary>
/// <remarks>
/// <para>Not thread-safe: one instance per stream, used by one thread at a time. After construction
/// <see cref="Process"/> and <see cref="ExtractFrame"/> allocate nothing.</para>
/// <para>Non-finite samples: with the spec's <c>nonFinite: "reject"</c> (the default) a chunk holding
/// NaN or ±∞ is refused whole with a <see cref="NonFiniteSampleException"/> that names the sample and
/// channel, and nothing of it is consumed (earlier chunks stay accepted); with <c>"hold"</c> each is
/// replaced by the channel's previous sample (0 at the start) and counted in <see cref="NonFiniteSamples"/>.</para>
/// </remarks>
public sealed class FeatureExtractor
{
    private readonly FeaturePipeline _pipeline;
    private readonly Framer _framer;
    private readonly StreamFilter[][] _filters;      // [channel][filter]
    private readonly float[] _lastSample;         // per channel, for the hold policy
    private readonly bool _hold;
    private readonly FeatureWorkspace _work;      // scratch, possibly shared with other streams of one thread
    private readonly float[][] _previousPower;    // per channel, for the flux
    private readonly DeltaFilter?[][] _deltas;    // [channel][op]
    private bool _hasPrevious;
    private readonly PolyphaseResampler? _resampler; // spec.Resample: input rate → spec.SampleRate, before filters and framing
    private readonly float[] _resampled = [];        // resampled samples not yet framed
    private readonly float[] _repaired = [];         // a copy of the input repaired under 'hold' before resampling
    private int _resampledCount, _resampledOffset;
    private readonly int _resampleChunk;             // input samples per call to the resampler: about 1,024 samples in or out

    /// <summary>Samples (per channel) one call to the resampler takes or gives at most, about: bounds its scratch buffers per stream.</summary>
    private const int ResampleChunk = 1024;

    internal FeatureExtractor(FeaturePipeline pipeline, FeatureWorkspace? workspace)
    {
        if (workspace is not null && workspace.Pipeline != pipeline)
        {
            ThrowHelper.Argument(nameof(workspace), "the workspace belongs to another pipeline.");
        }

        _pipeline = pipeline;
        _work = workspace ?? new FeatureWorkspace(pipeline);
        FeatureSpec spec = pipeline.Spec;
        _framer = new Framer(new FramerOptions(spec.FrameLength, spec.Hop, spec.Channels, spec.RemoveDc));
        _hold = spec.NonFinite == "hold";
        _lastSample = new float[spec.Channels];
        _filters = new StreamFilter[spec.Channels][];
        for (int c = 0; c < spec.Channels; c++)
        {
            _filters[c] = [.. spec.Filters.Select(f => f.CreateFilter(spec.SampleRate))];
        }

        int bins = (pipeline.FftLength / 2) + 1;
        _previousPower = new float[spec.Channels][];
        for (int c = 0; c < spec.Channels; c++)
        {
            _previousPower[c] = pipeline.NeedsFlux ? new float[bins] : [];
        }

        if (spec.Resample is { } resample)
        {
            _resampler = new PolyphaseResampler((int)resample.InputRate, (int)spec.SampleRate, spec.Channels);
            // Upsampling by a large factor (up to 1000) would otherwise need a buffer of a million samples per stream.
            _resampleChunk = (int)Math.Max(1, Math.Min(ResampleChunk, (long)ResampleChunk * _resampler.Down / _resampler.Up));
            _resampled = new float[_resampler.MaxOutputFor(_resampleChunk) * spec.Channels];
            _repaired = _hold ? new float[_resampleChunk * spec.Channels] : [];
        }

        _deltas = new DeltaFilter?[spec.Channels][];
        for (int c = 0; c < spec.Channels; c++)
        {
            _deltas[c] = [.. pipeline.Ops.Select(op => op.Kind == FeatureKind.MfccDelta ? new DeltaFilter(op.Count, op.DeltaWidth) : null)];
        }
    }

    /// <summary>The pipeline this stream belongs to.</summary>
    public FeaturePipeline Pipeline => _pipeline;

    /// <summary>Rows emitted since creation or the last <see cref="Reset"/>.</summary>
    public long FramesEmitted { get; private set; }

    /// <summary>Non-finite samples replaced under the <c>hold</c> policy.</summary>
    public long NonFiniteSamples { get; private set; }

    /// <summary>
    /// Pushes interleaved samples and writes one row of <see cref="FeaturePipeline.OutputLength"/> features
    /// per completed frame into <paramref name="destination"/>. Stops early when <paramref name="destination"/>
    /// has no room for the next row; call again with the rest of the samples.
    /// </summary>
    /// <param name="interleaved">Whole multichannel samples, <c>[s0c0, s0c1, .., s1c0, ..]</c>.</param>
    /// <param name="destination">Room for rows, row after row.</param>
    /// <param name="consumed">The number of floats of <paramref name="interleaved"/> consumed.</param>
    /// <returns>The number of rows written.</returns>
    /// <exception cref="NonFiniteSampleException">A sample is NaN or infinite under the <c>reject</c> policy; nothing of this chunk was consumed.</exception>
    public int Process(ReadOnlySpan<float> interleaved, Span<float> destination, out int consumed)
    {
        int channels = _pipeline.Spec.Channels;
        if (interleaved.Length % channels != 0)
        {
            ThrowHelper.Argument(nameof(interleaved), $"'interleaved' holds {interleaved.Length} floats, not a whole number of {channels}-channel samples.");
        }

        // IsFiniteAll is false for an empty span, hence the length check.
        if (!_hold && !interleaved.IsEmpty && !TensorPrimitives.IsFiniteAll(interleaved))
        {
            int bad = IndexOfNonFinite(interleaved);
            throw new NonFiniteSampleException(bad / channels, bad % channels, interleaved[bad]);
        }

        int rowLength = _pipeline.OutputLength;
        if (_resampler is not null)
        {
            return ProcessResampled(interleaved, destination, out consumed);
        }

        bool direct = !_hold && _pipeline.Spec.Filters.Count == 0;
        int rows = 0;
        consumed = 0;
        while (true)
        {
            if (_framer.IsFrameReady)
            {
                if (destination.Length < (rows + 1) * rowLength)
                {
                    break;
                }

                _framer.ReadFrame(_work.Frame);
                ExtractFrame(_work.Frame, destination.Slice(rows * rowLength, rowLength));
                rows++;
                continue;
            }

            if (consumed == interleaved.Length)
            {
                break;
            }

            int take = Math.Min(_framer.SamplesNeeded * channels, interleaved.Length - consumed);
            ReadOnlySpan<float> chunk = interleaved.Slice(consumed, take);
            if (!direct)
            {
                Span<float> staged = _work.Staging.AsSpan(0, take);
                chunk.CopyTo(staged);
                Condition(staged, channels);
                chunk = staged;
            }

            consumed += _framer.Append(chunk);
        }

        return rows;
    }

    /// <summary>
    /// <see cref="Process"/> with resampling: input (repaired under <c>hold</c>) → resampler → filters → framer. The
    /// resampled samples not yet framed wait in a buffer of their own, so a full destination never loses any.
    /// </summary>
    private int ProcessResampled(ReadOnlySpan<float> interleaved, Span<float> destination, out int consumed)
    {
        int channels = _pipeline.Spec.Channels, rowLength = _pipeline.OutputLength, rows = 0;
        consumed = 0;
        while (true)
        {
            if (_framer.IsFrameReady)
            {
                if (destination.Length < (rows + 1) * rowLength)
                {
                    return rows;
                }

                _framer.ReadFrame(_work.Frame);
                ExtractFrame(_work.Frame, destination.Slice(rows * rowLength, rowLength));
                rows++;
                continue;
            }

            if (_resampledOffset < _resampledCount)
            {
                int take = Math.Min(_framer.SamplesNeeded * channels, _resampledCount - _resampledOffset);
                _resampledOffset += _framer.Append(_resampled.AsSpan(_resampledOffset, take));
                continue;
            }

            if (consumed == interleaved.Length)
            {
                return rows;
            }

            ReadOnlySpan<float> source = interleaved.Slice(consumed, Math.Min(_resampleChunk * channels, interleaved.Length - consumed));
            if (_hold)
            {
                Span<float> repaired = _repaired.AsSpan(0, source.Length);
                source.CopyTo(repaired);
                Repair(repaired, channels);
                source = repaired;
            }

            // The buffer holds every output of a chunk, so the resampler always takes all of it.
            _resampledCount = _resampler!.Process(source, _resampled, out int used);
            _resampledOffset = 0;
            consumed += used;
            Filter(_resampled.AsSpan(0, _resampledCount), channels);
        }
    }

    /// <summary>
    /// Computes the features of one complete frame (channel-major, <see cref="FeaturePipeline.FrameSize"/> floats),
    /// bypassing the framer and pre-filters; the stream's flux and delta state advance by one frame.
    /// </summary>
    /// <param name="frame">The frame: <c>frame[c·FrameLength + i]</c> is sample i of channel c.</param>
    /// <param name="features">Receives <see cref="FeaturePipeline.OutputLength"/> values.</param>
    public void ExtractFrame(ReadOnlySpan<float> frame, Span<float> features)
    {
        FeatureSpec spec = _pipeline.Spec;
        if (frame.Length != _pipeline.FrameSize)
        {
            ThrowHelper.ArgumentLength(nameof(frame), _pipeline.FrameSize, frame.Length);
        }

        if (features.Length < _pipeline.OutputLength)
        {
            ThrowHelper.ArgumentTooShort(nameof(features), _pipeline.OutputLength, features.Length);
        }

        int per = _pipeline.FeaturesPerChannel;
        for (int c = 0; c < spec.Channels; c++)
        {
            ExtractChannel(c, frame.Slice(c * spec.FrameLength, spec.FrameLength), features.Slice(c * per, per));
        }

        _hasPrevious = true;
        if (_pipeline.NormMean is { } mean)
        {
            Span<float> row = features[.._pipeline.OutputLength];
            TensorPrimitives.Subtract(row, mean, row);
            TensorPrimitives.Multiply(row, _pipeline.NormScale!, row);
        }

        FramesEmitted++;
    }

    /// <summary>Forgets all stream state (buffered samples, filter memory, flux and delta history), as after a gap.</summary>
    public void Reset()
    {
        _framer.Reset();
        foreach (StreamFilter[] channel in _filters)
        {
            foreach (StreamFilter filter in channel)
            {
                filter.Reset();
            }
        }

        foreach (DeltaFilter?[] channel in _deltas)
        {
            foreach (DeltaFilter? delta in channel)
            {
                delta?.Reset();
            }
        }

        Array.Clear(_lastSample);
        _hasPrevious = false;
        FramesEmitted = 0;
        _resampler?.Reset();
        _resampledCount = _resampledOffset = 0;
    }

    /// <summary>
    /// Writes this stream's state (buffered samples, filter memory, last samples, previous spectrum, delta history,
    /// frame count) so that <see cref="ReadState"/> on an extractor of the same pipeline continues the stream exactly:
    /// the rows after a save and restore are the rows the original would have given.
    /// </summary>
    /// <param name="writer">Where to write (little-endian, as <see cref="BinaryWriter"/> always is).</param>
    /// <remarks>The format starts with the pipeline's output length and frame size as a check; it is not meant to outlive a change of spec.</remarks>
    public void WriteState(BinaryWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.Write(_pipeline.OutputLength);
        writer.Write(_pipeline.FrameSize);
        _framer.WriteState(writer);
        foreach (StreamFilter[] channel in _filters)
        {
            foreach (StreamFilter filter in channel)
            {
                filter.WriteState(writer);
            }
        }

        foreach (float v in _lastSample)
        {
            writer.Write(v);
        }

        writer.Write(_hasPrevious);
        foreach (float[] power in _previousPower)
        {
            foreach (float v in power)
            {
                writer.Write(v);
            }
        }

        foreach (DeltaFilter?[] channel in _deltas)
        {
            foreach (DeltaFilter? delta in channel)
            {
                delta?.WriteState(writer);
            }
        }

        writer.Write(FramesEmitted);
        writer.Write(NonFiniteSamples);
        if (_resampler is not null)
        {
            _resampler.WriteState(writer);
            writer.Write(_resampledCount - _resampledOffset);
            foreach (float v in _resampled.AsSpan(_resampledOffset, _resampledCount - _resampledOffset))
            {
                writer.Write(v);
            }
        }
    }

    /// <summary>Restores a state written by <see cref="WriteState"/> from an extractor of the same pipeline.</summary>
    /// <param name="reader">Where to read.</param>
    /// <exception cref="FormatException">The state was written for another pipeline shape, or is damaged.</exception>
    /// <exception cref="EndOfStreamException">The state is truncated.</exception>
    public void ReadState(BinaryReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        int outputs = reader.ReadInt32(), frameSize = reader.ReadInt32();
        if (outputs != _pipeline.OutputLength || frameSize != _pipeline.FrameSize)
        {
            throw new FormatException($"the feature state is for {outputs} features of {frameSize}-float frames; this pipeline gives {_pipeline.OutputLength} of {_pipeline.FrameSize}.");
        }

        _framer.ReadState(reader);
        foreach (StreamFilter[] channel in _filters)
        {
            foreach (StreamFilter filter in channel)
            {
                filter.ReadState(reader);
            }
        }

        for (int i = 0; i < _lastSample.Length; i++)
        {
            _lastSample[i] = reader.ReadSingle();
        }

        _hasPrevious = reader.ReadBoolean();
        foreach (float[] power in _previousPower)
        {
            for (int i = 0; i < power.Length; i++)
            {
                power[i] = reader.ReadSingle();
            }
        }

        foreach (DeltaFilter?[] channel in _deltas)
        {
            foreach (DeltaFilter? delta in channel)
            {
                delta?.ReadState(reader);
            }
        }

        FramesEmitted = reader.ReadInt64();
        NonFiniteSamples = reader.ReadInt64();
        if (_resampler is not null)
        {
            _resampler.ReadState(reader);
            int pending = reader.ReadInt32();
            if (pending < 0 || pending > _resampled.Length)
            {
                throw new FormatException($"the feature state holds {pending} resampled samples; at most {_resampled.Length} fit.");
            }

            for (int i = 0; i < pending; i++)
            {
                _resampled[i] = reader.ReadSingle();
            }

            (_resampledOffset, _resampledCount) = (0, pending);
        }
    }

    /// <summary>
    /// The envelope spectrum of one frame into <c>EnvelopePower</c>: the spectrum masked to the op's band, its inverse
    /// (the band-passed frame) and the inverse of −j times it (the Hilbert transform: zero at DC and Nyquist, as
    /// scipy's analytic signal), the envelope √(x² + H{x}²) over the whole FFT length, less its mean, and its power
    /// spectrum. Three real FFTs of the FFT length; nothing allocated.
    /// </summary>
    private void EnvelopeSpectrum(ReadOnlySpan<float> x, FeatureOp op)
    {
        FeatureWorkspace w = _work;
        int bins = w.EnvelopeRe.Length;
        w.Fft!.Forward(x, w.EnvelopeRe, w.EnvelopeIm);
        for (int k = 0; k < bins; k++)
        {
            if (k < op.EnvelopeFirstBin || k >= op.EnvelopeEndBin)
            {
                w.EnvelopeRe[k] = 0;
                w.EnvelopeIm[k] = 0;
            }
        }

        w.Fft.Inverse(w.EnvelopeRe, w.EnvelopeIm, w.EnvelopeSignal);

        // −j·X: (a + jb)(−j) = b − ja, in place; the DC and Nyquist bins carry no quadrature.
        for (int k = 0; k < bins; k++)
        {
            float a = w.EnvelopeRe[k];
            w.EnvelopeRe[k] = k == 0 || k == bins - 1 ? 0 : w.EnvelopeIm[k];
            w.EnvelopeIm[k] = k == 0 || k == bins - 1 ? 0 : -a;
        }

        w.Fft.Inverse(w.EnvelopeRe, w.EnvelopeIm, w.EnvelopeQuadrature);
        Span<float> envelope = w.EnvelopeSignal;
        double sum = 0;
        for (int n = 0; n < envelope.Length; n++)
        {
            float i = envelope[n], q = w.EnvelopeQuadrature[n];
            envelope[n] = MathF.Sqrt((i * i) + (q * q));
            sum += envelope[n];
        }

        float mean = (float)(sum / envelope.Length);
        for (int n = 0; n < envelope.Length; n++)
        {
            envelope[n] -= mean;
        }

        w.Fft.Forward(envelope, w.EnvelopeRe, w.EnvelopeIm);
        Spectrum.Power(w.EnvelopeRe, w.EnvelopeIm, w.EnvelopePower);
    }

    /// <summary>The envelope spectrum for <paramref name="op"/>'s band, unless this frame's is already computed for it.</summary>
    private void EnvelopeOnce(ReadOnlySpan<float> x, FeatureOp op, ref (int First, int End) computed)
    {
        if (computed != (op.EnvelopeFirstBin, op.EnvelopeEndBin))
        {
            EnvelopeSpectrum(x, op);
            computed = (op.EnvelopeFirstBin, op.EnvelopeEndBin);
        }
    }

    private void ExtractChannel(int channel, ReadOnlySpan<float> x, Span<float> output)
    {
        FeaturePipeline p = _pipeline;
        TimeStatistics time = p.NeedsTime ? TimeStatistics.Compute(x) : default;
        SpectralStatistics spectral = default;
        if (p.NeedsSpectrum)
        {
            _work.Fft!.Forward(x, p.Window, _work.Re, _work.Im);
            Spectrum.Power(_work.Re, _work.Im, _work.Power);
            if (p.NeedsSpectralStatistics)
            {
                ReadOnlySpan<float> previous = p.NeedsFlux && _hasPrevious ? _previousPower[channel] : default;
                spectral = p.Analyzer.Compute(_work.Power, previous, _work.Scratch, p.NeedsLogs);
            }

            if (p.NeedsFlux)
            {
                _work.Power.CopyTo(_previousPower[channel]);
            }

            for (int m = 0; m < _work.Mel.Length; m++)
            {
                p.MelBanks[m].Apply(_work.Power, _work.Mel[m]);
            }

            for (int d = 0; d < _work.Mfcc.Length; d++)
            {
                float[] mel = _work.Mel[p.DctMel[d]];
                Spectrum.LogPower(mel, _work.Scratch, p.LogFloor);
                p.Dcts[d].Transform(_work.Scratch.AsSpan(0, mel.Length), _work.Mfcc[d]);
            }
        }

        FeatureOp[] ops = p.Ops;
        (int First, int End) envelopeBand = (-1, -1); // the demodulation band whose envelope spectrum is in the workspace
        for (int i = 0; i < ops.Length; i++)
        {
            FeatureOp op = ops[i];
            Span<float> dst = output.Slice(op.Offset, op.Count);
            switch (op.Kind)
            {
                case FeatureKind.Mean: dst[0] = time.Mean; break;
                case FeatureKind.Rms: dst[0] = time.Rms; break;
                case FeatureKind.Std: dst[0] = time.Std; break;
                case FeatureKind.PeakToPeak: dst[0] = time.PeakToPeak; break;
                case FeatureKind.CrestFactor: dst[0] = time.CrestFactor; break;
                case FeatureKind.Skewness: dst[0] = time.Skewness; break;
                case FeatureKind.Kurtosis: dst[0] = time.Kurtosis; break;
                case FeatureKind.Zcr: dst[0] = time.ZeroCrossingRate; break;
                case FeatureKind.SpectralCentroid: dst[0] = spectral.Centroid; break;
                case FeatureKind.SpectralBandwidth: dst[0] = spectral.Bandwidth; break;
                case FeatureKind.SpectralRolloff: dst[0] = spectral.Rolloff; break;
                case FeatureKind.SpectralFlatness: dst[0] = spectral.Flatness; break;
                case FeatureKind.SpectralEntropy: dst[0] = spectral.Entropy; break;
                case FeatureKind.SpectralFlux: dst[0] = spectral.Flux; break;
                case FeatureKind.PeakFrequency: dst[0] = spectral.PeakFrequency; break;
                case FeatureKind.PeakMagnitude: dst[0] = spectral.PeakMagnitude; break;
                case FeatureKind.DominantBand:
                    {
                        LinearBands bands = p.Bands[op.Bands];
                        Span<float> energies = _work.Scratch.AsSpan(0, bands.Bands);
                        bands.Apply(_work.Power, energies);
                        dst[0] = TensorPrimitives.IndexOfMax(energies);
                        break;
                    }

                case FeatureKind.BandEnergy: p.Bands[op.Bands].Apply(_work.Power, dst); break;
                case FeatureKind.Mel:
                    if (op.Log)
                    {
                        Spectrum.LogPower(_work.Mel[op.Mel], dst, p.LogFloor);
                    }
                    else
                    {
                        _work.Mel[op.Mel].CopyTo(dst);
                    }

                    break;
                case FeatureKind.Mfcc: _work.Mfcc[op.Mfcc].CopyTo(dst); break;
                case FeatureKind.MfccDelta: _deltas[channel][i]!.Process(_work.Mfcc[op.Mfcc], dst); break;
                case FeatureKind.Power: _work.Power.CopyTo(dst); break;
                case FeatureKind.LogPower: Spectrum.LogPower(_work.Power, dst, p.LogFloor); break;
                case FeatureKind.EnvelopeBandEnergy:
                    EnvelopeOnce(x, op, ref envelopeBand);
                    p.Bands[op.Bands].Apply(_work.EnvelopePower, dst);
                    break;
                case FeatureKind.BearingFaultEnergy:
                    EnvelopeOnce(x, op, ref envelopeBand);
                    for (int b = 0; b < 4; b++)
                    {
                        p.Bands[op.Bands + b].Apply(_work.EnvelopePower, dst.Slice(b, 1));
                    }

                    break;
                default: throw new InvalidOperationException($"Feature '{op.Name}' has no implementation."); // unreachable: the spec validated
            }
        }
    }

    /// <summary>Repairs non-finite samples (hold policy) and runs the pre-filters, in place.</summary>
    private void Condition(Span<float> staged, int channels)
    {
        if (_hold)
        {
            Repair(staged, channels);
        }

        Filter(staged, channels);
    }

    /// <summary>Under <c>hold</c>: each non-finite sample becomes its channel's previous one (counted).</summary>
    private void Repair(Span<float> staged, int channels)
    {
        for (int c = 0; c < channels; c++)
        {
            float last = _lastSample[c];
            for (int i = c; i < staged.Length; i += channels)
            {
                if (!float.IsFinite(staged[i]))
                {
                    staged[i] = last;
                    NonFiniteSamples++;
                }

                last = staged[i];
            }

            _lastSample[c] = last;
        }
    }

    private void Filter(Span<float> staged, int channels)
    {
        for (int c = 0; c < channels; c++)
        {
            foreach (StreamFilter filter in _filters[c])
            {
                filter.Process(staged, c, channels);
            }
        }
    }

    private static int IndexOfNonFinite(ReadOnlySpan<float> values)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                return i;
            }
        }

        return -1;
    }
}

/// <summary>A NaN or infinite sample refused by a stream under the <c>reject</c> policy.</summary>
public sealed class NonFiniteSampleException : ArgumentException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="sampleIndex">The index of the multichannel sample within the refused chunk.</param>
    /// <param name="channel">The channel of the bad value.</param>
    /// <param name="value">The bad value.</param>
    public NonFiniteSampleException(int sampleIndex, int channel, float value)
        : base($"Sample {sampleIndex} of the chunk, channel {channel}, is {value}; the chunk was refused whole (set nonFinite to \"hold\" to repair such samples instead).", "interleaved")
    {
        SampleIndex = sampleIndex;
        Channel = channel;
        Value = value;
    }

    /// <summary>The index of the multichannel sample within the refused chunk.</summary>
    public int SampleIndex { get; }

    /// <summary>The channel of the bad value.</summary>
    public int Channel { get; }

    /// <summary>The bad value.</summary>
    public float Value { get; }
}
