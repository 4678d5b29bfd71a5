using Signal.Models.Training;

namespace Signal.Models.Accelerators;

/// <summary>
/// The loss and gradients of a batch computed on an accelerator: what <see cref="TrainingNetwork.Loss"/> computes on the
/// CPU, for the same network (its current weights) and batch, with the gradients added to the network's.
/// </summary>
public interface IAcceleratedLoss : IDisposable
{
    /// <summary>Where it runs, in words.</summary>
    string Device { get; }

    /// <summary>The batch's loss, and with <paramref name="backward"/> its gradients added to <paramref name="network"/>'s.</summary>
    /// <param name="network">The network whose weights are used (uploaded at each call).</param>
    /// <param name="batch">The batch.</param>
    /// <param name="loss">Which steps take a loss.</param>
    /// <param name="classWeights">Per-class weights, or null for 1.</param>
    /// <param name="backward">Whether to compute gradients.</param>
    /// <param name="correct">Counted steps whose arg-max class is the label.</param>
    /// <param name="counted">Counted steps.</param>
    /// <param name="weightTotal">The normaliser Σ wᵧ when this batch is part of a larger one; default this batch's own.</param>
    /// <returns>The loss.</returns>
    double Loss(TrainingNetwork network, SequenceBatch batch, LossKind loss, float[]? classWeights, bool backward, out int correct, out int counted, double weightTotal = 0);
}
