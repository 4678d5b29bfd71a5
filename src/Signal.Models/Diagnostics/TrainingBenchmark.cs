using Signal.Models.Accelerators;
using Signal.Models.Networks;
using Signal.Models.Training;

namespace Signal.Models.Diagnostics;

/// <summary>One side of <see cref="TrainingBenchmark"/>: an epoch of the same network and data on one device.</summary>
/// <param name="Device">Where the gradients were computed.</param>
/// <param name="EpochSeconds">Wall time of the measured epoch (the second: the first compiles kernels and warms caches).</param>
/// <param name="SequencesPerSecond">Training sequences per second in that epoch.</param>
/// <param name="FirstEpochLoss">Training loss of the first epoch (both sides start from the same weights and data).</param>
/// <param name="SecondEpochLoss">Training loss of the measured epoch.</param>
public sealed record TrainingBenchSide(string Device, double EpochSeconds, double SequencesPerSecond, double FirstEpochLoss, double SecondEpochLoss);

/// <summary>
/// The training benchmark behind <c>signal-edge bench train</c>: a stacked LSTM classifier on a synthetic set (noisy
/// sines whose frequency is the class), two epochs with the same options on the CPU trainer (every core) and on the
/// accelerator; the second epoch is timed.
/// </summary>
public static class TrainingBenchmark
{
    /// <summary>Runs both sides.</summary>
    /// <param name="kind">The accelerator.</param>
    /// <param name="hidden">Hidden units per layer.</param>
    /// <param name="layers">LSTM layers.</param>
    /// <param name="sequences">Training sequences.</param>
    /// <param name="steps">Steps per sequence.</param>
    /// <param name="inputs">Inputs per step.</param>
    /// <param name="batch">Sequences per mini-batch (both sides).</param>
    /// <param name="cpu">Whether to run the CPU side.</param>
    /// <param name="progress">Called before each side.</param>
    /// <returns>The accelerator's side, then the CPU's (null when skipped).</returns>
    public static (TrainingBenchSide Device, TrainingBenchSide? Cpu) Run(AcceleratorKind kind, int hidden = 256, int layers = 2, int sequences = 4096, int steps = 100, int inputs = 40, int batch = 256, bool cpu = true, Action<string>? progress = null)
    {
        const int classes = 4;
        var random = new Random(7);
        var data = new List<LabeledSequence>(sequences);
        for (int s = 0; s < sequences; s++)
        {
            int label = s % classes;
            float[] values = new float[steps * inputs];
            double frequency = 0.05 * (label + 1), phase = random.NextDouble() * 6.28;
            for (int t = 0; t < steps; t++)
            {
                for (int i = 0; i < inputs; i++)
                {
                    values[(t * inputs) + i] = (float)(Math.Sin((frequency * t * (1 + (0.1 * i))) + phase) + (0.3 * ((random.NextDouble() * 2) - 1)));
                }
            }

            data.Add(new LabeledSequence(values, steps, label));
        }

        var architecture = new ModelArchitecture
        {
            InputSize = inputs,
            Classes = classes,
            Layers = [.. Enumerable.Range(0, layers).Select(_ => new LayerArchitecture { Kind = CellKind.Lstm, HiddenSize = hidden })],
        };
        RecurrentModel start = RecurrentModel.CreateRandom(architecture, seed: 3);
        TrainingBenchSide Side(string accelerator)
        {
            progress?.Invoke($"{layers}-layer LSTM H={hidden}, {sequences:N0} sequences × {steps} steps, batch {batch}, on {accelerator}");
            var network = new TrainingNetwork(architecture, start.Tensors);
            var options = new TrainerOptions { Epochs = 2, BatchSize = batch, WarmupEpochs = 0, Patience = 0, Accelerator = accelerator, Seed = 5 };
            IReadOnlyList<EpochReport> epochs = Trainer.Train(network, data, [], options);
            string device = accelerator == "cpu" ? $"cpu ({Environment.ProcessorCount} threads)" : accelerator;
            return new TrainingBenchSide(device, epochs[1].Seconds, sequences / epochs[1].Seconds, epochs[0].Loss, epochs[1].Loss);
        }

        TrainingBenchSide onDevice = Side(AcceleratorKinds.Name(kind));
        return (onDevice, cpu ? Side("cpu") : null);
    }
}
