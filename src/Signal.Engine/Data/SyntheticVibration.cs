namespace Signal.Engine.Data;

/// <summary>
/// Generates a machine-vibration-like test signal: shaft rotation harmonics, broadband noise and, in the
/// second half, periodic impacts of an outer-race bearing fault ringing a structural resonance (the shape
/// of the CWRU fault recordings). Deterministic for a seed; used by the demo and by tests.
/// </summary>
public static class SyntheticVibration
{
    /// <summary>Generates the signal.</summary>
    /// <param name="sampleRate">Samples per second.</param>
    /// <param name="seconds">Duration.</param>
    /// <param name="seed">Random seed of the noise.</param>
    /// <param name="shaftHz">Shaft rotation frequency (29.95 Hz is 1797 RPM).</param>
    /// <param name="faultHz">Impact rate of the fault (3.585 × shaft speed for CWRU's outer race).</param>
    /// <returns>A single-channel recording.</returns>
    public static Recording Generate(double sampleRate = 12000, double seconds = 4, int seed = 1, double shaftHz = 29.95, double faultHz = 107.4)
    {
        var rng = new Random(seed);
        int n = (int)(sampleRate * seconds);
        var x = new float[n];
        double resonance = 3000, decay = 800;
        for (int i = 0; i < n; i++)
        {
            double t = i / sampleRate;
            double v = (0.1 * Math.Sin(2 * Math.PI * shaftHz * t)) + (0.04 * Math.Sin(2 * Math.PI * 2 * shaftHz * t + 0.5))
                + (0.03 * Gaussian(rng));
            if (t >= seconds / 2)
            {
                double since = t % (1 / faultHz);
                v += 0.5 * Math.Exp(-decay * since) * Math.Sin(2 * Math.PI * resonance * since);
            }

            x[i] = (float)v;
        }

        return new Recording(x, 1, ["vibration"], $"synthetic vibration ({seconds} s at {sampleRate} Hz, fault from {seconds / 2} s)");
    }

    private static double Gaussian(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
