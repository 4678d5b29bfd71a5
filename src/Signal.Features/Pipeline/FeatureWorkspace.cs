using Signal.Features.Fft;

namespace Signal.Features.Pipeline;

/// <summary>
/// Scratch of one <see cref="FeaturePipeline"/>: the real FFT and its tables, spectra, mel and MFCC rows and the
/// staging buffer. Holds no stream state, so every <see cref="FeatureExtractor"/> a thread runs can share one.
/// </summary>
/// <remarks>Not thread-safe: the extractors sharing a workspace must run on one thread at a time.</remarks>
public sealed class FeatureWorkspace
{
    internal FeatureWorkspace(FeaturePipeline pipeline)
    {
        Pipeline = pipeline;
        int bins = (pipeline.FftLength / 2) + 1;
        if (pipeline.NeedsSpectrum || pipeline.NeedsEnvelope)
        {
            Fft = new RealFft(pipeline.FftLength);
        }

        int envelope = pipeline.NeedsEnvelope ? pipeline.FftLength : 0;
        EnvelopeRe = new float[pipeline.NeedsEnvelope ? bins : 0];
        EnvelopeIm = new float[pipeline.NeedsEnvelope ? bins : 0];
        EnvelopeSignal = new float[envelope];
        EnvelopeQuadrature = new float[envelope];
        EnvelopePower = new float[pipeline.NeedsEnvelope ? bins : 0];

        Frame = new float[pipeline.FrameSize];
        Staging = new float[pipeline.FrameSize];
        Re = new float[bins];
        Im = new float[bins];
        Power = new float[bins];
        Scratch = new float[Math.Max(bins, pipeline.MelBanks.Select(m => m.Bands).DefaultIfEmpty(0).Max())];
        Mel = [.. pipeline.MelBanks.Select(m => new float[m.Bands])];
        Mfcc = [.. pipeline.Dcts.Select(d => new float[d.Coefficients])];
    }

    /// <summary>The pipeline this workspace serves.</summary>
    public FeaturePipeline Pipeline { get; }

    internal RealFft? Fft { get; }

    internal float[] Frame { get; }

    internal float[] Staging { get; }      // filtered / repaired copy of incoming samples

    internal float[] Re { get; }

    internal float[] Im { get; }

    internal float[] Power { get; }

    internal float[] Scratch { get; }

    internal float[][] Mel { get; }        // per mel bank

    internal float[][] Mfcc { get; }       // per DCT

    internal float[] EnvelopeRe { get; }   // the frame's spectrum, masked to the band

    internal float[] EnvelopeIm { get; }

    internal float[] EnvelopeSignal { get; }      // the band-passed frame, then the envelope

    internal float[] EnvelopeQuadrature { get; }  // its Hilbert transform

    internal float[] EnvelopePower { get; }       // the envelope spectrum
}
