namespace Signal.Features.Windows;

/// <summary>Window tables, matching <c>scipy.signal.get_window</c>.</summary>
/// <remarks>
/// A <em>periodic</em> window of length L uses the denominator D = L (the first L points of a
/// symmetric window of length L + 1); it is what spectral analysis wants, and is scipy's
/// <c>fftbins=True</c> default and librosa's <c>hann</c>. A <em>symmetric</em> window uses
/// D = L - 1 (filter design, MATLAB's default). A window of length 1 is <c>[1]</c>.
/// </remarks>
public static class Window
{
    /// <summary>Creates a window table.</summary>
    /// <param name="kind">The window function.</param>
    /// <param name="length">The number of weights, at least 1.</param>
    /// <param name="symmetric">True for the symmetric form (D = L - 1); false (the default) for the periodic form (D = L).</param>
    /// <returns>A new array of <paramref name="length"/> weights.</returns>
    public static float[] Create(WindowKind kind, int length, bool symmetric = false)
    {
        var weights = new float[length];
        Fill(kind, weights, symmetric);
        return weights;
    }

    /// <summary>Fills <paramref name="destination"/> with the window of its length.</summary>
    /// <param name="kind">The window function.</param>
    /// <param name="destination">Receives the weights; its length is the window length (at least 1).</param>
    /// <param name="symmetric">True for the symmetric form (D = L - 1); false for the periodic form (D = L).</param>
    public static void Fill(WindowKind kind, Span<float> destination, bool symmetric = false)
    {
        int length = destination.Length;
        if (length < 1)
        {
            ThrowHelper.OutOfRange(nameof(destination), length, "A window holds at least one weight.");
        }

        if (!Enum.IsDefined(kind))
        {
            ThrowHelper.OutOfRange(nameof(kind), kind, "Unknown window kind.");
        }

        if (length == 1)
        {
            destination[0] = 1f;
            return;
        }

        double d = symmetric ? length - 1 : length;
        for (int n = 0; n < length; n++)
        {
            double x = 2.0 * Math.PI * n / d;
            double w = kind switch
            {
                WindowKind.Hann => 0.5 - (0.5 * Math.Cos(x)),
                WindowKind.Hamming => 0.54 - (0.46 * Math.Cos(x)),
                WindowKind.Blackman => 0.42 - (0.5 * Math.Cos(x)) + (0.08 * Math.Cos(2 * x)),
                _ => 1.0,
            };
            destination[n] = (float)w;
        }
    }

    /// <summary>Parses a window name: <c>rectangular</c> (or <c>boxcar</c>, <c>none</c>), <c>hann</c>, <c>hamming</c>, <c>blackman</c>.</summary>
    /// <param name="name">The name, case-insensitive.</param>
    /// <param name="kind">The window, when the name is known.</param>
    /// <returns>True when the name is known.</returns>
    public static bool TryParse(string? name, out WindowKind kind)
    {
        switch (name?.Trim().ToLowerInvariant())
        {
            case "rectangular" or "boxcar" or "rect" or "none":
                kind = WindowKind.Rectangular;
                return true;
            case "hann" or "hanning":
                kind = WindowKind.Hann;
                return true;
            case "hamming":
                kind = WindowKind.Hamming;
                return true;
            case "blackman":
                kind = WindowKind.Blackman;
                return true;
            default:
                kind = default;
                return false;
        }
    }
}
