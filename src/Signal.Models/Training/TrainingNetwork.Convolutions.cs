using Signal.Models.Networks;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace Signal.Models.Training;

/// <summary>The causal convolutional front end's forward and backward passes (see <see cref="ConvolutionArchitecture"/>).</summary>
public sealed partial class TrainingNetwork
{
    /// <summary>
    /// Runs the convolutions over one sequence: per step, the taps x[t − (k−1−j)·d] (zero before the start, as
    /// PyTorch's left padding) are gathered into a row, multiplied by the weights, activated by ReLU and, for a
    /// residual block, added to the input. Returns the last convolution's output [n × channels].
    /// </summary>
    private float[] ConvolutionsForward(Work w, ReadOnlySpan<float> x, int n)
    {
        ReadOnlySpan<float> input = x;
        for (int c = 0; c < _convolutions.Length; c++)
        {
            ConvolutionArchitecture conv = _convolutions[c];
            int inSize = Architecture.ConvolutionInputSize(c), kernel = conv.Kernel, taps = kernel * inSize, channels = conv.Channels;
            float[] weights = w.ConvWeights[c], tapRows = w.ConvTaps[c], output = w.ConvOutputs[c], activated = w.ConvActivated[c];
            float[] bias = _byName[$"convs.{c}.bias"].Value;
            for (int t = 0; t < n; t++)
            {
                Span<float> row = tapRows.AsSpan(t * taps, taps);
                for (int k = 0; k < kernel; k++)
                {
                    int source = t - ((kernel - 1 - k) * conv.Dilation);
                    Span<float> slot = row.Slice(k * inSize, inSize);
                    if (source < 0)
                    {
                        slot.Clear();
                    }
                    else
                    {
                        input.Slice(source * inSize, inSize).CopyTo(slot);
                    }
                }

                Span<float> a = activated.AsSpan(t * channels, channels);
                for (int o = 0; o < channels; o++)
                {
                    a[o] = MathF.Max(0f, bias[o] + TensorPrimitives.Dot(weights.AsSpan(o * taps, taps), row));
                }

                Span<float> y = output.AsSpan(t * channels, channels);
                if (conv.Residual)
                {
                    TensorPrimitives.Add(a, input.Slice(t * inSize, inSize), y);
                }
                else
                {
                    a.CopyTo(y);
                }
            }

            input = output.AsSpan(0, n * channels);
        }

        return w.ConvOutputs[^1];
    }

    /// <summary>
    /// Back-propagates the gradient at the front end's output (<c>ConvGradients[^1]</c>, filled by the first recurrent
    /// layer) through every convolution into the weight and bias gradients; the input's gradient is not needed.
    /// </summary>
    private void ConvolutionsBackward(Work w, int n)
    {
        for (int c = _convolutions.Length - 1; c >= 0; c--)
        {
            ConvolutionArchitecture conv = _convolutions[c];
            int inSize = Architecture.ConvolutionInputSize(c), kernel = conv.Kernel, taps = kernel * inSize, channels = conv.Channels;
            float[] weights = w.ConvWeights[c], tapRows = w.ConvTaps[c], activated = w.ConvActivated[c], dOutput = w.ConvGradients[c];
            float[] dTaps = w.ConvTapGradients[c], tapGradient = w.ConvWeightGradients[c];
            Parameter bias = _byName[$"convs.{c}.bias"];
            float[]? dInput = c > 0 ? w.ConvGradients[c - 1] : null;
            if (dInput is not null)
            {
                Array.Clear(dInput, 0, n * inSize);
            }

            Array.Clear(dTaps, 0, n * taps);
            for (int t = 0; t < n; t++)
            {
                ReadOnlySpan<float> dy = dOutput.AsSpan(t * channels, channels);
                if (conv.Residual && dInput is not null)
                {
                    Span<float> di = dInput.AsSpan(t * inSize, inSize);
                    TensorPrimitives.Add(di, dy, di);
                }

                ReadOnlySpan<float> a = activated.AsSpan(t * channels, channels);
                ReadOnlySpan<float> row = tapRows.AsSpan(t * taps, taps);
                Span<float> dRow = dTaps.AsSpan(t * taps, taps);
                for (int o = 0; o < channels; o++)
                {
                    // ReLU passes the gradient where its output was positive.
                    if (a[o] <= 0 || dy[o] == 0)
                    {
                        continue;
                    }

                    float d = dy[o];
                    bias.Gradient[o] += d;
                    Span<float> gRow = tapGradient.AsSpan(o * taps, taps);
                    TensorPrimitives.MultiplyAdd(row, d, gRow, gRow);
                    if (dInput is not null)
                    {
                        TensorPrimitives.MultiplyAdd(weights.AsSpan(o * taps, taps), d, dRow, dRow);
                    }
                }

                if (dInput is null)
                {
                    continue;
                }

                // Scatter the taps' gradient back to the steps they were read from.
                for (int k = 0; k < kernel; k++)
                {
                    int source = t - ((kernel - 1 - k) * conv.Dilation);
                    if (source >= 0)
                    {
                        Span<float> di = dInput.AsSpan(source * inSize, inSize);
                        TensorPrimitives.Add(di, dRow.Slice(k * inSize, inSize), di);
                    }
                }
            }

        }
    }

    /// <summary>The weights in tap-major order, once per <see cref="Loss"/> call (they do not change within one).</summary>
    private void PrepareConvolutions(Work w)
    {
        for (int c = 0; c < _convolutions.Length; c++)
        {
            Repack(_byName[$"convs.{c}.weight"].Value, w.ConvWeights[c], _convolutions[c].Channels, Architecture.ConvolutionInputSize(c), _convolutions[c].Kernel);
        }
    }

    /// <summary>
    /// Adds the weight gradients the sequences of one <see cref="Loss"/> call accumulated in tap-major order to the
    /// parameters, in PyTorch's [out, in, kernel] layout (one conversion per call, not per sequence).
    /// </summary>
    private void FinishConvolutions(Work w)
    {
        for (int c = 0; c < _convolutions.Length; c++)
        {
            int inSize = Architecture.ConvolutionInputSize(c), kernel = _convolutions[c].Kernel, taps = kernel * inSize, channels = _convolutions[c].Channels;
            float[] tapGradient = w.ConvWeightGradients[c], gradient = _byName[$"convs.{c}.weight"].Gradient;
            for (int o = 0; o < channels; o++)
            {
                for (int i = 0; i < inSize; i++)
                {
                    for (int k = 0; k < kernel; k++)
                    {
                        gradient[(((o * inSize) + i) * kernel) + k] += tapGradient[(o * taps) + (k * inSize) + i];
                    }
                }
            }
        }
    }

    /// <summary>PyTorch's [out, in, kernel] as [out, kernel · in] (tap-major, as the taps are gathered).</summary>
    private static void Repack(float[] weight, float[] tapMajor, int channels, int inSize, int kernel)
    {
        for (int o = 0; o < channels; o++)
        {
            for (int i = 0; i < inSize; i++)
            {
                for (int k = 0; k < kernel; k++)
                {
                    tapMajor[(o * kernel * inSize) + (k * inSize) + i] = weight[(((o * inSize) + i) * kernel) + k];
                }
            }
        }
    }
}
