using System.CommandLine;
using System.Globalization;
using Signal.Engine.Anomaly;
using Signal.Models.Networks;
using Signal.Models.Training;

namespace Signal.Edge.Commands;

/// <summary>
/// <c>signal-edge detect</c>: unsupervised anomaly detection on a CSV recording with no trained model. It learns normal
/// behaviour from the warm-up rows (a small GRU forecaster of the next row, trained on them), then scores every row
/// online and flags it with the larger of a fixed threshold (a quantile of the warm-up scores) and the dynamic
/// threshold of Hundman et al. 2018 over the trailing window.
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
        var command = new Command("detect", """
            Finds anomalies in a CSV recording without a trained model. The warm-up rows teach a small recurrent
            forecaster what normal looks like; every row is then scored by how far it is from the forecast made at the
            row before (errors scaled per column by their size in the warm-up, smoothed), and flagged against a fixed
            threshold from the warm-up and the dynamic threshold of Hundman et al. 2018 (telemanom). No row is scored
            with knowledge of the rows after it. See docs/anomaly.md.

            Example:
              signal-edge detect --input machine.csv --warmup 0.2 --output machine-scores.csv
            """)
        {
            input, output, model, warmup, window, quantile, smoothing, threshold, save, seed,
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

            var dynamic = new DynamicThresholdOptions { Window = parse.GetValue(window) };
            dynamic.Validate();
            (string[] times, float[] values, int columns) = ReadCsv(parse.GetValue(input)!.FullName);
            int rows = times.Length;
            int warm = WarmupRows(parse.GetValue(warmup)!, rows);
            RecurrentModel forecaster = parse.GetValue(model) is { } file ? LoadModel(file.FullName, columns) : Fit(values, columns, warm, parse.GetValue(seed));
            if (parse.GetValue(save) is { } saveTo)
            {
                forecaster.Save(saveTo.FullName);
            }

            (double[] scores, bool[] flags) = Score(forecaster, values, columns, warm, q, alpha, mode, dynamic);
            using (var writer = new StreamWriter(parse.GetValue(output)!.FullName))
            {
                writer.WriteLine("timestamp,score,anomaly");
                for (int t = 0; t < rows; t++)
                {
                    writer.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{ModelCommands.Quote(times[t])},{scores[t]:R},{(flags[t] ? 1 : 0)}"));
                }
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{rows:N0} rows × {columns} column(s); learned from the first {warm:N0}; {flags.Count(f => f):N0} rows flagged in {Runs(flags):N0} anomalies; wrote {parse.GetValue(output)!.FullName}"));
            return 0;
        }));
        return command;
    }

    /// <summary>Scores every row online: row t uses only rows 0..t.</summary>
    internal static (double[] Scores, bool[] Flags) Score(RecurrentModel forecaster, float[] values, int columns, int warm, double quantile, double smoothing, string mode, DynamicThresholdOptions dynamic)
    {
        int rows = values.Length / columns;
        if (Signal.Engine.Data.FeatureSequences.SpecOf(forecaster.Metadata) is not null)
        {
            return ScoreFrames(forecaster, values, columns, warm, quantile, smoothing, mode, dynamic);
        }

        float[] scale = forecaster.Metadata.TryGetValue(AnomalyCalibration.ScaleKey, out _) ? AnomalyCalibration.ScaleOf(forecaster.Metadata, columns)! : [.. Enumerable.Repeat(1f, columns)];
        float[] mean = Stats(forecaster, "signal.detect.mean", columns, 0), std = Stats(forecaster, "signal.detect.std", columns, 1);
        var scores = new double[rows];
        RecurrentState state = forecaster.CreateState();
        var x = new float[columns];
        var forecast = new float[columns];
        var previous = new float[columns];
        double smoothed = double.NaN;
        for (int t = 0; t < rows; t++)
        {
            for (int c = 0; c < columns; c++)
            {
                x[c] = (values[(t * columns) + c] - mean[c]) / std[c];
            }

            double raw = t == 0 ? 0 : AnomalyCalibration.RawScore(x, previous, scale);
            smoothed = t <= 1 ? raw : smoothed + (smoothing * (raw - smoothed));
            scores[t] = smoothed;
            forecaster.Step(state, x, [], forecast);
            forecast.CopyTo(previous, 0);
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
    private static RecurrentModel Fit(float[] values, int columns, int warm, int seed)
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
            ["signal.detect.mean"] = System.Text.Json.JsonSerializer.Serialize(mean),
            ["signal.detect.std"] = System.Text.Json.JsonSerializer.Serialize(std),
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
        model.Metadata.TryGetValue(key, out string? json) && System.Text.Json.JsonSerializer.Deserialize<float[]>(json) is { } v && v.Length == columns ? v : [.. Enumerable.Repeat(fallback, columns)];

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

    /// <summary>Reads timestamp,value[,value…] with a header; names the row and column of anything it cannot read.</summary>
    internal static (string[] Times, float[] Values, int Columns) ReadCsv(string path)
    {
        using var reader = new Signal.Engine.Data.BoundedLineReader(path);
        string header = reader.ReadLine() ?? throw new InvalidDataException($"'{path}' is empty.");
        string[] names = header.Split(',');
        int columns = names.Length - 1;
        if (columns < 1)
        {
            throw new InvalidDataException($"'{path}': the header '{header}' has no value column after the timestamp.");
        }

        var times = new List<string>();
        var values = new List<float>();
        int line = 1;
        DateTime? last = null;
        for (string? text = reader.ReadLine(); text is not null; text = reader.ReadLine())
        {
            line++;
            if (text.Length == 0)
            {
                continue;
            }

            string[] cells = text.Split(',');
            if (cells.Length != names.Length)
            {
                throw new InvalidDataException($"'{path}' line {line}: {cells.Length} fields; the header has {names.Length}.");
            }

            string stamp = cells[0].Trim().Trim('"');
            if (!DateTime.TryParse(stamp, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out DateTime time))
            {
                throw new InvalidDataException($"'{path}' line {line}: timestamp '{stamp}' is not ISO 8601 or YYYY-MM-DD HH:MM:SS.");
            }

            if (last is { } before && time < before)
            {
                throw new InvalidDataException($"'{path}' line {line}: timestamp {stamp} is earlier than the row before; sort the file by time.");
            }

            last = time;
            times.Add(stamp);
            for (int c = 1; c < cells.Length; c++)
            {
                if (!Signal.Engine.Data.TextLines.TryParseFloat(cells[c], out float v) || !float.IsFinite(v))
                {
                    throw new InvalidDataException($"'{path}' line {line}, column '{names[c].Trim()}': '{cells[c]}' is not a finite number.");
                }

                values.Add(v);
            }
        }

        if (times.Count < 2)
        {
            throw new InvalidDataException($"'{path}' has {times.Count} data row(s); at least two are needed.");
        }

        return ([.. times], [.. values], columns);
    }

    private static int Runs(bool[] flags) => flags.Where((f, i) => f && (i == 0 || !flags[i - 1])).Count();
}
