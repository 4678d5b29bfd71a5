using System.Text.Json.Serialization;
using System.Globalization;
using System.Text.Json;
using Signal.Engine.Data;
using Signal.Engine.Evaluation;
using Signal.Engine.Live;
using Signal.Models.Networks;
using Signal.Models.Training;
using Spectre.Console;

namespace Signal.Edge.Commands;

/// <summary>
/// <c>signal-edge eval --task anomaly</c>: splices every anomalous sequence of a split into normal data (normal,
/// anomaly, normal), or, when the data holds only normal recordings, injects anomalies into them
/// (<see cref="InjectedAnomalies.Inject"/>); adds the normal data alone as one more stream, runs them through the live
/// engine and scores the anomaly alerts event by event.
/// </summary>
internal static partial class AnomalyEval
{

    /// <summary>
    /// <c>--data generated</c>: bearing vibration from the demo's generator with injected anomalies
    /// (<see cref="InjectedAnomalies"/>) at the model's sample rate, for single-channel models of that kind of signal.
    /// </summary>
    public static int RunGenerated(RecurrentModel network, int warmup, int window, bool json)
    {
        EngineModel model = EngineModel.From(network, "eval");
        if (network.ForecastSize == 0 || double.IsNaN(model.AnomalyThreshold))
        {
            throw new ArgumentException("the model has no calibrated forecasting head: train one with 'signal-edge train --task forecast' (or both).");
        }

        if (model.Channels != 1 || model.SampleRate <= 0)
        {
            throw new ArgumentException($"--data generated is single-channel vibration at the model's sample rate; this model takes {model.Channels} channel(s){(model.SampleRate > 0 ? string.Empty : " and states no sample rate")}.");
        }

        List<LabeledSignal> streams = InjectedAnomalies.Generate(model.SampleRate);
        AnomalyEvaluation result = AnomalyEvaluation.Run(model, streams, new EngineOptions { AnomalyWarmupSteps = warmup, AnomalyWindow = window });
        return Report(result, model, "generated vibration with injected spikes, level shifts, frequency drift and dropouts (3 s normal, 2 s anomaly, 3 s normal; plus normal data alone)", warmup, window, json);
    }

    public static int Run(RecurrentModel network, LabeledDataSet set, string split, string? normalName, double normalSeconds, double anomalySeconds, int warmup, int window, bool json)
    {
        if (network.ForecastSize == 0)
        {
            throw new ArgumentException("the model has no forecasting head: train one with 'signal-edge train --task forecast' (or both).");
        }

        if (!set.IsRecordings || set.SampleRate <= 0)
        {
            throw new ArgumentException("--task anomaly needs a folder of recordings (a sample rate and whole signals to splice).");
        }

        if (!(normalSeconds > 0) || !(anomalySeconds > 0))
        {
            throw new ArgumentException("--normal-seconds and --anomaly-seconds must be positive.");
        }

        // As in training: the class named normal (or --normal); without one, all of the data is normal.
        int normalClass = AnomalyTrainer.NormalClass(set, normalName);

        // The forecaster learned normal behaviour only, so every anomalous recording of either split is unseen; the
        // normal data is the part of the normal recordings kept out of training (AnomalyTrainer.NormalSplit).
        IEnumerable<LabeledSequence> anomalous = split switch
        {
            "test" => set.Test,
            "train" => set.Train,
            "all" => set.Train.Concat(set.Test),
            _ => throw new ArgumentException($"--split must be all, test or train (got '{split}')."),
        };
        List<LabeledSequence> normalData = AnomalyTrainer.NormalSplit(set, normalClass).Evaluation;
        List<LabeledSequence> faults = normalClass < 0 ? [] : [.. anomalous.Where(s => s.Label != normalClass)];
        EngineModel model = EngineModel.From(network, "eval");
        if (double.IsNaN(model.AnomalyThreshold))
        {
            throw new ArgumentException("the model has no anomaly threshold (signal.anomaly.threshold); train it with --task forecast to calibrate one.");
        }

        List<LabeledSignal> streams;
        string what;
        if (faults.Count > 0)
        {
            streams = Splice([.. normalData, .. faults], set.Channels, set.SampleRate, normalClass, set.ClassNames, normalSeconds, anomalySeconds);
            what = $"{set.Name} ({split} anomalous sequences spliced into unseen normal data: {normalSeconds:0.#} s before and after, {anomalySeconds:0.#} s each; plus the normal data alone)";
        }
        else
        {
            // Normal recordings only (the usual case for a machine that has not failed yet): the four kinds of
            // injected anomalies, in the held-out normal data.
            float[] pool = Pool(normalData, set.Channels, normalClass, normalSeconds, set.SampleRate);
            Func<int, float[]> next = Cycle(pool, set.Channels);
            streams = InjectedAnomalies.Inject(next, set.Channels, set.SampleRate, perKind: 5, normalSeconds, anomalySeconds);
            streams.Add(new LabeledSignal("normal-only", pool, set.Channels, set.SampleRate, []));
            what = $"{set.Name} (no anomalous recordings: spikes, level shifts, frequency drift and dropped channels injected into unseen normal data, {normalSeconds:0.#} s before and after, {anomalySeconds:0.#} s each; plus the normal data alone)";
        }

        AnomalyEvaluation result = AnomalyEvaluation.Run(model, streams, new EngineOptions { AnomalyWarmupSteps = warmup, AnomalyWindow = window });
        return Report(result, model, what, warmup, window, json);
    }

    private static int Report(AnomalyEvaluation result, EngineModel model, string what, int warmup, int window, bool json)
    {
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new JsonReport(
                result.Precision,
                result.Recall,
                result.F1,
                double.IsNaN(result.MeanDelaySeconds) ? null : result.MeanDelaySeconds,
                result.Events.Count,
                result.Found,
                result.FalsePositives.Count,
                result.Streams,
                result.Steps,
                double.IsNaN(model.AnomalyThreshold) ? null : model.AnomalyThreshold,
                warmup,
                window,
                [.. result.Events.Where(e => e.DelaySeconds is null).Select(e => e.Stream)],
                [.. result.FalsePositives.Select(f => new FalseAlert(f.Stream, f.Seconds))],
                [.. result.Events.Where(e => e.DelaySeconds is not null).Select(e => new Delay(e.Stream, e.DelaySeconds))]), AnomalyEvalJson.Default.JsonReport));
            return 0;
        }

        AnsiConsole.MarkupLineInterpolated($"[bold]Anomaly alerts[/] on {what}: {result.Events.Count} events, {result.Streams} streams, {result.Steps:N0} steps, threshold {model.AnomalyThreshold:G4}");
        var table = new Table().AddColumns("precision", "recall", "F1", "mean delay", "found", "missed", "false positives");
        table.AddRow(result.Precision.ToString("F3", CultureInfo.InvariantCulture), result.Recall.ToString("F3", CultureInfo.InvariantCulture), result.F1.ToString("F3", CultureInfo.InvariantCulture),
            double.IsNaN(result.MeanDelaySeconds) ? "-" : result.MeanDelaySeconds.ToString("0.000 s", CultureInfo.InvariantCulture),
            result.Found.ToString(CultureInfo.InvariantCulture), (result.Events.Count - result.Found).ToString(CultureInfo.InvariantCulture), result.FalsePositives.Count.ToString(CultureInfo.InvariantCulture));
        AnsiConsole.Write(table);
        foreach (EventOutcome missed in result.Events.Where(e => e.DelaySeconds is null).Take(10))
        {
            AnsiConsole.MarkupLineInterpolated($"[yellow]missed[/]: {missed.Stream} at {missed.StartSeconds:0.00}-{missed.EndSeconds:0.00} s");
        }

        foreach ((string stream, double seconds) in result.FalsePositives.Take(10))
        {
            AnsiConsole.MarkupLineInterpolated($"[yellow]false positive[/]: {stream} at {seconds:0.00} s");
        }

        return 0;
    }

    /// <summary>
    /// One stream per anomalous recording: <paramref name="normalSeconds"/> of normal data, the first
    /// <paramref name="anomalySeconds"/> of the recording (the event), and normal data again; the normal data is taken
    /// in turn from the split's normal recordings, so consecutive streams use different stretches. One more stream holds
    /// all of the split's normal data, with no event.
    /// </summary>
    public static List<LabeledSignal> Splice(IReadOnlyList<LabeledSequence> data, int channels, double rate, int normalClass, IReadOnlyList<string> names, double normalSeconds, double anomalySeconds)
    {
        float[] pool = Pool(data, channels, normalClass, normalSeconds, rate);
        int normal = (int)(normalSeconds * rate), anomaly = (int)(anomalySeconds * rate);
        Func<int, float[]> next = Cycle(pool, channels);
        var streams = new List<LabeledSignal>();
        int index = 0;
        foreach (LabeledSequence s in data.Where(s => s.Label != normalClass))
        {
            int take = Math.Min(anomaly, s.Steps);
            float[] before = next(normal), after = next(normal);
            float[] samples = [.. before, .. s.Values.AsSpan(0, take * channels), .. after];
            streams.Add(new LabeledSignal($"{names[s.Label]}-{index++}", samples, channels, rate, [(normal, normal + take)]));
        }

        streams.Add(new LabeledSignal("normal-only", pool, channels, rate, []));
        return streams;
    }

    /// <summary>The normal data of <paramref name="data"/> end to end (all of it when <paramref name="normalClass"/> is -1).</summary>
    private static float[] Pool(IReadOnlyList<LabeledSequence> data, int channels, int normalClass, double normalSeconds, double rate)
    {
        float[] pool = [.. data.Where(s => normalClass < 0 || s.Label == normalClass).SelectMany(s => s.Values[..(s.Steps * channels)])];
        if (pool.Length / channels < 2 * (int)(normalSeconds * rate))
        {
            throw new ArgumentException($"the split holds {pool.Length / channels / rate:0.#} s of normal data; {2 * normalSeconds:0.#} s are needed per stream (lower --normal-seconds).");
        }

        return pool;
    }

    /// <summary>Consecutive stretches of the pool, wrapping around at its end, so consecutive streams use different data.</summary>
    private static Func<int, float[]> Cycle(float[] pool, int channels)
    {
        long offset = 0;
        long frames = pool.Length / channels;
        return n =>
        {
            var part = new float[n * channels];
            for (int i = 0; i < part.Length; i++)
            {
                part[i] = pool[((offset * channels) + i) % pool.Length];
            }

            offset = (offset + n) % frames;
            return part;
        };
    }

    private sealed record JsonReport(double Precision, double Recall, double F1, double? MeanDelayS, int Events, int Found, int FalsePositives, int Streams, long Steps,
        double? Threshold, int WarmupSteps, int WindowSteps, List<string> Missed, List<FalseAlert> FalsePositiveAlerts, List<Delay> DelaysS);

    private sealed record FalseAlert(string Stream, double AtS);

    private sealed record Delay(string Stream, [property: JsonPropertyName("delay")] double? Seconds);

    /// <summary>The report's JSON, source-generated (snake_case, indented): works in the NativeAOT build too.</summary>
    [JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
    [JsonSerializable(typeof(JsonReport))]
    private sealed partial class AnomalyEvalJson : JsonSerializerContext;
}
