namespace Signal.Features.Filters;

/// <summary>The response a filter section is designed for.</summary>
public enum FilterMode
{
    /// <summary>Passes frequencies below the cut-off.</summary>
    LowPass,

    /// <summary>Passes frequencies above the cut-off.</summary>
    HighPass,

    /// <summary>Passes a band around the centre frequency (constant 0 dB peak gain); width set by Q.</summary>
    BandPass,

    /// <summary>Removes a narrow band around the centre frequency; width set by Q.</summary>
    Notch,
}

/// <summary>
/// One second-order section <c>H(z) = (b0 + b1 z⁻¹ + b2 z⁻²) / (1 + a1 z⁻¹ + a2 z⁻²)</c>, coefficients normalised so a0 = 1
/// (a row of scipy's <c>sos</c> array is <c>[b0, b1, b2, 1, a1, a2]</c>).
/// </summary>
/// <param name="B0">Feed-forward coefficient of x[n].</param>
/// <param name="B1">Feed-forward coefficient of x[n-1].</param>
/// <param name="B2">Feed-forward coefficient of x[n-2].</param>
/// <param name="A1">Feedback coefficient of y[n-1].</param>
/// <param name="A2">Feedback coefficient of y[n-2].</param>
public readonly record struct Biquad(double B0, double B1, double B2, double A1, double A2)
{
    /// <summary>
    /// Designs a section from Robert Bristow-Johnson's Audio EQ Cookbook (the bilinear transform
    /// with the frequency pre-warped): low-pass, high-pass, band-pass (0 dB peak) or notch.
    /// </summary>
    /// <param name="mode">The response.</param>
    /// <param name="frequency">Cut-off or centre frequency in Hz, strictly between 0 and the Nyquist frequency.</param>
    /// <param name="q">Quality factor, greater than zero (1/√2 gives a Butterworth low/high-pass).</param>
    /// <param name="sampleRate">Samples per second.</param>
    /// <returns>The section.</returns>
    public static Biquad Design(FilterMode mode, double frequency, double q, double sampleRate)
    {
        CheckFrequency(frequency, sampleRate);
        if (!(q > 0) || !double.IsFinite(q))
        {
            throw new ArgumentOutOfRangeException(nameof(q), q, "The filter's Q must be a finite number greater than zero.");
        }

        double w0 = 2 * Math.PI * frequency / sampleRate;
        double c = Math.Cos(w0), alpha = Math.Sin(w0) / (2 * q);
        double a0 = 1 + alpha;
        (double b0, double b1, double b2) = mode switch
        {
            FilterMode.LowPass => ((1 - c) / 2, 1 - c, (1 - c) / 2),
            FilterMode.HighPass => ((1 + c) / 2, -(1 + c), (1 + c) / 2),
            FilterMode.BandPass => (alpha, 0.0, -alpha),
            FilterMode.Notch => (1.0, -2 * c, 1.0),
            _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown filter mode."),
        };
        return new Biquad(b0 / a0, b1 / a0, b2 / a0, -2 * c / a0, (1 - alpha) / a0);
    }

    /// <summary>
    /// A first-order low- or high-pass section (b2 = a2 = 0) by the pre-warped bilinear transform of
    /// <c>1/(s+1)</c> or <c>s/(s+1)</c>; the odd section of an odd-order Butterworth filter.
    /// </summary>
    /// <param name="mode"><see cref="FilterMode.LowPass"/> or <see cref="FilterMode.HighPass"/>.</param>
    /// <param name="frequency">Cut-off in Hz, strictly between 0 and the Nyquist frequency.</param>
    /// <param name="sampleRate">Samples per second.</param>
    /// <returns>The section.</returns>
    public static Biquad FirstOrder(FilterMode mode, double frequency, double sampleRate)
    {
        CheckFrequency(frequency, sampleRate);
        double k = Math.Tan(Math.PI * frequency / sampleRate);
        double a1 = (k - 1) / (k + 1);
        return mode switch
        {
            FilterMode.LowPass => new Biquad(k / (1 + k), k / (1 + k), 0, a1, 0),
            FilterMode.HighPass => new Biquad(1 / (1 + k), -1 / (1 + k), 0, a1, 0),
            _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "A first-order section is a low-pass or a high-pass."),
        };
    }

    /// <summary>
    /// A Butterworth low- or high-pass filter of order N as cascaded sections, the same filter as
    /// <c>scipy.signal.butter(N, frequency, mode, fs=sampleRate, output='sos')</c>: ⌊N/2⌋ Cookbook sections with
    /// <c>Q_k = 1 / (2·cos ψ_k)</c> where <c>ψ_k = π(N-2k-1)/(2N)</c> is the angle of the k-th analog pole pair from the
    /// negative real axis, and one first-order section (the real pole) when N is odd.
    /// </summary>
    /// <param name="mode"><see cref="FilterMode.LowPass"/> or <see cref="FilterMode.HighPass"/>.</param>
    /// <param name="order">The order N, 1 to 16.</param>
    /// <param name="frequency">The -3 dB cut-off in Hz, strictly between 0 and the Nyquist frequency.</param>
    /// <param name="sampleRate">Samples per second.</param>
    /// <returns>The sections, in cascade order.</returns>
    public static Biquad[] Butterworth(FilterMode mode, int order, double frequency, double sampleRate)
    {
        if (mode is not (FilterMode.LowPass or FilterMode.HighPass))
        {
            throw new ArgumentOutOfRangeException(nameof(mode), mode, "A Butterworth filter here is a low-pass or a high-pass; use a band-pass or notch biquad for bands.");
        }

        if (order is < 1 or > 16)
        {
            throw new ArgumentOutOfRangeException(nameof(order), order, "The Butterworth order must be 1 to 16.");
        }

        var sections = new Biquad[(order + 1) / 2];
        for (int k = 0; k < order / 2; k++)
        {
            double q = 1.0 / (2.0 * Math.Cos(Math.PI * (order - (2 * k) - 1) / (2.0 * order)));
            sections[k] = Design(mode, frequency, q, sampleRate);
        }

        if (order % 2 == 1)
        {
            sections[^1] = FirstOrder(mode, frequency, sampleRate);
        }

        return sections;
    }

    private static void CheckFrequency(double frequency, double sampleRate)
    {
        if (!(sampleRate > 0) || !double.IsFinite(sampleRate))
        {
            throw new ArgumentOutOfRangeException(nameof(sampleRate), sampleRate, "The sample rate must be a finite number of Hz greater than zero.");
        }

        if (!(frequency > 0 && frequency < sampleRate / 2))
        {
            throw new ArgumentOutOfRangeException(nameof(frequency), frequency, $"The filter frequency must lie strictly between 0 and the Nyquist frequency ({sampleRate / 2} Hz).");
        }
    }
}
