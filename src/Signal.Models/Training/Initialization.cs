using MathNet.Numerics.Distributions;
using MathNet.Numerics.LinearAlgebra;
using Signal.Models.Networks;

namespace Signal.Models.Training;

/// <summary>How a network's starting weights are drawn.</summary>
public enum InitializationKind
{
    /// <summary>
    /// Xavier (Glorot) uniform input weights, orthogonal recurrent weights (one orthogonal block per gate),
    /// zero biases with an LSTM forget-gate bias of 1, and a Xavier uniform head. The default of training.
    /// </summary>
    XavierOrthogonal,

    /// <summary>PyTorch's default: every tensor uniform in ±1/√hidden.</summary>
    Uniform,
}

/// <summary>Seeded weight initialisation of a <see cref="TrainingNetwork"/>.</summary>
public static class Initialization
{
    /// <summary>Overwrites every parameter of <paramref name="network"/> with weights drawn by <paramref name="kind"/>.</summary>
    /// <param name="network">The network.</param>
    /// <param name="kind">The scheme.</param>
    /// <param name="seed">The seed; the same seed gives the same weights.</param>
    public static void Apply(TrainingNetwork network, InitializationKind kind, int seed)
    {
        ArgumentNullException.ThrowIfNull(network);
        var random = new Random(seed);
        ModelArchitecture a = network.Architecture;
        foreach (Parameter p in network.Parameters)
        {
            bool isBias = p.Shape.Length == 1;
            int rows = p.Shape[0], columns = isBias ? 1 : p.Shape[1];
            LayerArchitecture? layer = LayerOf(a, p.Name);
            if (p.Name.StartsWith("convs.", StringComparison.Ordinal))
            {
                // A convolution [out, in, kernel]: fan-in in · kernel. PyTorch's default bound 1/√fan (uniform), or He
                // (Kaiming) uniform √(6/fan) for the ReLU that follows, with zero bias (Xavier-orthogonal).
                int index = int.Parse(p.Name.Split('.')[1], System.Globalization.CultureInfo.InvariantCulture);
                int fan = a.Convolutions[index].Kernel * a.ConvolutionInputSize(index);
                if (kind == InitializationKind.Uniform)
                {
                    Uniform(p.Value, 1.0 / Math.Sqrt(fan), random);
                }
                else if (isBias)
                {
                    Array.Clear(p.Value);
                }
                else
                {
                    Uniform(p.Value, Math.Sqrt(6.0 / fan), random);
                }

                continue;
            }

            if (kind == InitializationKind.Uniform)
            {
                int fanIn = layer?.HiddenSize ?? (isBias ? a.Layers[^1].HiddenSize : columns);
                Uniform(p.Value, 1.0 / Math.Sqrt(fanIn), random);
                continue;
            }

            if (isBias)
            {
                Array.Clear(p.Value);
                if (layer is { Kind: CellKind.Lstm } && p.Name.Contains("bias_ih", StringComparison.Ordinal))
                {
                    // Forget gate (PyTorch order i, f, g, o): bias 1, so the cell remembers from the start.
                    p.Value.AsSpan(layer.HiddenSize, layer.HiddenSize).Fill(1f);
                }

                continue;
            }

            int gates = layer?.GateCount ?? 1;
            int block = rows / gates;
            if (p.Name.Contains("weight_hh", StringComparison.Ordinal) && block == columns)
            {
                for (int g = 0; g < gates; g++)
                {
                    Orthogonal(block, random).CopyTo(p.Value.AsSpan(g * block * columns, block * columns));
                }
            }
            else
            {
                Uniform(p.Value, Math.Sqrt(6.0 / (block + columns)), random);
            }
        }
    }

    private static void Uniform(float[] values, double bound, Random random)
    {
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = (float)(((random.NextDouble() * 2) - 1) * bound);
        }
    }

    /// <summary>The layer a parameter belongs to, or null for the head.</summary>
    private static LayerArchitecture? LayerOf(ModelArchitecture architecture, string name)
    {
        for (int l = 0; l < architecture.Layers.Count; l++)
        {
            if (name.StartsWith(architecture.LayerPrefix(l) + ".", StringComparison.Ordinal))
            {
                return architecture.Layers[l];
            }
        }

        return null;
    }

    /// <summary>A random n × n orthogonal matrix (row-major): Q of the QR factorisation of a Gaussian matrix, signs fixed by R's diagonal as in PyTorch.</summary>
    private static float[] Orthogonal(int n, Random random)
    {
        var normal = new Normal(0, 1, random);
        Matrix<double> m = Matrix<double>.Build.Dense(n, n, (_, _) => normal.Sample());
        var qr = m.QR();
        Matrix<double> q = qr.Q;
        float[] result = new float[n * n];
        for (int c = 0; c < n; c++)
        {
            double sign = Math.Sign(qr.R[c, c]) is 0 ? 1 : Math.Sign(qr.R[c, c]);
            for (int r = 0; r < n; r++)
            {
                result[(r * n) + c] = (float)(q[r, c] * sign);
            }
        }

        return result;
    }
}
