using System.Globalization;
using System.Text.Json;
using Signal.Engine.Anomaly;
using Signal.Engine.Data;
using Signal.Models.Networks;
using Signal.Models.Training;
using Spectre.Console;

namespace Signal.Edge.Commands;

/// <summary>The anomaly options of <c>signal-edge train</c>.</summary>
/// <param name="Task">classify, forecast or both.</param>
/// <param name="Normal">The normal class of labelled data, or null to find it by name.</param>
/// <param name="Quantile">The threshold's quantile of held-out normal scores.</param>
internal sealed record AnomalyTraining(string Task, string? Normal, double Quantile)
{
    public void Validate()
    {
        if (Task is not ("classify" or "forecast" or "both"))
        {
            throw new ArgumentException($"--task must be classify, forecast or both (got '{Task}').");
        }

        if (Quantile is <= 0.5 or >= 1)
        {
            throw new ArgumentException($"--quantile must be above 0.5 and below 1 (got {Quantile}).");
        }
    }
}

/// <summary><c>signal-edge train --task forecast</c>: a forecaster of normal behaviour, calibrated into an anomaly detector.</summary>
internal static class AnomalyTrainer
{
    /// <summary>The index of the normal class, or -1 when every class counts as normal.</summary>
    public static int NormalClass(LabeledDataSet set, string? normal)
    {
        if (normal is not null)
        {
            int index = set.ClassNames.ToList().FindIndex(c => string.Equals(c, normal, StringComparison.OrdinalIgnoreCase));
            return index >= 0 ? index : throw new ArgumentException($"--normal: the data has no class '{normal}' (it has {string.Join(", ", set.ClassNames)}).");
        }

        return Signal.Engine.Live.AlertRule.NormalIndex(set.ClassNames);
    }

    /// <summary>Disturbed steps before each training sequence, so scores fall back after an anomaly (<see cref="TrainerOptions.RecoveryPrefix"/>).</summary>
    public const int RecoveryPrefix = 8;

    /// <summary>The share of normal recordings kept out of training for <c>eval --task anomaly</c>. Default 0.5.</summary>
    public const double NormalTestFraction = 0.5;

    /// <summary>
    /// Normal data for the anomaly task. Recordings: the forecaster learns from the head of each training-split normal
    /// recording; the rest of it, followed by the test split's piece of the same recording (the time that follows), is
    /// the normal data anomalies are spliced into, so it was never trained on and stays continuous in time. Other data
    /// sets: the training and test splits' normal sequences.
    /// </summary>
    public static (List<LabeledSequence> Train, List<LabeledSequence> Evaluation) NormalSplit(LabeledDataSet set, int normalClass, double fraction = NormalTestFraction)
    {
        List<LabeledSequence> train = [.. set.Train.Where(s => normalClass < 0 || s.Label == normalClass)];
        List<LabeledSequence> test = [.. set.Test.Where(s => normalClass < 0 || s.Label == normalClass)];
        if (!set.IsRecordings)
        {
            return (train, test);
        }

        var heads = new List<LabeledSequence>();
        var evaluation = new List<LabeledSequence>();
        for (int i = 0; i < train.Count; i++)
        {
            (LabeledSequence head, LabeledSequence tail) = LabeledDataSet.SplitByTime(train[i], set.Channels, fraction);
            heads.Add(head);
            evaluation.Add(i < test.Count ? new LabeledSequence([.. tail.Values, .. test[i].Values[..(test[i].Steps * set.Channels)]], tail.Steps + test[i].Steps, tail.Label) : tail);
        }

        evaluation.AddRange(test.Skip(train.Count));
        return (heads, evaluation);
    }

    /// <summary>Error scale from the normal training sequences, threshold from the normal held-out ones (training ones when none are held out).</summary>
    public static AnomalyCalibration Calibrate(RecurrentModel model, IReadOnlyList<LabeledSequence> train, IReadOnlyList<LabeledSequence> held, int normalClass, double quantile, double smoothing = 0.2)
    {
        IEnumerable<float[]> Normal(IReadOnlyList<LabeledSequence> data) => data.Where(s => normalClass < 0 || s.Label == normalClass).Select(s => s.Values[..(s.Steps * model.InputSize)]);
        IReadOnlyList<LabeledSequence> calibration = held.Any(s => normalClass < 0 || s.Label == normalClass) ? held : train;
        return AnomalyCalibration.Fit(model, Normal(train), Normal(calibration), quantile, smoothing);
    }

    public static int TrainForecaster(AnomalyTraining anomaly, LabeledDataSet set, string dataPath, FileInfo output, CellKind kind, int layers, int hidden,
        TrainerOptions options, double? validationOption, DataOptions dataOptions, CancellationToken cancellationToken)
    {
        int normalClass = NormalClass(set, anomaly.Normal);
        string normalName = normalClass < 0 ? "all data" : set.ClassNames[normalClass];
        List<LabeledSequence> normalTrain = NormalSplit(set, normalClass).Train;
        if (normalTrain.Count == 0)
        {
            throw new ArgumentException($"the training split holds no '{normalName}' data.");
        }

        double validationFraction = validationOption ?? 0.2;
        (IReadOnlyList<LabeledSequence> trainRaw, IReadOnlyList<LabeledSequence> heldRaw) = TrainingData.HoldOut(normalTrain, set.Channels, validationFraction, options.Seed, set.IsRecordings);
        Prepared data = TrainingData.Prepare(set, dataOptions, trainRaw, heldRaw, set.Test);
        var architecture = new ModelArchitecture
        {
            InputSize = data.InputSize,
            Classes = 0,
            ForecastSize = data.InputSize,
            Layers = [.. Enumerable.Range(0, layers).Select(_ => new LayerArchitecture { Kind = kind, HiddenSize = hidden })],
        };
        var network = new TrainingNetwork(architecture, RecurrentModel.CreateRandom(architecture, options.Seed).Tensors);
        Initialization.Apply(network, options.Initialization, options.Seed);
        options.Loss = LossKind.EveryStep;
        options.RecoveryPrefix = RecoveryPrefix;
        AnsiConsole.MarkupLineInterpolated($"[bold]Training[/] a {kind.ToString().ToUpperInvariant()} {layers}×{hidden} forecaster on {set.Name} ({normalName}): {data.Train.Count} training, {data.Held.Count} validation sequences, {data.Description}");
        var started = DateTime.UtcNow;
        IReadOnlyList<EpochReport> history = Trainer.Train(network, data.Train, data.Held, options, report =>
        {
            if (report.IsBest || report.Epoch % 10 == 0)
            {
                AnsiConsole.MarkupLineInterpolated($"epoch {report.Epoch,3}{(report.IsBest ? " *" : "  ")} loss {report.Loss:F4}  val loss {report.ValidationLoss:F4}  lr {report.LearningRate:G3}  {report.Seconds:F2} s");
            }
        }, cancellationToken);

        RecurrentModel trained = network.ToModel([]);
        AnomalyCalibration calibration = Calibrate(trained, data.Train, data.Held, -1, anomaly.Quantile);
        var metadata = new Dictionary<string, string>(data.Metadata);
        foreach ((string key, string value) in calibration.ToMetadata())
        {
            metadata[key] = value;
        }

        int bestEpoch = history.LastOrDefault(h => h.IsBest)?.Epoch ?? 0;
        Dictionary<string, string> provenance = TrainingData.Provenance(set, dataOptions.Recordings, options.Seed, started, history.Count, bestEpoch,
            $"cell={kind.ToString().ToLowerInvariant()} layers={layers} hidden={hidden} {data.Description} quantile={anomaly.Quantile} validation={validationFraction}");
        provenance["task"] = "forecast";
        provenance["normal"] = normalName;
        provenance["normalTestFraction"] = NormalTestFraction.ToString("R", CultureInfo.InvariantCulture);
        metadata["signal.provenance"] = JsonSerializer.Serialize(provenance, Signal.Engine.EngineJsonContext.Default.DictionaryStringString);
        trained = trained.WithMetadata(metadata);
        trained.Save(output.FullName);

        // What the threshold means on unseen data: the share of each class's smoothed scores above it.
        var table = new Table().AddColumns("test class", "sequences", "steps above the threshold");
        foreach (IGrouping<int, LabeledSequence> group in data.Test.Where(s => s.Label != normalClass).Concat(TrainingData.Prepare(set, dataOptions, trainRaw, heldRaw, NormalSplit(set, normalClass).Evaluation).Test).GroupBy(s => s.Label).OrderBy(g => g.Key))
        {
            long above = 0, total = 0;
            foreach (LabeledSequence s in group)
            {
                foreach (double score in AnomalyCalibration.Smoothed(AnomalyCalibration.Raw(trained, s.Values[..(s.Steps * trained.InputSize)], calibration.Scale), calibration.Smoothing))
                {
                    above += score > calibration.Threshold ? 1 : 0;
                    total++;
                }
            }

            table.AddRow(set.ClassNames[group.Key] + (group.Key == normalClass ? " (normal)" : string.Empty), group.Count().ToString(CultureInfo.InvariantCulture),
                total == 0 ? "-" : ((double)above / total).ToString("P1", CultureInfo.InvariantCulture));
        }

        AnsiConsole.MarkupLineInterpolated($"Anomaly threshold [bold]{calibration.Threshold:G4}[/]: the {anomaly.Quantile:P1} quantile of the smoothed scores of held-out normal data (best epoch {bestEpoch}).");
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLineInterpolated($"Wrote [green]{output.FullName}[/]. Evaluate: signal-edge eval --task anomaly --model {output.Name} --data {dataPath}");
        return 0;
    }
}
