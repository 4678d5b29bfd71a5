namespace Signal.Models.Training;

/// <summary>Updates parameters from their gradients (PyTorch's update rules, so runs can be compared).</summary>
public abstract class Optimizer
{
    /// <summary>The learning rate of the next step (schedules set it).</summary>
    public double LearningRate { get; set; }

    /// <summary>Applies one update to every parameter from its gradient.</summary>
    /// <param name="parameters">The parameters.</param>
    public abstract void Update(IReadOnlyList<Parameter> parameters);

    /// <summary>
    /// Scales all gradients so their global L2 norm is at most <paramref name="maxNorm"/> (PyTorch's
    /// <c>clip_grad_norm_</c>: coefficient maxNorm / (norm + 1e-6) when below 1).
    /// </summary>
    /// <param name="parameters">The parameters.</param>
    /// <param name="maxNorm">The bound.</param>
    /// <returns>The norm before clipping.</returns>
    public static double ClipGradientNorm(IReadOnlyList<Parameter> parameters, double maxNorm)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        double squares = 0;
        foreach (Parameter p in parameters)
        {
            foreach (float g in p.Gradient)
            {
                squares += (double)g * g;
            }
        }

        double norm = Math.Sqrt(squares);
        double coefficient = maxNorm / (norm + 1e-6);
        if (coefficient < 1)
        {
            foreach (Parameter p in parameters)
            {
                System.Numerics.Tensors.TensorPrimitives.Multiply(p.Gradient, (float)coefficient, p.Gradient);
            }
        }

        return norm;
    }
}

/// <summary>
/// Adam (Kingma and Ba), and AdamW (Loshchilov and Hutter) when <see cref="DecoupledWeightDecay"/> is set:
/// m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², p ← p − lr·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε); weight decay adds
/// wd·p to g (Adam) or multiplies p by 1 − lr·wd first (AdamW), as PyTorch does.
/// </summary>
public sealed class Adam : Optimizer
{
    private readonly Dictionary<Parameter, (double[] M, double[] V)> _moments = [];
    private int _step;

    /// <summary>Creates the optimiser.</summary>
    /// <param name="learningRate">Learning rate (PyTorch default 1e-3).</param>
    /// <param name="weightDecay">Weight decay.</param>
    /// <param name="decoupled">AdamW when true.</param>
    public Adam(double learningRate = 1e-3, double weightDecay = 0, bool decoupled = false)
    {
        LearningRate = learningRate;
        WeightDecay = weightDecay;
        DecoupledWeightDecay = decoupled;
    }

    /// <summary>β₁. Default 0.9.</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>β₂. Default 0.999.</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>ε. Default 1e-8.</summary>
    public double Epsilon { get; init; } = 1e-8;

    /// <summary>Weight decay.</summary>
    public double WeightDecay { get; }

    /// <summary>AdamW's decoupled weight decay.</summary>
    public bool DecoupledWeightDecay { get; }

    /// <inheritdoc/>
    public override void Update(IReadOnlyList<Parameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        _step++;
        double c1 = 1 - Math.Pow(Beta1, _step), c2 = Math.Sqrt(1 - Math.Pow(Beta2, _step));
        foreach (Parameter p in parameters)
        {
            if (!_moments.TryGetValue(p, out (double[] M, double[] V) moments))
            {
                moments = (new double[p.Value.Length], new double[p.Value.Length]);
                _moments[p] = moments;
            }

            for (int i = 0; i < p.Value.Length; i++)
            {
                double value = p.Value[i];
                double g = p.Gradient[i];
                if (DecoupledWeightDecay)
                {
                    value *= 1 - (LearningRate * WeightDecay);
                }
                else
                {
                    g += WeightDecay * value;
                }

                moments.M[i] = (Beta1 * moments.M[i]) + ((1 - Beta1) * g);
                moments.V[i] = (Beta2 * moments.V[i]) + ((1 - Beta2) * g * g);
                value -= LearningRate / c1 * moments.M[i] / ((Math.Sqrt(moments.V[i]) / c2) + Epsilon);
                p.Value[i] = (float)value;
            }
        }
    }
}

/// <summary>SGD with momentum and weight decay, PyTorch's rule: g += wd·p; b ← μb + g (b = g at first); p ← p − lr·b.</summary>
public sealed class Sgd : Optimizer
{
    private readonly Dictionary<Parameter, double[]> _buffers = [];

    /// <summary>Creates the optimiser.</summary>
    /// <param name="learningRate">Learning rate.</param>
    /// <param name="momentum">Momentum μ.</param>
    /// <param name="weightDecay">Weight decay.</param>
    public Sgd(double learningRate, double momentum = 0.9, double weightDecay = 0)
    {
        LearningRate = learningRate;
        Momentum = momentum;
        WeightDecay = weightDecay;
    }

    /// <summary>Momentum μ.</summary>
    public double Momentum { get; }

    /// <summary>Weight decay.</summary>
    public double WeightDecay { get; }

    /// <inheritdoc/>
    public override void Update(IReadOnlyList<Parameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        foreach (Parameter p in parameters)
        {
            bool first = !_buffers.TryGetValue(p, out double[]? buffer);
            buffer ??= _buffers[p] = new double[p.Value.Length];
            for (int i = 0; i < p.Value.Length; i++)
            {
                double g = p.Gradient[i] + (WeightDecay * p.Value[i]);
                buffer[i] = first ? g : (Momentum * buffer[i]) + g;
                p.Value[i] = (float)(p.Value[i] - (LearningRate * (Momentum == 0 ? g : buffer[i])));
            }
        }
    }
}
