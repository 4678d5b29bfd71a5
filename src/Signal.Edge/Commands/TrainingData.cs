using System.Globalization;
using Signal.Engine.Data;
using Signal.Features.Normalization;
using Signal.Features.Pipeline;
using Signal.Models.Networks;
using Signal.Models.Training;

namespace Signal.Edge.Commands;

/// <summary>How <c>train</c> turns a data set into network inputs: the command's data flags.</summary>
internal sealed record DataOptions
{
    /// <summary>How a folder of NumPy recordings is read and split.</summary>
    public RecordingSetOptions Recordings { get; init; } = new();

    /// <summary>A feature spec file; null to build one from the flags below.</summary>
    public FileInfo? SpecFile { get; init; }

    /// <summary>Comma-separated features; null for none (raw samples) unless the data are recordings.</summary>
    public string? Features { get; init; }

    /// <summary>Samples per frame (features) or per step (raw samples); null for the automatic choice.</summary>
    public int? Frame { get; init; }

    /// <summary>Samples between frames (features only); null for half a frame.</summary>
    public int? Hop { get; init; }

    /// <summary>Steps per training segment of long recordings; null for the default (recordings only).</summary>
    public int? Segment { get; init; }

    /// <summary>Sample rate in Hz for data sets that do not state one.</summary>
    public double? Rate { get; init; }

    /// <summary>Whether the network steps on feature frames rather than raw samples.</summary>
    public bool UsesFeatures(LabeledDataSet set) => SpecFile is not null || Features is not null || set.IsRecordings;

    /// <summary>Checks the flags; throws naming the bad one.</summary>
    public void Validate()
    {
        if (Frame is < 1 || Hop is < 1 || Segment is < 1)
        {
            throw new ArgumentException($"--frame, --hop and --segment must be at least 1 (got {Frame}, {Hop} and {Segment}).");
        }

        if (Rate is { } r && !(r > 0 && double.IsFinite(r)))
        {
            throw new ArgumentException($"--rate must be a positive number of Hz (got {r}).");
        }

        if (Recordings.TimeSplitFraction is <= 0 or >= 1)
        {
            throw new ArgumentException($"the time-split fraction must be between 0 and 1 (got {Recordings.TimeSplitFraction}).");
        }
    }
}

/// <summary>Network inputs ready for training or evaluation.</summary>
/// <param name="Train">Training sequences.</param>
/// <param name="Held">Validation sequences.</param>
/// <param name="Test">Test sequences.</param>
/// <param name="InputSize">Inputs per step.</param>
/// <param name="Metadata">What the model file must hold to prepare inputs the same way (features, normalisation, framing).</param>
/// <param name="Description">A one-line account for the console and the report.</param>
internal sealed record Prepared(IReadOnlyList<LabeledSequence> Train, IReadOnlyList<LabeledSequence> Held, IReadOnlyList<LabeledSequence> Test,
    int InputSize, IReadOnlyDictionary<string, string> Metadata, string Description);

/// <summary>The data preparation shared by <c>train</c> and <c>eval</c>, so both (and the live engine) see the same inputs.</summary>
internal static class TrainingData
{
    /// <summary>
    /// The model file's <c>signal.provenance</c> entries every trainer writes: what <c>eval</c> reads back to split the
    /// data as training did (seed, test and label patterns, the array key), and an account of the run.
    /// </summary>
    public static Dictionary<string, string> Provenance(LabeledDataSet set, RecordingSetOptions recordings, int seed, DateTime started,
        int epochs, int bestEpoch, string options) => new()
    {
        ["dataset"] = set.Name,
        ["format"] = set.Format,
        ["seed"] = seed.ToString(CultureInfo.InvariantCulture),
        ["trainedAt"] = started.ToString("O", CultureInfo.InvariantCulture),
        ["epochs"] = epochs.ToString(CultureInfo.InvariantCulture),
        ["bestEpoch"] = bestEpoch.ToString(CultureInfo.InvariantCulture),
        ["options"] = options,
        ["testPattern"] = recordings.TestPattern ?? string.Empty,
        ["labelPattern"] = recordings.LabelPattern,
        ["key"] = recordings.Key ?? string.Empty,
    };

    /// <summary>
    /// Prepares the splits for training: learns the normalisation on <paramref name="train"/> only, extracts
    /// features with the pipeline the live engine runs, and cuts long recordings into segments (training segments
    /// overlap by three quarters, validation and test segments are disjoint).
    /// </summary>
    public static Prepared Prepare(LabeledDataSet set, DataOptions options, IReadOnlyList<LabeledSequence> train,
        IReadOnlyList<LabeledSequence> held, IReadOnlyList<LabeledSequence> test)
    {
        if (!options.UsesFeatures(set))
        {
            SequenceNormalization normalization = SequenceNormalization.Fit(train, set.Channels);
            SequenceFraming framing = options.Frame is { } f ? new SequenceFraming(f) : SequenceFraming.Auto(train, set.Channels);
            IReadOnlyList<LabeledSequence> Raw(IReadOnlyList<LabeledSequence> d) => framing.Apply(normalization.Apply(d), set.Channels);
            return new Prepared(Raw(train), Raw(held), Raw(test), set.Channels * framing.Frame,
                new Dictionary<string, string>
                {
                    [SequenceNormalization.MetadataKey] = normalization.ToJson(),
                    [SequenceFraming.MetadataKey] = framing.ToString(),
                },
                $"{set.Channels} channel(s), {framing.Frame} sample(s) per step");
        }

        double rate = options.Rate ?? set.SampleRate;
        if (!(rate > 0))
        {
            throw new ArgumentException($"features need a sample rate and the {set.Format} data set '{set.Name}' does not state one: pass --rate <Hz>.");
        }

        FeatureSpec spec;
        if (options.SpecFile is { } file)
        {
            spec = FeatureSpec.FromJson(File.ReadAllText(file.FullName));
            if (spec.Channels != set.Channels || (set.SampleRate > 0 && spec.SampleRate != set.SampleRate))
            {
                throw new ArgumentException($"the spec '{file.Name}' is for {spec.Channels} channel(s) at {spec.SampleRate} Hz; the data set has {set.Channels} at {rate} Hz.");
            }
        }
        else
        {
            int frame = options.Frame ?? 1024;
            spec = new FeatureSpec
            {
                SampleRate = rate,
                Channels = set.Channels,
                FrameLength = frame,
                Hop = options.Hop ?? Math.Max(1, frame / 2),
                Features = FeatureRequest.ParseList(options.Features ?? FeatureSequences.DefaultFeatures),
            };
        }

        spec = spec with { Normalization = null };
        spec.Validate();
        var rawPipeline = new FeaturePipeline(spec);
        int width = rawPipeline.OutputLength;
        IReadOnlyList<LabeledSequence> rawTrain = FeatureSequences.Extract(rawPipeline, train);
        if (rawTrain.Count == 0)
        {
            throw new ArgumentException($"no training recording is as long as one frame ({spec.FrameLength} samples).");
        }

        // The Features library's own learner, so the statistics mean exactly what the pipeline applies.
        var normalizer = new OnlineNormalizer(width);
        foreach (LabeledSequence rows in rawTrain)
        {
            for (int t = 0; t < rows.Steps; t++)
            {
                normalizer.Add(rows.Values.AsSpan(t * width, width));
            }
        }

        spec = spec with { Normalization = normalizer.ToStats() };
        var pipeline = new FeaturePipeline(spec);
        int? segment = options.Segment ?? (set.IsRecordings ? FeatureSequences.DefaultSegment : null);
        IReadOnlyList<LabeledSequence> Features(IReadOnlyList<LabeledSequence> d, bool overlap)
        {
            IReadOnlyList<LabeledSequence> rows = FeatureSequences.Extract(pipeline, d);
            return segment is { } n ? FeatureSequences.Segment(rows, width, n, overlap ? Math.Max(1, n / 4) : n) : rows;
        }

        var metadata = new Dictionary<string, string> { [FeatureSequences.MetadataKey] = spec.ToJson() };
        if (segment is { } s)
        {
            metadata[FeatureSequences.SegmentKey] = s.ToString(CultureInfo.InvariantCulture);
        }

        string account = $"{width} features per step ({spec.FrameLength}-sample frames every {spec.Hop} samples at {rate.ToString(CultureInfo.InvariantCulture)} Hz)"
            + (segment is { } seg ? $", segments of {seg} steps" : string.Empty);
        return new Prepared(Features(train, overlap: true), Features(held, overlap: false), Features(test, overlap: false), width, metadata, account);
    }

    /// <summary>Prepares <paramref name="data"/> for <paramref name="model"/> exactly as its training did, from its metadata.</summary>
    public static IReadOnlyList<LabeledSequence> PrepareFor(RecurrentModel model, LabeledDataSet set, IReadOnlyList<LabeledSequence> data)
    {
        if (FeatureSequences.SpecOf(model.Metadata) is { } spec)
        {
            if (spec.Channels != set.Channels || (set.SampleRate > 0 && spec.SampleRate != set.SampleRate))
            {
                throw new ArgumentException($"the model's features are for {spec.Channels} channel(s) at {spec.SampleRate} Hz; the data set has {set.Channels} at {set.SampleRate} Hz.");
            }

            var pipeline = new FeaturePipeline(spec);
            if (pipeline.OutputLength != model.InputSize)
            {
                throw new ArgumentException($"the model's feature spec gives {pipeline.OutputLength} values per step but the network takes {model.InputSize}.");
            }

            IReadOnlyList<LabeledSequence> rows = FeatureSequences.Extract(pipeline, data);
            return FeatureSequences.SegmentOf(model.Metadata) is { } n ? FeatureSequences.Segment(rows, pipeline.OutputLength, n, n) : rows;
        }

        var framing = new SequenceFraming(model.Metadata.TryGetValue(SequenceFraming.MetadataKey, out string? frameText) && int.TryParse(frameText, CultureInfo.InvariantCulture, out int f) ? f : 1);
        if (set.Channels * framing.Frame != model.InputSize)
        {
            throw new ArgumentException($"the data set has {set.Channels} channel(s) per sample and the model frames {framing.Frame} sample(s) per step, but it takes {model.InputSize} inputs.");
        }

        if (model.Metadata.TryGetValue(SequenceNormalization.MetadataKey, out string? normalization))
        {
            data = SequenceNormalization.FromJson(normalization).Apply(data);
        }

        return framing.Apply(data, set.Channels);
    }

    /// <summary>
    /// A seeded, stratified hold-out: classes with at least three sequences give <paramref name="fraction"/> of
    /// them whole (each sequence is its own recording); with <paramref name="byTime"/>, a class with fewer gives
    /// the last <paramref name="fraction"/> of each recording (a disjoint time range), otherwise none.
    /// </summary>
    public static (IReadOnlyList<LabeledSequence> Train, IReadOnlyList<LabeledSequence> Held) HoldOut(
        IReadOnlyList<LabeledSequence> data, int channels, double fraction, int seed, bool byTime)
    {
        var random = new Random(seed);
        var train = new List<LabeledSequence>();
        var held = new List<LabeledSequence>();
        foreach (IGrouping<int, LabeledSequence> group in data.GroupBy(s => s.Label).OrderBy(g => g.Key))
        {
            LabeledSequence[] members = [.. group.OrderBy(_ => random.Next())];
            if (fraction > 0 && members.Length >= 3)
            {
                int take = Math.Max(1, (int)Math.Round(members.Length * fraction));
                held.AddRange(members.Take(take));
                train.AddRange(members.Skip(take));
            }
            else if (fraction > 0 && byTime)
            {
                foreach (LabeledSequence s in members)
                {
                    (LabeledSequence head, LabeledSequence tail) = LabeledDataSet.SplitByTime(s, channels, fraction);
                    train.Add(head);
                    held.Add(tail);
                }
            }
            else
            {
                train.AddRange(members);
            }
        }

        return (train, held);
    }
}
