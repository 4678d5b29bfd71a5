using System.Globalization;
using System.Text.Json;
using Signal.Models.Networks;

namespace Signal.Engine.Anomaly;

/// <summary>
/// How a forecasting model's errors become an anomaly score, learned on normal data and stored in the model file.
/// </summary>
/// <remarks>
/// <para><b>Raw score</b> of step t: the mean over the inputs j of (eⱼ / σⱼ)², where eⱼ = xₜⱼ − x̂ₜⱼ is the error of the
/// forecast made at step t − 1, and σⱼ is the root-mean-square of that error on the normal training data (so every
/// feature counts in units of its own normal error; a feature that is hard to forecast does not drown the others).
/// A raw score near 1 is normal behaviour.</para>
/// <para><b>Smoothed score</b>: an exponentially weighted moving average, sₜ = sₜ₋₁ + α (rawₜ − sₜ₋₁), s₀ = raw₀
/// (<see cref="Smoothing"/> = α, the engine's <c>anomalySmoothing</c>).</para>
/// <para><b>Fixed threshold</b>: the <see cref="Quantile"/> of the smoothed scores of held-out normal data
/// (calibration recordings the forecaster was not trained on).</para>
/// </remarks>
/// <param name="Scale">σⱼ per input.</param>
/// <param name="Threshold">The fixed threshold on the smoothed score.</param>
/// <param name="Quantile">The quantile the threshold was taken at.</param>
/// <param name="Smoothing">α of the moving average the threshold was calibrated with.</param>
public sealed record AnomalyCalibration(float[] Scale, double Threshold, double Quantile, double Smoothing)
{
    /// <summary>Metadata key of <see cref="Scale"/> (a JSON array).</summary>
    public const string ScaleKey = "signal.anomaly.scale";

    /// <summary>Metadata key of the calibration's quantile and smoothing (JSON).</summary>
    public const string CalibrationKey = "signal.anomaly.calibration";

    /// <summary>
    /// Learns σ from the forecast errors on <paramref name="train"/> and the threshold from the smoothed scores on
    /// <paramref name="calibration"/> (both normal data, each sequence stepped from a zero state as a stream is).
    /// </summary>
    /// <param name="model">A model with a forecasting head.</param>
    /// <param name="train">Normal sequences (steps × inputs, step-major) the forecaster was trained on.</param>
    /// <param name="calibration">Other normal sequences, for the threshold.</param>
    /// <param name="quantile">The threshold's quantile of calibration scores, e.g. 0.999.</param>
    /// <param name="smoothing">α of the moving average, (0, 1].</param>
    /// <returns>The calibration.</returns>
    public static AnomalyCalibration Fit(RecurrentModel model, IEnumerable<float[]> train, IEnumerable<float[]> calibration, double quantile, double smoothing)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.ForecastSize != model.InputSize || model.ForecastSize == 0)
        {
            throw new ArgumentException("the model has no forecasting head; train it with --task forecast or both.", nameof(model));
        }

        if (quantile is <= 0 or >= 1 || !(smoothing is > 0 and <= 1))
        {
            throw new ArgumentException($"quantile must be in (0, 1) and smoothing in (0, 1] (got {quantile} and {smoothing}).");
        }

        int d = model.InputSize;
        var sumSquares = new double[d];
        long count = 0;
        foreach (float[] sequence in train)
        {
            foreach (float[] error in Errors(model, sequence))
            {
                for (int j = 0; j < d; j++)
                {
                    sumSquares[j] += (double)error[j] * error[j];
                }

                count++;
            }
        }

        if (count == 0)
        {
            throw new ArgumentException("no normal training data with at least two steps to learn the error scale from.");
        }

        double mean = sumSquares.Average(s => Math.Sqrt(s / count));
        float[] scale = [.. sumSquares.Select(s => (float)Math.Max(Math.Sqrt(s / count), 1e-3 * mean + 1e-12))];
        var scores = new List<double>();
        foreach (float[] sequence in calibration)
        {
            scores.AddRange(Smoothed(Raw(model, sequence, scale), smoothing));
        }

        if (scores.Count == 0)
        {
            throw new ArgumentException("no calibration data with at least two steps to set the threshold from.");
        }

        return new AnomalyCalibration(scale, QuantileOf(scores, quantile), quantile, smoothing);
    }

    /// <summary>The raw score of one step: mean over inputs of (error / σ)².</summary>
    /// <param name="actual">The step's input.</param>
    /// <param name="forecast">The forecast made at the step before.</param>
    /// <param name="scale">σ per input (or null for 1).</param>
    /// <returns>The score.</returns>
    public static double RawScore(ReadOnlySpan<float> actual, ReadOnlySpan<float> forecast, ReadOnlySpan<float> scale)
    {
        double sum = 0;
        for (int j = 0; j < actual.Length; j++)
        {
            double e = (actual[j] - forecast[j]) / (scale.IsEmpty ? 1.0 : scale[j]);
            sum += e * e;
        }

        return sum / actual.Length;
    }

    /// <summary>The raw scores of a sequence stepped from a zero state (one fewer than its steps).</summary>
    public static IEnumerable<double> Raw(RecurrentModel model, float[] sequence, float[]? scale)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sequence);
        var zero = new float[model.InputSize];
        return Errors(model, sequence).Select(e => RawScore(e, zero, scale));
    }

    /// <summary>The moving average the engine applies (s₀ = raw₀).</summary>
    public static IEnumerable<double> Smoothed(IEnumerable<double> raw, double smoothing)
    {
        ArgumentNullException.ThrowIfNull(raw);
        double s = double.NaN;
        foreach (double r in raw)
        {
            s = double.IsNaN(s) ? r : s + (smoothing * (r - s));
            yield return s;
        }
    }

    /// <summary>The q-quantile with linear interpolation between order statistics (numpy's default).</summary>
    public static double QuantileOf(IReadOnlyList<double> values, double q)
    {
        ArgumentNullException.ThrowIfNull(values);
        double[] sorted = [.. values.Order()];
        double position = q * (sorted.Length - 1);
        int below = (int)Math.Floor(position);
        int above = Math.Min(sorted.Length - 1, below + 1);
        return sorted[below] + ((position - below) * (sorted[above] - sorted[below]));
    }

    /// <summary>The calibration as model metadata (threshold under <c>signal.anomaly.threshold</c>).</summary>
    public IReadOnlyDictionary<string, string> ToMetadata() => new Dictionary<string, string>
    {
        [ScaleKey] = JsonSerializer.Serialize(Scale, EngineJsonContext.Default.SingleArray),
        [Live.EngineModel.AnomalyThresholdKey] = Threshold.ToString("R", CultureInfo.InvariantCulture),
        [CalibrationKey] = JsonSerializer.Serialize(new Dictionary<string, double> { ["quantile"] = Quantile, ["smoothing"] = Smoothing }, EngineJsonContext.Default.DictionaryStringDouble),
    };

    /// <summary>Reads σ from model metadata, or null when the model has none.</summary>
    /// <exception cref="FormatException">The entry is not an array of positive numbers of the right length.</exception>
    public static float[]? ScaleOf(IReadOnlyDictionary<string, string> metadata, int inputs)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        if (!metadata.TryGetValue(ScaleKey, out string? json))
        {
            return null;
        }

        float[]? scale;
        try
        {
            scale = JsonSerializer.Deserialize(json, EngineJsonContext.Default.SingleArray);
        }
        catch (JsonException e)
        {
            throw new FormatException($"metadata '{ScaleKey}' is not a JSON array of numbers: {e.Message}", e);
        }

        if (scale is null || scale.Length != inputs || scale.Any(s => !(s > 0) || !float.IsFinite(s)))
        {
            throw new FormatException($"metadata '{ScaleKey}' must hold {inputs} positive numbers (one per input).");
        }

        return scale;
    }

    private static IEnumerable<float[]> Errors(RecurrentModel model, float[] sequence)
    {
        int d = model.InputSize;
        RecurrentState state = model.CreateState();
        var probabilities = new float[model.ClassCount];
        var forecast = new float[d];
        var previous = new float[d];
        for (int t = 0; t < sequence.Length / d; t++)
        {
            if (t > 0)
            {
                var error = new float[d];
                for (int j = 0; j < d; j++)
                {
                    error[j] = sequence[(t * d) + j] - previous[j];
                }

                yield return error;
            }

            model.Step(state, sequence.AsSpan(t * d, d), probabilities, forecast);
            forecast.CopyTo(previous, 0);
        }
    }
}
