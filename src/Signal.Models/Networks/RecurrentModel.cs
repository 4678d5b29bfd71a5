using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Signal.Models.Files;
using Signal.Models.Kernels;

namespace Signal.Models.Networks;

/// <summary>
/// A recurrent network ready to run: layers with packed weights, a softmax classification head and an
/// optional forecasting head. Immutable and safe to share between threads; each stream's memory lives in
/// its own <see cref="RecurrentState"/>.
/// </summary>
/// <remarks>
/// Streams advance one input vector at a time with <see cref="Step"/> (one stream) or a
/// <see cref="BatchStepper"/> (many streams in one batched step, same results). Whole sequences,
/// bidirectional models included, go through <see cref="Predict(ReadOnlySpan{float}, int, Span{float}, Span{float})"/>.
/// Tensors keep PyTorch's names and gate order (see <see cref="LayerArchitecture.Prefix"/>).
/// </remarks>
public sealed class RecurrentModel
{
    /// <summary>Metadata key of the architecture JSON.</summary>
    public const string ArchitectureKey = "signal.architecture";

    /// <summary>Metadata key of the class labels (a JSON array of strings).</summary>
    public const string LabelsKey = "signal.labels";

    /// <summary>Metadata key of the format version.</summary>
    public const string FormatKey = "signal.format";

    private readonly Layer[] _layers;
    private readonly PackedMatrix? _head;
    private readonly PackedMatrix? _forecast;

    /// <summary>The head's row-major weights when it is narrow enough for per-class dot products.</summary>
    private readonly float[]? _headWeights;
    private readonly int[] _hiddenOffsets;
    private readonly int[] _cellOffsets;
    private readonly int _poolOffset;
    private readonly bool _maxPooling; // Architecture.MaxPooling, read once: it compares strings, and the step reads it per stream
    private readonly int _headInputSize;
    private readonly Convolution[] _convs;
    private readonly int _normOffset;

    private RecurrentModel(ModelArchitecture architecture, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyList<string> labels, IReadOnlyDictionary<string, string> metadata, KernelPath path)
    {
        Architecture = architecture;
        Tensors = tensors;
        Labels = labels;
        Metadata = metadata;
        Path = path;
        _layers = new Layer[architecture.Layers.Count];
        _hiddenOffsets = new int[_layers.Length];
        _cellOffsets = new int[_layers.Length];
        int stateSize = 0;
        for (int i = 0; i < _layers.Length; i++)
        {
            _layers[i] = BuildLayer(i);
            _hiddenOffsets[i] = stateSize;
            stateSize += _layers[i].Forward.StateSize;
            _cellOffsets[i] = stateSize;
            stateSize += _layers[i].Forward.CellSize;
        }

        // Mean pooling keeps the running mean of the top layer's outputs and the count of steps after the recurrent state,
        // max pooling the running maximum after those.
        _poolOffset = stateSize;
        _maxPooling = architecture.MaxPooling;
        _headInputSize = architecture.HeadInputSize;
        stateSize += architecture.MeanPooling ? architecture.FeatureSize + 1 : 0;
        stateSize += architecture.MaxPooling ? architecture.FeatureSize : 0;

        // Running input normalisation keeps a mean, a variance and a count per raw channel.
        _normOffset = stateSize;
        stateSize += architecture.RunningNormalization ? 3 * architecture.InputChannels : 0;

        // Each convolution keeps its last (kernel − 1) · dilation inputs per stream, oldest first.
        _convs = new Convolution[architecture.Convolutions.Count];
        for (int i = 0; i < _convs.Length; i++)
        {
            _convs[i] = BuildConvolution(i, stateSize, path);
            stateSize += architecture.Convolutions[i].Reach * _convs[i].Input;
        }

        StateSize = stateSize;
        Fingerprint = architecture.StateFingerprint();
        int features = architecture.FeatureSize, headInputs = architecture.HeadInputSize;
        if (architecture.Classes > 0)
        {
            Tensor w = Require(architecture.HeadPrefix + ".weight", "the classification head", architecture.Classes, headInputs);
            Tensor b = Require(architecture.HeadPrefix + ".bias", "the classification head", architecture.Classes);
            _head = new PackedMatrix(w.Data, architecture.Classes, headInputs, b.Data, NarrowestPath(path, architecture.Classes));
            _headWeights = architecture.Classes <= 8 && headInputs >= 16 ? w.Data : null;
        }

        if (architecture.ForecastSize > 0)
        {
            Tensor w = Require(architecture.ForecastPrefix + ".weight", "the forecasting head", architecture.ForecastSize, features);
            Tensor b = Require(architecture.ForecastPrefix + ".bias", "the forecasting head", architecture.ForecastSize);
            _forecast = new PackedMatrix(w.Data, architecture.ForecastSize, features, b.Data, NarrowestPath(path, architecture.ForecastSize));
        }

        MultiplyAddsPerStep = _layers.Sum(l => l.Forward.MultiplyAdds + (l.Backward?.MultiplyAdds ?? 0)) + _convs.Sum(c => (long)c.Weights.Rows * c.Weights.Columns)
            + ((long)(_head?.Rows ?? 0) * (_head?.Columns ?? 0)) + ((long)(_forecast?.Rows ?? 0) * (_forecast?.Columns ?? 0));
    }

    /// <summary>The architecture.</summary>
    public ModelArchitecture Architecture { get; }

    /// <summary>All tensors by name, PyTorch layout (what <see cref="Save(Stream)"/> writes).</summary>
    public IReadOnlyDictionary<string, Tensor> Tensors { get; }

    /// <summary>Class labels, one per output of the classification head.</summary>
    public IReadOnlyList<string> Labels { get; }

    /// <summary>Other metadata carried through the model file (feature spec, normalisation, thresholds, provenance…).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Size of one step's input vector.</summary>
    public int InputSize => Architecture.InputSize;

    /// <summary>Number of classes (0 without a classification head).</summary>
    public int ClassCount => Architecture.Classes;

    /// <summary>Size of the forecast (0 without a forecasting head).</summary>
    public int ForecastSize => Architecture.ForecastSize;

    /// <summary>Floats in one stream's <see cref="RecurrentState"/>.</summary>
    public int StateSize { get; }

    /// <summary>Identifies the state layout (see <see cref="ModelArchitecture.StateFingerprint"/>).</summary>
    public ulong Fingerprint { get; }

    /// <summary>Multiply-adds of one step of one stream, heads included (FLOPs are twice this).</summary>
    public long MultiplyAddsPerStep { get; }

    internal KernelPath Path { get; }

    internal int LayerCount => _layers.Length;

    /// <summary>Offset of layer <paramref name="layer"/>'s h inside a state.</summary>
    internal int HiddenOffset(int layer) => _hiddenOffsets[layer];

    /// <summary>Offset of layer <paramref name="layer"/>'s c inside a state (LSTM).</summary>
    internal int CellOffset(int layer) => _cellOffsets[layer];

    /// <summary>Offset of the pooled mean (and after it the count) inside a state.</summary>
    internal int PoolOffset => _poolOffset;

    /// <summary>
    /// Builds a model from an architecture and PyTorch-named tensors, validating both.
    /// </summary>
    /// <param name="architecture">The architecture (validated here).</param>
    /// <param name="tensors">The tensors by name; extra tensors are kept and saved.</param>
    /// <param name="labels">Class labels; default <c>class0</c>, <c>class1</c>, …</param>
    /// <param name="metadata">Other metadata to carry.</param>
    /// <returns>The model.</returns>
    /// <exception cref="ModelFormatException">A field, tensor, shape or value is wrong; the message names it.</exception>
    public static RecurrentModel Create(ModelArchitecture architecture, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyList<string>? labels = null, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        ArgumentNullException.ThrowIfNull(tensors);
        architecture.Validate();
        labels ??= [.. Enumerable.Range(0, architecture.Classes).Select(i => $"class{i}")];
        if (labels.Count != architecture.Classes)
        {
            throw new ModelFormatException($"the model has {architecture.Classes} classes but {labels.Count} labels were given.");
        }

        var extra = new Dictionary<string, string>(StringComparer.Ordinal);
        if (metadata is not null)
        {
            foreach (KeyValuePair<string, string> pair in metadata)
            {
                if (pair.Key is not (ArchitectureKey or LabelsKey or FormatKey))
                {
                    extra[pair.Key] = pair.Value;
                }
            }
        }

        return new RecurrentModel(architecture, tensors, labels, extra, Kernels.Kernels.Default);
    }

    /// <summary>A model with PyTorch's default initialisation (uniform ±1/√fan), for tests, benchmarks and training.</summary>
    /// <param name="architecture">The architecture.</param>
    /// <param name="seed">Random seed.</param>
    /// <param name="labels">Optional labels.</param>
    /// <returns>The model.</returns>
    public static RecurrentModel CreateRandom(ModelArchitecture architecture, int seed, IReadOnlyList<string>? labels = null)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        architecture.Validate();
        var random = new Random(seed);
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (TensorRequirement t in RequiredTensors(architecture))
        {
            float[] data = new float[t.Shape.Aggregate(1, (a, b) => a * b)];
            for (int i = 0; i < data.Length; i++)
            {
                data[i] = t.Bound == 0 ? t.Fill : (float)(((random.NextDouble() * 2) - 1) * t.Bound);
            }

            tensors[t.Name] = new Tensor(t.Name, t.Shape, data);
        }

        return Create(architecture, tensors, labels);
    }

    /// <summary>Loads a model file (safetensors layout).</summary>
    /// <param name="path">The file.</param>
    /// <returns>The model.</returns>
    /// <exception cref="ModelFormatException">The file is not a usable model; the message names the problem.</exception>
    public static RecurrentModel Load(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new FileNotFoundException($"model file '{path}' does not exist.", path);
        }

        if (info.Length > int.MaxValue)
        {
            throw new ModelFormatException($"model file '{path}' is {info.Length} bytes; at most 2 GB is supported.");
        }

        try
        {
            return Load(File.ReadAllBytes(path));
        }
        catch (ModelFormatException e)
        {
            throw new ModelFormatException($"model file '{path}': {e.Message}", e);
        }
    }

    /// <summary>Loads a model from the bytes of a model file.</summary>
    /// <param name="file">The file's content.</param>
    /// <returns>The model.</returns>
    /// <exception cref="ModelFormatException">The bytes are not a usable model.</exception>
    public static RecurrentModel Load(ReadOnlySpan<byte> file)
    {
        (Dictionary<string, Tensor> tensors, Dictionary<string, string> metadata) = SafeTensorsFile.Read(file);
        ModelArchitecture architecture = metadata.TryGetValue(ArchitectureKey, out string? json)
            ? ModelArchitecture.FromJson(json)
            : ArchitectureInference.FromTensors(tensors);
        IReadOnlyList<string>? labels = metadata.TryGetValue(LabelsKey, out string? labelJson)
            ? SafeTensorsFile.FromJsonArray(LabelsKey, labelJson)
            : null;
        return Create(architecture, tensors, labels, metadata);
    }

    /// <summary>Writes the model file (safetensors layout, F32, metadata with architecture and labels).</summary>
    /// <param name="destination">Where to write.</param>
    public void Save(Stream destination)
    {
        var metadata = new Dictionary<string, string>(Metadata, StringComparer.Ordinal)
        {
            [FormatKey] = "1",
            [ArchitectureKey] = Architecture.ToJson(),
            [LabelsKey] = SafeTensorsFile.ToJsonArray(Labels),
        };
        SafeTensorsFile.Write(destination, Tensors.Values, metadata);
    }

    /// <summary>Writes the model file atomically (to a temporary file, then renamed).</summary>
    /// <param name="path">The file.</param>
    public void Save(string path)
    {
        string temporary = path + ".tmp";
        using (FileStream stream = File.Create(temporary))
        {
            Save(stream);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>A copy of this model with more metadata (existing keys are replaced).</summary>
    /// <param name="metadata">Entries to add.</param>
    /// <returns>The new model (weights shared).</returns>
    public RecurrentModel WithMetadata(IReadOnlyDictionary<string, string> metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        var merged = new Dictionary<string, string>(Metadata, StringComparer.Ordinal);
        foreach (KeyValuePair<string, string> pair in metadata)
        {
            merged[pair.Key] = pair.Value;
        }

        return Create(Architecture, Tensors, Labels, merged);
    }

    /// <summary>A zeroed state for one stream.</summary>
    /// <returns>The state.</returns>
    /// <exception cref="NotSupportedException">The model has a bidirectional layer (it needs whole sequences).</exception>
    public RecurrentState CreateState()
    {
        EnsureStreamable();
        return new RecurrentState(this);
    }

    /// <summary>
    /// Advances one stream by one input vector: updates <paramref name="state"/> and writes the class
    /// probabilities (and the forecast of the next input, when the model has that head). Allocates nothing.
    /// </summary>
    /// <param name="state">The stream's state (from <see cref="CreateState"/>); not to be stepped from two threads at once.</param>
    /// <param name="input">The step's input, <see cref="InputSize"/> values.</param>
    /// <param name="probabilities"><see cref="ClassCount"/> values, or empty to skip the head.</param>
    /// <param name="forecast"><see cref="ForecastSize"/> values, or empty to skip the head.</param>
    public void Step(RecurrentState state, ReadOnlySpan<float> input, Span<float> probabilities, Span<float> forecast = default)
    {
        ArgumentNullException.ThrowIfNull(state);
        CheckStepArguments(1, input, probabilities, forecast);
        CheckState(state);
        Workspace workspace = state.SingleWorkspace ??= new Workspace(this, 1);
        StepRows(new ReadOnlySpan<RecurrentState>(in state), input, probabilities, forecast, workspace);
    }

    /// <summary>
    /// Runs whole sequences offline (bidirectional layers allowed) from zero state: one row of class
    /// probabilities and one forecast per step.
    /// </summary>
    /// <param name="sequence"><paramref name="steps"/> × <see cref="InputSize"/> values, step-major.</param>
    /// <param name="steps">Number of steps.</param>
    /// <param name="probabilities"><paramref name="steps"/> × <see cref="ClassCount"/> values, or empty.</param>
    /// <param name="forecasts"><paramref name="steps"/> × <see cref="ForecastSize"/> values, or empty.</param>
    public void Predict(ReadOnlySpan<float> sequence, int steps, Span<float> probabilities, Span<float> forecasts = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(steps);
        CheckStepArguments(steps, sequence, probabilities, forecasts);
        float[] x = sequence[..(steps * InputSize)].ToArray();
        int width = InputSize;
        if (Architecture.RunningNormalization || _convs.Length > 0)
        {
            // The front end runs step by step through the stepped path's own code, so offline equals stepped exactly.
            var state = new RecurrentState(this);
            var ws = new Workspace(this, 1, headsOnly: true);
            int frontWidth = Architecture.FrontEndSize;
            float[] front = new float[steps * frontWidth];
            for (int t = 0; t < steps; t++)
            {
                ReadOnlySpan<float> y = StepFrontEnd(new ReadOnlySpan<RecurrentState>(in state), x.AsSpan(t * width, width), 1, ws, out _);
                y[..frontWidth].CopyTo(front.AsSpan(t * frontWidth, frontWidth));
            }

            x = front;
            width = frontWidth;
        }
        for (int l = 0; l < _layers.Length; l++)
        {
            Layer layer = _layers[l];
            float[] y = new float[steps * layer.OutputSize];
            RunDirection(layer, layer.Forward, x, width, steps, y, 0, reverse: false);
            if (layer.Backward is not null)
            {
                RunDirection(layer, layer.Backward, x, width, steps, y, layer.Forward.StateSize, reverse: true);
            }

            x = y;
            width = layer.OutputSize;
        }

        var heads = new Workspace(this, 1, headsOnly: true);
        var mean = new float[width];
        var max = new float[width];
        var z = new float[_headInputSize];
        for (int t = 0; t < steps; t++)
        {
            Span<float> p = probabilities.IsEmpty ? default : probabilities.Slice(t * ClassCount, ClassCount);
            Span<float> f = forecasts.IsEmpty ? default : forecasts.Slice(t * ForecastSize, ForecastSize);
            if (!Architecture.MeanPooling)
            {
                ApplyHeads(x.AsSpan(t * width, width), width, 1, heads, p, f);
                continue;
            }

            // Global average pooling of the steps so far, as the stepped path's running mean.
            AdvanceMean(mean, x.AsSpan(t * width, width), Architecture.PoolingWeight(t + 1));
            x.AsSpan(t * width, width).CopyTo(z);
            mean.CopyTo(z.AsSpan(width));
            if (_maxPooling)
            {
                AdvanceMax(max, x.AsSpan(t * width, width), mean, t + 1, Architecture.PoolingSteps);
                max.CopyTo(z.AsSpan(2 * width));
            }

            ApplyHeads(x.AsSpan(t * width, width), width, 1, heads, default, f);
            ApplyHeads(z, z.Length, 1, heads, p, default);
        }
    }

    /// <summary>
    /// One step of the pooled mean: <c>m ← m + w (h − m)</c>. The stepped, batched, offline and training paths all
    /// call this, so they agree to the bit.
    /// </summary>
    internal static void AdvanceMean(Span<float> mean, ReadOnlySpan<float> h, float weight)
    {
        for (int i = 0; i < mean.Length; i++)
        {
            mean[i] += weight * (h[i] - mean[i]);
        }
    }

    /// <summary>
    /// One step of the pooled maximum, after the mean's step: <c>M ← h</c> at the first step, <c>M ← max(h, M)</c> while
    /// the stream has seen at most <paramref name="poolingSteps"/> steps (the exact maximum of the steps so far), then
    /// <c>M ← max(h, M + (m − M) / N)</c>: a maximum no longer renewed sinks towards the mean with the mean's reach, so a
    /// live stream's maximum follows what it does now as its mean does. The stepped, batched, offline and training paths
    /// all call this.
    /// </summary>
    internal static void AdvanceMax(Span<float> max, ReadOnlySpan<float> h, ReadOnlySpan<float> mean, float count, int poolingSteps)
    {
        if (count <= 1)
        {
            h[..max.Length].CopyTo(max);
            return;
        }

        if (poolingSteps > 0 && count > poolingSteps)
        {
            float w = 1f / poolingSteps;
            for (int i = 0; i < max.Length; i++)
            {
                max[i] = MathF.Max(h[i], max[i] + (w * (mean[i] - max[i])));
            }

            return;
        }

        for (int i = 0; i < max.Length; i++)
        {
            max[i] = MathF.Max(h[i], max[i]);
        }
    }

    /// <summary>Offline prediction returning the probabilities (see <see cref="Predict(ReadOnlySpan{float}, int, Span{float}, Span{float})"/>).</summary>
    /// <param name="sequence">Step-major inputs.</param>
    /// <param name="steps">Number of steps.</param>
    /// <returns><paramref name="steps"/> × <see cref="ClassCount"/> probabilities.</returns>
    public float[] Predict(ReadOnlySpan<float> sequence, int steps)
    {
        float[] probabilities = new float[steps * ClassCount];
        Predict(sequence, steps, probabilities);
        return probabilities;
    }

    internal void EnsureStreamable()
    {
        if (!Architecture.IsStreamable)
        {
            throw new NotSupportedException(
                "this model has a bidirectional layer, which needs the whole sequence; it cannot be stepped one input at a time. " +
                "Use it for offline classification (Predict, signal-edge eval) or retrain it unidirectional for the live engine.");
        }
    }

    internal void CheckState(RecurrentState state)
    {
        if (state.Fingerprint != Fingerprint || state.Size != StateSize)
        {
            throw new ArgumentException("the state was made for a model of another architecture; create it with this model's CreateState().", nameof(state));
        }
    }

    private static long s_batchTokens;

    /// <summary>
    /// Checks a batch's states: none null, each of this model's layout, none twice (marked with a fresh token, which
    /// is returned). Throws before any state is changed.
    /// </summary>
    internal long CheckBatchStates(ReadOnlySpan<RecurrentState> states)
    {
        long token = Interlocked.Increment(ref s_batchTokens);
        for (int r = 0; r < states.Length; r++)
        {
            RecurrentState state = states[r] ?? throw new ArgumentException($"state {r} is null.", nameof(states));
            CheckState(state);
            if (state.BatchToken == token)
            {
                throw new ArgumentException($"state {r} appears twice in one batched step; a stream may be stepped once per batch.", nameof(states));
            }

            state.BatchToken = token;
        }

        return token;
    }

    internal void CheckStepArguments(int rows, ReadOnlySpan<float> inputs, Span<float> probabilities, Span<float> forecasts)
    {
        if (inputs.Length < rows * InputSize)
        {
            ThrowHelper.Argument(nameof(inputs), $"inputs hold {inputs.Length} values; {rows} step(s) of {InputSize} need {rows * InputSize}.");
        }

        if (!probabilities.IsEmpty && (ClassCount == 0 || probabilities.Length < rows * ClassCount))
        {
            ThrowHelper.Argument(nameof(probabilities), ClassCount == 0
                ? "the model has no classification head; pass an empty span."
                : $"probabilities hold {probabilities.Length} values; {rows} × {ClassCount} classes are needed.");
        }

        if (!forecasts.IsEmpty && (ForecastSize == 0 || forecasts.Length < rows * ForecastSize))
        {
            ThrowHelper.Argument(nameof(forecasts), ForecastSize == 0
                ? "the model has no forecasting head; pass an empty span."
                : $"forecasts hold {forecasts.Length} values; {rows} × {ForecastSize} are needed.");
        }

        ReadOnlySpan<float> used = inputs[..(rows * InputSize)];
        if (!AllFinite(used))
        {
            int bad = used.IndexOfAnyExceptInRange(float.MinValue, float.MaxValue);
            if (bad >= 0)
            {
                ThrowHelper.Argument(nameof(inputs), $"input of step {bad / InputSize}, column {bad % InputSize} is {used[bad]}; inputs must be finite (no state was changed).");
            }
        }
    }

    /// <summary>
    /// Whether the sum of <paramref name="values"/> is finite (it is whenever every value is, short of overflow, which the
    /// caller then looks into). Large batches (a million values and more: 64k streams of a GPU step) are summed in parallel.
    /// </summary>
    private static unsafe bool AllFinite(ReadOnlySpan<float> values)
    {
        if (values.Length < 1 << 20)
        {
            return float.IsFinite(TensorPrimitives.Sum(values));
        }

        fixed (float* start = values)
        {
            nint address = (nint)start;
            int n = values.Length, chunks = Environment.ProcessorCount;
            int finite = 1;
            Parallel.For(0, chunks, c =>
            {
                int from = (int)((long)n * c / chunks), to = (int)((long)n * (c + 1) / chunks);
                if (!float.IsFinite(TensorPrimitives.Sum(new ReadOnlySpan<float>((float*)address + from, to - from))))
                {
                    Volatile.Write(ref finite, 0);
                }
            });
            return finite == 1;
        }
    }

    /// <summary>The batched step of <paramref name="states"/>.Length streams, rows of the workspace from 0.</summary>
    internal void StepRows(ReadOnlySpan<RecurrentState> states, ReadOnlySpan<float> inputs, Span<float> probabilities, Span<float> forecasts, Workspace ws)
    {
        int rows = states.Length;
        ReadOnlySpan<float> x = inputs;
        int ldx = InputSize;
        if (Architecture.RunningNormalization || _convs.Length > 0)
        {
            x = StepFrontEnd(states, inputs, rows, ws, out ldx);
        }

        for (int l = 0; l < _layers.Length; l++)
        {
            Layer layer = _layers[l];
            Cell cell = layer.Forward;
            CellBuffers b = ws.Cells[l];
            int lda = cell.InputStride;
            int inSize = cell.InputSize;
            int hs = cell.StateSize;
            int cs = cell.CellSize;
            for (int r = 0; r < rows; r++)
            {
                Span<float> row = b.A.AsSpan(r * lda, lda);
                ReadOnlySpan<float> xr = x.Slice(r * ldx, inSize);
                if (layer.Gamma is null)
                {
                    xr.CopyTo(row);
                }
                else
                {
                    Kernels.Kernels.LayerNorm(xr, layer.Gamma, layer.Beta!, Architecture.LayerNormEpsilon, row);
                }

                float[] values = states[r].Values;
                values.AsSpan(_hiddenOffsets[l], hs).CopyTo(row[inSize..]);
                b.CellOwners[r] = cs > 0 ? values : null;
            }

            b.CellOffset = _cellOffsets[l];

            cell.Step(b, rows, Path);
            int os = cell.OutputStride;
            for (int r = 0; r < rows; r++)
            {
                b.Out.AsSpan(r * os, hs).CopyTo(states[r].Values.AsSpan(_hiddenOffsets[l], hs));
                b.CellOwners[r] = null;
            }

            x = b.Out;
            ldx = os;
        }

        if (!Architecture.MeanPooling)
        {
            ApplyHeads(x, ldx, rows, ws, probabilities, forecasts);
            return;
        }

        // The running mean and count advance every step, whether or not this step asks for the classes.
        int f = Architecture.FeatureSize;
        for (int r = 0; r < rows; r++)
        {
            Span<float> pool = states[r].Values.AsSpan(_poolOffset, _maxPooling ? (2 * f) + 1 : f + 1);
            pool[f] += 1;
            AdvanceMean(pool[..f], x.Slice(r * ldx, f), Architecture.PoolingWeight(pool[f]));
            if (_maxPooling)
            {
                AdvanceMax(pool[(f + 1)..], x.Slice(r * ldx, f), pool[..f], pool[f], Architecture.PoolingSteps);
            }
        }

        ApplyHeads(x, ldx, rows, ws, default, forecasts);
        if (!probabilities.IsEmpty)
        {
            ApplyHeads(Pooled(x, ldx, rows, states, ws), _headInputSize, rows, ws, probabilities, default);
        }
    }

    /// <summary>
    /// The causal convolutions of one step for <paramref name="rows"/> streams: each stream's taps (its ring of past
    /// inputs and the new input) are gathered into one row, one product computes every stream's channels, then ReLU
    /// and the residual; the new input then enters the ring. Returns the last convolution's output and its stride.
    /// </summary>
    private ReadOnlySpan<float> StepFrontEnd(ReadOnlySpan<RecurrentState> states, ReadOnlySpan<float> inputs, int rows, Workspace ws, out int stride)
    {
        ReadOnlySpan<float> x = inputs;
        int ldx = InputSize;
        if (Architecture.RunningNormalization)
        {
            int width = 2 * InputSize;
            for (int r = 0; r < rows; r++)
            {
                NormalizeStep(Architecture, states[r].Values.AsSpan(_normOffset, 3 * Architecture.InputChannels), inputs.Slice(r * InputSize, InputSize), ws.Normalized.AsSpan(r * width, width));
            }

            x = ws.Normalized;
            ldx = width;
        }

        for (int c = 0; c < _convs.Length; c++)
        {
            Convolution conv = _convs[c];
            int inSize = conv.Input, kernel = conv.Kernel, taps = kernel * inSize, reach = (kernel - 1) * conv.Dilation;
            float[] gathered = ws.ConvTaps![c], output = ws.ConvOutputs![c];
            for (int r = 0; r < rows; r++)
            {
                ReadOnlySpan<float> ring = states[r].Values.AsSpan(conv.RingOffset, reach * inSize);
                ReadOnlySpan<float> xr = x.Slice(r * ldx, inSize);
                for (int k = 0; k < kernel; k++)
                {
                    int back = (kernel - 1 - k) * conv.Dilation; // tap k sees the input `back` steps ago
                    (back == 0 ? xr : ring.Slice((reach - back) * inSize, inSize)).CopyTo(gathered.AsSpan((r * taps) + (k * inSize), inSize));
                }
            }

            int ld = conv.Weights.PaddedRows;
            Kernels.Kernels.Gemm(gathered, taps, rows, conv.Weights, output, ld, conv.Weights.Path);
            for (int r = 0; r < rows; r++)
            {
                Span<float> y = output.AsSpan(r * ld, conv.Channels);
                TensorPrimitives.Max(y, 0f, y);
                ReadOnlySpan<float> xr = x.Slice(r * ldx, inSize);
                if (conv.Residual)
                {
                    TensorPrimitives.Add(y, xr, y);
                }

                if (reach > 0)
                {
                    Span<float> ring = states[r].Values.AsSpan(conv.RingOffset, reach * inSize);
                    ring[inSize..].CopyTo(ring);
                    xr.CopyTo(ring[((reach - 1) * inSize)..]);
                }
            }

            x = output;
            ldx = ld;
        }

        stride = ldx;
        return x;
    }

    /// <summary>
    /// Running input normalisation of one step (see <see cref="ModelArchitecture.InputNormalization"/>): every sample
    /// of the step updates its channel's mean and variance (m ← m + w·δ, v ← (1 − w)(v + w·δ²), w = 1 / min(n, N), the
    /// exact population statistics while n ≤ N), then <paramref name="output"/> receives the input followed by
    /// (x − m) / √(v + 1e-4). The stepped, offline and training paths all call this.
    /// </summary>
    internal static void NormalizeStep(ModelArchitecture architecture, Span<float> statistics, ReadOnlySpan<float> input, Span<float> output)
    {
        int channels = architecture.InputChannels, reach = architecture.NormalizationSamples;
        for (int j = 0; j < input.Length; j++)
        {
            int c = 3 * (j % channels);
            float count = statistics[c + 2] + 1;
            float w = 1f / (reach > 0 ? Math.Min(count, reach) : count);
            float delta = input[j] - statistics[c];
            statistics[c] += w * delta;
            statistics[c + 1] = (1 - w) * (statistics[c + 1] + (w * delta * delta));
            statistics[c + 2] = count;
        }

        input.CopyTo(output);
        for (int j = 0; j < input.Length; j++)
        {
            int c = 3 * (j % channels);
            output[input.Length + j] = (input[j] - statistics[c]) / MathF.Sqrt(statistics[c + 1] + 1e-4f);
        }
    }

    /// <summary>The classification head's rows with pooling: each row's output, then its stream's running mean (and maximum).</summary>
    private float[] Pooled(ReadOnlySpan<float> x, int ldx, int rows, ReadOnlySpan<RecurrentState> states, Workspace ws)
    {
        int f = Architecture.FeatureSize, width = _headInputSize;
        float[] z = ws.Pooled!;
        for (int r = 0; r < rows; r++)
        {
            x.Slice(r * ldx, f).CopyTo(z.AsSpan(r * width, f));
            states[r].Values.AsSpan(_poolOffset, f).CopyTo(z.AsSpan((r * width) + f, f));
            if (_maxPooling)
            {
                states[r].Values.AsSpan(_poolOffset + f + 1, f).CopyTo(z.AsSpan((r * width) + (2 * f), f));
            }
        }

        return z;
    }

    private void ApplyHeads(ReadOnlySpan<float> x, int ldx, int rows, Workspace ws, Span<float> probabilities, Span<float> forecasts)
    {
        if (_head is not null && !probabilities.IsEmpty)
        {
            int ld = _head.PaddedRows;
            if (_headWeights is not null)
            {
                Kernels.Kernels.DotRows(x, ldx, rows, _headWeights, ClassCount, Architecture.HeadInputSize, _head.Bias, ws.Logits, ld, Path);
            }
            else
            {
                Kernels.Kernels.Gemm(x, ldx, rows, _head, ws.Logits, ld, _head.Path);
            }


            for (int r = 0; r < rows; r++)
            {
                Kernels.Kernels.Softmax(ws.Logits.AsSpan(r * ld, ClassCount), probabilities.Slice(r * ClassCount, ClassCount));
            }
        }

        if (_forecast is not null && !forecasts.IsEmpty)
        {
            int ld = _forecast.PaddedRows;
            Kernels.Kernels.Gemm(x, ldx, rows, _forecast, ws.Forecast, ld, _forecast.Path);
            for (int r = 0; r < rows; r++)
            {
                ws.Forecast.AsSpan(r * ld, ForecastSize).CopyTo(forecasts.Slice(r * ForecastSize, ForecastSize));
            }
        }
    }

    private void RunDirection(Layer layer, Cell cell, float[] x, int ldx, int steps, float[] y, int offset, bool reverse)
    {
        var b = new CellBuffers(cell, 1);
        int inSize = cell.InputSize;
        int hs = cell.StateSize;
        float[] h = new float[hs];
        for (int s = 0; s < steps; s++)
        {
            int t = reverse ? steps - 1 - s : s;
            ReadOnlySpan<float> xr = x.AsSpan(t * ldx, inSize);
            if (layer.Gamma is null)
            {
                xr.CopyTo(b.A);
            }
            else
            {
                Kernels.Kernels.LayerNorm(xr, layer.Gamma, layer.Beta!, Architecture.LayerNormEpsilon, b.A);
            }

            h.CopyTo(b.A.AsSpan(inSize));
            cell.Step(b, 1, Path);
            b.Out.AsSpan(0, hs).CopyTo(h);
            h.CopyTo(y.AsSpan((t * layer.OutputSize) + offset, hs));
        }
    }

    private Layer BuildLayer(int index)
    {
        LayerArchitecture a = Architecture.Layers[index];
        int input = Architecture.LayerInputSize(index);
        Cell Direction(string suffix)
        {
            string p = $"{Architecture.LayerPrefix(index)}.";
            string l = $"_l{a.Index}{suffix}";
            string who = $"layer {index} ({a.Kind.ToString().ToUpperInvariant()}, input {input}, hidden {a.HiddenSize})";
            int gates = a.GateCount * a.HiddenSize;
            Tensor wih = Require($"{p}weight_ih{l}", who, gates, input);
            Tensor whh = Require($"{p}weight_hh{l}", who, gates, a.StateSize);
            Tensor? bih = a.Bias ? Require($"{p}bias_ih{l}", who, gates) : null;
            Tensor? bhh = a.Bias ? Require($"{p}bias_hh{l}", who, gates) : null;
            Tensor? whr = a.ProjectionSize > 0 ? Require($"{p}weight_hr{l}", who, a.ProjectionSize, a.HiddenSize) : null;
            return new Cell(a, input, wih, whh, bih, bhh, whr, Path);
        }

        float[]? gamma = null, beta = null;
        if (a.LayerNorm)
        {
            string who = $"layer {index}'s layer norm";
            gamma = Require($"{Architecture.NormPrefix(index)}.weight", who, input).Data;
            beta = Require($"{Architecture.NormPrefix(index)}.bias", who, input).Data;
        }

        return new Layer(Direction(string.Empty), a.Bidirectional ? Direction("_reverse") : null, gamma, beta, input, a.OutputSize);
    }

    private Convolution BuildConvolution(int index, int ringOffset, KernelPath path)
    {
        ConvolutionArchitecture a = Architecture.Convolutions[index];
        int input = Architecture.ConvolutionInputSize(index);
        string who = $"convolution {index} ({input} → {a.Channels} channels, kernel {a.Kernel})";
        Tensor w = Require($"convs.{index}.weight", who, a.Channels, input, a.Kernel);
        Tensor b = Require($"convs.{index}.bias", who, a.Channels);

        // PyTorch's [out, in, kernel] becomes [out, kernel · in]: tap k's inputs side by side, as the step gathers them.
        float[] taps = new float[a.Channels * a.Kernel * input];
        for (int o = 0; o < a.Channels; o++)
        {
            for (int i = 0; i < input; i++)
            {
                for (int k = 0; k < a.Kernel; k++)
                {
                    taps[(o * a.Kernel * input) + (k * input) + i] = w.Data[(((o * input) + i) * a.Kernel) + k];
                }
            }
        }

        return new Convolution(new PackedMatrix(taps, a.Channels, a.Kernel * input, b.Data, path), input, a.Channels, a.Kernel, a.Dilation, a.Residual, ringOffset);
    }

    private Tensor Require(string name, string who, params int[] shape)
    {
        if (!Tensors.TryGetValue(name, out Tensor? tensor))
        {
            throw new ModelFormatException($"tensor '{name}' is missing; {who} needs it with shape {Tensor.FormatShape(shape)}.");
        }

        if (!tensor.Shape.SequenceEqual(shape))
        {
            throw new ModelFormatException($"tensor '{name}' has shape {Tensor.FormatShape(tensor.Shape)}; {who} needs {Tensor.FormatShape(shape)}.");
        }

        int bad = tensor.Data.AsSpan().IndexOfAnyExceptInRange(float.MinValue, float.MaxValue);
        if (bad >= 0)
        {
            throw new ModelFormatException($"tensor '{name}' holds {tensor.Data[bad]} at index {bad}; weights must be finite.");
        }

        return tensor;
    }

    /// <summary>
    /// The narrowest vector path (no wider than <paramref name="path"/>) whose panel holds <paramref name="outputs"/>:
    /// a head of four classes on a 32-wide Vector512 panel would compute eight times the outputs it needs.
    /// </summary>
    private static KernelPath NarrowestPath(KernelPath path, int outputs)
    {
        foreach (KernelPath candidate in new[] { KernelPath.Vector128, KernelPath.Vector256 })
        {
            if (candidate < path && Kernels.Kernels.IsSupported(candidate) && Kernels.Kernels.PanelWidth(candidate) >= outputs)
            {
                return candidate;
            }
        }

        return path;
    }

    /// <summary>Every tensor an architecture needs, with its shape and PyTorch's default init bound.</summary>
    internal static IEnumerable<TensorRequirement> RequiredTensors(ModelArchitecture a)
    {
        for (int i = 0; i < a.Convolutions.Count; i++)
        {
            ConvolutionArchitecture conv = a.Convolutions[i];
            int input = a.ConvolutionInputSize(i);
            float convBound = 1f / MathF.Sqrt(input * conv.Kernel); // PyTorch's Conv1d default: 1/√(in · kernel)
            yield return new($"convs.{i}.weight", convBound, [conv.Channels, input, conv.Kernel]);
            yield return new($"convs.{i}.bias", convBound, [conv.Channels]);
        }

        for (int i = 0; i < a.Layers.Count; i++)
        {
            LayerArchitecture layer = a.Layers[i];
            int input = a.LayerInputSize(i);
            int gates = layer.GateCount * layer.HiddenSize;
            float bound = 1f / MathF.Sqrt(layer.HiddenSize);
            foreach (string suffix in layer.Bidirectional ? new[] { string.Empty, "_reverse" } : [string.Empty])
            {
                string p = $"{a.LayerPrefix(i)}.";
                string l = $"_l{layer.Index}{suffix}";
                yield return new($"{p}weight_ih{l}", bound, [gates, input]);
                yield return new($"{p}weight_hh{l}", bound, [gates, layer.StateSize]);
                if (layer.Bias)
                {
                    yield return new($"{p}bias_ih{l}", bound, [gates]);
                    yield return new($"{p}bias_hh{l}", bound, [gates]);
                }

                if (layer.ProjectionSize > 0)
                {
                    yield return new($"{p}weight_hr{l}", bound, [layer.ProjectionSize, layer.HiddenSize]);
                }
            }

            if (layer.LayerNorm)
            {
                yield return new($"{a.NormPrefix(i)}.weight", 0f, [input]) { Fill = 1f };
                yield return new($"{a.NormPrefix(i)}.bias", 0f, [input]);
            }
        }

        float headBound = 1f / MathF.Sqrt(a.FeatureSize);
        if (a.Classes > 0)
        {
            float bound = 1f / MathF.Sqrt(a.HeadInputSize);
            yield return new($"{a.HeadPrefix}.weight", bound, [a.Classes, a.HeadInputSize]);
            yield return new($"{a.HeadPrefix}.bias", bound, [a.Classes]);
        }

        if (a.ForecastSize > 0)
        {
            yield return new($"{a.ForecastPrefix}.weight", headBound, [a.ForecastSize, a.FeatureSize]);
            yield return new($"{a.ForecastPrefix}.bias", headBound, [a.ForecastSize]);
        }
    }

    internal sealed record TensorRequirement(string Name, float Bound, int[] Shape)
    {
        public float Fill { get; init; }
    }

    private sealed record Convolution(PackedMatrix Weights, int Input, int Channels, int Kernel, int Dilation, bool Residual, int RingOffset);

    private sealed record Layer(Cell Forward, Cell? Backward, float[]? Gamma, float[]? Beta, int InputSize, int OutputSize);

    /// <summary>Scratch for stepping a number of streams (rows); one per thread.</summary>
    internal sealed class Workspace
    {
        public Workspace(RecurrentModel model, int rows, bool headsOnly = false)
        {
            Cells = headsOnly ? [] : [.. model._layers.Select(l => new CellBuffers(l.Forward, rows))];
            Logits = new float[rows * (model._head?.PaddedRows ?? 0)];
            Pooled = model.Architecture.MeanPooling ? new float[rows * model.Architecture.HeadInputSize] : null;
            Normalized = new float[model.Architecture.RunningNormalization ? rows * 2 * model.InputSize : 0];
            ConvTaps = model._convs.Length == 0 ? null : [.. model._convs.Select(c => new float[rows * c.Weights.Columns])];
            ConvOutputs = model._convs.Length == 0 ? null : [.. model._convs.Select(c => new float[rows * c.Weights.PaddedRows])];
            Forecast = new float[rows * (model._forecast?.PaddedRows ?? 0)];
        }

        public CellBuffers[] Cells { get; }

        public float[] Logits { get; }

        public float[]? Pooled { get; }

        /// <summary>With running normalisation: every row's input and its normalised copy (rows × 2 · input).</summary>
        public float[] Normalized { get; }

        /// <summary>Per convolution: every row's gathered taps (rows × kernel · input).</summary>
        public float[][]? ConvTaps { get; }

        /// <summary>Per convolution: every row's channels (rows × padded channels).</summary>
        public float[][]? ConvOutputs { get; }

        public float[] Forecast { get; }
    }
}
