using Signal.Models.Files;
using Signal.Models.Networks;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace Signal.Models.Training;

/// <summary>One trainable tensor: its values (PyTorch layout and name) and its gradient.</summary>
/// <param name="Name">The tensor's name.</param>
/// <param name="Shape">Its dimensions.</param>
/// <param name="Value">Its values, updated in place by the optimiser.</param>
/// <param name="Gradient">Its accumulated gradient.</param>
public sealed record Parameter(string Name, int[] Shape, float[] Value, float[] Gradient);

/// <summary>Where the classification loss is taken.</summary>
public enum LossKind
{
    /// <summary>Cross-entropy at the last valid step of each sequence (a label per sequence).</summary>
    LastStep,

    /// <summary>Cross-entropy at every valid step (streaming labels: the live engine may answer at any step).</summary>
    EveryStep,
}

/// <summary>
/// A batch of variable-length sequences, padded to <see cref="Steps"/>: inputs [count × steps × inputSize],
/// one length and one label per sequence. Steps past a sequence's length are never computed, so padding
/// cannot leak into the states, the loss or the gradients.
/// </summary>
/// <param name="Inputs">Padded inputs, sequence-major then step-major.</param>
/// <param name="Count">Sequences.</param>
/// <param name="Steps">Padded length.</param>
/// <param name="InputSize">Inputs per step.</param>
/// <param name="Lengths">Valid steps of each sequence (1..Steps).</param>
/// <param name="Labels">Class of each sequence.</param>
public sealed record SequenceBatch(float[] Inputs, int Count, int Steps, int InputSize, int[] Lengths, int[] Labels)
{
    /// <summary>
    /// Steps at the start of each sequence that take no loss (a recovery prefix: the network runs through them, and
    /// learns to forecast and classify the steps after them), or null for none.
    /// </summary>
    public int[]? Skip { get; init; }
}

/// <summary>
/// Back-propagation through time for stacks of unidirectional LSTM, GRU and RNN layers with a dense softmax
/// head, over the same tensors (PyTorch names and layouts) a <see cref="RecurrentModel"/> runs. Gradients
/// match PyTorch's autograd (see the reference tests).
/// </summary>
/// <remarks>
/// Dropout (<see cref="Dropout"/>) and truncated BPTT (<see cref="TruncateSteps"/>) are options of the gradient
/// pass. Not yet trainable: LSTM projections, layer normalisation and bidirectional layers (they run, but the
/// trainer refuses them with a message). Sequences are processed one after another and the work inside a
/// step is vectorised with TensorPrimitives; results do not depend on the machine's vector width beyond
/// rounding. Not thread-safe: one network per training thread.
/// </remarks>
public sealed partial class TrainingNetwork
{
    private readonly LayerArchitecture[] _layers;
    private readonly int[] _inputSizes;
    private readonly ConvolutionArchitecture[] _convolutions;
    private readonly Dictionary<string, Parameter> _byName;
    private double _dropout;
    private double _smoothing;
    private int _truncate;
    private Random _random = new(1);

    /// <summary>Creates the network from an architecture and its tensors (copied).</summary>
    /// <param name="architecture">The architecture.</param>
    /// <param name="tensors">The initial tensors by name.</param>
    public TrainingNetwork(ModelArchitecture architecture, IReadOnlyDictionary<string, Tensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        ArgumentNullException.ThrowIfNull(tensors);
        architecture.Validate();
        for (int i = 0; i < architecture.Layers.Count; i++)
        {
            LayerArchitecture l = architecture.Layers[i];
            string? unsupported = l.Bidirectional ? "bidirectional layers" : l.ProjectionSize > 0 ? "LSTM projections" : l.LayerNorm ? "layer normalisation" : !l.Bias ? "layers without bias" : null;
            if (unsupported is not null)
            {
                throw new NotSupportedException($"layer {i}: training does not support {unsupported} yet; the model can still be imported and run.");
            }
        }

        if (architecture.Classes == 0 && architecture.ForecastSize == 0)
        {
            throw new NotSupportedException("training needs a classification head ('classes' > 0), a forecasting head, or both.");
        }

        if (architecture.ForecastSize > 0 && architecture.ForecastSize != architecture.InputSize)
        {
            throw new NotSupportedException($"the forecasting head predicts the next input: 'forecastSize' must be {architecture.InputSize} (got {architecture.ForecastSize}).");
        }

        Architecture = architecture;
        _layers = [.. architecture.Layers];
        _inputSizes = [.. Enumerable.Range(0, _layers.Length).Select(architecture.LayerInputSize)];
        _convolutions = [.. architecture.Convolutions];
        RecurrentModel validated = RecurrentModel.Create(architecture, tensors);
        _byName = new Dictionary<string, Parameter>(StringComparer.Ordinal);
        foreach (RecurrentModel.TensorRequirement requirement in RecurrentModel.RequiredTensors(architecture))
        {
            Tensor t = validated.Tensors[requirement.Name];
            _byName[t.Name] = new Parameter(t.Name, [.. t.Shape], (float[])t.Data.Clone(), new float[t.Data.Length]);
        }

        Parameters = [.. _byName.Values];
    }

    private TrainingNetwork(TrainingNetwork source)
    {
        Architecture = source.Architecture;
        _layers = source._layers;
        _inputSizes = source._inputSizes;
        _convolutions = source._convolutions;
        _byName = source._byName.ToDictionary(p => p.Key, p => p.Value with { Gradient = new float[p.Value.Gradient.Length] }, StringComparer.Ordinal);
        Parameters = [.. source.Parameters.Select(p => _byName[p.Name])];
    }

    /// <summary>The architecture.</summary>
    public ModelArchitecture Architecture { get; }

    /// <summary>
    /// Label smoothing ε of the classification loss: the target puts 1 − ε on the label and ε/K on each of the K classes
    /// (PyTorch's <c>CrossEntropyLoss(label_smoothing=ε)</c>), so the loss is logΣe^z − (1 − ε)·z_y − (ε/K)·Σ z_c. Default 0.
    /// </summary>
    public double LabelSmoothing
    {
        get => _smoothing;
        set => _smoothing = value is >= 0 and < 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "label smoothing must be at least 0 and below 1.");
    }

    /// <summary>
    /// Dropout probability applied, while computing gradients only, to each layer's output where it feeds the next
    /// layer or the head (inverted dropout: kept units are scaled by 1 / (1 − p)); never on recurrent connections,
    /// so the live engine's step is unchanged. Default 0.
    /// </summary>
    public double Dropout
    {
        get => _dropout;
        set => _dropout = value is >= 0 and < 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "dropout must be at least 0 and below 1.");
    }

    /// <summary>Truncated BPTT: gradients flow back through at most this many steps of a chunk; 0 for the whole sequence.</summary>
    public int TruncateSteps
    {
        get => _truncate;
        set => _truncate = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "truncation must be 0 or a number of steps.");
    }

    /// <summary>
    /// Weight of the forecasting loss next to the classification loss (models with both heads). Default 1.
    /// </summary>
    public double ForecastWeight { get; set; } = 1;

    /// <summary>
    /// With both heads: the class whose sequences the forecasting loss is taken on (the normal class, so the forecaster
    /// learns normal behaviour while the classifier learns every class); -1 (default) for every sequence.
    /// </summary>
    public int ForecastClass { get; set; } = -1;

    /// <summary>Applies dropout on loss-only passes too (gradient checks compare the same dropped function).</summary>
    internal bool DropoutWithoutGradients { get; set; }

    /// <summary>Seeds the dropout masks (each data-parallel replica gets its own seed).</summary>
    /// <param name="seed">The seed.</param>
    public void SeedDropout(int seed) => _random = new Random(seed);

    /// <summary>Every trainable tensor.</summary>
    public IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>A parameter by name.</summary>
    /// <param name="name">PyTorch name, e.g. <c>layers.0.weight_ih_l0</c>.</param>
    /// <returns>The parameter.</returns>
    public Parameter this[string name] => _byName[name];

    /// <summary>A network sharing this one's weights with gradients of its own (for data-parallel threads).</summary>
    /// <returns>The replica.</returns>
    public TrainingNetwork Replica() => new(this);

    /// <summary>Adds <paramref name="other"/>'s gradients to this network's.</summary>
    /// <param name="other">A replica.</param>
    public void AddGradients(TrainingNetwork other)
    {
        ArgumentNullException.ThrowIfNull(other);
        for (int i = 0; i < Parameters.Count; i++)
        {
            TensorPrimitives.Add(Parameters[i].Gradient, other.Parameters[i].Gradient, Parameters[i].Gradient);
        }
    }

    /// <summary>Zeroes every gradient.</summary>
    public void ZeroGradients()
    {
        foreach (Parameter p in Parameters)
        {
            Array.Clear(p.Gradient);
        }
    }

    /// <summary>The current weights as a runnable model.</summary>
    /// <param name="labels">Class labels.</param>
    /// <param name="metadata">Metadata to carry.</param>
    /// <returns>The model (weights copied).</returns>
    public RecurrentModel ToModel(IReadOnlyList<string>? labels = null, IReadOnlyDictionary<string, string>? metadata = null) =>
        RecurrentModel.Create(Architecture, Parameters.ToDictionary(p => p.Name, p => new Tensor(p.Name, p.Shape, (float[])p.Value.Clone()), StringComparer.Ordinal), labels, metadata);

    /// <summary>
    /// The batch's loss: the mean cross-entropy, class-weighted like PyTorch's <c>CrossEntropyLoss(weight=…)</c>
    /// (Σ wᵧ·nll / Σ wᵧ over the counted steps), plus, with a forecasting head, <see cref="ForecastWeight"/> × the mean
    /// squared error of each step's forecast of the next step's input (PyTorch's <c>MSELoss</c> over every predicted
    /// step and input); adds its gradient to <see cref="Parameter.Gradient"/> when <paramref name="backward"/> is set.
    /// </summary>
    /// <remarks>
    /// A forecast-only network ignores the labels; <paramref name="correct"/> is then 0 and <paramref name="counted"/>
    /// the number of predicted steps.
    /// </remarks>
    /// <param name="batch">The sequences.</param>
    /// <param name="loss">Last step or every step.</param>
    /// <param name="classWeights">Per-class weights, or null for 1.</param>
    /// <param name="backward">Whether to compute gradients.</param>
    /// <param name="correct">Counted steps whose arg-max class is the label.</param>
    /// <param name="counted">Counted steps.</param>
    /// <returns>The loss.</returns>
    /// <param name="weightTotal">The normaliser Σ wᵧ when this batch is part of a larger one (data-parallel parts); default this batch's own.</param>
    /// <param name="forecastTotal">The number of predicted steps when this batch is part of a larger one; default this batch's own.</param>
    public double Loss(SequenceBatch batch, LossKind loss, float[]? classWeights, bool backward, out int correct, out int counted, double weightTotal = 0, double forecastTotal = 0)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.InputSize != Architecture.InputSize)
        {
            throw new ArgumentException($"the batch has {batch.InputSize} inputs per step; the network takes {Architecture.InputSize}.", nameof(batch));
        }

        int classes = Architecture.Classes;
        double weightSum = LossWeight(batch, loss, classWeights, classes, weightTotal);

        int forecastSize = Architecture.ForecastSize;
        double predicted = forecastTotal > 0 ? forecastTotal : Enumerable.Range(0, batch.Count).Where(b => ForecastClass < 0 || batch.Labels[b] == ForecastClass)
            .Sum(b => batch.Lengths[b] - 1.0 - Math.Max(0, (batch.Skip?[b] ?? 0) - 1));

        double total = 0;
        correct = 0;
        counted = 0;
        var work = new Work(this, batch.Steps);
        PrepareConvolutions(work);
        bool dropping = (backward || DropoutWithoutGradients) && _dropout > 0;
        Span<float> logits = classes <= 1024 ? stackalloc float[classes] : new float[classes];
        Span<float> dlogits = classes <= 1024 ? stackalloc float[classes] : new float[classes];
        for (int b = 0; b < batch.Count; b++)
        {
            int n = batch.Lengths[b];
            int label = batch.Labels[b];
            float scale = (float)((classWeights?[label] ?? 1f) / weightSum);
            ReadOnlySpan<float> x = batch.Inputs.AsSpan(b * batch.Steps * batch.InputSize, n * batch.InputSize);
            ReadOnlySpan<float> network = Architecture.RunningNormalization ? Normalize(work, x, n) : x; // what the first stage reads
            Forward(work, network, n, dropping);
            int skip = batch.Skip?[b] ?? 0;
            int first = classes == 0 ? n : loss == LossKind.EveryStep ? skip : n - 1;
            float[] top = dropping ? work.Dropped[^1] : work.Outputs[^1];
            int width = _layers[^1].HiddenSize;
            Array.Clear(work.OutputGradients[^1], 0, n * width);
            if (forecastSize > 0 && predicted > 0 && (ForecastClass < 0 || classes == 0 || label == ForecastClass))
            {
                total += ForecastLoss(top, x, n, width, (float)(ForecastWeight / (predicted * forecastSize)), backward ? work.OutputGradients[^1] : null, Math.Max(0, skip - 1));
                if (classes == 0)
                {
                    counted += n - 1 - Math.Max(0, skip - 1);
                }
            }

            Parameter? head = classes == 0 ? null : _byName[Architecture.HeadPrefix + ".weight"], headBias = classes == 0 ? null : _byName[Architecture.HeadPrefix + ".bias"];
            bool pooling = Architecture.MeanPooling && classes > 0, maxPooling = pooling && Architecture.MaxPooling;
            int hw = pooling ? Architecture.HeadInputSize : width; // the head's input: the output, then (pooling) the running mean and maximum
            float[]? z = null, pooledGradient = null, maxGradient = null;
            int[]? argmax = null;
            if (pooling)
            {
                // z_t = [h_t, m_t] with m_t = m_{t−1} + a_t (h_t − m_{t−1}), a_t = 1/min(t+1, N): the stepped path's
                // running mean (the exact mean of the steps so far while t < N); with max pooling also M_t, the maximum
                // of h_0..h_t, and for each unit the step it came from.
                if (maxPooling && backward && Architecture.PoolingSteps > 0 && n > Architecture.PoolingSteps)
                {
                    // The forward pass (a held-out sequence's loss) follows the sinking maximum as the engine does; its
                    // gradient is taken for the exact maximum only.
                    throw new ArgumentException($"sequence {b} has {n} steps, more than the {Architecture.PoolingSteps} steps max pooling reaches back (poolingSteps); the trainer takes the gradient of the exact maximum only.", nameof(batch));
                }

                z = new float[n * hw];
                pooledGradient = backward ? new float[n * width] : null;
                var mean = new float[width];
                var max = maxPooling ? new float[width] : null;
                argmax = maxPooling && backward ? new int[n * width] : null; // for the gradient only
                maxGradient = maxPooling && backward ? new float[n * width] : null;
                for (int t = 0; t < n; t++)
                {
                    ReadOnlySpan<float> h = top.AsSpan(t * width, width);
                    RecurrentModel.AdvanceMean(mean, h, Architecture.PoolingWeight(t + 1));
                    h.CopyTo(z.AsSpan(t * hw, width));
                    mean.CopyTo(z.AsSpan((t * hw) + width, width));
                    if (maxPooling)
                    {
                        for (int j = 0; argmax is not null && j < width; j++)
                        {
                            argmax[(t * width) + j] = t == 0 || h[j] > max![j] ? t : argmax[((t - 1) * width) + j];
                        }

                        RecurrentModel.AdvanceMax(max, h, mean, t + 1, Architecture.PoolingSteps);
                        max.CopyTo(z.AsSpan((t * hw) + (2 * width), width));
                    }
                }
            }

            for (int t = first; t < n; t++)
            {
                ReadOnlySpan<float> h = pooling ? z.AsSpan(t * hw, hw) : top.AsSpan(t * width, width);
                for (int c = 0; c < classes; c++)
                {
                    logits[c] = headBias!.Value[c] + TensorPrimitives.Dot(head!.Value.AsSpan(c * hw, hw), h);
                }

                correct += TensorPrimitives.IndexOfMax(logits) == label ? 1 : 0;
                counted++;
                total += SoftmaxCrossEntropy(logits, label, scale, (float)_smoothing, backward ? dlogits : default);
                if (!backward)
                {
                    continue;
                }

                Span<float> dh = work.OutputGradients[^1].AsSpan(t * width, width);
                Span<float> dpool = pooling ? pooledGradient.AsSpan(t * width, width) : default;
                for (int c = 0; c < classes; c++)
                {
                    float dlogit = dlogits[c];
                    headBias!.Gradient[c] += dlogit;
                    TensorPrimitives.MultiplyAdd(h, dlogit, head!.Gradient.AsSpan(c * hw, hw), head.Gradient.AsSpan(c * hw, hw));
                    TensorPrimitives.MultiplyAdd(head.Value.AsSpan(c * hw, width), dlogit, dh, dh);
                    if (pooling)
                    {
                        TensorPrimitives.MultiplyAdd(head.Value.AsSpan((c * hw) + width, width), dlogit, dpool, dpool);
                    }

                    if (maxPooling)
                    {
                        Span<float> dmax = maxGradient.AsSpan(t * width, width);
                        TensorPrimitives.MultiplyAdd(head.Value.AsSpan((c * hw) + (2 * width), width), dlogit, dmax, dmax);
                    }
                }
            }

            if (pooling && backward)
            {
                // m_t = (1 − a_t) m_{t−1} + a_t h_t: with G_t = g_t + (1 − a_{t+1}) G_{t+1} (the gradient reaching m_t),
                // h_t receives a_t G_t. Below N steps this is Σ_{u≥t} g_u/(u+1), a reverse running sum.
                var carried = new float[width];
                for (int t = n - 1; t >= 0; t--)
                {
                    if (t < n - 1)
                    {
                        TensorPrimitives.Multiply(carried, 1f - Architecture.PoolingWeight(t + 2), carried);
                    }

                    TensorPrimitives.Add(carried, pooledGradient.AsSpan(t * width, width), carried);
                    Span<float> dh = work.OutputGradients[^1].AsSpan(t * width, width);
                    TensorPrimitives.MultiplyAdd(carried, Architecture.PoolingWeight(t + 1), dh, dh);
                }
            }

            if (maxPooling && backward)
            {
                // M_t = h at the step of the maximum so far: each unit's gradient goes to that step's output.
                float[] dTop = work.OutputGradients[^1];
                for (int t = 0; t < n; t++)
                {
                    for (int j = 0; j < width; j++)
                    {
                        dTop[(argmax![(t * width) + j] * width) + j] += maxGradient![(t * width) + j];
                    }
                }
            }

            if (backward)
            {
                Backward(work, network, n, dropping);
            }
        }

        if (backward)
        {
            FinishConvolutions(work);
        }

        return total;
    }

    /// <summary>
    /// Checks each sequence's length and label, and returns the loss's normaliser: Σ wᵧ over the counted steps
    /// (<paramref name="weightTotal"/> instead when given, for a part of a larger batch). Shared with the accelerator's
    /// trainer.
    /// </summary>
    internal static double LossWeight(SequenceBatch batch, LossKind loss, float[]? classWeights, int classes, double weightTotal)
    {
        double weightSum = 0;
        for (int b = 0; b < batch.Count; b++)
        {
            if (batch.Lengths[b] < 1 || batch.Lengths[b] > batch.Steps || (classes > 0 && (batch.Labels[b] < 0 || batch.Labels[b] >= classes)))
            {
                throw new ArgumentException($"sequence {b} has length {batch.Lengths[b]} (1..{batch.Steps} allowed) or label {batch.Labels[b]} (0..{classes - 1} allowed).", nameof(batch));
            }

            weightSum += (classWeights?[batch.Labels[b]] ?? 1f) * (loss == LossKind.EveryStep ? batch.Lengths[b] - (batch.Skip?[b] ?? 0) : 1);
        }

        return weightTotal > 0 ? weightTotal : weightSum;
    }

    /// <summary>
    /// One counted step's weighted cross-entropy with label smoothing ε: scale · (log Σ e^z − (1 − ε) z_label − (ε/K) Σ z),
    /// and, when <paramref name="dlogits"/> is not empty, its gradient scale · (softmax(z) − (1 − ε)·[c = label] − ε/K).
    /// The CPU trainer and the accelerator's trainer (which takes the loss from downloaded logits) both call this, so
    /// they agree to the bit on the same logits.
    /// </summary>
    internal static double SoftmaxCrossEntropy(ReadOnlySpan<float> logits, int label, float scale, float smoothing, Span<float> dlogits)
    {
        int classes = logits.Length;
        float max = TensorPrimitives.Max(logits);
        double sum = 0;
        for (int c = 0; c < classes; c++)
        {
            sum += Math.Exp(logits[c] - max);
        }

        double logSum = max + Math.Log(sum);
        float share = smoothing / classes;
        for (int c = 0; c < dlogits.Length; c++)
        {
            dlogits[c] = scale * ((float)Math.Exp(logits[c] - logSum) - ((c == label ? 1f - smoothing : 0f) + share));
        }

        return scale * (logSum - ((1 - smoothing) * logits[label]) - (smoothing > 0 ? share * TensorPrimitives.Sum(logits) : 0));
    }

    /// <summary>
    /// scale × Σₜ Σⱼ (ŷₜⱼ − xₜ₊₁ⱼ)² over steps t = from..n−2, where ŷₜ = W·hₜ + b; adds the gradient to the head's
    /// tensors and to <paramref name="dh"/> when given.
    /// </summary>
    private double ForecastLoss(float[] top, ReadOnlySpan<float> x, int n, int width, float scale, float[]? dh, int from)
    {
        int size = Architecture.ForecastSize;
        Parameter w = _byName[Architecture.ForecastPrefix + ".weight"], bias = _byName[Architecture.ForecastPrefix + ".bias"];
        double total = 0;
        for (int t = from; t + 1 < n; t++)
        {
            ReadOnlySpan<float> h = top.AsSpan(t * width, width);
            ReadOnlySpan<float> next = x.Slice((t + 1) * size, size);
            for (int j = 0; j < size; j++)
            {
                float error = bias.Value[j] + TensorPrimitives.Dot(w.Value.AsSpan(j * width, width), h) - next[j];
                total += scale * (double)error * error;
                if (dh is null)
                {
                    continue;
                }

                float d = 2 * scale * error;
                bias.Gradient[j] += d;
                TensorPrimitives.MultiplyAdd(h, d, w.Gradient.AsSpan(j * width, width), w.Gradient.AsSpan(j * width, width));
                Span<float> g = dh.AsSpan(t * width, width);
                TensorPrimitives.MultiplyAdd(w.Value.AsSpan(j * width, width), d, g, g);
            }
        }

        return total;
    }

    /// <summary>The running input normalisation of one sequence from a zero state (the stepped path's own code).</summary>
    private float[] Normalize(Work w, ReadOnlySpan<float> x, int n)
    {
        int input = Architecture.InputSize, width = 2 * input;
        Array.Clear(w.NormalizationState);
        for (int t = 0; t < n; t++)
        {
            RecurrentModel.NormalizeStep(Architecture, w.NormalizationState, x.Slice(t * input, input), w.Normalized.AsSpan(t * width, width));
        }

        return w.Normalized;
    }

    private void Forward(Work w, ReadOnlySpan<float> x, int n, bool dropping)
    {
        ReadOnlySpan<float> front = _convolutions.Length > 0 ? ConvolutionsForward(w, x, n) : x;
        for (int l = 0; l < _layers.Length; l++)
        {
            ReadOnlySpan<float> input = l == 0 ? front : dropping ? w.Dropped[l - 1] : w.Outputs[l - 1];
            int inSize = _inputSizes[l];
            LayerArchitecture layer = _layers[l];
            int h = layer.HiddenSize;
            int gates = layer.GateCount * h;
            string p = $"{Architecture.LayerPrefix(l)}.";
            string s = $"_l{layer.Index}";
            float[] wih = _byName[$"{p}weight_ih{s}"].Value, whh = _byName[$"{p}weight_hh{s}"].Value;
            float[] bih = _byName[$"{p}bias_ih{s}"].Value, bhh = _byName[$"{p}bias_hh{s}"].Value;
            float[] cache = w.Caches[l];
            float[] output = w.Outputs[l];
            Span<float> gi = w.ScratchA.AsSpan(0, gates), gh = w.ScratchB.AsSpan(0, gates);
            for (int t = 0; t < n; t++)
            {
                ReadOnlySpan<float> xt = input.Slice(t * inSize, inSize);
                ReadOnlySpan<float> hPrev = t == 0 ? w.Zeros.AsSpan(0, h) : output.AsSpan((t - 1) * h, h);
                MatVec(wih, bih, xt, gi);
                MatVec(whh, bhh, hPrev, gh);
                Span<float> hOut = output.AsSpan(t * h, h);
                switch (layer.Kind)
                {
                    case CellKind.Lstm:
                    {
                        // cache per step: i, f, g, o (activated), c, tanh(c)
                        Span<float> k = cache.AsSpan(t * 6 * h, 6 * h);
                        ReadOnlySpan<float> cPrev = t == 0 ? w.Zeros.AsSpan(0, h) : cache.AsSpan((((t - 1) * 6) + 4) * h, h);
                        for (int j = 0; j < h; j++)
                        {
                            float i = Kernels.Kernels.Sigmoid(gi[j] + gh[j]);
                            float f = Kernels.Kernels.Sigmoid(gi[h + j] + gh[h + j]);
                            float g = MathF.Tanh(gi[(2 * h) + j] + gh[(2 * h) + j]);
                            float o = Kernels.Kernels.Sigmoid(gi[(3 * h) + j] + gh[(3 * h) + j]);
                            float c = (f * cPrev[j]) + (i * g);
                            float tc = MathF.Tanh(c);
                            k[j] = i;
                            k[h + j] = f;
                            k[(2 * h) + j] = g;
                            k[(3 * h) + j] = o;
                            k[(4 * h) + j] = c;
                            k[(5 * h) + j] = tc;
                            hOut[j] = o * tc;
                        }

                        break;
                    }

                    case CellKind.Gru:
                    {
                        // cache per step: r, z, n, hn (W_hn·h + b_hn)
                        Span<float> k = cache.AsSpan(t * 4 * h, 4 * h);
                        for (int j = 0; j < h; j++)
                        {
                            float r = Kernels.Kernels.Sigmoid(gi[j] + gh[j]);
                            float z = Kernels.Kernels.Sigmoid(gi[h + j] + gh[h + j]);
                            float hn = gh[(2 * h) + j];
                            float nn = MathF.Tanh(gi[(2 * h) + j] + (r * hn));
                            k[j] = r;
                            k[h + j] = z;
                            k[(2 * h) + j] = nn;
                            k[(3 * h) + j] = hn;
                            hOut[j] = ((1 - z) * nn) + (z * hPrev[j]);
                        }

                        break;
                    }

                    default:
                        for (int j = 0; j < h; j++)
                        {
                            float a = gi[j] + gh[j];
                            hOut[j] = layer.IsRelu ? MathF.Max(0, a) : MathF.Tanh(a);
                        }

                        break;
                }
            }

            if (dropping)
            {
                float keep = (float)(1 / (1 - _dropout));
                Span<float> mask = w.Masks[l].AsSpan(0, n * h);
                for (int j = 0; j < mask.Length; j++)
                {
                    mask[j] = _random.NextDouble() < _dropout ? 0f : keep;
                }

                TensorPrimitives.Multiply(output.AsSpan(0, n * h), mask, w.Dropped[l].AsSpan(0, n * h));
            }
        }
    }

    private void Backward(Work w, ReadOnlySpan<float> x, int n, bool dropping)
    {
        bool convolutions = _convolutions.Length > 0;
        for (int l = _layers.Length - 1; l >= 0; l--)
        {
            ReadOnlySpan<float> input = l == 0 ? (convolutions ? w.ConvOutputs[^1] : x) : dropping ? w.Dropped[l - 1] : w.Outputs[l - 1];
            float[]? inputGradient = l == 0 ? (convolutions ? w.ConvGradients[^1] : null) : w.OutputGradients[l - 1];
            int inSize = _inputSizes[l];
            if (inputGradient is not null)
            {
                Array.Clear(inputGradient, 0, n * inSize);
            }

            LayerArchitecture layer = _layers[l];
            int h = layer.HiddenSize;
            int gates = layer.GateCount * h;
            string p = $"{Architecture.LayerPrefix(l)}.";
            string s = $"_l{layer.Index}";
            Parameter wih = _byName[$"{p}weight_ih{s}"], whh = _byName[$"{p}weight_hh{s}"];
            Parameter bih = _byName[$"{p}bias_ih{s}"], bhh = _byName[$"{p}bias_hh{s}"];
            float[] cache = w.Caches[l];
            float[] output = w.Outputs[l];
            float[] dOutput = w.OutputGradients[l];
            if (dropping)
            {
                // The gradient arrived at the dropped copy; carry it through the mask to the layer's output.
                TensorPrimitives.Multiply(dOutput.AsSpan(0, n * h), w.Masks[l].AsSpan(0, n * h), dOutput.AsSpan(0, n * h));
            }

            Span<float> dhNext = w.DhNext.AsSpan(0, h), dcNext = w.DcNext.AsSpan(0, h);
            dhNext.Clear();
            dcNext.Clear();
            Span<float> dgi = w.ScratchA.AsSpan(0, gates), dgh = w.ScratchB.AsSpan(0, gates);
            Span<float> dh = w.ScratchC.AsSpan(0, h);
            for (int t = n - 1; t >= 0; t--)
            {
                ReadOnlySpan<float> hPrev = t == 0 ? w.Zeros.AsSpan(0, h) : output.AsSpan((t - 1) * h, h);
                TensorPrimitives.Add(dOutput.AsSpan(t * h, h), dhNext, dh);
                dhNext.Clear();
                switch (layer.Kind)
                {
                    case CellKind.Lstm:
                    {
                        ReadOnlySpan<float> k = cache.AsSpan(t * 6 * h, 6 * h);
                        ReadOnlySpan<float> cPrev = t == 0 ? w.Zeros.AsSpan(0, h) : cache.AsSpan((((t - 1) * 6) + 4) * h, h);
                        for (int j = 0; j < h; j++)
                        {
                            float i = k[j], f = k[h + j], g = k[(2 * h) + j], o = k[(3 * h) + j], tc = k[(5 * h) + j];
                            float dc = dcNext[j] + (dh[j] * o * (1 - (tc * tc)));
                            dgi[j] = dc * g * i * (1 - i);
                            dgi[h + j] = dc * cPrev[j] * f * (1 - f);
                            dgi[(2 * h) + j] = dc * i * (1 - (g * g));
                            dgi[(3 * h) + j] = dh[j] * tc * o * (1 - o);
                            dcNext[j] = dc * f;
                        }

                        dgi.CopyTo(dgh);
                        break;
                    }

                    case CellKind.Gru:
                    {
                        ReadOnlySpan<float> k = cache.AsSpan(t * 4 * h, 4 * h);
                        for (int j = 0; j < h; j++)
                        {
                            float r = k[j], z = k[h + j], nn = k[(2 * h) + j], hn = k[(3 * h) + j];
                            float dn = dh[j] * (1 - z);
                            float dz = dh[j] * (hPrev[j] - nn);
                            float dan = dn * (1 - (nn * nn));
                            float dar = dan * hn * r * (1 - r);
                            float daz = dz * z * (1 - z);
                            dgi[j] = dar;
                            dgi[h + j] = daz;
                            dgi[(2 * h) + j] = dan;
                            dgh[j] = dar;
                            dgh[h + j] = daz;
                            dgh[(2 * h) + j] = dan * r;
                            dhNext[j] = dh[j] * z;
                        }

                        break;
                    }

                    default:
                        for (int j = 0; j < h; j++)
                        {
                            float y = output[(t * h) + j];
                            dgi[j] = dh[j] * (layer.IsRelu ? (y > 0 ? 1 : 0) : 1 - (y * y));
                        }

                        dgi.CopyTo(dgh);
                        break;
                }

                ReadOnlySpan<float> xt = input.Slice(t * inSize, inSize);
                Outer(dgi, xt, wih.Gradient);
                Outer(dgh, hPrev, whh.Gradient);
                TensorPrimitives.Add(bih.Gradient, dgi, bih.Gradient);
                TensorPrimitives.Add(bhh.Gradient, dgh, bhh.Gradient);
                if (t > 0)
                {
                    TransposedMatVecAdd(whh.Value, dgh, dhNext);
                }

                if (inputGradient is not null)
                {
                    TransposedMatVecAdd(wih.Value, dgi, inputGradient.AsSpan(t * inSize, inSize));
                }

                if (_truncate > 0 && t % _truncate == 0)
                {
                    // Truncated BPTT: no gradient flows back across a chunk boundary (the forward state did).
                    dhNext.Clear();
                    dcNext.Clear();
                }
            }
        }

        if (convolutions)
        {
            ConvolutionsBackward(w, n);
        }
    }

    /// <summary>y = W·x + b, W row-major [y.Length × x.Length].</summary>
    private static void MatVec(float[] w, float[] b, ReadOnlySpan<float> x, Span<float> y)
    {
        int k = x.Length;
        for (int j = 0; j < y.Length; j++)
        {
            y[j] = b[j] + TensorPrimitives.Dot(w.AsSpan(j * k, k), x);
        }
    }

    /// <summary>y += Wᵀ·d, W row-major [d.Length × y.Length].</summary>
    private static void TransposedMatVecAdd(float[] w, ReadOnlySpan<float> d, Span<float> y)
    {
        int k = y.Length;
        for (int j = 0; j < d.Length; j++)
        {
            if (d[j] != 0)
            {
                TensorPrimitives.MultiplyAdd(w.AsSpan(j * k, k), d[j], y, y);
            }
        }
    }

    /// <summary>G += d ⊗ x, G row-major [d.Length × x.Length].</summary>
    private static void Outer(ReadOnlySpan<float> d, ReadOnlySpan<float> x, float[] g)
    {
        int k = x.Length;
        for (int j = 0; j < d.Length; j++)
        {
            if (d[j] != 0)
            {
                Span<float> row = g.AsSpan(j * k, k);
                TensorPrimitives.MultiplyAdd(x, d[j], row, row);
            }
        }
    }

    /// <summary>Activations and gradients of one sequence, reused across sequences.</summary>
    private sealed class Work
    {
        public Work(TrainingNetwork net, int steps)
        {
            int widest = net._layers.Max(l => l.GateCount * l.HiddenSize);
            Outputs = [.. net._layers.Select(l => new float[steps * l.HiddenSize])];
            Dropped = net._dropout > 0 ? [.. net._layers.Select(l => new float[steps * l.HiddenSize])] : [];
            Masks = net._dropout > 0 ? [.. net._layers.Select(l => new float[steps * l.HiddenSize])] : [];
            OutputGradients = [.. net._layers.Select(l => new float[steps * l.HiddenSize])];
            Caches = [.. net._layers.Select(l => new float[steps * l.HiddenSize * (l.Kind == CellKind.Lstm ? 6 : l.Kind == CellKind.Gru ? 4 : 0)])];
            ScratchA = new float[widest];
            ScratchB = new float[widest];
            int hidden = net._layers.Max(l => l.HiddenSize);
            ScratchC = new float[hidden];
            DhNext = new float[hidden];
            DcNext = new float[hidden];
            Zeros = new float[hidden];
            ModelArchitecture a = net.Architecture;
            ConvTaps = [.. a.Convolutions.Select((c, i) => new float[steps * c.Kernel * a.ConvolutionInputSize(i)])];
            ConvOutputs = [.. a.Convolutions.Select(c => new float[steps * c.Channels])];
            ConvGradients = [.. a.Convolutions.Select(c => new float[steps * c.Channels])];
            ConvWeights = [.. a.Convolutions.Select((c, i) => new float[c.Channels * c.Kernel * a.ConvolutionInputSize(i)])];
            ConvTapGradients = [.. a.Convolutions.Select((c, i) => new float[steps * c.Kernel * a.ConvolutionInputSize(i)])];
            ConvActivated = [.. a.Convolutions.Select(c => new float[steps * c.Channels])];
            Normalized = new float[a.RunningNormalization ? steps * 2 * a.InputSize : 0];
            NormalizationState = new float[a.RunningNormalization ? 3 * a.InputChannels : 0];
            ConvWeightGradients = [.. a.Convolutions.Select((c, i) => new float[c.Channels * c.Kernel * a.ConvolutionInputSize(i)])];
        }

        /// <summary>With running normalisation: each step's input and its normalised copy [steps × 2 · input].</summary>
        public float[] Normalized { get; }

        /// <summary>With running normalisation: the sequence's statistics (mean, variance, count per channel).</summary>
        public float[] NormalizationState { get; }

        /// <summary>Per convolution: each step's ReLU output before the residual [steps × channels].</summary>
        public float[][] ConvActivated { get; }

        /// <summary>Per convolution: the call's weight gradient, tap-major, before it is added in PyTorch's layout.</summary>
        public float[][] ConvWeightGradients { get; }

        /// <summary>Per convolution: each step's gathered taps [steps × kernel · input] (zeros before the start).</summary>
        public float[][] ConvTaps { get; }

        /// <summary>Per convolution: each step's output after ReLU and residual [steps × channels].</summary>
        public float[][] ConvOutputs { get; }

        /// <summary>Per convolution: the loss gradient at its output [steps × channels].</summary>
        public float[][] ConvGradients { get; }

        /// <summary>Per convolution: its weights as [channels × kernel · input], tap-major like the taps.</summary>
        public float[][] ConvWeights { get; }

        /// <summary>Per convolution: the gradient at its taps [steps × kernel · input].</summary>
        public float[][] ConvTapGradients { get; }

        public float[][] Outputs { get; }

        public float[][] OutputGradients { get; }

        public float[][] Dropped { get; }

        public float[][] Masks { get; }

        public float[][] Caches { get; }

        public float[] ScratchA { get; }

        public float[] ScratchB { get; }

        public float[] ScratchC { get; }

        public float[] DhNext { get; }

        public float[] DcNext { get; }

        public float[] Zeros { get; }
    }
}
