using System.Globalization;
using Signal.Models.Training;

namespace Signal.Engine.Data;

/// <summary>
/// Groups every <see cref="Frame"/> consecutive samples of a sequence into one step (the frame's samples of every
/// channel, sample-major), so a recurrent network steps once per frame instead of once per sample, as the live
/// engine does. The last frame is zero-padded. Stored in the model file under <see cref="MetadataKey"/>.
/// </summary>
/// <param name="Frame">Samples per step (1: one step per sample).</param>
public sealed record SequenceFraming(int Frame)
{
    /// <summary>The model-file metadata key.</summary>
    public const string MetadataKey = "signal.input.frame";

    /// <summary>
    /// Steps the automatic framing aims at: 128. On the 21 UCR sets with 300 epochs, 64 steps gave a mean of 0.734
    /// (seed 1) and 0.732 (seed 2) against 0.718 and 0.718 for 32 steps and 150 epochs; 16 steps gave 0.688. With the
    /// convolutional front end and the ensemble, 128 steps lifted ACSF1 from 0.710 to 0.810, SonyAIBORobotSurface1
    /// from 0.777 to 0.877 and Computers from 0.624 to 0.652 (docs/training.md has the whole table).
    /// </summary>
    public const int AutoSteps = 128;

    /// <summary>
    /// The automatic choice of <c>signal-edge train</c>: series are cut into about <see cref="AutoSteps"/> frames
    /// (frame = ⌈longest / 128⌉ samples of every channel), which keeps long series learnable by a recurrent
    /// network and training fast.
    /// </summary>
    /// <param name="data">The training split.</param>
    /// <param name="channels">Channels per sample.</param>
    /// <returns>The framing.</returns>
    public static SequenceFraming Auto(IReadOnlyList<LabeledSequence> data, int channels)
    {
        ArgumentNullException.ThrowIfNull(data);
        int longest = data.Max(s => s.Steps);
        return new SequenceFraming(Math.Max(1, (int)Math.Ceiling(longest / (double)AutoSteps)));
    }

    /// <summary>Framed copies of <paramref name="data"/>.</summary>
    /// <param name="data">Sequences of <paramref name="channels"/> values per sample.</param>
    /// <param name="channels">Channels per sample.</param>
    /// <returns>Sequences of ⌈steps / frame⌉ steps of frame × channels values.</returns>
    public IReadOnlyList<LabeledSequence> Apply(IReadOnlyList<LabeledSequence> data, int channels)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (Frame == 1)
        {
            return data;
        }

        return [.. data.Select(s =>
        {
            int steps = (s.Steps + Frame - 1) / Frame;
            float[] values = new float[steps * Frame * channels];
            s.Values.AsSpan(0, s.Steps * channels).CopyTo(values);
            return new LabeledSequence(values, steps, s.Label);
        })];
    }

    /// <summary>The metadata value.</summary>
    /// <returns>The frame length as text.</returns>
    public override string ToString() => Frame.ToString(CultureInfo.InvariantCulture);
}
