using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Signal.Engine.Anomaly;
using Signal.Engine.Data;
using Signal.Engine.Evaluation;
using Signal.Models.Networks;
using Signal.Models.Training;
using Spectre.Console;

namespace Signal.Edge.Commands;

/// <summary><c>signal-edge train</c> and <c>signal-edge eval</c> on labelled sequence data sets.</summary>
internal static class TrainCommand
{
    public static Command CreateTrain()
    {
        var data = new Option<string>("--data") { Description = "A data set: a UCR folder (<Name>_TRAIN.tsv/_TEST.tsv), a UEA folder (<Name>_TRAIN.arff/_TEST.arff), a folder of .npz/.npy recordings (labels from file names) or a CSV file (recording,timestamp,channel…,label; split by recording).", Required = true };
        var output = new Option<FileInfo>("--out", "-o") { Description = "The model file to write (.sigm).", Required = true };
        var cell = new Option<string>("--cell") { Description = "gru (default: the best of the three on the UCR sets, see docs/training.md), lstm or rnn.", DefaultValueFactory = _ => "gru" };
        var layers = new Option<int>("--layers") { Description = "Recurrent layers.", DefaultValueFactory = _ => 1 };
        var hidden = new Option<int>("--hidden") { Description = "Hidden units per layer.", DefaultValueFactory = _ => 64 };
        var epochs = new Option<int>("--epochs") { Description = "Maximum epochs (early stopping on a validation split keeps the best).", DefaultValueFactory = _ => 300 };
        var batch = new Option<int>("--batch") { Description = "Sequences per mini-batch.", DefaultValueFactory = _ => 16 };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate (AdamW, cosine schedule after warm-up).", DefaultValueFactory = _ => 3e-3 };
        var seed = new Option<int>("--seed") { Description = "Seed of initialisation, split and shuffles.", DefaultValueFactory = _ => 1 };
        var validation = new Option<double?>("--validation") { Description = "Fraction of the training split held out for early stopping. Default 0.2 when the split has at least 100 sequences and 10 per class; otherwise none (every sequence trains, the last epochs' best training loss is kept)." };
        var frame = new Option<int?>("--frame") { Description = "Samples per step. With features: the frame length (default 1024). On raw samples, default: series in about 128 steps (⌈longest/128⌉ samples per step)." };
        var features = new Option<string?>("--features") { Description = $"Step on feature frames (the live engine's pipeline) instead of raw samples: comma-separated features, e.g. rms,kurtosis,mel:32. Default for recordings: {FeatureSequences.DefaultFeatures}." };
        var spec = new Option<FileInfo?>("--spec") { Description = "A feature spec (JSON, as written by 'signal-edge features --write-spec') instead of --features/--frame/--hop." };
        var hop = new Option<int?>("--hop") { Description = "Samples between feature frames (default half a frame)." };
        var segment = new Option<int?>("--segment") { Description = $"Steps per training segment of long recordings (default {FeatureSequences.DefaultSegment}); test segments are disjoint." };
        var rate = new Option<double?>("--rate") { Description = "Sample rate in Hz: for data sets that do not state one, or the rate recordings are decimated to." };
        var testPattern = new Option<string?>("--test-pattern") { Description = "Recordings: a regular expression on file names selecting the test split (e.g. '^1750_' tests CWRU on an unseen load). Default: a seeded 20 % of each class's recordings." };
        var labelPattern = new Option<string>("--label-pattern") { Description = "Recordings: a regular expression on file names whose (?<label>…) group is the class.", DefaultValueFactory = _ => RecordingSetOptions.DefaultLabelPattern };
        var key = new Option<string?>("--key") { Description = "Recordings: the array of each .npz to read (default DE when present, else the first)." };
        var augmentScale = new Option<double>("--augment-scale") { Description = "Augmentation: each training sequence is scaled by a factor from N(1, s²) per batch (0: off; on the UCR sets 0.1 with jitter 0.05 gave no gain on the mean).", DefaultValueFactory = _ => 0 };
        var augmentSlice = new Option<double?>("--augment-slice") { Description = "Augmentation, window slicing: each training sequence of each batch is cut to a random window of this fraction of its steps (0: off; classifiers only). Default: 0.9 for series data sets (UCR, UEA) with --task classify, 0 otherwise." };
        var magnitudeWarp = new Option<double>("--augment-magnitude-warp") { Description = "Augmentation, magnitude warping: each training sequence is multiplied by a smooth random curve through six knots from N(1, s²) (0: off).", DefaultValueFactory = _ => 0 };
        var timeWarp = new Option<double>("--augment-time-warp") { Description = "Augmentation, time warping: each training sequence is resampled along a smooth random monotonic clock whose speed is a curve through six knots from N(1, s²), first and last step fixed (0: off).", DefaultValueFactory = _ => 0 };
        var augmentJitter = new Option<double>("--augment-jitter") { Description = "Augmentation: N(0, s²) noise added to every (z-scored) training input per batch (0: off).", DefaultValueFactory = _ => 0 };
        var pooling = new Option<string?>("--pooling") { Description = "What the classification head sees beside the top layer's output: mean (its running mean over the steps seen, up to the longest training sequence, then an exponential average with that reach: global average pooling, streamable), meanmax (that mean and the running maximum of each output: global max pooling too) or none. Default: meanmax for series data sets (UCR, UEA), none for recordings." };
        var ensemble = new Option<int?>("--ensemble") { Description = "Members of an ensemble: K networks trained from seeds seed … seed+K−1 and merged into one model that steps them all in one batch and averages their logits (eval reports each member). Default: 5 for series data sets (UCR, UEA), 1 for recordings (long live streams, where the step cost counts)." };
        var inputNorm = new Option<string?>("--input-norm") { Description = "none, or running: the network also sees each step's input z-scored by the stream's own running mean and variance per channel (normalising each series, made causal), reaching back as far as the longest training sequence. Default: running for series whose scales spread over two orders of magnitude (the 90th over the 10th percentile of the training series' RMS), else none." };
        var convLayers = new Option<int?>("--conv-layers") { Description = "Causal convolutions before the recurrent layers (0: none): dilations 1, 2, 4, …, ReLU, residual from the second on; stepped with a ring of past inputs per stream. Default: 3 for series data sets (UCR, UEA), 0 for recordings." };
        var convChannels = new Option<int>("--conv-channels") { Description = "Channels of each convolution.", DefaultValueFactory = _ => 32 };
        var convKernel = new Option<int>("--conv-kernel") { Description = "Taps of each convolution.", DefaultValueFactory = _ => 3 };
        var smoothing = new Option<double>("--label-smoothing") { Description = "Label smoothing ε of the cross-entropy (PyTorch's label_smoothing): the target is 1 − ε on the label and ε/K on every class (0: off; 0.1 gave no gain on the UCR mean).", DefaultValueFactory = _ => 0 };
        var dropout = new Option<double>("--dropout") { Description = "Dropout between layers and before the head while training (not on recurrent connections).", DefaultValueFactory = _ => 0 };
        var init = new Option<string>("--init") { Description = "Starting weights: xavier (Xavier input weights, orthogonal recurrent weights, forget-gate bias 1) or uniform (PyTorch's default).", DefaultValueFactory = _ => "xavier" };
        var optimizer = new Option<string>("--optimizer") { Description = "adamw, adam or sgd (momentum 0.9).", DefaultValueFactory = _ => "adamw" };
        var schedule = new Option<string>("--schedule") { Description = "Learning-rate schedule after the warm-up: cosine, step (×0.1 at 50 % and 75 % of the epochs) or constant.", DefaultValueFactory = _ => "cosine" };
        var truncate = new Option<int>("--truncate") { Description = "Truncated back-propagation through time: gradients flow back at most this many steps (0: the whole sequence).", DefaultValueFactory = _ => 0 };
        var balance = new Option<bool?>("--balance") { Description = "Weight classes by inverse frequency (default: when the largest class has over twice the smallest's sequences)." };
        var threads = new Option<int>("--threads") { Description = "Threads for data-parallel gradients (0: all processors).", DefaultValueFactory = _ => 0 };
        var loss = new Option<string>("--loss") { Description = "last (cross-entropy at the last step) or every (at every step, so the live engine may answer at any step).", DefaultValueFactory = _ => "last" };
        var task = new Option<string>("--task") { Description = "classify (a class per step), forecast (predict the next step's features; an anomaly detector trained on normal data only) or both (one model with both heads).", DefaultValueFactory = _ => "classify" };
        var normal = new Option<string?>("--normal") { Description = "forecast/both: the class of normal behaviour in labelled data (default: a class named normal, ok or healthy; else all data is taken as normal). The forecaster learns from it alone." };
        var budget = new Option<string?>("--budget") { Description = "Recipe search: within this time (e.g. 90s, 10m, 1h) train one network of each recipe in docs/training.md in turn on three quarters of the training split, keep the recipe with the best accuracy on the last quarter, then train the model with it as usual. Default: none (the recipe the flags give)." };
        var quantile = new Option<double>("--quantile") { Description = "forecast/both: the anomaly threshold is this quantile of the smoothed scores of held-out normal data.", DefaultValueFactory = _ => 0.999 };
        var accelerator = new Option<string>("--accelerator") { Description = "Where gradients are computed: cpu (default), cuda, opencl, auto or ilgpu-cpu. The accelerator trains LSTM, GRU and RNN stacks with a classification head (no convolutions, running normalisation, forecasting head, dropout or truncation: add --conv-layers 0 --input-norm none for series); docs/accelerators.md.", DefaultValueFactory = _ => "cpu" };
        var command = new Command("train", """
            Trains a recurrent classifier on a labelled data set and writes a model file the live engine runs as is
            (inputs z-scored per channel with statistics of the training split, stored in the file).

            Examples:
              signal-edge train --data ../shared/datasets/basicmotions --out basicmotions.sigm
              signal-edge train --data ../shared/datasets/ucr/GunPoint --cell gru --hidden 32 --out gunpoint.sigm
              signal-edge train --data "../shared/datasets/cwru/Data" --test-pattern '^1750_' --out cwru.sigm
              signal-edge train --task forecast --data "../shared/datasets/cwru/Data" --test-pattern '^1750_' --out cwru-anomaly.sigm
            """)
        {
            task, normal, quantile, data, output, cell, layers, hidden, epochs, batch, lr, seed, validation, loss, threads, frame,
            features, spec, hop, segment, rate, testPattern, labelPattern, key, dropout, balance, init, truncate, optimizer, schedule, augmentScale, augmentJitter, augmentSlice, magnitudeWarp, timeWarp, smoothing, pooling, ensemble, convLayers, convChannels, convKernel, inputNorm, budget, accelerator,
        };
        command.SetAction((parse, cancellationToken) => Task.FromResult(CommandErrors.Run(() => Train(
            new AnomalyTraining(parse.GetValue(task)!, parse.GetValue(normal), parse.GetValue(quantile)),
            parse.GetValue(data)!, parse.GetValue(output)!, parse.GetValue(cell)!, parse.GetValue(layers), parse.GetValue(hidden), parse.GetValue(pooling), parse.GetValue(ensemble),
            new FrontEndOptions(parse.GetValue(convLayers), parse.GetValue(convChannels), parse.GetValue(convKernel)) { InputNormalization = parse.GetValue(inputNorm), Slice = parse.GetValue(augmentSlice) },
            new TrainerOptions
            {
                Epochs = parse.GetValue(epochs),
                BatchSize = parse.GetValue(batch),
                LearningRate = parse.GetValue(lr),
                Seed = parse.GetValue(seed),
                Threads = parse.GetValue(threads),
                Accelerator = parse.GetValue(accelerator)!,
                Dropout = parse.GetValue(dropout),
                AugmentScale = parse.GetValue(augmentScale),
                AugmentJitter = parse.GetValue(augmentJitter),
                AugmentMagnitudeWarp = parse.GetValue(magnitudeWarp),
                AugmentTimeWarp = parse.GetValue(timeWarp),
                LabelSmoothing = parse.GetValue(smoothing),
                TruncateSteps = parse.GetValue(truncate),
                Optimizer = parse.GetValue(optimizer)!,
                Schedule = parse.GetValue(schedule)!,
                BalanceClasses = parse.GetValue(balance),
                Initialization = parse.GetValue(init) switch
                {
                    "xavier" => InitializationKind.XavierOrthogonal,
                    "uniform" => InitializationKind.Uniform,
                    var other => throw new ArgumentException($"--init must be xavier or uniform (got '{other}')."),
                },
                Loss = parse.GetValue(loss) switch
                {
                    "last" => LossKind.LastStep,
                    "every" => LossKind.EveryStep,
                    var other => throw new ArgumentException($"--loss must be last or every (got '{other}')."),
                },
            },
            parse.GetValue(validation),
            ParseDuration(parse.GetValue(budget)),
            new DataOptions
            {
                SpecFile = parse.GetValue(spec),
                Features = parse.GetValue(features),
                Frame = parse.GetValue(frame),
                Hop = parse.GetValue(hop),
                Segment = parse.GetValue(segment),
                Rate = parse.GetValue(rate),
                Recordings = new RecordingSetOptions
                {
                    TestPattern = parse.GetValue(testPattern),
                    LabelPattern = parse.GetValue(labelPattern)!,
                    Key = parse.GetValue(key),
                    SampleRate = parse.GetValue(rate) ?? 0,
                },
            },
            cancellationToken), CommandErrors.LabelledLayout)));
        return command;
    }

    /// <summary>
    /// Normal data before and after each evaluated event: 1.5 s, or warm-up + 8 steps of the model's feature frames
    /// when that is longer (a stream learns its own statistics for the warm-up before it may alert).
    /// </summary>
    private static double LeadSeconds(RecurrentModel model, int warmup) =>
        FeatureSequences.SpecOf(model.Metadata) is { SampleRate: > 0 } spec ? Math.Max(1.5, (warmup + 8) * spec.Hop / spec.SampleRate) : 1.5;

    public static Command CreateEval()
    {
        var modelOption = new Option<FileInfo?>("--model", "-m") { Description = "The model file (not for --task anomaly on a NAB-style corpus, which runs the streaming detector)." };
        var data = new Option<string>("--data") { Description = "The data set (folder or CSV file); for --task anomaly also 'generated': vibration like the demo's with injected spikes, level shifts, frequency drift and dropouts.", Required = true };
        var split = new Option<string>("--split") { Description = "test or train (anomaly: also all, the default there: every anomalous recording is unseen by a forecaster of normal data)." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object (accuracy, macro_f1, per-class scores, confusion matrix)." };
        var testPattern = new Option<string?>("--test-pattern") { Description = "Recordings: the test split's file-name pattern (default: the one the model was trained with)." };
        var task = new Option<string>("--task") { Description = "classify (accuracy of the class per sequence) or anomaly (event-wise precision, recall, F1 and delay of anomaly alerts; on a folder with data/ and labels/combined_windows.json, NAB v1.1 scores of the streaming detector).", DefaultValueFactory = _ => "classify" };
        var forecaster = new Option<bool>("--forecaster") { Description = "anomaly on a NAB-style corpus: also train a GRU forecaster on each file's probationary rows and add its error to the ensemble (slower)." };
        var order = new Option<string>("--order") { Description = "anomaly on a NAB-style corpus: rows whose time steps back are read in file order (file), sorted (time) or refused (reject).", DefaultValueFactory = _ => "file" };
        var normal = new Option<string?>("--normal") { Description = "anomaly: the normal class (default: the one the model was trained on, else one named normal/ok/healthy)." };
        var normalSeconds = new Option<double?>("--normal-seconds") { Description = "anomaly: seconds of normal data before and after each spliced-in anomaly. Default 1.5 s, longer when the model's steps are slow: at least --warmup + 8 steps, so a stream has learned its statistics before its event." };
        var warmup = new Option<int>("--warmup") { Description = "anomaly: steps a new stream learns its own score statistics before it may alert (engine.anomalyWarmupSteps).", DefaultValueFactory = _ => 24 };
        var window = new Option<int>("--window") { Description = "anomaly: the dynamic per-stream threshold's window in steps (engine.anomalyWindow); 0 for the fixed threshold alone.", DefaultValueFactory = _ => 0 };
        var anomalySeconds = new Option<double>("--anomaly-seconds") { Description = "anomaly: seconds of each anomalous recording spliced in.", DefaultValueFactory = _ => 3 };
        var command = new Command("eval", """
            Evaluates a model on a data set split with the streaming path the live engine uses (one step per input,
            the class at the last step), and reports how early the class is right.

            Example:
              signal-edge eval --model basicmotions.sigm --data ../shared/datasets/basicmotions --json
              signal-edge eval --task anomaly --model cwru-anomaly.sigm --data ../shared/datasets/cwru/Data --json
              signal-edge eval --task anomaly --data ../shared/datasets/nab-dev
            """)
        {
            modelOption, data, split, json, testPattern, task, normal, normalSeconds, anomalySeconds, warmup, window, order, forecaster,
        };
        command.SetAction(parse => CommandErrors.Run(() =>
        {
            if (parse.GetValue(task) == "anomaly" && NabBenchmark.IsCorpus(parse.GetValue(data)!))
            {
                return NabEval.Run(parse.GetValue(data)!, TimeSeriesCsv.ParseOrder(parse.GetValue(order)!), parse.GetValue(json), parse.GetValue(forecaster));
            }

            RecurrentModel model = RecurrentModel.Load((parse.GetValue(modelOption) ?? throw new ArgumentException("--model is required (except for --task anomaly on a NAB-style corpus).")).FullName);
            // Data without a split of its own is split as the model's training split it: same seed, same patterns.
            Dictionary<string, string> provenance = model.Metadata.TryGetValue("signal.provenance", out string? text)
                ? JsonSerializer.Deserialize(text, Signal.Engine.EngineJsonContext.Default.DictionaryStringString) ?? []
                : [];
            int splitSeed = provenance.TryGetValue("seed", out string? s) && int.TryParse(s, CultureInfo.InvariantCulture, out int parsed) ? parsed : 1;
            var recordings = new RecordingSetOptions
            {
                TestPattern = parse.GetValue(testPattern) ?? (provenance.TryGetValue("testPattern", out string? tp) && tp.Length > 0 ? tp : null),
                LabelPattern = provenance.TryGetValue("labelPattern", out string? lp) ? lp : RecordingSetOptions.DefaultLabelPattern,
                Key = provenance.TryGetValue("key", out string? k) && k.Length > 0 ? k : null,
                SampleRate = FeatureSequences.SpecOf(model.Metadata)?.SampleRate ?? 0,
            };
            if (parse.GetValue(task) == "anomaly" && parse.GetValue(data) == "generated")
            {
                return AnomalyEval.RunGenerated(model, parse.GetValue(warmup), parse.GetValue(window), parse.GetValue(json));
            }

            LabeledDataSet set = LabeledDataSet.Load(parse.GetValue(data)!, splitSeed, recordings);
            if (parse.GetValue(task) is { } t && t != "classify")
            {
                return t == "anomaly"
                    ? AnomalyEval.Run(model, set, parse.GetValue(split) ?? "all", parse.GetValue(normal) ?? (provenance.TryGetValue("normal", out string? n) && n != "all data" ? n : null),
                        parse.GetValue(normalSeconds) ?? LeadSeconds(model, parse.GetValue(warmup)), parse.GetValue(anomalySeconds), parse.GetValue(warmup), parse.GetValue(window), parse.GetValue(json))
                    : throw new ArgumentException($"--task must be classify or anomaly (got '{t}').");
            }

            IReadOnlyList<LabeledSequence> sequences = TrainingData.PrepareFor(model, set, (parse.GetValue(split) ?? "test") switch
            {
                "test" => set.Test,
                "train" => set.Train,
                var other => throw new ArgumentException($"--split must be test or train (got '{other}')."),
            });

            IReadOnlyList<string> names = model.Labels;
            if (!set.ClassNames.SequenceEqual(names))
            {
                throw new ArgumentException($"the data set's classes ({string.Join(", ", set.ClassNames)}) differ from the model's ({string.Join(", ", names)}).");
            }

            ClassificationMetrics metrics = ClassificationMetrics.Evaluate(model, sequences, names);
            ClassificationMetrics[] members = [.. Enumerable.Range(0, ModelEnsemble.MemberCount(model)).Skip(ModelEnsemble.MemberCount(model) > 1 ? 0 : 1)
                .Select(k => ClassificationMetrics.Evaluate(ModelEnsemble.Member(model, k), sequences, names))];
            if (parse.GetValue(json))
            {
                Console.WriteLine(ToJson(metrics, members));
            }
            else
            {
                Print(metrics, $"{set.Name} {parse.GetValue(split) ?? "test"} split" + (members.Length > 0
                    ? $", ensemble of {members.Length} (members alone: {string.Join(", ", members.Select(m => m.Accuracy.ToString("P1", CultureInfo.InvariantCulture)))})"
                    : string.Empty));
            }

            return 0;
        }, CommandErrors.LabelledLayout));
        return command;
    }

    private static int Train(AnomalyTraining anomaly, string dataPath, FileInfo output, string cellName, int layers, int hidden, string? pooling, int? ensemble, FrontEndOptions convolutions, TrainerOptions options, double? validationOption, TimeSpan? budget, DataOptions dataOptions, CancellationToken cancellationToken)
    {
        anomaly.Validate();
        if (pooling is not (null or "none" or "mean" or "meanmax"))
        {
            throw new ArgumentException($"--pooling must be none, mean or meanmax (got '{pooling}').");
        }

        convolutions.Validate();
        if (ensemble is < 1 or > 64)
        {
            throw new ArgumentException($"--ensemble must be between 1 and 64 members (got {ensemble}).");
        }

        CellKind kind = cellName switch
        {
            "lstm" => CellKind.Lstm,
            "gru" => CellKind.Gru,
            "rnn" => CellKind.Rnn,
            _ => throw new ArgumentException($"--cell must be lstm, gru or rnn (got '{cellName}')."),
        };
        if (layers is < 1 or > 8 || hidden is < 1 or > 4096)
        {
            throw new ArgumentException($"--layers must be 1 to 8 and --hidden 1 to 4096 (got {layers} and {hidden}).");
        }

        if (validationOption is < 0 or >= 1)
        {
            throw new ArgumentException($"--validation must be at least 0 and below 1 (got {validationOption}).");
        }

        options.Validate();
        dataOptions.Validate();

        // Ctrl-C (or SIGTERM) stops after the current mini-batch and still writes the best model so far; a
        // second Ctrl-C ends the process at once.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        void OnCancel(object? sender, ConsoleCancelEventArgs e)
        {
            e.Cancel = !stop.IsCancellationRequested;
            stop.Cancel();
        }

        Console.CancelKeyPress += OnCancel;
        using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            stop.Cancel();
        });
        try
        {
            return Train(anomaly, dataPath, output, kind, layers, hidden, pooling, ensemble, convolutions, options, validationOption, budget, dataOptions, stop.Token);
        }
        finally
        {
            Console.CancelKeyPress -= OnCancel;
        }
    }

    private static int Train(AnomalyTraining anomaly, string dataPath, FileInfo output, CellKind kind, int layers, int hidden, string? poolingOption, int? ensemble, FrontEndOptions convolutions, TrainerOptions options, double? validationOption, TimeSpan? budget, DataOptions dataOptions, CancellationToken cancellationToken)
    {
        LabeledDataSet set = LabeledDataSet.Load(dataPath, options.Seed, dataOptions.Recordings);
        if (anomaly.Task == "forecast")
        {
            if (convolutions.Layers > 0 || ensemble > 1 || budget is not null || convolutions.Slice > 0)
            {
                throw new ArgumentException("--conv-layers, --ensemble, --budget and --augment-slice are for classifiers (--task classify or both); the forecaster of --task forecast has none of them.");
            }

            return AnomalyTrainer.TrainForecaster(anomaly, set, dataPath, output, kind, layers, hidden, options, validationOption, dataOptions, cancellationToken);
        }

        convolutions = convolutions.For(set, forecasts: anomaly.Task == "both");
        options.AugmentSlice = convolutions.Slice ?? 0;

        // Recordings are long live streams cut into segments; a quick run on a small one learned slower with the
        // pooled mean (docs/training.md), and their features already summarise each frame.
        // Series pool the mean and the maximum (docs/training.md: 0.8076 against 0.8018 with the mean alone on the UCR table).
        string pooling = poolingOption ?? (set.IsRecordings ? "none" : "meanmax");

        // Small training splits lose too much by a hold-out (BasicMotions has 10 sequences per class): the
        // documented automatic choice is no early stopping below 100 sequences or 10 per class. Recordings
        // are cut into many segments, so they always hold out 20 % (whole recordings, see HoldOut).
        bool large = set.IsRecordings || (set.Train.Count >= 100 && set.Train.GroupBy(s => s.Label).Min(g => g.Count()) >= 10);
        double validationFraction = validationOption ?? (large ? 0.2 : 0);
        (IReadOnlyList<LabeledSequence> trainRaw, IReadOnlyList<LabeledSequence> heldRaw) = TrainingData.HoldOut(set.Train, set.Channels, validationFraction, options.Seed, set.IsRecordings);
        Prepared data = TrainingData.Prepare(set, dataOptions, trainRaw, heldRaw, set.Test);
        IReadOnlyList<LabeledSequence> train = data.Train, held = data.Held;
        if (options.BalanceClasses is null)
        {
            // Automatic: weight classes by inverse frequency when the largest has over twice the smallest's sequences.
            int[] counts = [.. Enumerable.Range(0, set.ClassNames.Count).Select(c => train.Count(s => s.Label == c))];
            options.BalanceClasses = counts.Max() > 2 * Math.Max(1, counts.Min());
        }

        ModelArchitecture Architecture(Recipe recipe, IReadOnlyList<LabeledSequence> sequences) => new()
        {
            InputSize = data.InputSize,
            Classes = set.ClassNames.Count,
            ForecastSize = anomaly.Task == "both" ? data.InputSize : 0,
            Pooling = pooling,
            PoolingSteps = pooling == "none" ? 0 : sequences.Max(s => s.Steps),
            Convolutions = recipe.FrontEnd.Build(),
            InputNormalization = recipe.FrontEnd.InputNormalization ?? "none",

            // Per raw channel of the sample-major frame; a feature vector normalises each feature on its own.
            InputChannels = dataOptions.UsesFeatures(set) ? data.InputSize : set.Channels,
            NormalizationSamples = sequences.Max(s => s.Steps) * (dataOptions.UsesFeatures(set) ? 1 : data.InputSize / set.Channels),
            Layers = [.. Enumerable.Range(0, recipe.Layers).Select(_ => new LayerArchitecture { Kind = recipe.Kind, HiddenSize = recipe.Hidden })],
        };

        var chosen = new Recipe("given", kind, layers, hidden, convolutions);
        string searched = string.Empty;
        if (budget is { } limit)
        {
            (chosen, searched) = SearchRecipe(set, dataOptions, chosen, limit, options, Architecture, cancellationToken);
            (kind, layers, hidden, convolutions) = (chosen.Kind, chosen.Layers, chosen.Hidden, chosen.FrontEnd);
            options.AugmentSlice = convolutions.Slice ?? 0;
        }

        string cellName = kind.ToString().ToLowerInvariant();
        ModelArchitecture architecture = Architecture(chosen, train);
        if (anomaly.Task == "both")
        {
            // The forecaster learns normal behaviour only, so anything else (known faults or new ones) scores high.
            options.ForecastClass = AnomalyTrainer.NormalClass(set, anomaly.Normal);
            options.RecoveryPrefix = AnomalyTrainer.RecoveryPrefix;
        }

        int memberCount = ensemble ?? (set.IsRecordings ? 1 : DefaultSeriesEnsemble);
        AnsiConsole.MarkupLineInterpolated($"[bold]Training[/] {kind.ToString().ToUpperInvariant()} {layers}×{hidden}{(memberCount > 1 ? $", an ensemble of {memberCount}" : string.Empty)} on {set.Name} ({set.Format}): {train.Count} training, {held.Count} validation, {data.Test.Count} test sequences, {data.Description}, {set.ClassNames.Count} classes");
        var started = DateTime.UtcNow;
        IReadOnlyList<EpochReport> history = [];
        int baseSeed = options.Seed, bestEpoch = 0;
        var members = new List<RecurrentModel>();
        var memberAccuracies = new List<double>();
        for (int k = 0; k < memberCount && (k == 0 || !cancellationToken.IsCancellationRequested); k++)
        {
            // Members differ by their seed: starting weights, dropout and the order of the batches.
            options.Seed = baseSeed + k;
            var network = new TrainingNetwork(architecture, RecurrentModel.CreateRandom(architecture, options.Seed).Tensors);
            Initialization.Apply(network, options.Initialization, options.Seed);
            if (memberCount > 1)
            {
                AnsiConsole.MarkupLineInterpolated($"[bold]Member {k + 1} of {memberCount}[/] (seed {options.Seed})");
            }

            history = TrainOne(network, train, held, options, cancellationToken);
            bestEpoch = history.LastOrDefault(h => h.IsBest)?.Epoch ?? 0; // 0: stopped before the first epoch ended (starting weights)
            RecurrentModel member = network.ToModel(set.ClassNames);
            members.Add(member);
            if (memberCount > 1)
            {
                ClassificationMetrics alone = ClassificationMetrics.Evaluate(member, data.Test, set.ClassNames);
                memberAccuracies.Add(alone.Accuracy);
                AnsiConsole.MarkupLineInterpolated($"Member {k + 1}: test accuracy {alone.Accuracy:P2} (best epoch {bestEpoch})");
            }
        }

        options.Seed = baseSeed;
        RecurrentModel trained = members.Count == 1 ? members[0] : ModelEnsemble.Merge(members);
        ClassificationMetrics metrics = ClassificationMetrics.Evaluate(trained, data.Test, set.ClassNames);
        var metadata = new Dictionary<string, string>(data.Metadata)
        {
            ["signal.provenance"] = JsonSerializer.Serialize(new Dictionary<string, string>(TrainingData.Provenance(set, dataOptions.Recordings, options.Seed, started, history.Count, bestEpoch,
                $"cell={cellName} layers={layers} hidden={hidden} pooling={pooling} ensemble={members.Count} {convolutions}{searched} init={options.Initialization} {data.Description} batch={options.BatchSize} lr={options.LearningRate} dropout={options.Dropout} augment={options.AugmentScale}/{options.AugmentJitter}/{options.AugmentSlice}/{options.AugmentMagnitudeWarp}/{options.AugmentTimeWarp} smoothing={options.LabelSmoothing} truncate={options.TruncateSteps} seed={options.Seed} loss={options.Loss} balance={options.BalanceClasses} validation={validationFraction}"))
            {
                ["testAccuracy"] = metrics.Accuracy.ToString("R", CultureInfo.InvariantCulture),
                ["testMacroF1"] = metrics.MacroF1.ToString("R", CultureInfo.InvariantCulture),
                ["testAccuracyMembers"] = string.Join(' ', memberAccuracies.Select(a => a.ToString("R", CultureInfo.InvariantCulture))),
            }, Signal.Engine.EngineJsonContext.Default.DictionaryStringString),
        };
        if (anomaly.Task == "both")
        {
            // The forecaster learned the normal class (every class when there is none); its errors are scaled and its
            // threshold set on normal data only.
            int normalClass = AnomalyTrainer.NormalClass(set, anomaly.Normal);
            AnomalyCalibration calibration = AnomalyTrainer.Calibrate(trained, train, held, normalClass, anomaly.Quantile);
            foreach ((string key, string value) in calibration.ToMetadata())
            {
                metadata[key] = value;
            }

            AnsiConsole.MarkupLineInterpolated($"Anomaly threshold {calibration.Threshold:G4} (the {anomaly.Quantile:P1} quantile of held-out normal scores).");
        }

        trained = trained.WithMetadata(metadata);
        trained.Save(output.FullName);
        string reportPath = output.FullName + ".report.html";
        TrainingReport.Write(reportPath, $"{kind.ToString().ToUpperInvariant()} {layers}×{hidden} on {set.Name}", history, metrics, new Dictionary<string, string>
        {
            ["data set"] = $"{set.Name} ({set.Format}, {Path.GetFullPath(dataPath)})",
            ["split"] = $"{train.Count} training, {held.Count} validation, {data.Test.Count} test sequences" + (set.IsRecordings ? $" (recordings split by {(dataOptions.Recordings.TestPattern is { } tp ? $"test pattern '{tp}'" : "a seeded 20 % per class")}; validation by whole recordings)" : string.Empty),
            ["inputs"] = data.Description,
            ["network"] = $"{kind} layers={layers} hidden={hidden}{(members.Count > 1 ? $" ensemble of {members.Count}" : string.Empty)} input={data.InputSize} classes={set.ClassNames.Count} dropout={options.Dropout}",
            ["initialisation"] = options.Initialization.ToString(),
            ["optimiser"] = $"{options.Optimizer} lr={options.LearningRate} weight decay={options.WeightDecay} clip={options.ClipNorm} schedule={options.Schedule} warm-up={options.WarmupEpochs}",
            ["batches"] = $"{options.BatchSize} sequences, loss at {(options.Loss == LossKind.LastStep ? "the last step" : "every step")}, class weights {(options.BalanceClasses == true ? "balanced" : "none")}",
            ["epochs"] = $"{history.Count} run of {options.Epochs}, best {bestEpoch}, patience {options.Patience}",
            ["seed"] = options.Seed.ToString(CultureInfo.InvariantCulture),
            ["trained at"] = started.ToString("u", CultureInfo.InvariantCulture),
        });
        if (cancellationToken.IsCancellationRequested)
        {
            AnsiConsole.MarkupLine("[yellow]Stopped early (Ctrl-C); kept the best weights so far.[/]");
        }

        Print(metrics, members.Count > 1 ? $"{set.Name} test split, ensemble of {members.Count} (members {string.Join(", ", memberAccuracies.Select(a => a.ToString("P1", CultureInfo.InvariantCulture)))})" : $"{set.Name} test split (best epoch {bestEpoch})");
        AnsiConsole.MarkupLineInterpolated($"Wrote [green]{output.FullName}[/] and its report [green]{reportPath}[/].");
        return 0;
    }

    /// <summary>One recipe of the search: the recurrent cell, its depth and width, and the front end.</summary>
    /// <param name="Name">How the table and the provenance name it.</param>
    /// <param name="Kind">The cell.</param>
    /// <param name="Layers">Recurrent layers.</param>
    /// <param name="Hidden">Hidden units per layer.</param>
    /// <param name="FrontEnd">Convolutions and input normalisation.</param>
    internal sealed record Recipe(string Name, CellKind Kind, int Layers, int Hidden, FrontEndOptions FrontEnd);

    /// <summary>
    /// The recipes <c>--budget</c> tries, in this order (docs/training.md): the given one (the flags, or the defaults),
    /// then one change each, the changes that helped some UCR sets and hurt others when tried as defaults.
    /// </summary>
    internal static IReadOnlyList<Recipe> Recipes(Recipe given) =>
    [
        given,
        given with { Name = given.FrontEnd.Slice > 0 ? "no window slicing" : "window slicing 0.9", FrontEnd = given.FrontEnd with { Slice = given.FrontEnd.Slice > 0 ? 0 : FrontEndOptions.DefaultSeriesSlice } },
        given with { Name = given.FrontEnd.InputNormalization == "running" ? "no running input norm" : "running input norm", FrontEnd = given.FrontEnd with { InputNormalization = given.FrontEnd.InputNormalization == "running" ? "none" : "running" } },
        given with { Name = given.Kind == CellKind.Lstm ? "gru" : "lstm", Kind = given.Kind == CellKind.Lstm ? CellKind.Gru : CellKind.Lstm },
        given with { Name = given.FrontEnd.Layers > 0 ? "no convolutions" : "3 convolutions", FrontEnd = given.FrontEnd with { Layers = given.FrontEnd.Layers > 0 ? 0 : FrontEndOptions.DefaultSeriesLayers } },
        given with { Name = "twice the hidden units", Hidden = given.Hidden * 2 },
        given with { Name = "convolution kernel 5", FrontEnd = given.FrontEnd with { Kernel = 5, Layers = Math.Max(1, given.FrontEnd.Layers ?? 0) } },
        given with { Name = "one more layer", Layers = given.Layers + 1 },
    ];

    /// <summary>
    /// <c>--budget</c>: holds out a quarter of the training split (whole recordings for recording sets), trains one
    /// network of each recipe in turn on the rest until the budget runs out (a recipe still training then is not
    /// judged), and keeps the recipe with the best accuracy on the held-out quarter (on a tie, the lower log loss).
    /// </summary>
    private static (Recipe Chosen, string Provenance) SearchRecipe(LabeledDataSet set, DataOptions dataOptions, Recipe given, TimeSpan budget, TrainerOptions options,
        Func<Recipe, IReadOnlyList<LabeledSequence>, ModelArchitecture> architecture, CancellationToken cancellationToken)
    {
        (IReadOnlyList<LabeledSequence> fitRaw, IReadOnlyList<LabeledSequence> judgeRaw) = TrainingData.HoldOut(set.Train, set.Channels, 0.25, options.Seed, set.IsRecordings);
        if (judgeRaw.Count == 0)
        {
            AnsiConsole.MarkupLineInterpolated($"[yellow]Recipe search skipped[/]: the training split is too small to hold out a quarter; training the given recipe.");
            return (given, " search=skipped");
        }

        Prepared data = TrainingData.Prepare(set, dataOptions, fitRaw, judgeRaw, []);
        // The budget is checked at every epoch's end and before each recipe (a timer could starve while training
        // keeps every thread-pool thread busy).
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        AnsiConsole.MarkupLineInterpolated($"[bold]Recipe search[/] within {budget:g}: {data.Train.Count} sequences to fit, {data.Held.Count} to judge.");
        var table = new List<string>();
        Recipe best = given;
        double bestAccuracy = -1, bestLoss = double.PositiveInfinity;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        // Window slicing is for classifiers alone: a model that also forecasts skips those recipes.
        bool forecasts = architecture(given, data.Train).ForecastSize > 0;
        foreach (Recipe recipe in Recipes(given).Where(r => !(forecasts && r.FrontEnd.Slice > 0)))
        {
            if (clock.Elapsed >= budget)
            {
                deadline.Cancel();
            }

            if (deadline.IsCancellationRequested)
            {
                break;
            }

            double started = clock.Elapsed.TotalSeconds;
            options.AugmentSlice = recipe.FrontEnd.Slice ?? 0;
            ModelArchitecture shape = architecture(recipe, data.Train);
            var network = new TrainingNetwork(shape, RecurrentModel.CreateRandom(shape, options.Seed).Tensors);
            Initialization.Apply(network, options.Initialization, options.Seed);
            Trainer.Train(network, data.Train, data.Held, options, _ =>
            {
                if (clock.Elapsed >= budget)
                {
                    deadline.Cancel();
                }
            }, deadline.Token);
            if (deadline.IsCancellationRequested)
            {
                AnsiConsole.MarkupLineInterpolated($"  {recipe.Name}: not finished within the budget (not judged)");
                break;
            }

            ClassificationMetrics judged = ClassificationMetrics.Evaluate(network.ToModel(set.ClassNames), data.Held, set.ClassNames);
            AnsiConsole.MarkupLineInterpolated($"  {recipe.Name}: held-out accuracy {judged.Accuracy:P1}, log loss {judged.LogLoss:0.000} ({clock.Elapsed.TotalSeconds - started:0.0} s)");
            table.Add(string.Create(CultureInfo.InvariantCulture, $"{recipe.Name}={judged.Accuracy:0.###}/{judged.LogLoss:0.###}"));

            // Accuracy first; on a tie (small held-out sets often tie at 100 %) the surer one: the lower log loss.
            if (judged.Accuracy > bestAccuracy || (judged.Accuracy == bestAccuracy && judged.LogLoss < bestLoss))
            {
                (best, bestAccuracy, bestLoss) = (recipe, judged.Accuracy, judged.LogLoss);
            }
        }

        if (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException("training was stopped during the recipe search.", cancellationToken);
        }

        if (table.Count == 0)
        {
            AnsiConsole.MarkupLine("[yellow]No recipe finished within the budget[/]: keeping the given one (a longer --budget tries the others).");
        }

        AnsiConsole.MarkupLineInterpolated($"Recipe: [bold]{best.Name}[/] ({best.Kind.ToString().ToUpperInvariant()} {best.Layers}×{best.Hidden}, {best.FrontEnd}), of {table.Count} judged in {clock.Elapsed.TotalSeconds:0} s.");
        return (best, $" recipe={best.Name.Replace(' ', '-')} search=[{string.Join(';', table).Replace(' ', '-')}]");
    }

    /// <summary>Reads a duration such as 90s, 10m, 1.5h or 45 (seconds); null stays null.</summary>
    /// <exception cref="ArgumentException">The text is not a positive duration.</exception>
    internal static TimeSpan? ParseDuration(string? text)
    {
        if (text is null)
        {
            return null;
        }

        string t = text.Trim();
        double scale = t.EndsWith('h') ? 3600 : t.EndsWith('m') ? 60 : 1;
        string number = t.TrimEnd('h', 'm', 's');
        return double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && value > 0 && double.IsFinite(value)
            ? TimeSpan.FromSeconds(value * scale)
            : throw new ArgumentException($"--budget: '{text}' is not a duration such as 90s, 10m or 1h.");
    }

    /// <summary>The front end asked for on the command line: causal convolutions and the running input normalisation.</summary>
    /// <param name="Layers">Convolutions (0: none).</param>
    /// <param name="Channels">Channels of each.</param>
    /// <param name="Kernel">Taps of each.</param>
    internal sealed record FrontEndOptions(int? Layers, int Channels, int Kernel)
    {
        /// <summary>The default number of convolutions for series data sets (docs/training.md).</summary>
        public const int DefaultSeriesLayers = 3;

        /// <summary>The default window slicing for series data sets (docs/training.md): 0.9 of each sequence.</summary>
        public const double DefaultSeriesSlice = 0.9;

        /// <summary>The options with the data set's defaults filled in (no window slicing when the model also forecasts).</summary>
        public FrontEndOptions For(LabeledDataSet set, bool forecasts) => this with
        {
            Layers = Layers ?? (set.IsRecordings ? 0 : DefaultSeriesLayers),
            Slice = Slice ?? (set.IsRecordings || forecasts ? 0 : DefaultSeriesSlice),
            InputNormalization = InputNormalization ?? (!set.IsRecordings && ScaleSpread(set.Train) > RunningNormalizationSpread ? "running" : "none"),
        };

        /// <summary>
        /// The scale spread above which series get the running input normalisation by default: 100, two orders of
        /// magnitude between the 10th and 90th percentile of the training series' RMS. Global standardisation then
        /// leaves the quiet series near zero, where their shape cannot be learned (PLAID spans 10⁵: 0.387 without,
        /// 0.655 with; the other 20 UCR sets span at most 8.6, and the running normalisation as a default for all of
        /// them cost Trace 25 points; docs/training.md).
        /// </summary>
        public const double RunningNormalizationSpread = 100;

        /// <summary>The 90th over the 10th percentile of the sequences' root-mean-square values (1 when they are all alike; infinite when a tenth are silent).</summary>
        public static double ScaleSpread(IReadOnlyList<LabeledSequence> sequences)
        {
            ArgumentNullException.ThrowIfNull(sequences);
            if (sequences.Count == 0)
            {
                return 1;
            }

            double[] rms = [.. sequences.Select(s =>
            {
                ReadOnlySpan<float> v = s.Values;
                double sum = 0;
                foreach (float x in v)
                {
                    sum += (double)x * x;
                }

                return v.IsEmpty ? 0 : Math.Sqrt(sum / v.Length);
            })];
            Array.Sort(rms);
            double low = rms[(int)(0.1 * (rms.Length - 1))], high = rms[(int)Math.Ceiling(0.9 * (rms.Length - 1))];
            return high == 0 ? 1 : low == 0 ? double.PositiveInfinity : high / low;
        }

        /// <summary>Window slicing while training (<c>--augment-slice</c>): the fraction of each sequence a window keeps, 0 for off; null until <see cref="For"/>.</summary>
        public double? Slice { get; init; }

        /// <summary>The running input normalisation (<c>--input-norm</c>): none or running; null until <see cref="For"/> (running when the series' scales spread over <see cref="RunningNormalizationSpread"/>).</summary>
        public string? InputNormalization { get; init; }

        /// <summary>Refuses values out of range, naming the option.</summary>
        public void Validate()
        {
            if (Slice is < 0 or >= 1)
            {
                throw new ArgumentException($"--augment-slice must be in [0, 1): the fraction of each sequence a training window keeps, 0 for off (got {Slice}).");
            }

            if (InputNormalization is not (null or "none" or "running"))
            {
                throw new ArgumentException($"--input-norm must be none or running (got '{InputNormalization}').");
            }

            if (Layers is < 0 or > 12)
            {
                throw new ArgumentException($"--conv-layers must be 0 to 12 (got {Layers}).");
            }

            if (Channels is < 1 or > 1024 || Kernel is < 1 or > 64)
            {
                throw new ArgumentException($"--conv-channels must be 1 to 1024 and --conv-kernel 1 to 64 (got {Channels} and {Kernel}).");
            }
        }

        /// <summary>Dilations 1, 2, 4, …; every convolution after the first adds its input (residual).</summary>
        public List<ConvolutionArchitecture> Build() => [.. Enumerable.Range(0, Layers ?? 0).Select(i => new ConvolutionArchitecture
        {
            Channels = Channels,
            Kernel = Kernel,
            Dilation = 1 << i,
            Residual = i > 0,
        })];

        /// <inheritdoc/>
        public override string ToString() => (Layers is null or 0 ? "conv=none" : $"conv={Layers}x{Channels}k{Kernel}") + $" input-norm={InputNormalization}" + (Slice > 0 ? $" slice={Slice}" : string.Empty);
    }

    /// <summary>
    /// The members of an ensemble train from seeds seed … seed+K−1 by default on series data sets: on the 21 UCR sets
    /// five members gave the figures in docs/training.md.
    /// </summary>
    internal const int DefaultSeriesEnsemble = 5;

    /// <summary>
    /// Trains one network with the live epoch table on a terminal, or one plain line per epoch when the output is a
    /// file or a pipe (a live table would be written out again at every epoch); returns its history.
    /// </summary>
    private static IReadOnlyList<EpochReport> TrainOne(TrainingNetwork network, IReadOnlyList<LabeledSequence> train, IReadOnlyList<LabeledSequence> held, TrainerOptions options, CancellationToken cancellationToken)
    {
        if (Console.IsOutputRedirected)
        {
            return Trainer.Train(network, train, held, options, report =>
            {
                double eta = report.Seconds * (options.Epochs - report.Epoch);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"epoch {report.Epoch}/{options.Epochs}{(report.IsBest ? " *" : string.Empty)}  loss {report.Loss:F4}  acc {report.Accuracy:P1}  val loss {Number(report.ValidationLoss, "F4")}  val acc {Number(report.ValidationAccuracy, "P1")}  lr {report.LearningRate:G3}  {report.Seconds:F3} s/epoch  ETA {TimeSpan.FromSeconds(eta):mm\\:ss}"));
            }, cancellationToken);
        }

        var table = new Table().AddColumns("epoch", "loss", "acc", "val loss", "val acc", "lr", "s/epoch", "ETA");
        IReadOnlyList<EpochReport> history = [];
        AnsiConsole.Live(table).Start(context =>
        {
            history = Trainer.Train(network, train, held, options, report =>
            {
                double eta = report.Seconds * (options.Epochs - report.Epoch);
                table.AddRow(
                    report.Epoch.ToString(CultureInfo.InvariantCulture) + (report.IsBest ? " *" : string.Empty),
                    report.Loss.ToString("F4", CultureInfo.InvariantCulture), report.Accuracy.ToString("P1", CultureInfo.InvariantCulture),
                    Number(report.ValidationLoss, "F4"), Number(report.ValidationAccuracy, "P1"),
                    report.LearningRate.ToString("G3", CultureInfo.InvariantCulture), report.Seconds.ToString("F3", CultureInfo.InvariantCulture),
                    TimeSpan.FromSeconds(eta).ToString(@"mm\:ss", CultureInfo.InvariantCulture));
                while (table.Rows.Count > 12)
                {
                    table.Rows.RemoveAt(0);
                }

                context.Refresh();
            }, cancellationToken);
        });
        return history;
    }

    /// <summary>A figure, or "-" when there is none (no validation split: NaN).</summary>
    private static string Number(double value, string format) => double.IsNaN(value) ? "-" : value.ToString(format, CultureInfo.InvariantCulture);

    private static void Print(ClassificationMetrics metrics, string title)
    {
        AnsiConsole.MarkupLineInterpolated($"[bold]{title}[/]: accuracy [bold]{metrics.Accuracy:P2}[/], macro-F1 {metrics.MacroF1:F4} over {metrics.Count} sequences");
        var table = new Table().AddColumns("class", "precision", "recall", "F1");
        for (int c = 0; c < metrics.ClassNames.Count; c++)
        {
            table.AddRow(metrics.ClassNames[c], metrics.Precision(c).ToString("F3", CultureInfo.InvariantCulture), metrics.Recall(c).ToString("F3", CultureInfo.InvariantCulture), metrics.F1(c).ToString("F3", CultureInfo.InvariantCulture));
        }

        AnsiConsole.Write(table);
        AnsiConsole.MarkupLineInterpolated($"Accuracy after 10%, 20%, … 100% of each sequence: {string.Join("  ", metrics.AccuracyBySeen.Select(a => a.ToString("P0", CultureInfo.InvariantCulture)))}");
    }

    internal static string ToJson(ClassificationMetrics metrics, IReadOnlyList<ClassificationMetrics>? members = null)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteNumber("accuracy", metrics.Accuracy);
            json.WriteNumber("macro_f1", metrics.MacroF1);
            json.WriteNumber("sequences", metrics.Count);
            if (members is { Count: > 0 })
            {
                // An ensemble: each member judged alone on the same sequences.
                json.WriteStartArray("members");
                foreach (ClassificationMetrics m in members)
                {
                    json.WriteStartObject();
                    json.WriteNumber("accuracy", m.Accuracy);
                    json.WriteNumber("macro_f1", m.MacroF1);
                    json.WriteEndObject();
                }

                json.WriteEndArray();
            }

            json.WriteStartArray("classes");
            for (int c = 0; c < metrics.ClassNames.Count; c++)
            {
                json.WriteStartObject();
                json.WriteString("label", metrics.ClassNames[c]);
                json.WriteNumber("precision", metrics.Precision(c));
                json.WriteNumber("recall", metrics.Recall(c));
                json.WriteNumber("f1", metrics.F1(c));
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteStartArray("confusion");
            for (int t = 0; t < metrics.ClassNames.Count; t++)
            {
                json.WriteStartArray();
                for (int p = 0; p < metrics.ClassNames.Count; p++)
                {
                    json.WriteNumberValue(metrics.Confusion[t, p]);
                }

                json.WriteEndArray();
            }

            json.WriteEndArray();
            json.WriteStartArray("accuracy_by_fraction_seen");
            foreach (double a in metrics.AccuracyBySeen)
            {
                json.WriteNumberValue(a);
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }
}
