using System.Numerics.Tensors;

namespace Signal.Features.Spectra;

/// <summary>
/// Energies of a power spectrum in bands between configured frequency edges: band b sums the
/// bins whose frequency lies in the half-open interval [edge[b], edge[b+1]) Hz.
/// </summary>
/// <remarks>Immutable and safe to share between threads.</remarks>
public sealed class LinearBands
{
    private readonly int[] _first;
    private readonly int[] _end;

    /// <summary>Creates the bands.</summary>
    /// <param name="sampleRate">Samples per second.</param>
    /// <param name="fftLength">The FFT length N; spectra hold N/2 + 1 bins.</param>
    /// <param name="edges">At least two strictly increasing edges in Hz, from 0 to the Nyquist frequency.</param>
    public LinearBands(double sampleRate, int fftLength, IReadOnlyList<double> edges)
    {
        ArgumentNullException.ThrowIfNull(edges);
        string? problem = Validate(sampleRate, edges);
        if (problem is not null)
        {
            ThrowHelper.Argument(nameof(edges), problem);
        }

        BinCount = (fftLength / 2) + 1;
        Edges = [.. edges];
        _first = new int[edges.Count - 1];
        _end = new int[edges.Count - 1];
        double binHz = sampleRate / fftLength;
        for (int b = 0; b < _first.Length; b++)
        {
            _first[b] = Math.Min(BinCount, (int)Math.Ceiling((edges[b] / binHz) - 1e-9));
            _end[b] = Math.Min(BinCount, (int)Math.Ceiling((edges[b + 1] / binHz) - 1e-9));
        }
    }

    /// <summary>The number of bands.</summary>
    public int Bands => _first.Length;

    /// <summary>The number of bins read.</summary>
    public int BinCount { get; }

    /// <summary>The band edges in Hz.</summary>
    public IReadOnlyList<double> Edges { get; }

    /// <summary>Checks band edges; returns null when they are valid, else a message that says what is wrong.</summary>
    /// <param name="sampleRate">Samples per second.</param>
    /// <param name="edges">The edges to check.</param>
    /// <returns>Null, or the problem.</returns>
    public static string? Validate(double sampleRate, IReadOnlyList<double> edges)
    {
        if (edges.Count < 2)
        {
            return "Band edges need at least two frequencies (one band).";
        }

        for (int i = 0; i < edges.Count; i++)
        {
            if (!double.IsFinite(edges[i]) || edges[i] < 0)
            {
                return $"Band edge {i} ({edges[i]} Hz) must be a finite frequency of at least 0 Hz.";
            }

            if (edges[i] > (sampleRate / 2) + 1e-9)
            {
                return $"Band edge {i} ({edges[i]} Hz) is above the Nyquist frequency ({sampleRate / 2} Hz).";
            }

            if (i > 0 && edges[i] <= edges[i - 1])
            {
                return $"Band edges must increase: edge {i} ({edges[i]} Hz) is not above edge {i - 1} ({edges[i - 1]} Hz).";
            }
        }

        return null;
    }

    /// <summary>Sums the power in each band.</summary>
    /// <param name="power">The power spectrum, <see cref="BinCount"/> values.</param>
    /// <param name="energies">Receives <see cref="Bands"/> values.</param>
    public void Apply(ReadOnlySpan<float> power, Span<float> energies)
    {
        if (power.Length != BinCount)
        {
            ThrowHelper.ArgumentLength(nameof(power), BinCount, power.Length);
        }

        if (energies.Length < Bands)
        {
            ThrowHelper.ArgumentTooShort(nameof(energies), Bands, energies.Length);
        }

        for (int b = 0; b < _first.Length; b++)
        {
            energies[b] = _end[b] > _first[b] ? TensorPrimitives.Sum(power[_first[b].._end[b]]) : 0f;
        }
    }
}
