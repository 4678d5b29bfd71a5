using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Signal.Features.Filters;
using Signal.Features.Spectra;
using Signal.Features.Windows;

namespace Signal.Features.Pipeline;

/// <summary>
/// A JSON-serialisable description of a whole feature pipeline: sample rate, channels, framing,
/// window, pre-filters, the features with their parameters, and the normalisation statistics.
/// <see cref="FeaturePipeline"/> compiles it; <see cref="Validate"/> refuses a bad spec with a
/// message that names the field.
/// </summary>
/// <example>
/// <code language="json">
/// { "sampleRate": 12000, "channels": 1, "frameLength": 1024, "hop": 512, "window": "hann",
///   "filters": [ { "design": "butterworth", "mode": "highpass", "order": 4, "frequency": 10 } ],
///   "features": [ { "name": "rms" }, { "name": "mel", "count": 40 }, { "name": "mfcc", "count": 13 } ] }
/// </code>
/// </example>
/// <remarks>
/// Properties are settable rather than init-only: System.Text.Json's source generator resets init-only
/// properties missing from the JSON to default(T), which would lose the documented defaults.
/// </remarks>
public sealed record FeatureSpec
{
    /// <summary>Samples per second of each channel (Hz). Required.</summary>
    public double SampleRate { get; set; }

    /// <summary>Channels per sample (default 1).</summary>
    public int Channels { get; set; } = 1;

    /// <summary>Names of the channels used as column suffixes (default <c>ch0</c>, <c>ch1</c>, ...); as many as <see cref="Channels"/> when given.</summary>
    public IReadOnlyList<string>? ChannelNames { get; set; }

    /// <summary>Samples per frame (default 1024). A length that is not a power of two is zero-padded to the next one for the FFT.</summary>
    public int FrameLength { get; set; } = 1024;

    /// <summary>Samples between frame starts (default 512); at most <see cref="FrameLength"/>.</summary>
    public int Hop { get; set; } = 512;

    /// <summary>The window before the FFT: <c>hann</c> (default, periodic), <c>hamming</c>, <c>blackman</c>, <c>rectangular</c>.</summary>
    public string Window { get; set; } = "hann";

    /// <summary>Use the symmetric window form instead of the periodic one (default false).</summary>
    public bool SymmetricWindow { get; set; }

    /// <summary>Subtract each frame's mean per channel before any feature (default false).</summary>
    public bool RemoveDc { get; set; }

    /// <summary>The floor applied before every logarithm (default 1e-10, librosa's <c>amin</c>).</summary>
    public double LogFloor { get; set; } = Spectrum.DefaultFloor;

    /// <summary>What to do with NaN or infinite samples: <c>reject</c> (default: throw, consume nothing of the chunk) or <c>hold</c> (replace with the channel's previous sample and count).</summary>
    public string NonFinite { get; set; } = "reject";

    /// <summary>Filters run on the sample stream before framing, in order.</summary>
    public IReadOnlyList<FilterSpec> Filters { get; set; } = [];

    /// <summary>
    /// Resampling of the input to <see cref="SampleRate"/> before the filters and framing, for a sensor sampled at
    /// another rate than the model was trained at (<c>"resample": { "inputRate": 48000 }</c>); null: the input is at
    /// <see cref="SampleRate"/>.
    /// </summary>
    public ResampleSpec? Resample { get; set; }

    /// <summary>The rate samples arrive at: <see cref="ResampleSpec.InputRate"/>, or <see cref="SampleRate"/> without resampling.</summary>
    [JsonIgnore]
    public double InputRate => Resample?.InputRate ?? SampleRate;

    /// <summary>The features, in output column order. At least one.</summary>
    public IReadOnlyList<FeatureRequest> Features { get; set; } = [];

    /// <summary>Z-score statistics applied to the output vector, learned from data; null for raw features.</summary>
    public NormalizationStats? Normalization { get; set; }

    /// <summary>Reads a spec from JSON (names are camelCase; comments and trailing commas are allowed).</summary>
    /// <param name="json">The JSON text.</param>
    /// <returns>The spec, not yet validated.</returns>
    /// <exception cref="FeatureSpecException">The JSON is malformed; the message names the path.</exception>
    public static FeatureSpec FromJson(string json)
    {
        try
        {
            return JsonSerializer.Deserialize(json, FeatureSpecJsonContext.Default.FeatureSpec)
                ?? throw new FeatureSpecException("$", "the spec is empty (null).");
        }
        catch (JsonException ex)
        {
            throw new FeatureSpecException(ex.Path ?? "$", ex.Message, ex);
        }
    }

    /// <summary>Writes the spec as indented JSON.</summary>
    /// <returns>The JSON text.</returns>
    public string ToJson() => JsonSerializer.Serialize(this, FeatureSpecJsonContext.Default.FeatureSpec);

    /// <summary>Checks every field; throws on the first problem.</summary>
    /// <exception cref="FeatureSpecException">A field is invalid; <see cref="FeatureSpecException.Field"/> names it.</exception>
    public void Validate()
    {
        if (!(SampleRate > 0) || !double.IsFinite(SampleRate))
        {
            throw new FeatureSpecException("sampleRate", $"must be a number of Hz greater than zero (got {SampleRate}).");
        }

        if (Channels < 1 || Channels > 1024)
        {
            throw new FeatureSpecException("channels", $"must be 1 to 1024 (got {Channels}).");
        }

        if (ChannelNames is not null)
        {
            if (ChannelNames.Count != Channels)
            {
                throw new FeatureSpecException("channelNames", $"names {ChannelNames.Count} channels but the spec has {Channels}.");
            }

            for (int i = 0; i < ChannelNames.Count; i++)
            {
                if (string.IsNullOrWhiteSpace(ChannelNames[i]) || ChannelNames.Take(i).Contains(ChannelNames[i]))
                {
                    throw new FeatureSpecException($"channelNames[{i}]", "must be a non-empty name that no other channel has.");
                }
            }
        }

        if (FrameLength < 1 || FrameLength > Fft.RealFft.MaxLength)
        {
            throw new FeatureSpecException("frameLength", $"must be 1 to {Fft.RealFft.MaxLength} samples (got {FrameLength}).");
        }

        if (Hop < 1 || Hop > FrameLength)
        {
            throw new FeatureSpecException("hop", $"must be 1 to frameLength ({FrameLength}) samples (got {Hop}); a hop above the frame length would skip samples.");
        }

        if (!Windows.Window.TryParse(Window, out _))
        {
            throw new FeatureSpecException("window", $"'{Window}' is not a window; use hann, hamming, blackman or rectangular.");
        }

        if (!(LogFloor > 0) || !double.IsFinite(LogFloor))
        {
            throw new FeatureSpecException("logFloor", $"must be a number greater than zero (got {LogFloor}).");
        }

        if (NonFinite is not ("reject" or "hold"))
        {
            throw new FeatureSpecException("nonFinite", $"'{NonFinite}' is not a policy; use reject or hold.");
        }

        for (int i = 0; i < Filters.Count; i++)
        {
            Filters[i].Validate($"filters[{i}]", SampleRate);
        }

        Resample?.Validate(SampleRate);

        if (Features.Count == 0)
        {
            throw new FeatureSpecException("features", "lists no feature; name at least one (for example rms or mfcc).");
        }

        for (int i = 0; i < Features.Count; i++)
        {
            Features[i].Validate($"features[{i}]", this);
        }
    }

    /// <summary>The FFT length used: the frame length rounded up to a supported power of two.</summary>
    [JsonIgnore]
    public int FftLength => Fft.RealFft.NextSupportedLength(FrameLength);

    /// <summary>The window kind named by <see cref="Window"/>.</summary>
    [JsonIgnore]
    public WindowKind WindowKind => Windows.Window.TryParse(Window, out WindowKind kind) ? kind : WindowKind.Hann;

    /// <summary>The suffix of channel <paramref name="channel"/>'s columns: empty for a single channel, else <c>_name</c>.</summary>
    /// <param name="channel">The channel index.</param>
    /// <returns>The suffix.</returns>
    public string ChannelSuffix(int channel) =>
        Channels == 1 ? string.Empty : "_" + (ChannelNames?[channel] ?? "ch" + channel.ToString(CultureInfo.InvariantCulture));
}

/// <summary>A filter run on each channel's sample stream before framing.</summary>
public sealed record FilterSpec
{
    /// <summary>
    /// <c>butterworth</c> (default; scipy <c>butter</c>), <c>chebyshev1</c> (<c>cheby1</c>), <c>chebyshev2</c>
    /// (<c>cheby2</c>; its frequency is the stop band's edge, as in scipy), <c>elliptic</c> (<c>ellip</c>), <c>bessel</c>
    /// (<c>bessel</c>, phase-normalised), <c>fir</c> (window method, scipy <c>firwin</c>: <see cref="Taps"/> and
    /// <see cref="Window"/>) or <c>biquad</c> (one Audio EQ Cookbook section).
    /// </summary>
    public string Design { get; set; } = "butterworth";

    /// <summary><c>lowpass</c>, <c>highpass</c>, <c>bandpass</c> or <c>bandstop</c>; a biquad also <c>notch</c>.</summary>
    public string Mode { get; set; } = "lowpass";

    /// <summary>Order of the prototype, 1 to 16 (default 4); a band filter has twice as many poles, as in scipy.</summary>
    public int Order { get; set; } = 4;

    /// <summary>Cut-off (low/high-pass) or centre (biquad) frequency in Hz, strictly between 0 and the Nyquist frequency.</summary>
    public double Frequency { get; set; }

    /// <summary>The band's edges in Hz, [low, high], for band-pass and band-stop designs (scipy's two-element <c>Wn</c>).</summary>
    public IReadOnlyList<double>? Frequencies { get; set; }

    /// <summary>Pass-band ripple in dB of <c>chebyshev1</c> and <c>elliptic</c> (scipy's <c>rp</c>; unset: 1).</summary>
    /// <remarks>Unset fields are not written, so a spec without them keeps its JSON (and checkpoints their signature).</remarks>
    public double? Rp { get; set; }

    /// <summary>Stop-band attenuation in dB of <c>elliptic</c> and <c>chebyshev2</c> (scipy's <c>rs</c>; unset: 40).</summary>
    public double? Rs { get; set; }

    /// <summary>The pass-band ripple used: <see cref="Rp"/> or 1 dB.</summary>
    [JsonIgnore]
    public double RippleDb => Rp ?? 1;

    /// <summary>The stop-band attenuation used: <see cref="Rs"/> or 40 dB.</summary>
    [JsonIgnore]
    public double AttenuationDb => Rs ?? 40;

    /// <summary><c>fir</c>: the number of taps (scipy's <c>numtaps</c>; odd for high-pass and band-stop; unset: 101).</summary>
    public int? Taps { get; set; }

    /// <summary><c>fir</c>: the window of the window method: hamming (unset, scipy's default), hann, blackman or rectangular.</summary>
    public string? Window { get; set; }

    /// <summary>Quality factor of a biquad (default 1/√2).</summary>
    public double Q { get; set; } = 1 / Math.Sqrt(2);

    /// <summary>The filter mode named by <see cref="Mode"/>, or null when unknown (band-stop is <see cref="Filters.FilterMode.Notch"/>).</summary>
    [JsonIgnore]
    public FilterMode? FilterMode => Mode.ToLowerInvariant() switch
    {
        "lowpass" or "low-pass" or "low" => Filters.FilterMode.LowPass,
        "highpass" or "high-pass" or "high" => Filters.FilterMode.HighPass,
        "bandpass" or "band-pass" or "band" => Filters.FilterMode.BandPass,
        "notch" or "bandstop" or "band-stop" => Filters.FilterMode.Notch,
        _ => null,
    };

    /// <summary>The IIR family of <see cref="Design"/>, or null for a biquad or an unknown name.</summary>
    [JsonIgnore]
    public IirFamily? Family => Design.ToLowerInvariant() switch
    {
        "butterworth" or "butter" => IirFamily.Butterworth,
        "chebyshev1" or "cheby1" => IirFamily.ChebyshevI,
        "elliptic" or "ellip" => IirFamily.Elliptic,
        "chebyshev2" or "cheby2" => IirFamily.ChebyshevII,
        "bessel" => IirFamily.Bessel,
        _ => null,
    };

    /// <summary>Creates the filter for one channel of one stream (zero state).</summary>
    /// <param name="sampleRate">Samples per second.</param>
    /// <returns>An FIR filter for <c>fir</c>, otherwise the cascade of <see cref="CreateSections"/>.</returns>
    public StreamFilter CreateFilter(double sampleRate) => Design == "fir" ? new FirFilter(CreateTaps(sampleRate)) : new SosFilter(CreateSections(sampleRate));

    /// <summary>
    /// The taps of a <c>fir</c> design, as <c>scipy.signal.firwin(numtaps, cutoff, window, pass_zero, fs)</c> gives them:
    /// designed by NWaves (<c>DesignFilter.FirWin*</c>, which agrees with scipy to about 1e-8).
    /// </summary>
    /// <param name="sampleRate">Samples per second.</param>
    /// <returns>h[0], h[1], ….</returns>
    public double[] CreateTaps(double sampleRate)
    {
        int taps = Taps ?? 101;
        NWaves.Windows.WindowType window = (Window ?? "hamming") switch
        {
            "hann" => NWaves.Windows.WindowType.Hann,
            "blackman" => NWaves.Windows.WindowType.Blackman,
            "rectangular" => NWaves.Windows.WindowType.Rectangular,
            _ => NWaves.Windows.WindowType.Hamming,
        };
        return FilterMode!.Value switch
        {
            Filters.FilterMode.LowPass => NWaves.Filters.Fda.DesignFilter.FirWinLp(taps, Frequency / sampleRate, window),
            Filters.FilterMode.HighPass => NWaves.Filters.Fda.DesignFilter.FirWinHp(taps, Frequency / sampleRate, window),
            Filters.FilterMode.BandPass => NWaves.Filters.Fda.DesignFilter.FirWinBp(taps, Frequencies![0] / sampleRate, Frequencies[1] / sampleRate, window),
            _ => NWaves.Filters.Fda.DesignFilter.FirWinBs(taps, Frequencies![0] / sampleRate, Frequencies[1] / sampleRate, window),
        };
    }

    /// <summary>Designs the filter's sections.</summary>
    /// <param name="sampleRate">Samples per second.</param>
    /// <returns>The sections, in cascade order.</returns>
    /// <remarks>
    /// A Butterworth low- or high-pass is our own closed form (<see cref="Biquad.Butterworth"/>); every other IIR design
    /// goes through <see cref="IirDesign"/> (NWaves's analog prototypes, transformed in pole-zero form).
    /// </remarks>
    public Biquad[] CreateSections(double sampleRate)
    {
        FilterMode mode = FilterMode!.Value;
        bool band = mode is Filters.FilterMode.BandPass or Filters.FilterMode.Notch;
        return Family switch
        {
            null => [Biquad.Design(mode, Frequency, Q, sampleRate)],
            IirFamily.Butterworth when !band => Biquad.Butterworth(mode, Order, Frequency, sampleRate),
            IirFamily family => band
                ? IirDesign.Design(family, mode, Order, Frequencies![0], Frequencies[1], sampleRate, RippleDb, AttenuationDb)
                : IirDesign.Design(family, mode, Order, Frequency, 0, sampleRate, RippleDb, AttenuationDb),
        };
    }

    internal void Validate(string path, double sampleRate)
    {
        if (Family is null && Design is not ("biquad" or "fir"))
        {
            throw new FeatureSpecException(path + ".design", $"'{Design}' is not a filter design; use butterworth, chebyshev1, chebyshev2, elliptic, bessel, fir or biquad.");
        }

        if (FilterMode is not { } mode)
        {
            throw new FeatureSpecException(path + ".mode", $"'{Mode}' is not a filter mode; use lowpass, highpass, bandpass, bandstop or (biquad) notch.");
        }

        bool band = mode is Filters.FilterMode.BandPass or Filters.FilterMode.Notch;
        if (Family is not null && Order is < 1 or > 16)
        {
            throw new FeatureSpecException(path + ".order", $"must be 1 to 16 (got {Order}).");
        }

        if (Design == "fir")
        {
            if (Taps is < 3 or > 4097)
            {
                throw new FeatureSpecException(path + ".taps", $"must be 3 to 4097 (got {Taps}).");
            }

            if (mode is Filters.FilterMode.HighPass or Filters.FilterMode.Notch && (Taps ?? 101) % 2 == 0)
            {
                throw new FeatureSpecException(path + ".taps", $"a {Mode} FIR filter needs an odd number of taps (got {Taps}), as scipy's firwin does.");
            }

            if (Window is not (null or "hamming" or "hann" or "blackman" or "rectangular"))
            {
                throw new FeatureSpecException(path + ".window", $"'{Window}' is not a window; use hamming, hann, blackman or rectangular.");
            }
        }

        if ((Family is not null || Design == "fir") && band)
        {
            if (Frequencies is not [var low, var high] || !(low > 0 && high > low && high < sampleRate / 2))
            {
                throw new FeatureSpecException(path + ".frequencies", $"a {Mode} {Design} filter needs its band as [low, high] in Hz, 0 < low < high < the Nyquist frequency {sampleRate / 2} Hz (got {(Frequencies is null ? "none" : "[" + string.Join(", ", Frequencies) + "]")}).");
            }
        }
        else if (!(Frequency > 0 && Frequency < sampleRate / 2))
        {
            throw new FeatureSpecException(path + ".frequency", $"must lie strictly between 0 and the Nyquist frequency {sampleRate / 2} Hz (got {Frequency}).");
        }

        if (Family is IirFamily.ChebyshevI or IirFamily.Elliptic && !(RippleDb > 0 && RippleDb < 60))
        {
            throw new FeatureSpecException(path + ".rp", $"the pass-band ripple must be above 0 and below 60 dB (got {RippleDb}).");
        }

        if (Family == IirFamily.ChebyshevII && !(AttenuationDb > 0 && AttenuationDb < 300))
        {
            throw new FeatureSpecException(path + ".rs", $"the stop-band attenuation must be above 0 and below 300 dB (got {AttenuationDb}).");
        }

        if (Family == IirFamily.Elliptic && !(AttenuationDb > RippleDb && AttenuationDb < 300))
        {
            throw new FeatureSpecException(path + ".rs", $"the stop-band attenuation must be above rp ({RippleDb} dB) and below 300 dB (got {AttenuationDb}).");
        }

        if (!(Q > 0) || !double.IsFinite(Q))
        {
            throw new FeatureSpecException(path + ".q", $"must be a number greater than zero (got {Q}).");
        }
    }
}

/// <summary>Z-score statistics per output column: <c>y = (x - mean) / std</c>.</summary>
public sealed record NormalizationStats
{
    /// <summary>The mean of each column.</summary>
    public IReadOnlyList<float> Mean { get; set; } = [];

    /// <summary>The standard deviation of each column; a column with std below 1e-12 is only centred.</summary>
    public IReadOnlyList<float> Std { get; set; } = [];
}

/// <summary>A spec field that does not validate; <see cref="Field"/> is its JSON path.</summary>
public sealed class FeatureSpecException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="field">The JSON path of the field at fault, for example <c>features[2].count</c>.</param>
    /// <param name="problem">What is wrong with it.</param>
    /// <param name="inner">The underlying exception, if any.</param>
    public FeatureSpecException(string field, string problem, Exception? inner = null)
        : base($"Feature spec field '{field}': {problem}", inner)
    {
        Field = field;
    }

    /// <summary>The JSON path of the field at fault.</summary>
    public string Field { get; }
}

/// <summary>Source-generated JSON metadata for the spec types (trimming- and AOT-safe).</summary>
/// <summary>Streaming rational resampling of a spec's input (<see cref="FeatureSpec.Resample"/>), as <c>scipy.signal.resample_poly</c> does it.</summary>
public sealed record ResampleSpec
{
    /// <summary>The rate samples arrive at, in whole Hz (e.g. 48000 or 25600); they are resampled to the spec's sampleRate.</summary>
    public double InputRate { get; set; }

    internal void Validate(double sampleRate)
    {
        if (!(InputRate > 0) || InputRate != Math.Floor(InputRate) || InputRate > int.MaxValue)
        {
            throw new FeatureSpecException("resample.inputRate", $"must be a whole number of Hz greater than zero (got {InputRate}).");
        }

        if (sampleRate != Math.Floor(sampleRate))
        {
            throw new FeatureSpecException("resample.inputRate", $"resampling needs a whole-Hz sampleRate (got {sampleRate}).");
        }

        try
        {
            _ = new Filters.PolyphaseResampler((int)InputRate, (int)sampleRate, 1);
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new FeatureSpecException("resample.inputRate", e.Message.Split(" (Parameter", 2)[0], e);
        }
    }
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    WriteIndented = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    ReadCommentHandling = JsonCommentHandling.Skip,
    AllowTrailingCommas = true,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(FeatureSpec))]
internal sealed partial class FeatureSpecJsonContext : JsonSerializerContext;
