using System.Globalization;
using Signal.Features.Spectra;

namespace Signal.Features.Pipeline;

/// <summary>
/// One feature of a <see cref="FeatureSpec"/> with its parameters. Each is computed per channel.
/// </summary>
/// <remarks>
/// <para>Time domain (on the raw, un-windowed frame; one column each): <c>mean</c>, <c>rms</c>, <c>std</c>,
/// <c>peak_to_peak</c>, <c>crest_factor</c>, <c>skewness</c>, <c>kurtosis</c>, <c>zcr</c>.</para>
/// <para>Spectral (on the power spectrum of the windowed frame; one column each): <c>spectral_centroid</c> (Hz),
/// <c>spectral_bandwidth</c> (Hz), <c>spectral_rolloff</c> (Hz; <see cref="Fraction"/>, default 0.85),
/// <c>spectral_flatness</c>, <c>spectral_entropy</c>, <c>spectral_flux</c>, <c>peak_frequency</c> (Hz),
/// <c>peak_magnitude</c>, <c>dominant_band</c> (index of the strongest of the <see cref="Edges"/> bands).</para>
/// <para>Vectors: <c>band_energy</c> (power summed over the <see cref="Edges"/> bands: <c>band_energy_0..</c>),
/// <c>mel</c> (<see cref="Count"/> bands, default 128: <c>mel_0..</c>; mel power, or dB with <see cref="Log"/>),
/// <c>mfcc</c> (<see cref="Count"/> coefficients, default 20: <c>mfcc_0..</c>), <c>mfcc_delta</c>
/// (regression deltas of those MFCC: <c>mfcc_delta_0..</c>, lagging N = <see cref="DeltaWidth"/> frames),
/// <c>power</c> and <c>log_power</c> (every bin: <c>power_0..power_{N/2}</c>).</para>
/// <para>Envelope analysis of rotating machines (on the raw frame, zero-padded to the FFT length): the frame is
/// band-passed to <see cref="Band"/> (default the whole band) in the frequency domain, its envelope is the magnitude
/// of the analytic signal (<c>|scipy.signal.hilbert(x)|</c>), and the envelope spectrum is the power spectrum of
/// the envelope less its mean. <c>envelope_band_energy</c> sums it over the <see cref="Edges"/> bands
/// (<c>envelope_band_energy_0..</c>); <c>bearing_fault_energy</c> over ±<see cref="Width"/> (relative, default 0.03)
/// of the four fault frequencies of <see cref="Bearing"/> (<c>bearing_bpfo</c>, <c>bearing_bpfi</c>,
/// <c>bearing_bsf</c>, <c>bearing_ftf</c>).</para>
/// <para>Mel defaults are librosa's: Slaney scale, Slaney area normalisation, 0 Hz to Nyquist. MFCC is the
/// orthonormal DCT-II of <c>10·log10(max(mel power, logFloor))</c> with no top-dB clipping; its mel bank has
/// <see cref="MelBands"/> bands, by default the count of a <c>mel</c> feature in the same spec, else 128.</para>
/// </remarks>
public sealed record FeatureRequest
{
    private static readonly string[] s_scalarNames =
    [
        "mean", "rms", "std", "peak_to_peak", "crest_factor", "skewness", "kurtosis", "zcr",
        "spectral_centroid", "spectral_bandwidth", "spectral_rolloff", "spectral_flatness", "spectral_entropy",
        "spectral_flux", "peak_frequency", "peak_magnitude", "dominant_band",
    ];

    private static readonly string[] s_vectorNames = ["band_energy", "mel", "mfcc", "mfcc_delta", "power", "log_power", "envelope_band_energy", "bearing_fault_energy"];

    /// <summary>Envelope features: the demodulation band [low, high] in Hz (default: 0 to the Nyquist frequency).</summary>
    public IReadOnlyList<double>? Band { get; set; }

    /// <summary><c>bearing_fault_energy</c>: the bearing's geometry and shaft speed.</summary>
    public BearingGeometry? Bearing { get; set; }

    /// <summary><c>bearing_fault_energy</c>: each band's half-width relative to its fault frequency (default 0.03).</summary>
    public double? Width { get; set; }

    /// <summary>The feature's name (see the remarks for the list).</summary>
    public string Name { get; set; } = string.Empty;

    /// <summary>The number of outputs of <c>mel</c> (bands), <c>mfcc</c> and <c>mfcc_delta</c> (coefficients).</summary>
    public int? Count { get; set; }

    /// <summary>The fraction of total power for <c>spectral_rolloff</c> (default 0.85).</summary>
    public double? Fraction { get; set; }

    /// <summary>Band edges in Hz for <c>band_energy</c> and <c>dominant_band</c>: increasing, within 0..Nyquist.</summary>
    public IReadOnlyList<double>? Edges { get; set; }

    /// <summary>Mel bands under <c>mfcc</c>/<c>mfcc_delta</c> (default: the spec's <c>mel</c> count, else 128).</summary>
    public int? MelBands { get; set; }

    /// <summary>Mel scale: <c>slaney</c> (default) or <c>htk</c>.</summary>
    public string? Scale { get; set; }

    /// <summary>Mel filter normalisation: <c>slaney</c> (default) or <c>none</c>.</summary>
    public string? Norm { get; set; }

    /// <summary>Lowest mel filter edge in Hz (default 0).</summary>
    public double? MinFrequency { get; set; }

    /// <summary>Highest mel filter edge in Hz (default Nyquist).</summary>
    public double? MaxFrequency { get; set; }

    /// <summary>MFCC lifter L (default 0, none): coefficient k is scaled by 1 + (L/2)·sin(π(k+1)/L).</summary>
    public int? Lifter { get; set; }

    /// <summary>For <c>mel</c>: output 10·log10(max(mel power, logFloor)) instead of mel power (default false).</summary>
    public bool? Log { get; set; }

    /// <summary>For <c>mfcc_delta</c>: N, frames on each side of the regression (default 2).</summary>
    public int? DeltaWidth { get; set; }

    /// <summary>Every feature name this version knows.</summary>
    public static IReadOnlyList<string> KnownNames { get; } = [.. s_scalarNames, .. s_vectorNames];

    /// <summary>
    /// Parses the command-line form: comma-separated names with an optional <c>:</c> argument, e.g.
    /// <c>rms,zcr,spectral_centroid,mel:40,mfcc:13,spectral_rolloff:0.9,band_energy:0/500/1000/6000</c>.
    /// The argument is the count (mel, mfcc, mfcc_delta), the fraction (spectral_rolloff) or
    /// '/'-separated edges in Hz (band_energy, dominant_band).
    /// </summary>
    /// <param name="list">The list.</param>
    /// <returns>The requests, not yet validated.</returns>
    /// <exception cref="FeatureSpecException">An item does not parse; the message names it.</exception>
    public static IReadOnlyList<FeatureRequest> ParseList(string list)
    {
        ArgumentNullException.ThrowIfNull(list);
        var result = new List<FeatureRequest>();
        string[] items = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        for (int i = 0; i < items.Length; i++)
        {
            string path = $"features[{i}]";
            int colon = items[i].IndexOf(':', StringComparison.Ordinal);
            string name = (colon < 0 ? items[i] : items[i][..colon]).ToLowerInvariant();
            string? arg = colon < 0 ? null : items[i][(colon + 1)..];
            var request = new FeatureRequest { Name = name };
            if (arg is not null)
            {
                request = name switch
                {
                    "mel" or "mfcc" or "mfcc_delta" => request with { Count = ParseInt(arg, path + ".count") },
                    "spectral_rolloff" => request with { Fraction = ParseDouble(arg, path + ".fraction") },
                    "band_energy" or "dominant_band" => request with
                    {
                        Edges = [.. arg.Split('/').Select((e, j) => ParseDouble(e, $"{path}.edges[{j}]"))],
                    },
                    _ => throw new FeatureSpecException(path, $"'{name}' takes no ':' argument."),
                };
            }

            result.Add(request);
        }

        return result;
    }

    /// <summary>The output column names of this feature for one channel (before the channel suffix).</summary>
    /// <param name="spec">The spec it belongs to.</param>
    /// <returns>The names.</returns>
    public IEnumerable<string> ColumnNames(FeatureSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        int n = OutputCount(spec);
        if (Name == "bearing_fault_energy")
        {
            return ["bearing_bpfo", "bearing_bpfi", "bearing_bsf", "bearing_ftf"];
        }

        string prefix = Name switch
        {
            "band_energy" => "band_energy_",
            "log_power" => "log_power_",
            _ => Name + "_",
        };
        return n == 1 && s_scalarNames.Contains(Name)
            ? [Name]
            : Enumerable.Range(0, n).Select(i => prefix + i.ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>The number of output columns of this feature for one channel.</summary>
    /// <param name="spec">The spec it belongs to.</param>
    /// <returns>The count.</returns>
    public int OutputCount(FeatureSpec spec) => Name switch
    {
        "band_energy" or "envelope_band_energy" => (Edges?.Count ?? 1) - 1,
        "bearing_fault_energy" => 4,
        "mel" => Count ?? 128,
        "mfcc" or "mfcc_delta" => Count ?? 20,
        "power" or "log_power" => (spec.FftLength / 2) + 1,
        _ => 1,
    };

    /// <summary>The mel bank options behind <c>mel</c>, <c>mfcc</c> and <c>mfcc_delta</c>.</summary>
    /// <param name="spec">The spec it belongs to.</param>
    /// <returns>The options.</returns>
    public MelFilterBankOptions MelOptions(FeatureSpec spec)
    {
        int bands = Name == "mel" ? Count ?? 128 : MelBands ?? spec.Features.FirstOrDefault(f => f.Name == "mel")?.Count ?? 128;
        return new MelFilterBankOptions(
            spec.SampleRate, spec.FftLength, bands, MinFrequency ?? 0, MaxFrequency,
            string.Equals(Scale, "htk", StringComparison.OrdinalIgnoreCase) ? MelScale.Htk : MelScale.Slaney,
            string.Equals(Norm, "none", StringComparison.OrdinalIgnoreCase) ? MelNorm.None : MelNorm.Slaney);
    }

    internal void Validate(string path, FeatureSpec spec)
    {
        if (!KnownNames.Contains(Name))
        {
            throw new FeatureSpecException(path + ".name", $"'{Name}' is not a feature; known features: {string.Join(", ", KnownNames)}.");
        }

        if (IsEnvelope)
        {
            double nyquist = spec.SampleRate / 2;
            if (Band is not null && (Band is not [var low, var high] || !(low >= 0 && high > low && high <= nyquist)))
            {
                throw new FeatureSpecException(path + ".band", $"must be [low, high] in Hz with 0 ≤ low < high ≤ the Nyquist frequency {nyquist} Hz.");
            }

            if (Name == "bearing_fault_energy")
            {
                if (Bearing is null)
                {
                    throw new FeatureSpecException(path + ".bearing", "'bearing_fault_energy' needs the bearing: {\"balls\": 9, \"ballDiameter\": 7.94, \"pitchDiameter\": 39.04, \"contactAngle\": 0, \"shaftHz\": 29.95}.");
                }

                Bearing.Validate(path + ".bearing");
                if (Width is { } w && !(w > 0 && w < 0.5))
                {
                    throw new FeatureSpecException(path + ".width", $"must lie in (0, 0.5) (got {w}).");
                }

                double top = Bearing.FaultFrequencies().Max() * (1 + (Width ?? DefaultWidth));
                if (top > nyquist)
                {
                    throw new FeatureSpecException(path + ".bearing", $"its highest fault band reaches {top:0.#} Hz, above the Nyquist frequency {nyquist} Hz.");
                }
            }
        }

        if (Name is "band_energy" or "dominant_band" or "envelope_band_energy")
        {
            if (Edges is null)
            {
                throw new FeatureSpecException(path + ".edges", $"'{Name}' needs band edges in Hz, e.g. [0, 500, 1000, {spec.SampleRate / 2}].");
            }

            string? problem = LinearBands.Validate(spec.SampleRate, Edges);
            if (problem is not null)
            {
                throw new FeatureSpecException(path + ".edges", problem);
            }
        }

        if (Fraction is { } f && !(f > 0 && f <= 1))
        {
            throw new FeatureSpecException(path + ".fraction", $"must lie in (0, 1] (got {f}).");
        }

        if (Name is "mel" or "mfcc" or "mfcc_delta")
        {
            if (Count is < 1 or > 1024)
            {
                throw new FeatureSpecException(path + ".count", $"must be 1 to 1024 (got {Count}).");
            }

            if (Scale is not (null or "slaney" or "htk"))
            {
                throw new FeatureSpecException(path + ".scale", $"'{Scale}' is not a mel scale; use slaney or htk.");
            }

            if (Norm is not (null or "slaney" or "none"))
            {
                throw new FeatureSpecException(path + ".norm", $"'{Norm}' is not a mel normalisation; use slaney or none.");
            }

            MelFilterBankOptions mel = MelOptions(spec);
            double nyquist = spec.SampleRate / 2;
            if (mel.MaxFrequency is { } max && !(max > 0 && max <= nyquist))
            {
                throw new FeatureSpecException(path + ".maxFrequency", $"must lie in (0, {nyquist}] Hz, the Nyquist frequency (got {max}).");
            }

            if (!(mel.MinFrequency >= 0 && mel.MinFrequency < (mel.MaxFrequency ?? nyquist)))
            {
                throw new FeatureSpecException(path + ".minFrequency", $"must be at least 0 and below the highest mel frequency (got {mel.MinFrequency}).");
            }

            if (Name != "mel" && mel.Bands < (Count ?? 20))
            {
                throw new FeatureSpecException(path + ".count", $"asks for {Count ?? 20} coefficients from only {mel.Bands} mel bands.");
            }
        }

        if (Lifter is < 0)
        {
            throw new FeatureSpecException(path + ".lifter", $"must be 0 (none) or positive (got {Lifter}).");
        }

        if (DeltaWidth is < 1 or > 16)
        {
            throw new FeatureSpecException(path + ".deltaWidth", $"must be 1 to 16 frames (got {DeltaWidth}).");
        }
    }

    private static int ParseInt(string text, string path) =>
        int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value)
            ? value
            : throw new FeatureSpecException(path, $"'{text}' is not a whole number.");

    private static double ParseDouble(string text, string path) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            ? value
            : throw new FeatureSpecException(path, $"'{text}' is not a number.");

    /// <summary>The default relative half-width of a bearing fault band.</summary>
    public const double DefaultWidth = 0.03;

    internal bool IsTime => Name is "mean" or "rms" or "std" or "peak_to_peak" or "crest_factor" or "skewness" or "kurtosis" or "zcr";

    internal bool IsEnvelope => Name is "envelope_band_energy" or "bearing_fault_energy";

    internal bool IsSpectral => !IsTime && !IsEnvelope;
}

/// <summary>
/// A rolling-element bearing and its shaft speed, for the fault frequencies of envelope analysis:
/// BPFO = n/2·fr·(1 − d/D·cos φ), BPFI = n/2·fr·(1 + d/D·cos φ), BSF = D/(2d)·fr·(1 − (d/D·cos φ)²),
/// FTF = fr/2·(1 − d/D·cos φ).
/// </summary>
public sealed record BearingGeometry
{
    /// <summary>Rolling elements n.</summary>
    public int Balls { get; set; }

    /// <summary>Rolling-element diameter d (any unit, the same as <see cref="PitchDiameter"/>).</summary>
    public double BallDiameter { get; set; }

    /// <summary>Pitch diameter D.</summary>
    public double PitchDiameter { get; set; }

    /// <summary>Contact angle φ in degrees (default 0).</summary>
    public double ContactAngle { get; set; }

    /// <summary>Shaft speed fr in Hz (revolutions per second).</summary>
    public double ShaftHz { get; set; }

    /// <summary>BPFO, BPFI, BSF and FTF in Hz.</summary>
    /// <returns>The four frequencies, in that order.</returns>
    public double[] FaultFrequencies()
    {
        double ratio = BallDiameter / PitchDiameter * Math.Cos(ContactAngle * Math.PI / 180);
        return
        [
            Balls / 2.0 * ShaftHz * (1 - ratio),
            Balls / 2.0 * ShaftHz * (1 + ratio),
            PitchDiameter / (2 * BallDiameter) * ShaftHz * (1 - (ratio * ratio)),
            ShaftHz / 2 * (1 - ratio),
        ];
    }

    internal void Validate(string path)
    {
        if (Balls is < 1 or > 1000)
        {
            throw new FeatureSpecException(path + ".balls", $"must be 1 to 1000 (got {Balls}).");
        }

        if (!(BallDiameter > 0 && PitchDiameter > BallDiameter) || !double.IsFinite(PitchDiameter))
        {
            throw new FeatureSpecException(path + ".ballDiameter", $"the ball diameter must be positive and below the pitch diameter (got {BallDiameter} and {PitchDiameter}).");
        }

        if (!(ContactAngle >= 0 && ContactAngle < 90))
        {
            throw new FeatureSpecException(path + ".contactAngle", $"must be 0 to below 90 degrees (got {ContactAngle}).");
        }

        if (!(ShaftHz > 0) || !double.IsFinite(ShaftHz))
        {
            throw new FeatureSpecException(path + ".shaftHz", $"must be a positive speed in Hz (got {ShaftHz}).");
        }
    }
}
