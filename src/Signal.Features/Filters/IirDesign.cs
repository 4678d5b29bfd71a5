using System.Numerics;

namespace Signal.Features.Filters;

/// <summary>The analog prototype of an IIR design (<see cref="IirDesign"/>).</summary>
public enum IirFamily
{
    /// <summary>Maximally flat (scipy <c>butter</c>).</summary>
    Butterworth,

    /// <summary>Equiripple pass band of <c>rp</c> dB (scipy <c>cheby1</c>).</summary>
    ChebyshevI,

    /// <summary>Equiripple pass band of <c>rp</c> dB and stop band <c>rs</c> dB down (scipy <c>ellip</c>).</summary>
    Elliptic,

    /// <summary>Flat pass band, equiripple stop band <c>rs</c> dB down from the given edge on (scipy <c>cheby2</c>).</summary>
    ChebyshevII,

    /// <summary>Maximally flat group delay, phase-normalised (scipy <c>bessel</c>, <c>norm='phase'</c>).</summary>
    Bessel,
}

/// <summary>
/// Digital IIR filters as cascaded second-order sections, designed the way <c>scipy.signal.iirfilter(…, output='sos')</c>
/// designs them: the analog low-pass prototype's poles and zeros come from NWaves (<c>Prototype*.Poles/Zeros</c>), then
/// the frequency transformation (low-, high-, band-pass, band-stop, with pre-warped edges), the bilinear transform and
/// the grouping into sections happen here, in pole-zero form throughout.
/// </summary>
/// <remarks>
/// Why not NWaves's own filters: they expand the transfer function into one polynomial and factor it again
/// (<c>DesignFilter.TfToSos</c>), which loses the filter at low normalised frequencies. Measured: an order-8
/// Butterworth band-pass of 0.01–0.02 cycles per sample came out with a gain of 668,737 where scipy's is 0.707; an
/// order-4 Chebyshev I or elliptic filter of even order also differs from scipy by the pass-band ripple's gain
/// (NWaves puts the ripple below 0 dB's peak, scipy above), and NWaves's Bessel band-pass uses other band edges.
/// The prototypes agree with scipy's to 8 digits (Butterworth, Chebyshev I, Bessel, even-order elliptic) and to
/// about 1e-5 (odd-order elliptic, whose Landen iteration differs).
/// </remarks>
public static class IirDesign
{
    /// <summary>Designs a filter.</summary>
    /// <param name="family">The prototype.</param>
    /// <param name="mode">Low-pass, high-pass, band-pass or band-stop (<see cref="FilterMode.Notch"/> is band-stop here).</param>
    /// <param name="order">Prototype order, 1 to 16 (a band filter has twice as many poles).</param>
    /// <param name="low">The cut-off (low/high-pass) or the lower band edge in Hz.</param>
    /// <param name="high">The upper band edge in Hz (band modes; ignored otherwise).</param>
    /// <param name="sampleRate">Samples per second.</param>
    /// <param name="rp">Pass-band ripple in dB (Chebyshev I, elliptic).</param>
    /// <param name="rs">Stop-band attenuation in dB (elliptic).</param>
    /// <returns>The sections in cascade order, the overall gain in the first.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A parameter is out of range; the message names it.</exception>
    public static Biquad[] Design(IirFamily family, FilterMode mode, int order, double low, double high, double sampleRate, double rp = 1, double rs = 40)
    {
        if (order is < 1 or > 16)
        {
            throw new ArgumentOutOfRangeException(nameof(order), order, "The order must be 1 to 16.");
        }

        bool band = mode is FilterMode.BandPass or FilterMode.Notch;
        double nyquist = sampleRate / 2;
        if (!(sampleRate > 0) || !(low > 0 && low < nyquist) || (band && !(high > low && high < nyquist)))
        {
            throw new ArgumentOutOfRangeException(nameof(low), low, $"The frequencies must lie strictly between 0 and the Nyquist frequency ({nyquist} Hz), the band's lower edge below its upper.");
        }

        if ((family is IirFamily.ChebyshevI or IirFamily.Elliptic && !(rp > 0)) || (family == IirFamily.Elliptic && !(rs > rp)) || (family == IirFamily.ChebyshevII && !(rs > 0)))
        {
            throw new ArgumentOutOfRangeException(nameof(rp), rp, "The pass-band ripple rp must be above 0 dB and the stop-band attenuation rs above rp.");
        }

        (List<Complex> z, List<Complex> p, double k) = Prototype(family, order, rp, rs);

        // Pre-warp the edges for the bilinear transform (scipy: warped = 2·fs·tan(π·f/fs)).
        double fs2 = 2 * sampleRate;
        double w1 = fs2 * Math.Tan(Math.PI * low / sampleRate), w2 = band ? fs2 * Math.Tan(Math.PI * high / sampleRate) : 0;
        (z, p, k) = mode switch
        {
            FilterMode.LowPass => ToLowPass(z, p, k, w1),
            FilterMode.HighPass => ToHighPass(z, p, k, w1),
            FilterMode.BandPass => ToBandPass(z, p, k, Math.Sqrt(w1 * w2), w2 - w1),
            _ => ToBandStop(z, p, k, Math.Sqrt(w1 * w2), w2 - w1),
        };
        (z, p, k) = Bilinear(z, p, k, fs2);
        return Sections(z, p, k);
    }

    /// <summary>The analog low-pass prototype (cut-off 1 rad/s): zeros, poles and the gain scipy gives it.</summary>
    private static (List<Complex> Z, List<Complex> P, double K) Prototype(IirFamily family, int order, double rp, double rs)
    {
        if (family == IirFamily.ChebyshevII)
        {
            return ChebyshevIIPrototype(order, rs);
        }

        Complex[] poles = family switch
        {
            IirFamily.Butterworth => NWaves.Filters.Butterworth.PrototypeButterworth.Poles(order),
            IirFamily.ChebyshevI => NWaves.Filters.ChebyshevI.PrototypeChebyshevI.Poles(order, rp),
            IirFamily.Elliptic => NWaves.Filters.Elliptic.PrototypeElliptic.Poles(order, rp, rs),
            _ => NWaves.Filters.Bessel.PrototypeBessel.Poles(order),
        };

        // An odd elliptic prototype lists its zero at infinity as a huge number; it is no zero of the filter.
        Complex[] zeros = family == IirFamily.Elliptic ? [.. NWaves.Filters.Elliptic.PrototypeElliptic.Zeros(order, rp, rs).Where(v => v.Magnitude < 1e10)] : [];
        var p = poles.Select(v => Math.Abs(v.Imaginary) < 1e-12 * Math.Max(1, v.Magnitude) ? new Complex(v.Real, 0) : v).ToList();
        var z = zeros.ToList();

        // Unity gain at DC (the peak of an odd ripple design), and for an even ripple design the pass band's
        // lowest point at DC: k = Re(∏−p / ∏−z) · 10^(−rp/20).
        double k = (Product(p, v => -v) / Product(z, v => -v)).Real;
        if (family is IirFamily.ChebyshevI or IirFamily.Elliptic && order % 2 == 0)
        {
            k *= Math.Pow(10, -rp / 20);
        }

        return (z, p, k);
    }

    /// <summary>
    /// The Chebyshev II prototype (stop band from 1 rad/s, <paramref name="rs"/> dB down), computed here as scipy's
    /// <c>cheb2ap</c> does: NWaves's <c>PrototypeChebyshevII.Poles</c> takes its ripple in another sense (measured: for
    /// order 4 and 40 dB its poles lie at −0.0011 ± 1.0824j, scipy's at −0.5045 ± 0.2408j); its zeros agree.
    /// </summary>
    private static (List<Complex> Z, List<Complex> P, double K) ChebyshevIIPrototype(int order, double rs)
    {
        double de = 1 / Math.Sqrt(Math.Pow(10, 0.1 * rs) - 1);
        double mu = Math.Asinh(1 / de) / order;
        var z = new List<Complex>();
        for (int m = -order + 1; m < order; m += 2)
        {
            if (m != 0)
            {
                // −conj(j / sin(mπ/2N)) = j / sin(mπ/2N): zeros on the imaginary axis (an odd order has none at m = 0).
                z.Add(new Complex(0, 1 / Math.Sin(m * Math.PI / (2 * order))));
            }
        }

        var p = new List<Complex>();
        for (int m = -order + 1; m < order; m += 2)
        {
            Complex q = -Complex.Exp(new Complex(0, Math.PI * m / (2 * order)));
            Complex warped = new(Math.Sinh(mu) * q.Real, Math.Cosh(mu) * q.Imaginary);
            Complex pole = 1 / warped;
            p.Add(Math.Abs(pole.Imaginary) < 1e-12 * pole.Magnitude ? new Complex(pole.Real, 0) : pole);
        }

        double k = (Product(p, v => -v) / Product(z, v => -v)).Real;
        return (z, p, k);
    }

    private static (List<Complex>, List<Complex>, double) ToLowPass(List<Complex> z, List<Complex> p, double k, double wo)
    {
        int degree = p.Count - z.Count;
        return ([.. z.Select(v => v * wo)], [.. p.Select(v => v * wo)], k * Math.Pow(wo, degree));
    }

    private static (List<Complex>, List<Complex>, double) ToHighPass(List<Complex> z, List<Complex> p, double k, double wo)
    {
        int degree = p.Count - z.Count;
        double gain = k * (Product(z, v => -v) / Product(p, v => -v)).Real;
        return ([.. z.Select(v => wo / v), .. Enumerable.Repeat(Complex.Zero, degree)], [.. p.Select(v => wo / v)], gain);
    }

    private static (List<Complex>, List<Complex>, double) ToBandPass(List<Complex> z, List<Complex> p, double k, double wo, double bw)
    {
        int degree = p.Count - z.Count;
        List<Complex> Split(List<Complex> roots)
        {
            var half = roots.Select(v => v * bw / 2).ToList();
            return [.. half.Select(v => v + Complex.Sqrt((v * v) - (wo * wo))), .. half.Select(v => v - Complex.Sqrt((v * v) - (wo * wo)))];
        }

        return ([.. Split(z), .. Enumerable.Repeat(Complex.Zero, degree)], Split(p), k * Math.Pow(bw, degree));
    }

    private static (List<Complex>, List<Complex>, double) ToBandStop(List<Complex> z, List<Complex> p, double k, double wo, double bw)
    {
        int degree = p.Count - z.Count;
        List<Complex> Split(List<Complex> roots)
        {
            var inverted = roots.Select(v => bw / 2 / v).ToList();
            return [.. inverted.Select(v => v + Complex.Sqrt((v * v) - (wo * wo))), .. inverted.Select(v => v - Complex.Sqrt((v * v) - (wo * wo)))];
        }

        double gain = k * (Product(z, v => -v) / Product(p, v => -v)).Real;
        return ([.. Split(z), .. Enumerable.Repeat(new Complex(0, wo), degree), .. Enumerable.Repeat(new Complex(0, -wo), degree)], Split(p), gain);
    }

    private static (List<Complex>, List<Complex>, double) Bilinear(List<Complex> z, List<Complex> p, double k, double fs2)
    {
        int degree = p.Count - z.Count;
        double gain = k * (Product(z, v => fs2 - v) / Product(p, v => fs2 - v)).Real;
        return ([.. z.Select(v => (fs2 + v) / (fs2 - v)), .. Enumerable.Repeat(new Complex(-1, 0), degree)], [.. p.Select(v => (fs2 + v) / (fs2 - v))], gain);
    }

    /// <summary>
    /// Groups poles and zeros into real second-order sections: conjugate pairs stay together, real roots pair up,
    /// and each pole pair, taken from the unit circle's farthest to its nearest, gets the remaining zero pair nearest to it
    /// (scipy's <c>zpk2sos</c> pairs the same way in spirit; the product of the sections is the same filter).
    /// </summary>
    private static Biquad[] Sections(List<Complex> z, List<Complex> p, double k)
    {
        List<Complex[]> polePairs = Pairs(p), zeroPairs = Pairs(z);
        polePairs = [.. polePairs.OrderBy(pair => pair.Max(v => v.Magnitude))];
        var sections = new Biquad[polePairs.Count];
        for (int s = 0; s < polePairs.Count; s++)
        {
            Complex[] poles = polePairs[s];
            Complex[] zeros = [];
            if (zeroPairs.Count > 0)
            {
                int best = 0;
                for (int i = 1; i < zeroPairs.Count; i++)
                {
                    if (Distance(zeroPairs[i], poles) < Distance(zeroPairs[best], poles))
                    {
                        best = i;
                    }
                }

                zeros = zeroPairs[best];
                zeroPairs.RemoveAt(best);
            }

            (double b1, double b2) = Polynomial(zeros);
            (double a1, double a2) = Polynomial(poles);
            double gain = s == 0 ? k : 1; // the overall gain rides on the first section
            sections[s] = new Biquad(gain, gain * b1, gain * b2, a1, a2);
        }

        if (zeroPairs.Count > 0)
        {
            throw new InvalidOperationException("the design has more zeros than poles.");
        }

        return sections;
    }

    private static double Distance(Complex[] zeros, Complex[] poles) => zeros.Min(a => poles.Min(b => (a - b).Magnitude));

    /// <summary>Monic polynomial of one or two roots: (x − r₁)(x − r₂) = x² + c₁x + c₂ (one root: x + c₁, c₂ = 0).</summary>
    private static (double C1, double C2) Polynomial(Complex[] roots) => roots.Length switch
    {
        0 => (0, 0),
        1 => (-roots[0].Real, 0),
        _ => ((-(roots[0] + roots[1])).Real, (roots[0] * roots[1]).Real),
    };

    /// <summary>Complex roots with their conjugates, then the real roots two by two (an odd one alone).</summary>
    private static List<Complex[]> Pairs(List<Complex> roots)
    {
        var pairs = new List<Complex[]>();
        var complex = roots.Where(v => Math.Abs(v.Imaginary) > 1e-10 * Math.Max(1, v.Magnitude)).ToList();
        foreach (Complex c in complex.Where(v => v.Imaginary > 0))
        {
            pairs.Add([c, Complex.Conjugate(c)]);
        }

        if (complex.Count != 2 * pairs.Count)
        {
            throw new InvalidOperationException("the design's complex roots do not come in conjugate pairs.");
        }

        double[] real = [.. roots.Where(v => Math.Abs(v.Imaginary) <= 1e-10 * Math.Max(1, v.Magnitude)).Select(v => v.Real).Order()];
        for (int i = 0; i < real.Length; i += 2)
        {
            pairs.Add(i + 1 < real.Length ? [real[i], real[i + 1]] : [real[i]]);
        }

        return pairs;
    }

    private static Complex Product(List<Complex> values, Func<Complex, Complex> term)
    {
        Complex product = Complex.One;
        foreach (Complex v in values)
        {
            product *= term(v);
        }

        return product;
    }
}
