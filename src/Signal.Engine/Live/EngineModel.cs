using System.Globalization;
using Signal.Engine.Data;
using Signal.Features.Pipeline;
using Signal.Models.Networks;

namespace Signal.Engine.Live;

/// <summary>
/// A model as the live engine runs it: the network, the feature pipeline from its metadata (or the raw-input
/// layout when it has none), its labels and its anomaly threshold.
/// </summary>
/// <remarks>Immutable and thread-safe. Per-stream state is created by the engine.</remarks>
public sealed class EngineModel
{
    /// <summary>The metadata key of the calibrated anomaly threshold (a number).</summary>
    public const string AnomalyThresholdKey = "signal.anomaly.threshold";

    private EngineModel(RecurrentModel network, string name)
    {
        Network = network;
        Name = name;
        FeatureSpec? spec = FeatureSequences.SpecOf(network.Metadata);
        if (spec is not null)
        {
            Pipeline = new FeaturePipeline(spec);
            if (Pipeline.OutputLength != network.InputSize)
            {
                throw new FormatException($"model '{name}': its feature spec gives {Pipeline.OutputLength} features per frame but the network takes {network.InputSize} inputs.");
            }

            Channels = spec.Channels;
            SamplesPerStep = spec.Hop;
            SampleRate = spec.SampleRate;
            InputRate = spec.InputRate;
        }
        else
        {
            SamplesPerStep = network.Metadata.TryGetValue(SequenceFraming.MetadataKey, out string? frame) && int.TryParse(frame, NumberStyles.None, CultureInfo.InvariantCulture, out int f) && f > 0 ? f : 1;
            if (network.Metadata.TryGetValue(SequenceNormalization.MetadataKey, out string? json))
            {
                RawNormalization = SequenceNormalization.FromJson(json);
            }

            Channels = RawNormalization?.Mean.Length ?? network.InputSize / SamplesPerStep;
            if (Channels * SamplesPerStep != network.InputSize)
            {
                throw new FormatException($"model '{name}': {network.InputSize} inputs are not {SamplesPerStep} samples of {Channels} channels.");
            }
        }

        if (network.Metadata.TryGetValue(AnomalyThresholdKey, out string? threshold))
        {
            AnomalyThreshold = double.TryParse(threshold, NumberStyles.Float, CultureInfo.InvariantCulture, out double t) && t > 0
                ? t
                : throw new FormatException($"model '{name}': metadata '{AnomalyThresholdKey}' is '{threshold}', not a positive number.");
        }

        AnomalyScale = Anomaly.AnomalyCalibration.ScaleOf(network.Metadata, network.InputSize);
    }

    /// <summary>The recurrent network.</summary>
    public RecurrentModel Network { get; }

    /// <summary>A short name (the file name) used in logs and results.</summary>
    public string Name { get; }

    /// <summary>The feature pipeline every stream runs, or null when the network takes samples directly.</summary>
    public FeaturePipeline? Pipeline { get; }

    /// <summary>Channels per sample the model expects.</summary>
    public int Channels { get; }

    /// <summary>New samples per network step: the hop with a feature pipeline, else the input framing (1 by default).</summary>
    public int SamplesPerStep { get; }

    /// <summary>The sample rate the features were designed for (0 when the model does not say).</summary>
    public double SampleRate { get; }

    /// <summary>
    /// The rate the model's messages must carry: <see cref="SampleRate"/>, or the rate its feature spec resamples from
    /// (<c>resample.inputRate</c>); 0 when the model does not say.
    /// </summary>
    public double InputRate { get; }

    /// <summary>Per-channel scaling applied to raw samples of a model without features, or null.</summary>
    public SequenceNormalization? RawNormalization { get; }

    /// <summary>Class labels, in output order.</summary>
    public IReadOnlyList<string> Labels => Network.Labels;

    /// <summary>The anomaly threshold from the model file, or NaN when it has none.</summary>
    public double AnomalyThreshold { get; } = double.NaN;

    /// <summary>σ per input that scales forecast errors (learned on normal data), or null to take errors as they are.</summary>
    public float[]? AnomalyScale { get; }

    /// <summary>True when the network forecasts the next input, which gives an anomaly score.</summary>
    public bool HasForecast => Network.ForecastSize == Network.InputSize && Network.ForecastSize > 0;

    /// <summary>Loads and checks a model file.</summary>
    /// <param name="path">A <c>.sigm</c> file.</param>
    /// <returns>The model.</returns>
    /// <exception cref="FormatException">The file or its metadata does not validate; the message names what.</exception>
    public static EngineModel Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return new EngineModel(RecurrentModel.Load(path), Path.GetFileNameWithoutExtension(path));
    }

    /// <summary>
    /// Whether the model turns sensor samples into its inputs itself (a feature pipeline, frames of several samples, or a
    /// per-channel normalisation), so a recording and a sequence of step inputs differ.
    /// </summary>
    public bool TransformsSamples => Pipeline is not null || SamplesPerStep > 1 || RawNormalization is not null;

    /// <summary>
    /// The step inputs of a whole recording, made as the live engine makes them from a stream's messages: the feature
    /// rows of every complete frame, or the normalised samples grouped <see cref="SamplesPerStep"/> at a time (an
    /// incomplete last group is left out).
    /// </summary>
    /// <param name="interleaved">The recording: <see cref="Channels"/> values per sample, interleaved.</param>
    /// <param name="steps">The number of steps.</param>
    /// <returns>Steps × the network's input size values, row-major.</returns>
    /// <exception cref="ArgumentException">The length is not a whole number of samples.</exception>
    public float[] StepInputs(ReadOnlySpan<float> interleaved, out int steps)
    {
        if (interleaved.Length % Channels != 0)
        {
            throw new ArgumentException($"{interleaved.Length} values are not whole samples of {Channels} channels.", nameof(interleaved));
        }

        if (Pipeline is not null)
        {
            float[] rows = Pipeline.ExtractAll(interleaved);
            steps = rows.Length / Network.InputSize;
            return rows;
        }

        int samples = interleaved.Length / Channels;
        steps = samples / SamplesPerStep;
        var inputs = new float[steps * Network.InputSize];
        float[]? mean = RawNormalization?.Mean;
        float[]? std = RawNormalization?.Std;
        for (int i = 0; i < inputs.Length; i++)
        {
            int c = i % Channels;
            inputs[i] = mean is null ? interleaved[i] : (interleaved[i] - mean[c]) / std![c];
        }

        return inputs;
    }

    /// <summary>Wraps a network already in memory.</summary>
    /// <param name="network">The network.</param>
    /// <param name="name">Its name in results.</param>
    /// <returns>The model.</returns>
    public static EngineModel From(RecurrentModel network, string name = "model")
    {
        ArgumentNullException.ThrowIfNull(network);
        return new EngineModel(network, name);
    }
}
