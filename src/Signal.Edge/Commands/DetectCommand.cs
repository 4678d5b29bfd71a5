using System.CommandLine;
using System.Globalization;
using Signal.Engine.Anomaly;
using Signal.Engine.Data;
using Signal.Models.Networks;
using Signal.Models.Training;

namespace Signal.Edge.Commands;

/// <summary>
/// <c>signal-edge detect</c>: unsupervised anomaly detection on a CSV recording with no trained model. By default
/// (<c>--method ensemble</c>) every column runs a <see cref="StreamingAnomalyDetector"/> (value, difference, seasonal,
/// change and pattern detectors combined by likelihood, sparse onset flags), joined by a recurrent forecaster's error
/// when one is given or saved. <c>--method forecaster</c> is the earlier detector: a small GRU forecaster of the next
/// row learned from the warm-up rows, flagged against a fixed threshold (a quantile of the warm-up scores) and the
/// dynamic threshold of Hundman et al. 2018 over the trailing window.
/// </summary>
internal static class DetectCommand
{
    public static Command Create()
    {
        var input = new Option<FileInfo>("--input", "-i") { Description = "CSV with a header: timestamp (ISO 8601 or YYYY-MM-DD HH:MM:SS), then one or more value columns.", Required = true };
        var output = new Option<FileInfo>("--output", "-o") { Description = "Where to write timestamp,score,anomaly (one row per input row).", Required = true };
        var model = new Option<FileInfo?>("--model", "-m") { Description = "A forecaster: one written by --save-model (raw rows), or one from 'train --task forecast|both' (rows are its samples, one channel per column); without it one is trained on the warm-up rows." };
        var warmup = new Option<string>("--warmup") { Description = "Rows of normal behaviour to learn from: a count (e.g. 2000) or a fraction of the file (e.g. 0.15). No row in it is flagged.", DefaultValueFactory = _ => "0.15" };
        var window = new Option<int>("--window") { Description = "Trailing smoothed scores the dynamic threshold is chosen from (longer than the anomalies to find).", DefaultValueFactory = _ => 2000 };
        var quantile = new Option<double>("--quantile") { Description = "The fixed threshold: this quantile of the warm-up scores.", DefaultValueFactory = _ => 0.995 };
        var smoothing = new Option<double>("--smoothing") { Description = "Weight of the newest score in the moving average.", DefaultValueFactory = _ => 0.2 };
        var threshold = new Option<string>("--threshold") { Description = "both (a row is anomalous above the fixed and the dynamic threshold), fixed, or dynamic.", DefaultValueFactory = _ => "both" };
        var save = new Option<FileInfo?>("--save-model") { Description = "Also save the forecaster trained on the warm-up rows (for --model on later files)." };
        var seed = new Option<int>("--seed") { Description = "Seed of the forecaster's training.", DefaultValueFactory = _ => 1 };
        var method = new Option<string>("--method") { Description = "ensemble (value, difference, seasonal, change and pattern detectors per column, plus the forecaster's error when --model or --save-model is given; sparse onset flags) or forecaster (the recurrent forecaster alone with fixed and dynamic thresholds; --window, --quantile, --smoothing and --threshold apply to it).", DefaultValueFactory = _ => "ensemble" };
        var order = new Option<string>("--order") { Description = "Rows whose time is earlier than the row before: read in file order with one warning (file), sorted by time (time), or refused (reject).", DefaultValueFactory = _ => "file" };
        var command = new Command("detect", """
            Finds anomalies in a CSV recording without a trained model. Each column runs an ensemble of cheap
            online detectors (level, jump, daily pattern, sustained change, never-seen shape), each judged by the
            likelihood of its score under its own recent history, and the onset of an anomaly is flagged once (then
            the anomaly holds for a fifth of the warm-up). With --model or --save-model a recurrent forecaster's error
            joins the ensemble. No row is scored with knowledge of the rows after it. Output: timestamp, score (0-1),
            anomaly (1 on an onset row), evidence (the detectors that fired). See docs/anomaly.md.

            Example:
              signal-edge detect --input machine.csv --warmup 0.2 --output machine-scores.csv
            """)
        {
            input, output, model, warmup, window, quantile, smoothing, threshold, save, seed, method, order,
        };
        command.SetAction(parse => CommandErrors.Run(() =>
        {
            string mode = parse.GetValue(threshold)!;
            if (mode is not ("both" or "fixed" or "dynamic"))
            {
                throw new ArgumentException($"--threshold must be both, fixed or dynamic (got '{mode}').");
            }

            double q = parse.GetValue(quantile), alpha = parse.GetValue(smoothing);
            if (q is <= 0.5 or >= 1 || !(alpha is > 0 and <= 1))
            {
                throw new ArgumentException("--quantile must be in (0.5, 1) and --smoothing in (0, 1].");
            }

            string how = parse.GetValue(method)!;
            if (how is not ("ensemble" or "forecaster"))
            {
                throw new ArgumentException($"--method must be ensemble or forecaster (got '{how}').");
            }

            // The forecaster's threshold options mean nothing to the ensemble: refuse them rather than ignore them.
            Option[] forecasterOnly = [window, quantile, smoothing, threshold];
            if (how == "ensemble" && forecasterOnly.FirstOrDefault(o => parse.GetResult(o) is { Implicit: false }) is { } given)
            {
                throw new ArgumentException($"{given.Name} applies to --method forecaster; the ensemble flags where its likelihood score reaches {AnomalyDetectorOptions.DefaultThreshold} (docs/anomaly.md).");
            }

            var dynamic = new DynamicThresholdOptions { Window = parse.GetValue(window) };
            dynamic.Validate();
            string inputPath = parse.GetValue(input)!.FullName;
            RowOrder rowOrder = TimeSeriesCsv.ParseOrder(parse.GetValue(order)!);
            TimeSeriesCsv series = TimeSeriesCsv.Read(inputPath, rowOrder);
            if (series.Irregularities.Describe(inputPath, rowOrder) is { } warning)
            {
                Console.Error.WriteLine($"warning: {warning}");
            }

            (string[] times, float[] values, int columns) = (series.Stamps, series.Values, series.Columns);
            int rows = times.Length;
            int warm = WarmupRows(parse.GetValue(warmup)!, rows);
            RecurrentModel? forecaster = parse.GetValue(model) is { } file ? LoadModel(file.FullName, columns)
                : how == "forecaster" || parse.GetValue(save) is not null ? Fit(values, columns, warm, parse.GetValue(seed)) : null;
            if (parse.GetValue(save) is { } saveTo)
            {
                forecaster!.Save(saveTo.FullName);
            }

            var clock = System.Diagnostics.Stopwatch.StartNew();
            string[]? evidence = null;
            double[] scores;
            bool[] flags;
            if (how == "forecaster")
            {
                (scores, flags) = Score(forecaster!, values, columns, warm, q, alpha, mode, dynamic);
            }
            else
            {
                (scores, flags, evidence) = Ensemble(series, warm, forecaster);
            }

            double seconds = clock.Elapsed.TotalSeconds;
            using (var writer = new StreamWriter(parse.GetValue(output)!.FullName))
            {
                writer.WriteLine(evidence is null ? "timestamp,score,anomaly" : "timestamp,score,anomaly,evidence");
                for (int t = 0; t < rows; t++)
                {
                    writer.WriteLine(evidence is null
                        ? string.Create(CultureInfo.InvariantCulture, $"{ModelCommands.Quote(times[t])},{scores[t]:R},{(flags[t] ? 1 : 0)}")
                        : string.Create(CultureInfo.InvariantCulture, $"{ModelCommands.Quote(times[t])},{scores[t]:0.####},{(flags[t] ? 1 : 0)},{ModelCommands.Quote(evidence[t])}"));
                }
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{rows:N0} rows × {columns} column(s); learned from the first {warm:N0}; {flags.Count(f => f):N0} rows flagged in {Runs(flags):N0} anomalies ({how}, {seconds:0.00} s); wrote {parse.GetValue(output)!.FullName}"));
            return 0;
        }, CommandErrors.TimeSeriesLayout));
        return command;
    }

    /// <summary>
    /// The ensemble: one <see cref="StreamingAnomalyDetector"/> per column (with the forecaster's raw error of the row
    /// as external evidence when there is a forecaster); a row's score is the largest of its columns', and it is flagged
    /// when a column's detector flags it. Row t uses only rows 0..t. Evidence names the column and detectors of each
    /// flagged row (and of rows scoring half the threshold or more).
    /// </summary>
    internal static (double[] Scores, bool[] Flags, string[] Evidence) Ensemble(TimeSeriesCsv series, int warm, RecurrentModel? forecaster)
    {
        if (forecaster is not null && Signal.Engine.Data.FeatureSequences.SpecOf(forecaster.Metadata) is not null)
        {
            throw new ArgumentException("--model: a model with a feature pipeline scores frames, not rows; use it with --method forecaster.");
        }

        if (warm < 16)
        {
            throw new ArgumentException($"--warmup: {warm} rows are too few to learn normal behaviour from (at least 16).");
        }

        int rows = series.Rows, columns = series.Columns;
        double[]? errors = forecaster is null ? null : ForecastErrors(forecaster, series.Values, columns);
        var options = new AnomalyDetectorOptions { WarmupRows = warm };
        string[] external = forecaster is null ? [] : ["forecast"];
        StreamingAnomalyDetector[] detectors = [.. Enumerable.Range(0, columns).Select(_ => new StreamingAnomalyDetector(options, external))];
        var scores = new double[rows];
        var flags = new bool[rows];
        var evidence = new string[rows];
        var extra = new double[external.Length];
        for (int t = 0; t < rows; t++)
        {
            double seconds = TextLines.Seconds(series.Times[t]);
            int strongest = -1;
            for (int c = 0; c < columns; c++)
            {
                if (errors is not null)
                {
                    extra[0] = errors[t];
                }

                AnomalyVerdict verdict = detectors[c].Step(seconds, series.Values[(t * columns) + c], extra);
                flags[t] |= verdict.Flag;
                if (strongest < 0 || verdict.Score > scores[t])
                {
                    scores[t] = verdict.Score;
                    strongest = c;
                }
            }

            evidence[t] = flags[t] || scores[t] >= options.Threshold / 2
                ? (columns > 1 ? $"{series.Names[strongest]}: " : string.Empty) + detectors[strongest].DescribeEvidence()
                : string.Empty;
        }

        return (scores, flags, evidence);
    }

    /// <summary>The forecaster's raw scaled error of each row (0 for the first): the mean squared error of the forecast made at the row before, in units of the warm-up's error.</summary>
    private static double[] ForecastErrors(RecurrentModel forecaster, float[] values, int columns)
    {
        int rows = values.Length / columns;
        float[] scale = forecaster.Metadata.TryGetValue(AnomalyCalibration.ScaleKey, out _) ? AnomalyCalibration.ScaleOf(forecaster.Metadata, columns)! : [.. Enumerable.Repeat(1f, columns)];
        float[] mean = Stats(forecaster, "signal.detect.mean", columns, 0), std = Stats(forecaster, "signal.detect.std", columns, 1);
        var errors = new double[rows];
        RecurrentState state = forecaster.CreateState();
        var x = new float[columns];
        var forecast = new float[columns];
        var previous = new float[columns];
        for (int t = 0; t < rows; t++)
        {
            for (int c = 0; c < columns; c++)
            {
                x[c] = (values[(t * columns) + c] - mean[c]) / std[c];
            }

            errors[t] = t == 0 ? 0 : AnomalyCalibration.RawScore(x, previous, scale);
            forecaster.Step(state, x, [], forecast);
            forecast.CopyTo(previous, 0);
        }

        return errors;
    }

    /// <summary>Scores every row online: row t uses only rows 0..t.</summary>
    internal static (double[] Scores, bool[] Flags) Score(RecurrentModel forecaster, float[] values, int columns, int warm, double quantile, double smoothing, string mode, DynamicThresholdOptions dynamic)
    {
        int rows = values.Length / columns;
        if (Signal.Engine.Data.FeatureSequences.SpecOf(forecaster.Metadata) is not null)
        {
            return ScoreFrames(forecaster, values, columns, warm, quantile, smoothing, mode, dynamic);
        }

        double[] raw = ForecastErrors(forecaster, values, columns);
        var scores = new double[rows];
        double smoothed = double.NaN;
        for (int t = 0; t < rows; t++)
        {
            smoothed = t <= 1 ? raw[t] : smoothed + (smoothing * (raw[t] - smoothed));
            scores[t] = smoothed;
        }

        // The warm-up's first tenth is the forecaster settling from its zero state: not part of the fixed threshold.
        return (scores, Flag(scores, warm, Math.Min(warm - 1, Math.Max(1, warm / 10)), double.NaN, quantile, mode, dynamic));
    }

    /// <summary>
    /// Flags each step after the warm-up from the scores up to it only: above the fixed threshold (the
    /// <paramref name="quantile"/> of the warm-up's scores from <paramref name="settle"/> on, and at least
    /// <paramref name="floor"/> when that is a number) and inside an anomalous run of the dynamic threshold over the
    /// trailing window that survives pruning (<paramref name="mode"/> picks one or both).
    /// </summary>
    internal static bool[] Flag(double[] scores, int warmSteps, int settle, double floor, double quantile, string mode, DynamicThresholdOptions dynamic)
    {
        var flags = new bool[scores.Length];
        double fixedThreshold = warmSteps > settle ? AnomalyCalibration.QuantileOf(scores[settle..warmSteps], quantile) : double.NaN;
        fixedThreshold = double.IsNaN(floor) ? fixedThreshold : double.IsNaN(fixedThreshold) ? floor : Math.Max(fixedThreshold, floor);
        fixedThreshold = double.IsNaN(fixedThreshold) ? double.PositiveInfinity : fixedThreshold;
        for (int t = Math.Max(0, warmSteps); t < scores.Length; t++)
        {
            bool high = mode == "dynamic" || scores[t] > fixedThreshold;
            if (high && mode != "fixed")
            {
                int from = Math.Max(0, t + 1 - dynamic.Window);
                (_, IReadOnlyList<(int Start, int End)> runs) = DynamicThreshold.Evaluate(scores.AsSpan(from, t + 1 - from), dynamic);
                high = runs.Any(r => r.End == t + 1 - from);
            }

            flags[t] = high;
        }

        return flags;
    }

    /// <summary>
    /// A model with a feature pipeline: the rows are samples, cut into the model's frames; a row's score is that of the
    /// last frame complete at that row (0 before the first), so it never depends on later rows. Flags as for rows, with
    /// the dynamic threshold over the trailing window of frame scores.
    /// </summary>
    private static (double[] Scores, bool[] Flags) ScoreFrames(RecurrentModel forecaster, float[] values, int columns, int warm, double quantile, double smoothing, string mode, DynamicThresholdOptions dynamic)
    {
        var model = Signal.Engine.Live.EngineModel.From(forecaster, "detect");
        Signal.Features.Pipeline.FeatureExtractor extractor = model.Pipeline!.CreateExtractor();
        int width = model.Pipeline.OutputLength, rows = values.Length / columns;
        var row = new float[width];
        var forecast = new float[width];
        var previous = new float[width];
        RecurrentState state = forecaster.CreateState();
        var frameScores = new List<double>();
        var lastFrame = new int[rows]; // the last frame complete at each row, -1 before the first
        int warmFrames = 0;
        double smoothed = double.NaN;
        for (int t = 0; t < rows; t++)
        {
            if (extractor.Process(values.AsSpan(t * columns, columns), row, out _) == 1)
            {
                int f = frameScores.Count;
                double raw = f == 0 ? 0 : AnomalyCalibration.RawScore(row, previous, model.AnomalyScale);
                smoothed = f <= 1 ? raw : smoothed + (smoothing * (raw - smoothed));
                forecaster.Step(state, row, [], forecast);
                forecast.CopyTo(previous, 0);
                frameScores.Add(smoothed);
                warmFrames = t < warm ? f + 1 : warmFrames;
            }

            lastFrame[t] = frameScores.Count - 1;
        }

        double[] frames = [.. frameScores];
        bool[] frameFlags = Flag(frames, warmFrames, 1, model.AnomalyThreshold, quantile, mode, dynamic);
        var scores = new double[rows];
        var flags = new bool[rows];
        for (int t = 0; t < rows; t++)
        {
            scores[t] = lastFrame[t] < 0 ? 0 : frames[lastFrame[t]];
            flags[t] = t >= warm && lastFrame[t] >= 0 && frameFlags[lastFrame[t]];
        }

        return (scores, flags);
    }

    /// <summary>A GRU forecaster of the next row, trained on the warm-up rows (standardised per column with their statistics).</summary>
    internal static RecurrentModel Fit(float[] values, int columns, int warm, int seed)
    {
        if (warm < 64)
        {
            throw new ArgumentException($"--warmup: {warm} rows are too few to learn normal behaviour from (at least 64).");
        }

        float[] mean = new float[columns], std = new float[columns];
        for (int c = 0; c < columns; c++)
        {
            double s = 0, ss = 0;
            for (int t = 0; t < warm; t++)
            {
                double v = values[(t * columns) + c];
                s += v;
                ss += v * v;
            }

            mean[c] = (float)(s / warm);
            std[c] = (float)Math.Max(1e-6, Math.Sqrt(Math.Max(0, (ss / warm) - ((s / warm) * (s / warm)))));
        }

        float[] z = new float[warm * columns];
        for (int i = 0; i < z.Length; i++)
        {
            z[i] = (values[i] - mean[i % columns]) / std[i % columns];
        }

        // Segments of 64 rows every 16; the last fifth of the warm-up is held out for early stopping and calibration.
        int cut = warm * 4 / 5;
        List<LabeledSequence> Segments(int from, int to, int stride)
        {
            var list = new List<LabeledSequence>();
            for (int s = from; s + 64 <= to; s += stride)
            {
                list.Add(new LabeledSequence(z[(s * columns)..((s + 64) * columns)], 64, 0));
            }

            return list;
        }

        List<LabeledSequence> train = Segments(0, cut, 16), held = Segments(cut, warm, 64);
        var architecture = new ModelArchitecture { InputSize = columns, Classes = 0, ForecastSize = columns, Layers = [new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = 32 }] };
        var network = new TrainingNetwork(architecture, RecurrentModel.CreateRandom(architecture, seed).Tensors);
        Initialization.Apply(network, InitializationKind.XavierOrthogonal, seed);
        Trainer.Train(network, train.Count > 0 ? train : Segments(0, warm, 16), held, new TrainerOptions { Epochs = 60, Loss = LossKind.EveryStep, Seed = seed, Patience = 15, RecoveryPrefix = AnomalyTrainer.RecoveryPrefix });
        RecurrentModel model = network.ToModel([]);
        AnomalyCalibration calibration = AnomalyCalibration.Fit(model, [z[..(cut * columns)]], [z[(cut * columns)..]], 0.99, 0.2);
        var metadata = new Dictionary<string, string>(calibration.ToMetadata())
        {
            ["signal.detect.mean"] = System.Text.Json.JsonSerializer.Serialize(mean, Signal.Engine.EngineJsonContext.Default.SingleArray),
            ["signal.detect.std"] = System.Text.Json.JsonSerializer.Serialize(std, Signal.Engine.EngineJsonContext.Default.SingleArray),
        };
        return model.WithMetadata(metadata);
    }

    private static RecurrentModel LoadModel(string path, int columns)
    {
        RecurrentModel model = RecurrentModel.Load(path);
        if (model.ForecastSize == 0)
        {
            throw new ArgumentException($"--model: '{path}' has no forecasting head (train one with 'signal-edge train --task forecast', or let detect learn one).");
        }

        if (Signal.Engine.Data.FeatureSequences.SpecOf(model.Metadata) is { } spec)
        {
            // A model with a feature pipeline takes the rows as samples: one channel per value column.
            return spec.Channels == columns ? model : throw new ArgumentException($"--model: '{path}' takes {spec.Channels} channel(s) of samples; the CSV has {columns} value column(s).");
        }

        if (model.ForecastSize != columns || model.InputSize != columns)
        {
            throw new ArgumentException($"--model: '{path}' forecasts {model.ForecastSize} values per row; the CSV has {columns} value column(s). Use a model written by detect --save-model for data like this.");
        }

        return model;
    }

    private static float[] Stats(RecurrentModel model, string key, int columns, float fallback) =>
        model.Metadata.TryGetValue(key, out string? json) && System.Text.Json.JsonSerializer.Deserialize(json, Signal.Engine.EngineJsonContext.Default.SingleArray) is { } v && v.Length == columns ? v : [.. Enumerable.Repeat(fallback, columns)];

    internal static int WarmupRows(string text, int rows)
    {
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && value > 0)
        {
            int warm = value < 1 ? (int)Math.Round(value * rows) : value == Math.Floor(value) ? (int)value : -1;
            if (warm > 0 && warm < rows)
            {
                return warm;
            }
        }

        throw new ArgumentException($"--warmup: '{text}' is not a row count below {rows:N0} or a fraction between 0 and 1.");
    }

    private static int Runs(bool[] flags) => flags.Where((f, i) => f && (i == 0 || !flags[i - 1])).Count();
}
