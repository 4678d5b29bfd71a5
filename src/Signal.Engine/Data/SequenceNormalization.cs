using System.Globalization;
using System.Text.Json;
using Signal.Models.Training;

namespace Signal.Engine.Data;

/// <summary>
/// Per-channel z-scores learned on a training split, stored in the model file (metadata key
/// <see cref="MetadataKey"/>) so evaluation and the live engine scale inputs exactly as training did.
/// </summary>
/// <param name="Mean">Mean per channel.</param>
/// <param name="Std">Standard deviation per channel (1 where a channel is constant).</param>
public sealed record SequenceNormalization(float[] Mean, float[] Std)
{
    /// <summary>The model-file metadata key.</summary>
    public const string MetadataKey = "signal.input.normalization";

    /// <summary>Learns the statistics over every step of <paramref name="train"/>.</summary>
    /// <param name="train">Training sequences.</param>
    /// <param name="channels">Inputs per step.</param>
    /// <returns>The statistics.</returns>
    public static SequenceNormalization Fit(IReadOnlyList<LabeledSequence> train, int channels)
    {
        ArgumentNullException.ThrowIfNull(train);
        double[] sum = new double[channels], squares = new double[channels];
        long count = 0;
        foreach (LabeledSequence s in train)
        {
            for (int t = 0; t < s.Steps; t++)
            {
                for (int c = 0; c < channels; c++)
                {
                    double v = s.Values[(t * channels) + c];
                    sum[c] += v;
                    squares[c] += v * v;
                }
            }

            count += s.Steps;
        }

        float[] mean = new float[channels], std = new float[channels];
        for (int c = 0; c < channels; c++)
        {
            double m = sum[c] / Math.Max(1, count);
            double variance = Math.Max(0, (squares[c] / Math.Max(1, count)) - (m * m));
            mean[c] = (float)m;
            std[c] = variance > 1e-12 ? (float)Math.Sqrt(variance) : 1f;
        }

        return new SequenceNormalization(mean, std);
    }

    /// <summary>Scaled copies of <paramref name="data"/>.</summary>
    /// <param name="data">Sequences.</param>
    /// <returns>(x − mean) / std per channel.</returns>
    public IReadOnlyList<LabeledSequence> Apply(IReadOnlyList<LabeledSequence> data)
    {
        ArgumentNullException.ThrowIfNull(data);
        int channels = Mean.Length;
        return [.. data.Select(s =>
        {
            float[] v = new float[s.Steps * channels];
            for (int i = 0; i < v.Length; i++)
            {
                v[i] = (s.Values[i] - Mean[i % channels]) / Std[i % channels];
            }

            return s with { Values = v };
        })];
    }

    /// <summary>The statistics as JSON.</summary>
    /// <returns><c>{"mean":[..],"std":[..]}</c>.</returns>
    public string ToJson() =>
        "{\"mean\":[" + string.Join(",", Mean.Select(v => v.ToString("R", CultureInfo.InvariantCulture))) + "],\"std\":[" +
        string.Join(",", Std.Select(v => v.ToString("R", CultureInfo.InvariantCulture))) + "]}";

    /// <summary>Reads the statistics written by <see cref="ToJson"/>.</summary>
    /// <param name="json">The JSON.</param>
    /// <returns>The statistics.</returns>
    public static SequenceNormalization FromJson(string json)
    {
        using var doc = JsonDocument.Parse(json);
        float[] Read(string name) => [.. doc.RootElement.GetProperty(name).EnumerateArray().Select(v => v.GetSingle())];
        return new SequenceNormalization(Read("mean"), Read("std"));
    }
}
