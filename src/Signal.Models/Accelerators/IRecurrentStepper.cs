using Signal.Models.Networks;

namespace Signal.Models.Accelerators;

/// <summary>
/// Advances many streams by one input each in one batched step: <see cref="BatchStepper"/> on the CPU's SIMD kernels,
/// or <c>AcceleratedStepper</c> on a GPU. Both give the results of stepping each stream alone with
/// <see cref="RecurrentModel.Step"/> (the GPU within 1e-5).
/// </summary>
public interface IRecurrentStepper : IDisposable
{
    /// <summary>The largest batch.</summary>
    int MaxBatch { get; }

    /// <summary>Where the steps run, in words (for logs and <c>info</c>).</summary>
    string Device { get; }

    /// <summary>Steps <paramref name="states"/>.Length streams, each at most once, by one input each.</summary>
    /// <param name="states">The streams' states, 1 to <see cref="MaxBatch"/>, no state twice.</param>
    /// <param name="inputs">One input row per stream, stream-major.</param>
    /// <param name="probabilities">One row of class probabilities per stream, or empty.</param>
    /// <param name="forecasts">One forecast row per stream, or empty.</param>
#pragma warning disable CA1716 // "Step" is a Visual Basic keyword; the name matches BatchStepper.Step and RecurrentModel.Step.
    void Step(ReadOnlySpan<RecurrentState> states, ReadOnlySpan<float> inputs, Span<float> probabilities, Span<float> forecasts = default);
#pragma warning restore CA1716

    /// <summary>
    /// Brings every state whose newest values are in device memory back to its host array in a few large transfers
    /// (before a checkpoint of many streams). Nothing to do on the CPU.
    /// </summary>
    void Synchronize();
}
