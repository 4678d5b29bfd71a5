using System.Numerics.Tensors;

namespace Signal.Features.Spectra;

/// <summary>
/// The orthonormal DCT-II (<c>scipy.fft.dct(x, type=2, norm='ortho')</c>), keeping the first
/// <see cref="Coefficients"/> outputs, with optional liftering folded into the matrix; this is
/// the cepstral step of MFCC (librosa's <c>mfcc(dct_type=2, norm='ortho', lifter=L)</c>).
/// </summary>
/// <remarks>
/// <c>y[k] = s_k · Σ_j x[j]·cos(πk(2j+1)/(2n))</c> with <c>s_0 = √(1/n)</c>, <c>s_k = √(2/n)</c>;
/// with a lifter L &gt; 0 each <c>y[k]</c> is multiplied by <c>1 + (L/2)·sin(π(k+1)/L)</c>.
/// Immutable and safe to share between threads.
/// </remarks>
public sealed class Dct
{
    private readonly float[] _matrix;

    /// <summary>Precomputes the matrix.</summary>
    /// <param name="inputs">The input length n (mel bands), at least 1.</param>
    /// <param name="coefficients">Outputs kept, 1 to n.</param>
    /// <param name="lifter">Lifter L; 0 for none.</param>
    public Dct(int inputs, int coefficients, int lifter = 0)
    {
        if (inputs < 1)
        {
            ThrowHelper.OutOfRange(nameof(inputs), inputs, "The DCT needs at least one input.");
        }

        if (coefficients < 1 || coefficients > inputs)
        {
            ThrowHelper.OutOfRange(nameof(coefficients), coefficients, $"The DCT keeps 1 to {inputs} coefficients (the number of mel bands).");
        }

        if (lifter < 0)
        {
            ThrowHelper.OutOfRange(nameof(lifter), lifter, "The lifter must be 0 (none) or positive.");
        }

        Inputs = inputs;
        Coefficients = coefficients;
        Lifter = lifter;
        _matrix = new float[coefficients * inputs];
        for (int k = 0; k < coefficients; k++)
        {
            double scale = Math.Sqrt((k == 0 ? 1.0 : 2.0) / inputs);
            if (lifter > 0)
            {
                scale *= 1.0 + (lifter / 2.0 * Math.Sin(Math.PI * (k + 1) / lifter));
            }

            for (int j = 0; j < inputs; j++)
            {
                _matrix[(k * inputs) + j] = (float)(scale * Math.Cos(Math.PI * k * ((2 * j) + 1) / (2.0 * inputs)));
            }
        }
    }

    /// <summary>The input length n.</summary>
    public int Inputs { get; }

    /// <summary>The number of outputs.</summary>
    public int Coefficients { get; }

    /// <summary>The lifter L folded into the matrix (0 for none).</summary>
    public int Lifter { get; }

    /// <summary>Transforms <paramref name="input"/> (<see cref="Inputs"/> values) into <see cref="Coefficients"/> values.</summary>
    /// <param name="input">The input vector (log mel energies for MFCC).</param>
    /// <param name="output">Receives <see cref="Coefficients"/> values.</param>
    public void Transform(ReadOnlySpan<float> input, Span<float> output)
    {
        if (input.Length != Inputs)
        {
            ThrowHelper.ArgumentLength(nameof(input), Inputs, input.Length);
        }

        if (output.Length < Coefficients)
        {
            ThrowHelper.ArgumentTooShort(nameof(output), Coefficients, output.Length);
        }

        ReadOnlySpan<float> m = _matrix;
        for (int k = 0; k < Coefficients; k++)
        {
            output[k] = TensorPrimitives.Dot(m.Slice(k * Inputs, Inputs), input);
        }
    }
}
