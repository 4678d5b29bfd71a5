using System.Text.Json;
using System.Text.Json.Serialization;

namespace Signal.Models.Networks;

/// <summary>The kind of recurrent cell of a layer.</summary>
public enum CellKind
{
    /// <summary>Long short-term memory, PyTorch conventions: gates i, f, g, o.</summary>
    [JsonStringEnumMemberName("lstm")]
    Lstm,

    /// <summary>Gated recurrent unit, PyTorch conventions: gates r, z, n, reset applied after the hidden product.</summary>
    [JsonStringEnumMemberName("gru")]
    Gru,

    /// <summary>Plain (Elman) recurrent layer: h = act(W_ih·x + b_ih + W_hh·h + b_hh).</summary>
    [JsonStringEnumMemberName("rnn")]
    Rnn,
}

/// <summary>One recurrent layer of a <see cref="ModelArchitecture"/>.</summary>
public sealed class LayerArchitecture
{
    /// <summary>The cell kind. Default LSTM.</summary>
    public CellKind Kind { get; set; } = CellKind.Lstm;

    /// <summary>Hidden units per direction (PyTorch's <c>hidden_size</c>).</summary>
    public int HiddenSize { get; set; }

    /// <summary>LSTM only: the size the hidden state is projected to (PyTorch's <c>proj_size</c>, MATLAB's lstmProjectedLayer); 0 for none.</summary>
    public int ProjectionSize { get; set; }

    /// <summary>Run a second, reversed direction and concatenate (offline classification only; the streaming path refuses it).</summary>
    public bool Bidirectional { get; set; }

    /// <summary>Layer normalisation of this layer's input (tensors <c>{NormPrefix}.weight</c> and <c>.bias</c>).</summary>
    public bool LayerNorm { get; set; }

    /// <summary>Plain RNN only: <c>tanh</c> (default) or <c>relu</c>.</summary>
    public string Nonlinearity { get; set; } = "tanh";

    /// <summary>Whether the layer has bias tensors (PyTorch's <c>bias</c>). Default true.</summary>
    public bool Bias { get; set; } = true;

    /// <summary>
    /// Prefix of the layer's tensor names; default <c>layers.{i}</c>. Names are PyTorch's:
    /// <c>{Prefix}.weight_ih_l{Index}</c>, <c>weight_hh</c>, <c>bias_ih</c>, <c>bias_hh</c>, <c>weight_hr</c>,
    /// with <c>_reverse</c> appended for the second direction. A stacked <c>nn.LSTM</c> called <c>lstm</c>
    /// maps to prefix <c>lstm</c> with indices 0, 1, …
    /// </summary>
    public string? Prefix { get; set; }

    /// <summary>The <c>_l{Index}</c> suffix of the tensor names. Default 0.</summary>
    public int Index { get; set; }

    /// <summary>Prefix of the layer-norm tensors; default <c>norms.{i}</c>.</summary>
    public string? NormPrefix { get; set; }

    /// <summary>Size of the recurrent hidden state h of one direction (the projection size when projected).</summary>
    [JsonIgnore]
    public int StateSize => ProjectionSize > 0 ? ProjectionSize : HiddenSize;

    /// <summary>Size of the layer's output per step: <see cref="StateSize"/> times the number of directions.</summary>
    [JsonIgnore]
    public int OutputSize => StateSize * (Bidirectional ? 2 : 1);

    /// <summary>Gate blocks per hidden unit: 4 (LSTM), 3 (GRU), 1 (RNN).</summary>
    [JsonIgnore]
    public int GateCount => Kind switch { CellKind.Lstm => 4, CellKind.Gru => 3, _ => 1 };

    /// <summary>True for a ReLU plain RNN.</summary>
    [JsonIgnore]
    public bool IsRelu => Kind == CellKind.Rnn && Nonlinearity == "relu";
}

/// <summary>
/// One causal 1-D convolution of a model's front end (PyTorch <c>Conv1d</c> with <c>(kernel − 1) · dilation</c> zeros
/// of padding on the left only, then ReLU): the output at step t sees the inputs at t, t − d, …, t − (k − 1)·d, never a
/// later one, so it can be stepped once per input with a ring of the last (k − 1)·d inputs per stream.
/// Tensors <c>convs.{i}.weight</c> [channels, input, kernel] and <c>convs.{i}.bias</c> [channels].
/// </summary>
public sealed class ConvolutionArchitecture
{
    /// <summary>Output channels.</summary>
    public int Channels { get; set; }

    /// <summary>Taps (PyTorch's <c>kernel_size</c>). Default 3.</summary>
    public int Kernel { get; set; } = 3;

    /// <summary>Steps between taps (PyTorch's <c>dilation</c>). Default 1.</summary>
    public int Dilation { get; set; } = 1;

    /// <summary>Adds the convolution's input to its activated output (a residual block; needs as many channels in as out).</summary>
    public bool Residual { get; set; }

    /// <summary>Past inputs a stream holds for this convolution: (kernel − 1) · dilation.</summary>
    [JsonIgnore]
    public int Reach => (Kernel - 1) * Dilation;
}

/// <summary>
/// What a model is: input size, an optional causal convolutional front end, recurrent layers (mixed kinds allowed), a classification head and an
/// optional forecasting head. Stored as JSON in the model file's <c>signal.architecture</c> metadata.
/// </summary>
public sealed class ModelArchitecture
{
    /// <summary>Size of one step's input vector.</summary>
    public int InputSize { get; set; }

    /// <summary>The recurrent layers, input to output.</summary>
    public IList<LayerArchitecture> Layers { get; set; } = [];

    /// <summary>
    /// The causal convolutions applied to each step's input before the recurrent layers, in order (none by default).
    /// Each is followed by ReLU (and its residual, when set); the recurrent layers see the last one's channels.
    /// </summary>
    public IList<ConvolutionArchitecture> Convolutions { get; set; } = [];

    /// <summary>
    /// Per-stream input normalisation: <c>none</c> (default), or <c>running</c>: each step's input is followed by a
    /// copy z-scored with the stream's own running mean and variance of each raw channel (what normalising each
    /// series does offline, made causal: the statistics of the samples seen so far, this step's included). The
    /// network then sees 2 · <see cref="InputSize"/> values per step: level and scale from the global z-score
    /// before the model, shape from the running one.
    /// </summary>
    public string InputNormalization { get; set; } = "none";

    /// <summary>With running normalisation: raw channels interleaved in a step's input (sample-major), one set of statistics each. Default 1.</summary>
    public int InputChannels { get; set; } = 1;

    /// <summary>
    /// With running normalisation: how many samples per channel the statistics reach back: the exact mean and
    /// variance up to that many, then exponential averages with weight 1 / that (0: every sample).
    /// </summary>
    public int NormalizationSamples { get; set; }

    /// <summary>Whether <see cref="InputNormalization"/> is running.</summary>
    [JsonIgnore]
    public bool RunningNormalization => InputNormalization == "running";

    /// <summary>Values per step the network's first stage sees: the input, and with running normalisation its normalised copy.</summary>
    [JsonIgnore]
    public int NetworkInputSize => InputSize * (RunningNormalization ? 2 : 1);

    /// <summary>Input size of convolution <paramref name="index"/>: the network's input, then the previous convolution's channels.</summary>
    /// <param name="index">The convolution.</param>
    /// <returns>Its input channels.</returns>
    public int ConvolutionInputSize(int index) => index == 0 ? NetworkInputSize : Convolutions[index - 1].Channels;

    /// <summary>What the first recurrent layer sees per step: the last convolution's channels, or the network's input.</summary>
    [JsonIgnore]
    public int FrontEndSize => Convolutions.Count == 0 ? NetworkInputSize : Convolutions[^1].Channels;

    /// <summary>Number of classes of the dense softmax head (tensors <c>{HeadPrefix}.weight</c>, <c>.bias</c>); 0 for none.</summary>
    public int Classes { get; set; }

    /// <summary>Size of the forecasting head's output (the next input vector; tensors <c>{ForecastPrefix}.weight</c>, <c>.bias</c>); 0 for none.</summary>
    public int ForecastSize { get; set; }

    /// <summary>Prefix of the classification head's tensors. Default <c>head</c>.</summary>
    public string HeadPrefix { get; set; } = "head";

    /// <summary>Prefix of the forecasting head's tensors. Default <c>forecast</c>.</summary>
    public string ForecastPrefix { get; set; } = "forecast";

    /// <summary>
    /// What the classification head sees beside the top layer's output at the step: <c>none</c> (default), or
    /// <c>mean</c>, the running mean of the top layer's outputs over the steps seen (global average pooling, made
    /// streamable: a mean and a count per stream, constant work per step; see <see cref="PoolingSteps"/>), or
    /// <c>meanmax</c>, that mean and the running maximum of each output (global max pooling, streamable the same way).
    /// The head's weights are then [classes, 2 (or 3) · <see cref="FeatureSize"/>]: the output, the mean, the maximum.
    /// The forecasting head always sees the output alone.
    /// </summary>
    public string Pooling { get; set; } = "none";

    /// <summary>
    /// How far the mean of <see cref="Pooling"/> reaches: 0 (default), every step since the stream began; N &gt; 0,
    /// the exact mean while a stream has seen at most N steps, then an exponential average with weight 1/N per step
    /// (<c>m ← m + (h − m) / min(t, N)</c>). Training sequences of at most N steps see exactly global average
    /// pooling, and a live stream that runs for days still follows what it does now: a change of state moves the
    /// mean within about N steps. <c>signal-edge train</c> sets N to the longest training sequence.
    /// </summary>
    public int PoolingSteps { get; set; }

    /// <summary>The weight of step number <paramref name="count"/> (1-based) in the running mean of <see cref="Pooling"/>.</summary>
    /// <param name="count">Steps seen, this one included.</param>
    /// <returns>1 / min(<paramref name="count"/>, <see cref="PoolingSteps"/>), or 1 / <paramref name="count"/> when unbounded.</returns>
    public float PoolingWeight(float count) => 1f / (PoolingSteps > 0 ? Math.Min(count, PoolingSteps) : count);

    /// <summary>Whether the classification head also sees the running mean of the top layer (<see cref="Pooling"/> is mean or meanmax).</summary>
    [JsonIgnore]
    public bool MeanPooling => Pooling is "mean" or "meanmax";

    /// <summary>Whether the classification head also sees the running maximum of the top layer (<see cref="Pooling"/> is meanmax).</summary>
    [JsonIgnore]
    public bool MaxPooling => Pooling == "meanmax";

    /// <summary>Size of the classification head's input: <see cref="FeatureSize"/> for the output, plus as much for the mean and for the maximum when pooled.</summary>
    [JsonIgnore]
    public int HeadInputSize => FeatureSize * (1 + (MeanPooling ? 1 : 0) + (MaxPooling ? 1 : 0));

    /// <summary>ε of the layer normalisations. Default 1e-5 (PyTorch's).</summary>
    public float LayerNormEpsilon { get; set; } = 1e-5f;

    /// <summary>True when no layer is bidirectional, so the model can be stepped one input at a time.</summary>
    [JsonIgnore]
    public bool IsStreamable => Layers.All(l => !l.Bidirectional);

    /// <summary>Size of the last layer's output (the heads' input).</summary>
    [JsonIgnore]
    public int FeatureSize => Layers.Count == 0 ? FrontEndSize : Layers[^1].OutputSize;

    /// <summary>Input size of layer <paramref name="index"/>.</summary>
    /// <param name="index">The layer.</param>
    /// <returns>The front end's size for layer 0 (<see cref="FrontEndSize"/>), otherwise the previous layer's output size.</returns>
    public int LayerInputSize(int index) => index == 0 ? FrontEndSize : Layers[index - 1].OutputSize;

    /// <summary>The tensor-name prefix of layer <paramref name="index"/>.</summary>
    /// <param name="index">The layer.</param>
    /// <returns><see cref="LayerArchitecture.Prefix"/> or <c>layers.{index}</c>.</returns>
    public string LayerPrefix(int index) => Layers[index].Prefix ?? $"layers.{index}";

    /// <summary>The layer-norm tensor prefix of layer <paramref name="index"/>.</summary>
    /// <param name="index">The layer.</param>
    /// <returns><see cref="LayerArchitecture.NormPrefix"/> or <c>norms.{index}</c>.</returns>
    public string NormPrefix(int index) => Layers[index].NormPrefix ?? $"norms.{index}";

    /// <summary>Checks every field; throws <see cref="ModelFormatException"/> naming the first bad one.</summary>
    public void Validate()
    {
        if (InputSize <= 0 || InputSize > 1 << 20)
        {
            throw new ModelFormatException($"architecture field 'inputSize' must be 1 to {1 << 20} (got {InputSize}).");
        }

        if (Layers.Count == 0 || Layers.Count > 64)
        {
            throw new ModelFormatException($"architecture field 'layers' must list 1 to 64 recurrent layers (got {Layers.Count}).");
        }

        for (int i = 0; i < Layers.Count; i++)
        {
            LayerArchitecture layer = Layers[i] ?? throw new ModelFormatException($"architecture field 'layers[{i}]' is null.");
            if (!Enum.IsDefined(layer.Kind))
            {
                throw new ModelFormatException($"architecture field 'layers[{i}].kind' is not a known cell kind; use lstm, gru or rnn.");
            }

            if (layer.HiddenSize <= 0 || layer.HiddenSize > 1 << 16)
            {
                throw new ModelFormatException($"architecture field 'layers[{i}].hiddenSize' must be 1 to {1 << 16} (got {layer.HiddenSize}).");
            }

            if (layer.ProjectionSize < 0 || layer.ProjectionSize >= layer.HiddenSize && layer.ProjectionSize != 0)
            {
                throw new ModelFormatException($"architecture field 'layers[{i}].projectionSize' must be 0 or smaller than hiddenSize {layer.HiddenSize} (got {layer.ProjectionSize}).");
            }

            if (layer.ProjectionSize > 0 && layer.Kind != CellKind.Lstm)
            {
                throw new ModelFormatException($"architecture field 'layers[{i}].projectionSize' is for LSTM layers only (layer is {layer.Kind}).");
            }

            if (layer.Nonlinearity is not ("tanh" or "relu"))
            {
                throw new ModelFormatException($"architecture field 'layers[{i}].nonlinearity' must be tanh or relu (got '{layer.Nonlinearity}').");
            }

            if (layer.Index < 0)
            {
                throw new ModelFormatException($"architecture field 'layers[{i}].index' must not be negative (got {layer.Index}).");
            }
        }

        if (InputNormalization is not ("none" or "running"))
        {
            throw new ModelFormatException($"architecture field 'inputNormalization' must be none or running (got '{InputNormalization}').");
        }

        if (RunningNormalization && (InputChannels < 1 || InputSize % InputChannels != 0 || NormalizationSamples < 0))
        {
            throw new ModelFormatException($"architecture fields 'inputChannels' ({InputChannels}) and 'normalizationSamples' ({NormalizationSamples}): the channels must divide inputSize {InputSize} and the reach must not be negative.");
        }

        if (Convolutions.Count > 64)
        {
            throw new ModelFormatException($"architecture field 'convolutions' may list at most 64 convolutions (got {Convolutions.Count}).");
        }

        for (int i = 0; i < Convolutions.Count; i++)
        {
            ConvolutionArchitecture conv = Convolutions[i] ?? throw new ModelFormatException($"architecture field 'convolutions[{i}]' is null.");
            if (conv.Channels <= 0 || conv.Channels > 1 << 16)
            {
                throw new ModelFormatException($"architecture field 'convolutions[{i}].channels' must be 1 to {1 << 16} (got {conv.Channels}).");
            }

            if (conv.Kernel <= 0 || conv.Kernel > 64 || conv.Dilation <= 0 || conv.Dilation > 1 << 12)
            {
                throw new ModelFormatException($"architecture fields 'convolutions[{i}].kernel' and '.dilation' must be 1 to 64 and 1 to {1 << 12} (got {conv.Kernel} and {conv.Dilation}).");
            }

            if (conv.Residual && conv.Channels != ConvolutionInputSize(i))
            {
                throw new ModelFormatException($"architecture field 'convolutions[{i}].residual' needs as many channels in as out ({ConvolutionInputSize(i)} in, {conv.Channels} out).");
            }
        }

        if (Classes < 0 || Classes > 1 << 16)
        {
            throw new ModelFormatException($"architecture field 'classes' must be 0 to {1 << 16} (got {Classes}).");
        }

        if (ForecastSize < 0 || ForecastSize > 1 << 20)
        {
            throw new ModelFormatException($"architecture field 'forecastSize' must be 0 to {1 << 20} (got {ForecastSize}).");
        }

        if (Classes == 0 && ForecastSize == 0)
        {
            throw new ModelFormatException("architecture has neither a classification head ('classes') nor a forecasting head ('forecastSize').");
        }

        if (Pooling is not ("none" or "mean" or "meanmax"))
        {
            throw new ModelFormatException($"architecture field 'pooling' must be none, mean or meanmax (got '{Pooling}').");
        }

        if (PoolingSteps < 0)
        {
            throw new ModelFormatException($"architecture field 'poolingSteps' must be 0 (every step) or a positive number of steps (got {PoolingSteps}).");
        }

        if (MeanPooling && Classes == 0)
        {
            throw new ModelFormatException($"architecture field 'pooling' is {Pooling}, but there is no classification head to pool for.");
        }

        if (!(LayerNormEpsilon > 0) || !float.IsFinite(LayerNormEpsilon))
        {
            throw new ModelFormatException($"architecture field 'layerNormEpsilon' must be a positive number (got {LayerNormEpsilon}).");
        }
    }

    /// <summary>The architecture as JSON (the model file's <c>signal.architecture</c>).</summary>
    /// <returns>Indented JSON.</returns>
    public string ToJson() => JsonSerializer.Serialize(this, ModelJsonContext.Default.ModelArchitecture);

    /// <summary>Reads and validates an architecture from JSON.</summary>
    /// <param name="json">The JSON text.</param>
    /// <returns>The validated architecture.</returns>
    public static ModelArchitecture FromJson(string json)
    {
        ModelArchitecture? architecture;
        try
        {
            architecture = JsonSerializer.Deserialize(json, ModelJsonContext.Default.ModelArchitecture);
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"architecture is not valid: {e.Message}", e);
        }

        if (architecture is null)
        {
            throw new ModelFormatException("architecture is null.");
        }

        architecture.Validate();
        return architecture;
    }

    /// <summary>
    /// A stable 64-bit fingerprint of what the recurrent state depends on (layer kinds and sizes), so a
    /// checkpointed state is only restored into a network it fits.
    /// </summary>
    /// <returns>FNV-1a over the state-relevant fields.</returns>
    public ulong StateFingerprint()
    {
        ulong hash = 14695981039346656037UL;
        void Mix(int value)
        {
            for (int b = 0; b < 4; b++)
            {
                hash ^= (byte)(value >> (8 * b));
                hash *= 1099511628211UL;
            }
        }

        Mix(Layers.Count);
        Mix(MeanPooling ? 2 : 0); // 2: the state holds the mean (1 held a sum)
        Mix(PoolingSteps);
        if (MaxPooling)
        {
            Mix(3); // the state also holds the maximum (mixed only then, so earlier models keep their fingerprints)
        }
        if (RunningNormalization)
        {
            Mix(InputChannels);
            Mix(NormalizationSamples);
        }

        if (Convolutions.Count > 0)
        {
            // Mixed only when present, so the fingerprints of models without a front end stay as they were.
            Mix(Convolutions.Count);
            foreach (ConvolutionArchitecture conv in Convolutions)
            {
                Mix(conv.Channels);
                Mix(conv.Reach);
            }
        }
        foreach (LayerArchitecture layer in Layers)
        {
            Mix((int)layer.Kind);
            Mix(layer.HiddenSize);
            Mix(layer.ProjectionSize);
            Mix(layer.Bidirectional ? 1 : 0);
        }

        return hash;
    }
}

/// <summary>A model file, architecture or tensor set that cannot be used; the message names the problem.</summary>
public sealed class ModelFormatException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ModelFormatException()
    {
    }

    /// <summary>Creates the exception with a message naming the problem.</summary>
    /// <param name="message">What is wrong.</param>
    public ModelFormatException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the underlying error.</summary>
    /// <param name="message">What is wrong.</param>
    /// <param name="inner">The underlying error.</param>
    public ModelFormatException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>Source-generated JSON metadata for the model types (trimming- and AOT-safe).</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    WriteIndented = false,
    ReadCommentHandling = JsonCommentHandling.Skip,
    AllowTrailingCommas = true,
    UseStringEnumConverter = true,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ModelArchitecture))]
[JsonSerializable(typeof(string[]))]
[JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class ModelJsonContext : JsonSerializerContext;
