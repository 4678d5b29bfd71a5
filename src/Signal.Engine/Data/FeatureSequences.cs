using System.Globalization;
using Signal.Features.Pipeline;
using Signal.Models.Training;

namespace Signal.Engine.Data;

/// <summary>
/// Turns recordings into sequences of feature frames with the same <see cref="FeaturePipeline"/> the live engine
/// runs per stream, and cuts long ones into segments. The spec (with the normalisation learned on the training
/// split) is stored in the model file under <see cref="MetadataKey"/>, the segment length under
/// <see cref="SegmentKey"/>.
/// </summary>
public static class FeatureSequences
{
    /// <summary>The model-file metadata key of the feature spec (JSON, normalisation included).</summary>
    public const string MetadataKey = "signal.features";

    /// <summary>The model-file metadata key of the training segment length in steps.</summary>
    public const string SegmentKey = "signal.input.segment";

    /// <summary>
    /// The features <c>signal-edge train</c> extracts from raw recordings by default: level and shape statistics
    /// of the frame and 32 log-mel band energies (frame 1024, hop 512).
    /// </summary>
    public const string DefaultFeatures = "rms,crest_factor,kurtosis,skewness,spectral_centroid,spectral_flatness,spectral_entropy,mel:32";

    /// <summary>Segment length in steps used when <c>--segment</c> is not given.</summary>
    public const int DefaultSegment = 32;

    /// <summary>Extracts every complete frame of each recording (a recording shorter than one frame is skipped).</summary>
    /// <param name="pipeline">The pipeline (its spec's channels must match the recordings').</param>
    /// <param name="recordings">Recordings: steps are samples, values interleaved by channel.</param>
    /// <returns>One sequence per recording: steps are frames, values the pipeline's output columns.</returns>
    public static IReadOnlyList<LabeledSequence> Extract(FeaturePipeline pipeline, IReadOnlyList<LabeledSequence> recordings)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        ArgumentNullException.ThrowIfNull(recordings);
        var result = new LabeledSequence[recordings.Count];
        Parallel.For(0, recordings.Count, i =>
        {
            LabeledSequence r = recordings[i];
            float[] rows = pipeline.ExtractAll(r.Values.AsSpan(0, r.Steps * pipeline.Spec.Channels));
            result[i] = new LabeledSequence(rows, rows.Length / pipeline.OutputLength, r.Label);
        });
        return [.. result.Where(s => s.Steps > 0)];
    }

    /// <summary>
    /// Cuts sequences into windows of <paramref name="length"/> steps starting every <paramref name="hop"/> steps;
    /// a sequence shorter than one window is kept whole. Windows never cross sequences.
    /// </summary>
    /// <param name="data">Sequences.</param>
    /// <param name="width">Values per step.</param>
    /// <param name="length">Steps per window.</param>
    /// <param name="hop">Steps between window starts (<paramref name="length"/> for disjoint windows).</param>
    /// <returns>The windows.</returns>
    public static IReadOnlyList<LabeledSequence> Segment(IReadOnlyList<LabeledSequence> data, int width, int length, int hop)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(hop, 1);
        var result = new List<LabeledSequence>();
        foreach (LabeledSequence s in data)
        {
            if (s.Steps <= length)
            {
                result.Add(s);
                continue;
            }

            for (int start = 0; start + length <= s.Steps; start += hop)
            {
                result.Add(new LabeledSequence(s.Values[(start * width)..((start + length) * width)], length, s.Label));
            }
        }

        return result;
    }

    /// <summary>The feature spec stored in a model's metadata, or null.</summary>
    /// <param name="metadata">The model's metadata.</param>
    /// <returns>The spec, validated.</returns>
    public static FeatureSpec? SpecOf(IReadOnlyDictionary<string, string> metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        if (!metadata.TryGetValue(MetadataKey, out string? json))
        {
            return null;
        }

        FeatureSpec spec = FeatureSpec.FromJson(json);
        spec.Validate();
        return spec;
    }

    /// <summary>The segment length stored in a model's metadata, or null.</summary>
    /// <param name="metadata">The model's metadata.</param>
    /// <returns>Steps per segment.</returns>
    public static int? SegmentOf(IReadOnlyDictionary<string, string> metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        return metadata.TryGetValue(SegmentKey, out string? text) && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0 ? n : null;
    }
}
