using ILGPU;
using ILGPU.Runtime;
using Signal.Models.Networks;
using Signal.Models.Training;

namespace Signal.Models.Accelerators.Device;

/// <summary>
/// Back-propagation through time on an accelerator (ILGPU) for stacks of LSTM, GRU and RNN layers with a softmax
/// head (mean pooling, class weights, label smoothing, last-step or every-step loss): the sequences of a batch advance
/// together, one launch per layer per step for the hidden product and one for the gates, forward and backward; the
/// input products and every weight gradient are one large product per layer. The head's loss is taken on the host
/// from the downloaded logits, with the CPU trainer's own arithmetic. Gradients equal <see cref="TrainingNetwork.Loss"/>'s
/// within 1e-5.
/// </summary>
/// <remarks>Not supported here (refused with a message): convolutions, running input normalisation, a forecasting
/// head, dropout and truncated BPTT; train those on the CPU.</remarks>
public sealed class AcceleratedTrainer : IAcceleratedLoss
{
    private readonly ILGPU.Runtime.Accelerator _accelerator;
    private readonly Dictionary<string, MemoryBuffer1D<float, Stride1D.Dense>> _buffers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, MemoryBuffer1D<int, Stride1D.Dense>> _intBuffers = new(StringComparer.Ordinal);
    private readonly Action<KernelConfig, GemmArguments, ArrayView<float>, ArrayView<float>, ArrayView<float>> _gemm;
    private readonly Action<Index1D, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _lstmForward;
    private readonly Action<Index1D, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _gruForward;
    private readonly Action<Index1D, int, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _rnnForward;
    private readonly Action<Index1D, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _lstmBackward;
    private readonly Action<Index1D, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _gruBackward;
    private readonly Action<Index1D, int, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _rnnBackward;
    private readonly Action<Index1D, int, int, ArrayView<float>, ArrayView<float>> _columnSum;
    private readonly Action<Index1D, int, int, ArrayView<float>, ArrayView<float>> _columnPartialSum;
    private readonly Action<Index1D, int, int, int, int, ArrayView<float>, ArrayView<float>> _poolForward;
    private readonly Action<Index1D, int, int, int, int, ArrayView<float>, ArrayView<float>> _poolBackward;
    private readonly Action<Index1D, int, ArrayView<float>, ArrayView<int>, ArrayView<float>> _gatherRows;
    private readonly Action<Index1D, int, int, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _scatterAddRows;
    private bool _disposed;

    /// <summary>Creates the trainer's kernels on the first device of <paramref name="kind"/>.</summary>
    /// <param name="architecture">The network's architecture.</param>
    /// <param name="kind">The accelerator.</param>
    /// <exception cref="NotSupportedException">The architecture has a part this trainer does not train.</exception>
    /// <exception cref="AcceleratorUnavailableException">No device of that kind.</exception>
    public AcceleratedTrainer(ModelArchitecture architecture, AcceleratorKind kind)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        if (AcceleratorSelection.WhyNotTrainable(architecture) is { } why)
        {
            throw new NotSupportedException($"accelerator {AcceleratorKinds.Name(kind)}: {why}; train it on the CPU (--accelerator cpu).");
        }

        _accelerator = DeviceHost.Open(kind);
        Device = $"{AcceleratorKinds.Name(kind)} ({_accelerator.Name}, ILGPU)";
        try
        {
            _gemm = _accelerator.LoadStreamKernel<GemmArguments, ArrayView<float>, ArrayView<float>, ArrayView<float>>(DeviceTrainingKernels.Gemm);
            _lstmForward = _accelerator.LoadAutoGroupedStreamKernel<Index1D, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(DeviceTrainingKernels.LstmForward);
            _gruForward = _accelerator.LoadAutoGroupedStreamKernel<Index1D, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(DeviceTrainingKernels.GruForward);
            _rnnForward = _accelerator.LoadAutoGroupedStreamKernel<Index1D, int, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(DeviceTrainingKernels.RnnForward);
            _lstmBackward = _accelerator.LoadAutoGroupedStreamKernel<Index1D, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(DeviceTrainingKernels.LstmBackward);
            _gruBackward = _accelerator.LoadAutoGroupedStreamKernel<Index1D, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(DeviceTrainingKernels.GruBackward);
            _rnnBackward = _accelerator.LoadAutoGroupedStreamKernel<Index1D, int, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(DeviceTrainingKernels.RnnBackward);
            _columnSum = _accelerator.LoadAutoGroupedStreamKernel<Index1D, int, int, ArrayView<float>, ArrayView<float>>(DeviceTrainingKernels.ColumnSum);
            _columnPartialSum = _accelerator.LoadAutoGroupedStreamKernel<Index1D, int, int, ArrayView<float>, ArrayView<float>>(DeviceTrainingKernels.ColumnPartialSum);
            _poolForward = _accelerator.LoadAutoGroupedStreamKernel<Index1D, int, int, int, int, ArrayView<float>, ArrayView<float>>(DeviceTrainingKernels.PoolForward);
            _poolBackward = _accelerator.LoadAutoGroupedStreamKernel<Index1D, int, int, int, int, ArrayView<float>, ArrayView<float>>(DeviceTrainingKernels.PoolBackward);
            _gatherRows = _accelerator.LoadAutoGroupedStreamKernel<Index1D, int, ArrayView<float>, ArrayView<int>, ArrayView<float>>(DeviceKernels.GatherStates);
            _scatterAddRows = _accelerator.LoadAutoGroupedStreamKernel<Index1D, int, int, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(DeviceTrainingKernels.ScatterAddRows);
        }
        catch (AcceleratorException e)
        {
            throw new AcceleratorUnavailableException($"{Device}: the training kernels could not be loaded: {e.Message}", e);
        }
    }

    /// <inheritdoc />
    public string Device { get; }

    /// <inheritdoc />
    public double Loss(TrainingNetwork network, SequenceBatch batch, LossKind loss, float[]? classWeights, bool backward, out int correct, out int counted, double weightTotal = 0)
    {
        try
        {
            return LossCore(network, batch, loss, classWeights, backward, out correct, out counted, weightTotal);
        }
        catch (AcceleratorException e)
        {
            // Out of device memory for this batch's activations, or a device fault: one clear error, not a driver trace.
            throw new AcceleratorUnavailableException(
                $"{Device}: {e.Message} (a batch of {batch.Count} sequences × {batch.Steps} steps; a smaller --batch needs less device memory).", e);
        }
    }

    private double LossCore(TrainingNetwork network, SequenceBatch batch, LossKind loss, float[]? classWeights, bool backward, out int correct, out int counted, double weightTotal)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(batch);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (backward && network.Dropout > 0)
        {
            throw new NotSupportedException("the accelerator trainer does not do dropout; set dropout to 0 or train on the CPU.");
        }

        if (network.TruncateSteps > 0)
        {
            throw new NotSupportedException("the accelerator trainer does not truncate back-propagation; set truncateSteps to 0 or train on the CPU.");
        }

        ModelArchitecture a = network.Architecture;
        if (batch.InputSize != a.InputSize)
        {
            throw new ArgumentException($"the batch has {batch.InputSize} inputs per step; the network takes {a.InputSize}.", nameof(batch));
        }

        int classes = a.Classes, steps = batch.Steps, count = batch.Count, input = a.InputSize;
        double weightSum = TrainingNetwork.LossWeight(batch, loss, classWeights, classes, weightTotal);
        long rows = (long)steps * count;
        // The inputs, step-major (all sequences' step t together).
        float[] stepMajor = new float[rows * input];
        for (int b = 0; b < count; b++)
        {
            for (int t = 0; t < steps; t++)
            {
                Array.Copy(batch.Inputs, ((long)b * steps * input) + ((long)t * input), stepMajor, (((long)t * count) + b) * input, input);
            }
        }

        ArrayView<float> x = Upload("x", stepMajor);
        int layers = a.Layers.Count;
        var outputs = new ArrayView<float>[layers];
        var caches = new ArrayView<float>[layers];
        int width = input;
        for (int l = 0; l < layers; l++)
        {
            LayerArchitecture layer = a.Layers[l];
            int h = layer.HiddenSize, g = layer.GateCount * h;
            string p = $"{a.LayerPrefix(l)}.", s = $"_l{layer.Index}";
            ArrayView<float> wih = Upload($"w{l}ih", network[$"{p}weight_ih{s}"].Value), whh = Upload($"w{l}hh", network[$"{p}weight_hh{s}"].Value);
            ArrayView<float> bih = Upload($"b{l}ih", network[$"{p}bias_ih{s}"].Value), bhh = Upload($"b{l}hh", network[$"{p}bias_hh{s}"].Value);
            ArrayView<float> gx = Buffer($"gx{l}", rows * g);
            ArrayView<float> gh = Buffer("gh", (long)count * g);
            ArrayView<float> output = Zeroed($"out{l}", (rows + count) * h);
            ArrayView<float> cache = Buffer($"cache{l}", rows * (layer.Kind == CellKind.Lstm ? 6 : layer.Kind == CellKind.Gru ? 4 : 1) * h);
            // Every step's input product at once: gx (T·B × G) = X · W_ihᵀ.
            Gemm((int)rows, g, width, x, width, 1, wih, 1, width, gx, g, false);
            for (int t = 0; t < steps; t++)
            {
                ArrayView<float> previous = output.SubView((long)t * count * h, (long)count * h);
                Gemm(count, g, h, previous, h, 1, whh, 1, h, gh, g, false);
                switch (layer.Kind)
                {
                    case CellKind.Lstm:
                        _lstmForward(count * h, count, h, t, gx, gh, bih, bhh, cache, output);
                        break;
                    case CellKind.Gru:
                        _gruForward(count * h, count, h, t, gx, gh, bih, bhh, cache, output);
                        break;
                    default:
                        _rnnForward(count * h, count, h, t, layer.IsRelu ? 1 : 0, gx, gh, bih, bhh, output);
                        break;
                }
            }

            outputs[l] = output;
            caches[l] = cache;
            x = output.SubView((long)count * h, rows * h);
            width = h;
        }

        // The head's rows: the counted (step, sequence) pairs, step-major row numbers.
        int features = a.FeatureSize;
        bool pooling = a.MeanPooling;
        int hw = pooling ? 2 * features : features;
        ArrayView<float> top = x;
        ArrayView<float> z = top;
        if (pooling)
        {
            z = Buffer("z", rows * hw);
            _poolForward(count * features, steps, count, features, a.PoolingSteps, top, z);
        }

        var picked = new List<int>();
        var owners = new List<int>();
        for (int b = 0; b < count; b++)
        {
            int n = batch.Lengths[b], first = loss == LossKind.EveryStep ? (batch.Skip?[b] ?? 0) : n - 1;
            for (int t = first; t < n; t++)
            {
                picked.Add((t * count) + b);
                owners.Add(b);
            }
        }

        int m = picked.Count;
        ArrayView<int> pickedRows = UploadInts("picked", [.. picked]);
        ArrayView<float> zg = Buffer("zg", (long)m * hw);
        _gatherRows(m * hw, hw, z, pickedRows, zg);
        ArrayView<float> headWeights = Upload("head", network[a.HeadPrefix + ".weight"].Value);
        float[] headBias = network[a.HeadPrefix + ".bias"].Value;
        ArrayView<float> logitsView = Buffer("logits", (long)m * classes);
        Gemm(m, classes, hw, zg, hw, 1, headWeights, 1, hw, logitsView, classes, false);
        float[] logits = new float[m * classes];
        logitsView.SubView(0, logits.Length).CopyToCPU(logits);

        // The loss with the CPU trainer's arithmetic, per counted row.
        double total = 0;
        correct = 0;
        counted = m;
        float smooth = (float)network.LabelSmoothing;
        float[] dLogits = new float[m * classes];
        float[] headBiasGradient = network[a.HeadPrefix + ".bias"].Gradient;
        for (int r = 0; r < m; r++)
        {
            int b = owners[r], label = batch.Labels[b];
            float scale = (float)((classWeights?[label] ?? 1f) / weightSum);
            Span<float> row = logits.AsSpan(r * classes, classes);
            for (int c = 0; c < classes; c++)
            {
                row[c] += headBias[c];
            }

            correct += System.Numerics.Tensors.TensorPrimitives.IndexOfMax(row) == label ? 1 : 0;
            Span<float> d = dLogits.AsSpan(r * classes, classes);
            total += TrainingNetwork.SoftmaxCrossEntropy(row, label, scale, smooth, d);
            if (backward)
            {
                System.Numerics.Tensors.TensorPrimitives.Add(headBiasGradient, d, headBiasGradient);
            }
        }

        if (!backward)
        {
            return total;
        }

        ArrayView<float> dl = Upload("dlogits", dLogits);
        ArrayView<float> headGradient = Buffer("dhead", (long)classes * hw);
        // dW_head (C × hw) = dlogitsᵀ · z_picked; dz_picked (m × hw) = dlogits · W_head.
        Gemm(classes, hw, m, dl, 1, classes, zg, hw, 1, headGradient, hw, false);
        ArrayView<float> dzg = Buffer("dzg", (long)m * hw);
        Gemm(m, hw, classes, dl, classes, 1, headWeights, hw, 1, dzg, hw, false);
        ArrayView<float> dTop = Zeroed($"dout{layers - 1}", rows * features);
        ArrayView<float> dPool = pooling ? Zeroed("dpool", rows * features) : dTop;
        _scatterAddRows(m * hw, hw, features, pickedRows, dzg, dTop, dPool);
        if (pooling)
        {
            _poolBackward(count * features, steps, count, features, a.PoolingSteps, dPool, dTop);
        }

        AddGradient(network[a.HeadPrefix + ".weight"].Gradient, headGradient);
        ArrayView<float> dOutput = dTop;
        for (int l = layers - 1; l >= 0; l--)
        {
            LayerArchitecture layer = a.Layers[l];
            int h = layer.HiddenSize, g = layer.GateCount * h, inSize = a.LayerInputSize(l);
            string p = $"{a.LayerPrefix(l)}.", s = $"_l{layer.Index}";
            ArrayView<float> wih = _buffers[$"w{l}ih"].View, whh = _buffers[$"w{l}hh"].View;
            ArrayView<float> dhNext = Zeroed("dhnext", (long)count * h), dcNext = Zeroed("dcnext", (long)count * h);
            ArrayView<float> dInput = Buffer($"dgi{l}", rows * g);
            ArrayView<float> dHidden = layer.Kind == CellKind.Gru ? Buffer($"dgh{l}", rows * g) : dInput;
            for (int t = steps - 1; t >= 0; t--)
            {
                switch (layer.Kind)
                {
                    case CellKind.Lstm:
                        _lstmBackward(count * h, count, h, t, caches[l], dOutput, dhNext, dcNext, dInput);
                        break;
                    case CellKind.Gru:
                        _gruBackward(count * h, count, h, t, caches[l], outputs[l], dOutput, dhNext, dInput, dHidden);
                        break;
                    default:
                        _rnnBackward(count * h, count, h, t, layer.IsRelu ? 1 : 0, outputs[l], dOutput, dhNext, dInput);
                        break;
                }

                if (t > 0)
                {
                    // dh_{t−1} (+)= dG_hᵀ-product: (B × G) · W_hh (G × H); the GRU keeps its direct part z·dh.
                    ArrayView<float> dg = dHidden.SubView((long)t * count * g, (long)count * g);
                    Gemm(count, h, g, dg, g, 1, whh, h, 1, dhNext, h, layer.Kind == CellKind.Gru);
                }
            }

            // Weight gradients over all steps at once: dW_ih = dG_iᵀ · X, dW_hh = dG_hᵀ · H_prev; biases: column sums.
            ArrayView<float> layerInput = l == 0 ? _buffers["x"].View : outputs[l - 1].SubView((long)count * a.Layers[l - 1].HiddenSize, rows * inSize);
            ArrayView<float> previous = outputs[l].SubView(0, rows * h);
            ArrayView<float> dwih = Buffer("dwih", (long)g * inSize), dwhh = Buffer("dwhh", (long)g * h);
            Gemm(g, inSize, (int)rows, dInput, 1, g, layerInput, inSize, 1, dwih, inSize, false);
            Gemm(g, h, (int)rows, dHidden, 1, g, previous, h, 1, dwhh, h, false);
            ArrayView<float> dbih = Zeroed("dbih", g), dbhh = Zeroed("dbhh", g);
            ColumnSum((int)rows, g, dInput, dbih);
            ColumnSum((int)rows, g, dHidden, dbhh);
            AddGradient(network[$"{p}weight_ih{s}"].Gradient, dwih);
            AddGradient(network[$"{p}weight_hh{s}"].Gradient, dwhh);
            AddGradient(network[$"{p}bias_ih{s}"].Gradient, dbih);
            AddGradient(network[$"{p}bias_hh{s}"].Gradient, dbhh);
            if (l > 0)
            {
                // The gradient reaching the layer below: dX (T·B × in) = dG_i · W_ih.
                ArrayView<float> below = Buffer($"dout{l - 1}", rows * inSize);
                Gemm((int)rows, inSize, g, dInput, g, 1, wih, inSize, 1, below, inSize, false);
                dOutput = below;
            }
        }

        return total;
    }

    /// <summary>Frees the device's memory.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (MemoryBuffer1D<float, Stride1D.Dense> b in _buffers.Values)
        {
            b.Dispose();
        }

        foreach (MemoryBuffer1D<int, Stride1D.Dense> b in _intBuffers.Values)
        {
            b.Dispose();
        }
    }

    private void Gemm(int m, int n, int k, ArrayView<float> a, int aRow, int aColumn, ArrayView<float> b, int bRow, int bColumn, ArrayView<float> c, int ldc, bool accumulate)
    {
        var p = new GemmArguments { M = m, N = n, K = k, As = aRow, Ak = aColumn, Bk = bRow, Bn = bColumn, Ldc = ldc, Accumulate = accumulate ? 1 : 0 };
        var grid = new Index2D((n + DeviceTrainingKernels.Tile - 1) / DeviceTrainingKernels.Tile, (m + DeviceTrainingKernels.Tile - 1) / DeviceTrainingKernels.Tile);
        _gemm(new KernelConfig(grid, new Index2D(DeviceTrainingKernels.GroupSize, 1)), p, a, b, c);
    }

    /// <summary>destination += column sums of source (rows × columns), in two passes so long columns are summed in parallel.</summary>
    private void ColumnSum(int rows, int columns, ArrayView<float> source, ArrayView<float> destination)
    {
        int chunks = (rows + DeviceTrainingKernels.SumChunk - 1) / DeviceTrainingKernels.SumChunk;
        ArrayView<float> partial = Buffer("partial", (long)chunks * columns);
        _columnPartialSum(chunks * columns, rows, columns, source, partial);
        _columnSum(columns, chunks, columns, partial, destination);
    }

    private static void AddGradient(float[] gradient, ArrayView<float> device)
    {
        float[] values = new float[gradient.Length];
        device.SubView(0, values.Length).CopyToCPU(values);
        System.Numerics.Tensors.TensorPrimitives.Add(gradient, values, gradient);
    }

    /// <summary>A buffer of at least <paramref name="length"/> floats, kept by name and grown when needed.</summary>
    private ArrayView<float> Buffer(string name, long length)
    {
        length = Math.Max(1, length);
        if (!_buffers.TryGetValue(name, out MemoryBuffer1D<float, Stride1D.Dense>? buffer) || buffer.Length < length)
        {
            buffer?.Dispose();
            buffer = _accelerator.Allocate1D<float>(length);
            _buffers[name] = buffer;
        }

        return buffer.View.AsContiguous().SubView(0, length);
    }

    private ArrayView<float> Zeroed(string name, long length)
    {
        ArrayView<float> view = Buffer(name, length);
        view.MemSetToZero();
        return view;
    }

    private ArrayView<float> Upload(string name, float[] values)
    {
        ArrayView<float> view = Buffer(name, values.Length);
        view.SubView(0, values.Length).CopyFromCPU(values);
        return view;
    }

    private ArrayView<int> UploadInts(string name, int[] values)
    {
        long length = Math.Max(1, values.Length);
        if (!_intBuffers.TryGetValue(name, out MemoryBuffer1D<int, Stride1D.Dense>? buffer) || buffer.Length < length)
        {
            buffer?.Dispose();
            buffer = _accelerator.Allocate1D<int>(length);
            _intBuffers[name] = buffer;
        }

        ArrayView<int> view = buffer.View.AsContiguous().SubView(0, length);
        view.SubView(0, values.Length).CopyFromCPU(values);
        return view;
    }
}
