using Signal.Features.Spectra;
using Signal.Features.Statistics;
using Signal.Features.Windows;

namespace Signal.Features.Pipeline;

/// <summary>
/// A validated, compiled <see cref="FeatureSpec"/>: the tables every stream shares (window, mel
/// banks, DCT matrices, band ranges), the output vector's length and column names.
/// <see cref="CreateExtractor()"/> gives the per-stream state that turns samples into feature rows.
/// </summary>
/// <remarks>
/// Immutable and safe to share between threads; create one per spec and one
/// <see cref="FeatureExtractor"/> per sensor stream. The output row is channel-major: every feature
/// of channel 0, then every feature of channel 1, and so on; within a channel, features come in
/// the order the spec lists them.
/// </remarks>
public sealed class FeaturePipeline
{
    /// <summary>Creates the pipeline, validating the spec first.</summary>
    /// <param name="spec">The spec.</param>
    /// <exception cref="FeatureSpecException">A field of the spec is invalid; the message names it.</exception>
    public FeaturePipeline(FeatureSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate();
        Spec = spec;
        FftLength = spec.FftLength;
        Window = Windows.Window.Create(spec.WindowKind, spec.FrameLength, spec.SymmetricWindow);
        LogFloor = (float)spec.LogFloor;

        var ops = new List<FeatureOp>();
        var melBanks = new List<MelFilterBank>();
        var dcts = new List<(int Mel, Dct Dct)>();
        var bands = new List<LinearBands>();
        double rolloff = spec.Features.FirstOrDefault(f => f.Name == "spectral_rolloff")?.Fraction ?? 0.85;
        int offset = 0;
        foreach (FeatureRequest request in spec.Features)
        {
            int count = request.OutputCount(spec);
            var op = new FeatureOp(request.Name, FeatureOp.KindOf(request.Name), offset, count);
            if (request.Name is "mel" or "mfcc" or "mfcc_delta")
            {
                MelFilterBankOptions mel = request.MelOptions(spec);
                int melIndex = melBanks.FindIndex(b => b.Options == mel);
                if (melIndex < 0)
                {
                    melBanks.Add(new MelFilterBank(mel));
                    melIndex = melBanks.Count - 1;
                }

                op = op with { Mel = melIndex, Log = request.Log ?? false };
                if (request.Name != "mel")
                {
                    int lifter = request.Lifter ?? 0;
                    int dctIndex = dcts.FindIndex(d => d.Mel == melIndex && d.Dct.Coefficients == count && d.Dct.Lifter == lifter);
                    if (dctIndex < 0)
                    {
                        dcts.Add((melIndex, new Dct(mel.Bands, count, lifter)));
                        dctIndex = dcts.Count - 1;
                    }

                    op = op with { Mfcc = dctIndex, DeltaWidth = request.DeltaWidth ?? 2 };
                }
            }
            else if (request.IsEnvelope)
            {
                // The demodulation band in bins (half-open, as the band energies), then the envelope spectrum's bands.
                double binHz = spec.SampleRate / FftLength;
                double low = request.Band?[0] ?? 0, high = request.Band?[1] ?? spec.SampleRate / 2;
                int first = (int)Math.Ceiling(low / binHz), end = Math.Min(FftLength / 2, (int)Math.Floor(high / binHz)) + 1;
                IEnumerable<IReadOnlyList<double>> edgeLists = request.Name == "envelope_band_energy"
                    ? [request.Edges!]
                    : request.Bearing!.FaultFrequencies().Select(f => (IReadOnlyList<double>)[f * (1 - (request.Width ?? FeatureRequest.DefaultWidth)), f * (1 + (request.Width ?? FeatureRequest.DefaultWidth))]);
                int firstBands = bands.Count;
                foreach (IReadOnlyList<double> edges in edgeLists)
                {
                    bands.Add(new LinearBands(spec.SampleRate, FftLength, edges));
                }

                op = op with { Bands = firstBands, EnvelopeFirstBin = first, EnvelopeEndBin = end };
            }
            else if (request.Edges is { } edges)
            {
                bands.Add(new LinearBands(spec.SampleRate, FftLength, edges));
                op = op with { Bands = bands.Count - 1 };
            }

            ops.Add(op);
            offset += count;
        }

        Ops = [.. ops];
        MelBanks = [.. melBanks];
        Dcts = [.. dcts.Select(d => d.Dct)];
        DctMel = [.. dcts.Select(d => d.Mel)];
        Bands = [.. bands];
        FeaturesPerChannel = offset;
        OutputLength = offset * spec.Channels;
        Analyzer = new SpectralAnalyzer(spec.SampleRate, FftLength, rolloff, LogFloor);
        NeedsSpectrum = spec.Features.Any(f => f.IsSpectral);
        NeedsTime = spec.Features.Any(f => f.IsTime);
        NeedsEnvelope = spec.Features.Any(f => f.IsEnvelope);
        NeedsSpectralStatistics = spec.Features.Any(f => f.Name.StartsWith("spectral_", StringComparison.Ordinal) || f.Name.StartsWith("peak_", StringComparison.Ordinal));
        NeedsLogs = spec.Features.Any(f => f.Name is "spectral_flatness" or "spectral_entropy");
        NeedsFlux = spec.Features.Any(f => f.Name == "spectral_flux");

        var names = new List<string>(OutputLength);
        for (int c = 0; c < spec.Channels; c++)
        {
            string suffix = spec.ChannelSuffix(c);
            foreach (FeatureRequest request in spec.Features)
            {
                names.AddRange(request.ColumnNames(spec).Select(n => n + suffix));
            }
        }

        ColumnNames = names;
        if (spec.Normalization is { } norm)
        {
            if (norm.Mean.Count != OutputLength)
            {
                throw new FeatureSpecException("normalization.mean", $"holds {norm.Mean.Count} values but the spec outputs {OutputLength} columns.");
            }

            if (norm.Std.Count != OutputLength)
            {
                throw new FeatureSpecException("normalization.std", $"holds {norm.Std.Count} values but the spec outputs {OutputLength} columns.");
            }

            NormMean = [.. norm.Mean];
            NormScale = [.. norm.Std.Select(s => s > 1e-12f ? 1f / s : 1f)];
        }
    }

    /// <summary>Creates a pipeline from a spec's JSON text.</summary>
    /// <param name="json">The spec as JSON.</param>
    /// <returns>The pipeline.</returns>
    /// <exception cref="FeatureSpecException">The JSON or a field is invalid; the message names it.</exception>
    public static FeaturePipeline FromJson(string json) => new(FeatureSpec.FromJson(json));

    /// <summary>The spec this pipeline was compiled from.</summary>
    public FeatureSpec Spec { get; }

    /// <summary>The length of one output row: features per channel × channels.</summary>
    public int OutputLength { get; }

    /// <summary>The number of output columns of one channel.</summary>
    public int FeaturesPerChannel { get; }

    /// <summary>The name of every output column, in order (with a channel suffix when there are several channels).</summary>
    public IReadOnlyList<string> ColumnNames { get; }

    /// <summary>The FFT length: the frame length rounded up to a power of two (zero padding).</summary>
    public int FftLength { get; }

    /// <summary>The floats in one frame: frame length × channels.</summary>
    public int FrameSize => Spec.FrameLength * Spec.Channels;

    /// <summary>Creates the state of one stream.</summary>
    /// <returns>A new stream, positioned at sample 0.</returns>
    public FeatureExtractor CreateExtractor() => new(this, null);

    /// <summary>
    /// Creates the state of one stream that computes in <paramref name="workspace"/>, which it shares with the
    /// other streams created with it: per-stream memory is then only the framer, filter memories and the
    /// previous spectrum, not the FFT tables and scratch.
    /// </summary>
    /// <param name="workspace">Scratch from <see cref="CreateWorkspace"/> of this pipeline.</param>
    /// <returns>A new stream, positioned at sample 0.</returns>
    /// <remarks>Every extractor sharing a workspace must be used from one thread at a time.</remarks>
    public FeatureExtractor CreateExtractor(FeatureWorkspace workspace)
    {
        ArgumentNullException.ThrowIfNull(workspace);
        return new(this, workspace);
    }

    /// <summary>Creates scratch (FFT tables, spectra, staging) that many streams of one thread can share.</summary>
    /// <returns>A new workspace.</returns>
    public FeatureWorkspace CreateWorkspace() => new(this);

    /// <summary>
    /// Extracts the features of a whole recording in one call (offline use): every complete frame, one row each.
    /// Gives the same rows as streaming the recording in chunks of any size.
    /// </summary>
    /// <param name="interleaved">The recording, interleaved by channel.</param>
    /// <returns>Rows × <see cref="OutputLength"/> values, row-major.</returns>
    public float[] ExtractAll(ReadOnlySpan<float> interleaved)
    {
        long samples = interleaved.Length / Spec.Channels;
        if (Spec.Resample is { } resample)
        {
            // At most this many samples at the spec's rate (resampling withholds the few that need samples after the end).
            samples = (long)Math.Ceiling(samples * Spec.SampleRate / resample.InputRate) + 1;
        }

        int frames = samples < Spec.FrameLength ? 0 : (int)(1 + ((samples - Spec.FrameLength) / Spec.Hop));
        var rows = new float[frames * OutputLength];
        FeatureExtractor stream = CreateExtractor();
        int written = stream.Process(interleaved, rows, out _);
        return written == frames ? rows : rows[..(written * OutputLength)];
    }

    internal float[] Window { get; }

    internal float LogFloor { get; }

    internal FeatureOp[] Ops { get; }

    internal MelFilterBank[] MelBanks { get; }

    internal Dct[] Dcts { get; }

    internal int[] DctMel { get; }

    internal LinearBands[] Bands { get; }

    internal SpectralAnalyzer Analyzer { get; }

    internal bool NeedsSpectrum { get; }

    internal bool NeedsTime { get; }

    internal bool NeedsEnvelope { get; }

    internal bool NeedsSpectralStatistics { get; }

    internal bool NeedsLogs { get; }

    internal bool NeedsFlux { get; }

    internal float[]? NormMean { get; }

    internal float[]? NormScale { get; }
}

/// <summary>One compiled feature: where its columns go in a channel's block and which shared tables it reads.</summary>
internal sealed record FeatureOp(string Name, FeatureKind Kind, int Offset, int Count)
{
    /// <summary>Resolves a validated feature name once, so the per-frame loop switches on an enum, not a string.</summary>
    public static FeatureKind KindOf(string name) => name switch
    {
        "mean" => FeatureKind.Mean,
        "rms" => FeatureKind.Rms,
        "std" => FeatureKind.Std,
        "peak_to_peak" => FeatureKind.PeakToPeak,
        "crest_factor" => FeatureKind.CrestFactor,
        "skewness" => FeatureKind.Skewness,
        "kurtosis" => FeatureKind.Kurtosis,
        "zcr" => FeatureKind.Zcr,
        "spectral_centroid" => FeatureKind.SpectralCentroid,
        "spectral_bandwidth" => FeatureKind.SpectralBandwidth,
        "spectral_rolloff" => FeatureKind.SpectralRolloff,
        "spectral_flatness" => FeatureKind.SpectralFlatness,
        "spectral_entropy" => FeatureKind.SpectralEntropy,
        "spectral_flux" => FeatureKind.SpectralFlux,
        "peak_frequency" => FeatureKind.PeakFrequency,
        "peak_magnitude" => FeatureKind.PeakMagnitude,
        "dominant_band" => FeatureKind.DominantBand,
        "band_energy" => FeatureKind.BandEnergy,
        "mel" => FeatureKind.Mel,
        "mfcc" => FeatureKind.Mfcc,
        "mfcc_delta" => FeatureKind.MfccDelta,
        "power" => FeatureKind.Power,
        "log_power" => FeatureKind.LogPower,
        "envelope_band_energy" => FeatureKind.EnvelopeBandEnergy,
        "bearing_fault_energy" => FeatureKind.BearingFaultEnergy,
        _ => throw new FeatureSpecException("features", $"'{name}' is not a feature."),
    };

    public int Mel { get; init; } = -1;

    public int Mfcc { get; init; } = -1;

    public int Bands { get; init; } = -1;

    public bool Log { get; init; }

    public int DeltaWidth { get; init; } = 2;

    /// <summary>Envelope features: the first bin of the demodulation band.</summary>
    public int EnvelopeFirstBin { get; init; }

    /// <summary>Envelope features: one past the last bin of the demodulation band.</summary>
    public int EnvelopeEndBin { get; init; }
}

/// <summary>The compiled form of a feature name (see <see cref="FeatureRequest"/> for each one's meaning).</summary>
internal enum FeatureKind
{
    Mean,
    Rms,
    Std,
    PeakToPeak,
    CrestFactor,
    Skewness,
    Kurtosis,
    Zcr,
    SpectralCentroid,
    SpectralBandwidth,
    SpectralRolloff,
    SpectralFlatness,
    SpectralEntropy,
    SpectralFlux,
    PeakFrequency,
    PeakMagnitude,
    DominantBand,
    BandEnergy,
    Mel,
    Mfcc,
    MfccDelta,
    Power,
    LogPower,
    EnvelopeBandEnergy,
    BearingFaultEnergy,
}
