using Signal.Models.Accelerators;
using System.Diagnostics;
using Signal.Models.Networks;

namespace Signal.Models.Training;

/// <summary>One labelled sequence for training: <see cref="Steps"/> rows of the model's input size.</summary>
/// <param name="Values">Step-major values (steps × inputs).</param>
/// <param name="Steps">Number of steps.</param>
/// <param name="Label">Class index.</param>
public sealed record LabeledSequence(float[] Values, int Steps, int Label);

/// <summary>Options of <see cref="Trainer"/>, with the defaults of <c>signal-edge train</c>.</summary>
public sealed class TrainerOptions
{
    /// <summary>Maximum epochs. Default 150.</summary>
    public int Epochs { get; set; } = 150;

    /// <summary>Sequences per mini-batch. Default 16.</summary>
    public int BatchSize { get; set; } = 16;

    /// <summary>Peak learning rate. Default 3e-3.</summary>
    public double LearningRate { get; set; } = 3e-3;

    /// <summary>Weight decay (decoupled for AdamW). Default 1e-4.</summary>
    public double WeightDecay { get; set; } = 1e-4;

    /// <summary><c>adamw</c> (default), <c>adam</c> or <c>sgd</c> (momentum 0.9).</summary>
    public string Optimizer { get; set; } = "adamw";

    /// <summary>Global gradient-norm bound; 0 for none. Default 1.</summary>
    public double ClipNorm { get; set; } = 1.0;

    /// <summary>Where the loss is taken. Default <see cref="LossKind.LastStep"/>.</summary>
    public LossKind Loss { get; set; } = LossKind.LastStep;

    /// <summary>Per-class loss weights, or null (none); <see cref="BalanceClasses"/> fills them.</summary>
    public float[]? ClassWeights { get; set; }

    /// <summary>Weight classes by inverse frequency in the training split; null (the default) counts as false here and lets <c>signal-edge train</c> decide from the class counts.</summary>
    public bool? BalanceClasses { get; set; }

    /// <summary>Dropout probability between recurrent layers and before the head, training only (never on recurrent connections). Default 0.</summary>
    public double Dropout { get; set; }

    /// <summary>Truncated back-propagation through time: gradients flow back at most this many steps (the state still carries forward); 0 for full BPTT. Default 0.</summary>
    public int TruncateSteps { get; set; }

    /// <summary>Learning-rate schedule: <c>cosine</c> (default), <c>step</c> (×0.1 at 50% and 75%) or <c>constant</c>.</summary>
    public string Schedule { get; set; } = "cosine";

    /// <summary>
    /// Augmentation while training (never on validation): each training sequence of each batch is multiplied by a
    /// factor drawn from N(1, <see cref="AugmentScale"/>²) (magnitude scaling). Default 0 (off).
    /// </summary>
    public double AugmentScale { get; set; }

    /// <summary>Augmentation while training: N(0, <see cref="AugmentJitter"/>²) noise added to every input (jitter). Default 0 (off).</summary>
    public double AugmentJitter { get; set; }

    /// <summary>
    /// Augmentation while training, window slicing: each training sequence of each batch is cut to a random window of
    /// ⌈f·steps⌉ consecutive steps (f = this fraction), so the network learns to classify from any stretch of that
    /// length. Default 0 (off); classifiers only.
    /// </summary>
    public double AugmentSlice { get; set; }

    /// <summary>
    /// Augmentation while training, magnitude warping (Um et al. 2017): each training sequence is multiplied by a smooth
    /// random curve through six evenly spaced knots drawn from N(1, σ²) (σ = this value), so the network sees the same
    /// shape with slowly varying gain. Default 0 (off).
    /// </summary>
    public double AugmentMagnitudeWarp { get; set; }

    /// <summary>
    /// Augmentation while training, time warping: each training sequence is resampled along a smooth random monotonic
    /// clock (its speed a curve through six knots from N(1, σ²), σ = this value, kept above 0.1; first and last step
    /// fixed), so events arrive a little earlier or later and last a little longer or shorter. Default 0 (off).
    /// </summary>
    public double AugmentTimeWarp { get; set; }

    /// <summary>Label smoothing ε of the classification loss (<see cref="TrainingNetwork.LabelSmoothing"/>). Default 0.</summary>
    public double LabelSmoothing { get; set; }

    /// <summary>Epochs of linear warm-up. Default 3.</summary>
    public int WarmupEpochs { get; set; } = 3;

    /// <summary>Stop after this many epochs without a better validation accuracy (ties: lower loss; best weights kept); 0 to run every epoch. Default 30.</summary>
    public int Patience { get; set; } = 30;

    /// <summary>How <c>signal-edge train</c> draws the starting weights (<see cref="Training.Initialization.Apply"/>). Default <see cref="InitializationKind.XavierOrthogonal"/>.</summary>
    public InitializationKind Initialization { get; set; } = InitializationKind.XavierOrthogonal;

    /// <summary>With a forecasting head next to the classifier: the class the forecast is learned on (-1: every class). Default -1.</summary>
    public int ForecastClass { get; set; } = -1;

    /// <summary>
    /// Forecasting: a recovery prefix of this many disturbed steps before each training sequence (random rows of the
    /// training data, scaled up 2-4× and with noise), which take no loss. The network learns to forecast normal data
    /// again right after abnormal input, so an anomaly score falls back once the anomaly ends. 0 (default): none.
    /// </summary>
    public int RecoveryPrefix { get; set; }

    /// <summary>Seed of the shuffles. Default 1.</summary>
    public int Seed { get; set; } = 1;

    /// <summary>Threads for data-parallel gradients; 0 for all processors.</summary>
    public int Threads { get; set; }

    /// <summary>
    /// Where gradients are computed: <c>cpu</c> (default), <c>cuda</c>, <c>opencl</c>, <c>ilgpu-cpu</c> (a test device),
    /// or <c>auto</c> (CUDA when a driver is present and the network is one the accelerator trains, else the CPU). The
    /// accelerator takes each mini-batch whole; the optimiser stays on the CPU. See docs/accelerators.md.
    /// </summary>
    public string Accelerator { get; set; } = "cpu";

    /// <summary>Checks every field; throws <see cref="ArgumentException"/> naming the bad one.</summary>
    public void Validate()
    {
        _ = AcceleratorKinds.Parse(Accelerator);
        if (Epochs < 1)
        {
            throw new ArgumentException($"epochs must be at least 1 (got {Epochs}).");
        }

        if (BatchSize < 1)
        {
            throw new ArgumentException($"batch size must be at least 1 (got {BatchSize}).");
        }

        if (!(LearningRate > 0))
        {
            throw new ArgumentException($"learning rate must be positive (got {LearningRate}).");
        }

        if (Optimizer is not ("adamw" or "adam" or "sgd"))
        {
            throw new ArgumentException($"optimizer must be adamw, adam or sgd (got '{Optimizer}').");
        }

        if (!(LabelSmoothing >= 0 && LabelSmoothing < 1))
        {
            throw new ArgumentException($"labelSmoothing must be in [0, 1) (got {LabelSmoothing}).");
        }

        if (!(AugmentScale >= 0 && AugmentScale < 1) || !(AugmentJitter >= 0 && AugmentJitter < 10))
        {
            throw new ArgumentException($"augmentScale must be in [0, 1) and augmentJitter in [0, 10) (got {AugmentScale} and {AugmentJitter}).");
        }

        if (!(AugmentMagnitudeWarp >= 0 && AugmentMagnitudeWarp < 1) || !(AugmentTimeWarp >= 0 && AugmentTimeWarp < 1))
        {
            throw new ArgumentException($"augmentMagnitudeWarp and augmentTimeWarp must be in [0, 1): the spread σ of the warping curve's knots around 1, 0 for off (got {AugmentMagnitudeWarp} and {AugmentTimeWarp}).");
        }

        if (!(AugmentSlice >= 0 && AugmentSlice < 1))
        {
            throw new ArgumentException($"augmentSlice must be in [0, 1): the fraction of each sequence a training window keeps, 0 for off (got {AugmentSlice}).");
        }

        if (Dropout is < 0 or >= 1 || double.IsNaN(Dropout))
        {
            throw new ArgumentException($"dropout must be at least 0 and below 1 (got {Dropout}).");
        }

        if (TruncateSteps < 0)
        {
            throw new ArgumentException($"truncation must be 0 (full BPTT) or a number of steps (got {TruncateSteps}).");
        }

        if (Schedule is not ("cosine" or "step" or "constant"))
        {
            throw new ArgumentException($"schedule must be cosine, step or constant (got '{Schedule}').");
        }
    }
}

/// <summary>What one epoch did.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="Loss">Mean training loss.</param>
/// <param name="Accuracy">Training accuracy over the counted steps.</param>
/// <param name="ValidationLoss">Validation loss (NaN without a validation split).</param>
/// <param name="ValidationAccuracy">Validation accuracy (NaN without one).</param>
/// <param name="LearningRate">Learning rate used.</param>
/// <param name="Seconds">Wall time of the epoch.</param>
/// <param name="IsBest">Whether these weights are the best so far.</param>
public sealed record EpochReport(int Epoch, double Loss, double Accuracy, double ValidationLoss, double ValidationAccuracy, double LearningRate, double Seconds, bool IsBest);

/// <summary>
/// Mini-batch training with data-parallel gradients (each thread runs part of the batch on a replica that
/// shares the weights, and the gradients are summed), learning-rate schedules, gradient clipping and early
/// stopping on a validation split that keeps the best weights. Seeded and reproducible for a given thread count.
/// </summary>
public static class Trainer
{
    /// <summary>Trains <paramref name="network"/> in place; on return it holds the best weights.</summary>
    /// <param name="network">The network (its weights are the starting point).</param>
    /// <param name="train">Training sequences.</param>
    /// <param name="validation">Validation sequences for early stopping, or empty.</param>
    /// <param name="options">Options.</param>
    /// <param name="progress">Called after each epoch.</param>
    /// <param name="cancellationToken">Stops cleanly after the current mini-batch, keeping the best weights so far.</param>
    /// <returns>Every epoch's report.</returns>
    public static IReadOnlyList<EpochReport> Train(TrainingNetwork network, IReadOnlyList<LabeledSequence> train, IReadOnlyList<LabeledSequence> validation,
        TrainerOptions options, Action<EpochReport>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(validation);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (train.Count == 0)
        {
            throw new ArgumentException("the training split is empty.", nameof(train));
        }

        bool forecastOnly = network.Architecture.Classes == 0;
        float[]? weights = forecastOnly ? null : options.ClassWeights ?? (options.BalanceClasses == true ? BalancedWeights(train, network.Architecture.Classes) : null);
        Optimizer optimizer = options.Optimizer switch
        {
            "adam" => new Adam(options.LearningRate, options.WeightDecay),
            "sgd" => new Sgd(options.LearningRate, 0.9, options.WeightDecay),
            _ => new Adam(options.LearningRate, options.WeightDecay, decoupled: true),
        };
        using IAcceleratedLoss? device = AcceleratorSelection.CreateLoss(network.Architecture, AcceleratorKinds.Parse(options.Accelerator), options);
        int threads = device is not null ? 1 : Math.Max(1, options.Threads == 0 ? Environment.ProcessorCount : options.Threads);
        TrainingNetwork[] replicas = [network, .. Enumerable.Range(1, threads - 1).Select(_ => network.Replica())];
        for (int r = 0; r < replicas.Length; r++)
        {
            replicas[r].Dropout = options.Dropout;
            replicas[r].LabelSmoothing = options.LabelSmoothing;
            replicas[r].TruncateSteps = options.TruncateSteps;
            replicas[r].ForecastClass = network.Architecture.Classes == 0 ? -1 : options.ForecastClass;
            replicas[r].SeedDropout(unchecked((options.Seed * 7919) + r));
        }

        var random = new Random(options.Seed);
        int[] order = [.. Enumerable.Range(0, train.Count)];
        var history = new List<EpochReport>();
        double bestLoss = double.PositiveInfinity, bestTie = double.PositiveInfinity;
        float[][] best = [.. network.Parameters.Select(p => (float[])p.Value.Clone())];
        int sinceBest = 0;
        for (int epoch = 1; epoch <= options.Epochs && !cancellationToken.IsCancellationRequested; epoch++)
        {
            var clock = Stopwatch.StartNew();
            optimizer.LearningRate = LearningRate(options, epoch);
            random.Shuffle(order);
            double lossSum = 0;
            long correct = 0, counted = 0;
            for (int start = 0; start < order.Length && !cancellationToken.IsCancellationRequested; start += options.BatchSize)
            {
                int[] members = order[start..Math.Min(order.Length, start + options.BatchSize)];
                network.ZeroGradients();
                double total = TotalWeight(train, members, weights, options.Loss);
                (double loss, int c, int n) = Run(replicas, device, train, members, options.Loss, weights, total, backward: true,
                    options.RecoveryPrefix > 0 ? new Random(unchecked((options.Seed * 31) + (epoch * 7919) + start)) : null, options.RecoveryPrefix,
                    options.AugmentScale > 0 || options.AugmentJitter > 0 || options.AugmentSlice > 0 || options.AugmentMagnitudeWarp > 0 || options.AugmentTimeWarp > 0
                        ? (new Random(unchecked((options.Seed * 131) + (epoch * 7919) + start)), options.AugmentScale, options.AugmentJitter, options.AugmentSlice, options.AugmentMagnitudeWarp, options.AugmentTimeWarp)
                        : null);
                if (options.ClipNorm > 0)
                {
                    Optimizer.ClipGradientNorm(network.Parameters, options.ClipNorm);
                }

                optimizer.Update(network.Parameters);
                lossSum += loss * members.Length;
                correct += c;
                counted += n;
            }

            if (cancellationToken.IsCancellationRequested)
            {
                // An interrupted epoch saw part of the data: its weights are not compared, the best so far stay.
                break;
            }

            double validationLoss = double.NaN, validationAccuracy = double.NaN;
            if (validation.Count > 0)
            {
                int[] all = [.. Enumerable.Range(0, validation.Count)];
                (double l, int c, int n) = Run(replicas, device, validation, all, options.Loss, weights, TotalWeight(validation, all, weights, options.Loss), backward: false);
                validationLoss = l;
                validationAccuracy = n == 0 ? 0 : (double)c / n;
            }

            // With a validation split the best epoch has the highest validation accuracy, ties going to the lower
            // validation loss (loss alone stops too early on small splits that overfit the loss while accuracy
            // still rises); without one, the lowest training loss.
            // A forecaster alone has no accuracy: its validation loss decides.
            double monitored = validation.Count > 0 ? (forecastOnly ? validationLoss : -validationAccuracy) : lossSum / train.Count;
            double tieBreak = validation.Count > 0 && !forecastOnly ? validationLoss : 0;
            bool isBest = monitored < bestLoss || (monitored == bestLoss && tieBreak < bestTie);
            if (isBest)
            {
                bestLoss = monitored;
                bestTie = tieBreak;
                sinceBest = 0;
                for (int i = 0; i < best.Length; i++)
                {
                    network.Parameters[i].Value.CopyTo(best[i], 0);
                }
            }
            else
            {
                sinceBest++;
            }

            var report = new EpochReport(epoch, lossSum / train.Count, counted == 0 ? 0 : (double)correct / counted, validationLoss, validationAccuracy, optimizer.LearningRate, clock.Elapsed.TotalSeconds, isBest);
            history.Add(report);
            progress?.Invoke(report);
            if (options.Patience > 0 && validation.Count > 0 && sinceBest >= options.Patience)
            {
                break;
            }
        }

        for (int i = 0; i < best.Length; i++)
        {
            best[i].CopyTo(network.Parameters[i].Value, 0);
        }

        return history;
    }

    /// <summary>The learning rate of <paramref name="epoch"/> (1-based): linear warm-up, then the schedule.</summary>
    /// <param name="options">Options.</param>
    /// <param name="epoch">The epoch.</param>
    /// <returns>The rate.</returns>
    public static double LearningRate(TrainerOptions options, int epoch)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (epoch <= options.WarmupEpochs)
        {
            return options.LearningRate * epoch / (options.WarmupEpochs + 1);
        }

        double progress = (double)(epoch - options.WarmupEpochs - 1) / Math.Max(1, options.Epochs - options.WarmupEpochs);
        return options.Schedule switch
        {
            "cosine" => options.LearningRate * 0.5 * (1 + Math.Cos(Math.PI * progress)),
            "step" => options.LearningRate * (progress >= 0.75 ? 0.01 : progress >= 0.5 ? 0.1 : 1),
            _ => options.LearningRate,
        };
    }

    private static float[] BalancedWeights(IReadOnlyList<LabeledSequence> train, int classes)
    {
        int[] counts = new int[classes];
        foreach (LabeledSequence s in train)
        {
            counts[s.Label]++;
        }

        return [.. counts.Select(c => c == 0 ? 0f : (float)train.Count / (classes * c))];
    }

    private static double TotalWeight(IReadOnlyList<LabeledSequence> data, int[] members, float[]? weights, LossKind loss) =>
        members.Sum(i => (double)(weights?[data[i].Label] ?? 1f) * (loss == LossKind.EveryStep ? data[i].Steps : 1));

    private static (double Loss, int Correct, int Counted) Run(TrainingNetwork[] replicas, IAcceleratedLoss? device, IReadOnlyList<LabeledSequence> data, int[] members,
        LossKind loss, float[]? weights, double total, bool backward, Random? recovery = null, int prefix = 0, (Random Random, double Scale, double Jitter, double Slice, double MagnitudeWarp, double TimeWarp)? augment = null)
    {
        int parts = Math.Min(replicas.Length, members.Length);
        int forecastClass = replicas[0].ForecastClass;
        prefix = recovery is null ? 0 : prefix;
        double forecastTotal = members.Where(i => forecastClass < 0 || data[i].Label == forecastClass).Sum(i => data[i].Steps - (prefix > 0 ? 0.0 : 1.0));
        SequenceBatch[]? packed = null;
        if (prefix > 0)
        {
            // Drawn before the parallel parts, so the disturbance does not depend on the thread count.
            packed = [.. Enumerable.Range(0, parts).Select(part => PackWithPrefix(data, members[(members.Length * part / parts)..(members.Length * (part + 1) / parts)], replicas[0].Architecture.InputSize, prefix, recovery!))];
        }

        if (augment is { } a)
        {
            // Drawn before the parallel parts too, in member order, so the result does not depend on the thread count.
            packed ??= [.. Enumerable.Range(0, parts).Select(part => Pack(data, members[(members.Length * part / parts)..(members.Length * (part + 1) / parts)], replicas[0].Architecture.InputSize))];
            if (a.Slice > 0 && (replicas[0].Architecture.ForecastSize > 0 || prefix > 0))
            {
                throw new ArgumentException("augmentSlice is for classifiers: a forecaster (or a recovery prefix) needs whole sequences.");
            }

            foreach (SequenceBatch batch in packed)
            {
                Augment(batch, a.Random, a.Scale, a.Jitter, a.Slice, a.MagnitudeWarp, a.TimeWarp);
            }
        }
        var results = new (double Loss, int Correct, int Counted)[parts];
        void Part(int part)
        {
            int from = members.Length * part / parts, to = members.Length * (part + 1) / parts;
            TrainingNetwork net = replicas[part];
            if (part > 0 && backward)
            {
                net.ZeroGradients();
            }

            SequenceBatch batch = packed?[part] ?? Pack(data, members[from..to], net.Architecture.InputSize);
            // On an accelerator the whole mini-batch is one part (its sequences advance together on the device).
            double l = device is not null
                ? device.Loss(net, batch, loss, weights, backward, out int c, out int n, total)
                : net.Loss(batch, loss, weights, backward, out c, out n, total, forecastTotal);
            results[part] = (l, c, n);
        }

        if (parts == 1)
        {
            Part(0);
        }
        else
        {
            Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, Part);
            if (backward)
            {
                for (int part = 1; part < parts; part++)
                {
                    replicas[0].AddGradients(replicas[part]);
                }
            }
        }

        return (results.Sum(r => r.Loss), results.Sum(r => r.Correct), results.Sum(r => r.Counted));
    }

    /// <summary>
    /// Window slicing to ⌈slice·steps⌉ steps at a random start (when slice &gt; 0), time warping and magnitude warping
    /// (when their σ &gt; 0), then magnitude scaling by N(1, scale²) per sequence and N(0, jitter²) noise per input, on
    /// each sequence's own steps.
    /// </summary>
    internal static void Augment(SequenceBatch batch, Random random, double scale, double jitter, double slice, double magnitudeWarp = 0, double timeWarp = 0)
    {
        float[]? copy = null;
        double[]? curve = null;
        for (int b = 0; b < batch.Count; b++)
        {
            if (slice > 0)
            {
                int length = batch.Lengths[b], kept = Math.Max(1, (int)Math.Ceiling(slice * length));
                int from = random.Next(length - kept + 1);
                Span<float> row = batch.Inputs.AsSpan(b * batch.Steps * batch.InputSize, length * batch.InputSize);
                row.Slice(from * batch.InputSize, kept * batch.InputSize).CopyTo(row);
                row[(kept * batch.InputSize)..].Clear();
                batch.Lengths[b] = kept;
            }

            int steps = batch.Lengths[b], inputs = batch.InputSize;
            Span<float> values = batch.Inputs.AsSpan(b * batch.Steps * inputs, steps * inputs);
            if (timeWarp > 0 && steps > 2)
            {
                // The clock's speed at each step, summed into the warped time of each step, scaled to end at the last step.
                curve = WarpCurve(random, timeWarp, steps, curve);
                copy = copy is null || copy.Length < values.Length ? new float[batch.Steps * inputs] : copy;
                values.CopyTo(copy);
                double total = 0;
                for (int t = 1; t < steps; t++)
                {
                    total += Math.Max(0.1, curve[t]);
                }

                double at = 0;
                for (int t = 0; t < steps; t++)
                {
                    at += t == 0 ? 0 : Math.Max(0.1, curve[t]);
                    double position = Math.Min(steps - 1, at / total * (steps - 1));
                    int i0 = (int)position, i1 = Math.Min(steps - 1, i0 + 1);
                    float w = (float)(position - i0);
                    for (int j = 0; j < inputs; j++)
                    {
                        values[(t * inputs) + j] = ((1 - w) * copy[(i0 * inputs) + j]) + (w * copy[(i1 * inputs) + j]);
                    }
                }
            }

            if (magnitudeWarp > 0)
            {
                curve = WarpCurve(random, magnitudeWarp, steps, curve);
                for (int t = 0; t < steps; t++)
                {
                    float gain = (float)curve[t];
                    for (int j = 0; j < inputs; j++)
                    {
                        values[(t * inputs) + j] *= gain;
                    }
                }
            }

            float factor = (float)(1 + (scale * Gaussian(random)));
            for (int i = 0; i < values.Length; i++)
            {
                values[i] = (values[i] * factor) + (jitter > 0 ? (float)(jitter * Gaussian(random)) : 0);
            }
        }
    }

    /// <summary>
    /// A smooth random curve over <paramref name="steps"/> steps: six evenly spaced knots drawn from N(1, σ²), joined by
    /// Catmull-Rom splines (through every knot, continuous slope).
    /// </summary>
    internal static double[] WarpCurve(Random random, double sigma, int steps, double[]? reuse = null)
    {
        const int Knots = 6;
        Span<double> knot = stackalloc double[Knots + 2];
        for (int k = 1; k <= Knots; k++)
        {
            knot[k] = 1 + (sigma * Gaussian(random));
        }

        knot[0] = (2 * knot[1]) - knot[2]; // ends continued linearly
        knot[Knots + 1] = (2 * knot[Knots]) - knot[Knots - 1];
        double[] curve = reuse is not null && reuse.Length >= steps ? reuse : new double[steps];
        for (int t = 0; t < steps; t++)
        {
            double x = steps == 1 ? 0 : (double)t / (steps - 1) * (Knots - 1);
            int k = Math.Min((int)x, Knots - 2);
            double u = x - k, p0 = knot[k], p1 = knot[k + 1], p2 = knot[k + 2], p3 = knot[k + 3];
            curve[t] = 0.5 * ((2 * p1) + ((p2 - p0) * u) + (((2 * p0) - (5 * p1) + (4 * p2) - p3) * u * u) + (((3 * p1) - p0 - (3 * p2) + p3) * u * u * u));
        }

        return curve;
    }

    private static double Gaussian(Random random) => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    /// <summary>Packs with a disturbed prefix of <paramref name="prefix"/> steps before each sequence (no loss on it).</summary>
    private static SequenceBatch PackWithPrefix(IReadOnlyList<LabeledSequence> data, int[] members, int inputs, int prefix, Random random)
    {
        int steps = members.Max(i => data[i].Steps) + prefix;
        float[] values = new float[members.Length * steps * inputs];
        for (int b = 0; b < members.Length; b++)
        {
            Span<float> row = values.AsSpan(b * steps * inputs, steps * inputs);
            for (int p = 0; p < prefix; p++)
            {
                LabeledSequence other = data[random.Next(data.Count)];
                ReadOnlySpan<float> source = other.Values.AsSpan(random.Next(other.Steps) * inputs, inputs);
                float gain = (float)(2 + (2 * random.NextDouble()));
                for (int j = 0; j < inputs; j++)
                {
                    double noise = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
                    row[(p * inputs) + j] = (gain * source[j]) + (float)noise;
                }
            }

            LabeledSequence s = data[members[b]];
            s.Values.AsSpan(0, s.Steps * inputs).CopyTo(row[(prefix * inputs)..]);
        }

        return new SequenceBatch(values, members.Length, steps, inputs, [.. members.Select(i => data[i].Steps + prefix)], [.. members.Select(i => data[i].Label)])
        {
            Skip = [.. members.Select(_ => prefix)],
        };
    }

    private static SequenceBatch Pack(IReadOnlyList<LabeledSequence> data, int[] members, int inputs)
    {
        int steps = members.Max(i => data[i].Steps);
        float[] values = new float[members.Length * steps * inputs];
        for (int b = 0; b < members.Length; b++)
        {
            LabeledSequence s = data[members[b]];
            s.Values.AsSpan(0, s.Steps * inputs).CopyTo(values.AsSpan(b * steps * inputs));
        }

        return new SequenceBatch(values, members.Length, steps, inputs, [.. members.Select(i => data[i].Steps)], [.. members.Select(i => data[i].Label)]);
    }
}
