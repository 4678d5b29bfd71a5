using Signal.Models.Files;
using Signal.Models.Networks;

namespace Signal.Models.Accelerators.Device;

/// <summary>One linear map packed for <see cref="DeviceKernels.Cell"/>: W as depth × width (row k = input column k), and the bias.</summary>
/// <param name="Weights">Depth × width floats, zero-padded.</param>
/// <param name="Bias">Width floats.</param>
/// <param name="Depth">Input columns rounded up to <see cref="DeviceKernels.TileK"/>.</param>
/// <param name="Width">Output columns rounded up to <see cref="DeviceKernels.TileN"/>.</param>
/// <param name="Units">Hidden units or outputs.</param>
/// <param name="Kind">The kernel's epilogue.</param>
internal sealed record PackedLinear(float[] Weights, float[] Bias, int Depth, int Width, int Units, int Kind);

/// <summary>One layer of a model as the accelerator steps it.</summary>
/// <param name="Cell">The gates' product over [x | h] with the cell's epilogue.</param>
/// <param name="Projection">The LSTM projection (h_t → r_t), or null.</param>
/// <param name="Gamma">Layer norm γ of the layer's input, or null.</param>
/// <param name="Beta">Layer norm β.</param>
/// <param name="InputSize">Columns of the layer's input.</param>
/// <param name="Hidden">Hidden units.</param>
/// <param name="StateSize">Floats of h (the projection size when projected).</param>
/// <param name="HiddenOffset">Offset of h in a state.</param>
/// <param name="CellOffset">Offset of c in a state (LSTM).</param>
internal sealed record PackedLayer(PackedLinear Cell, PackedLinear? Projection, float[]? Gamma, float[]? Beta, int InputSize, int Hidden, int StateSize, int HiddenOffset, int CellOffset);

/// <summary>
/// A model's weights laid out for the accelerator, from the model's PyTorch-named tensors. Gated cells put a unit's
/// gates 16 columns apart inside each 64-column tile (unit j, gate g → column 64·⌊j/16⌋ + 16·g + j mod 16), so one
/// thread of <see cref="DeviceKernels.Cell"/> holds all gates of one unit. A GRU's four columns are r and z over
/// [x | h], then n's input part (h's rows zero) and n's hidden part (x's rows zero), which its reset gate multiplies.
/// </summary>
internal static class DeviceModel
{
    /// <summary>Packs every layer and both heads.</summary>
    public static (PackedLayer[] Layers, PackedLinear? Head, PackedLinear? Forecast) Pack(RecurrentModel model)
    {
        ModelArchitecture a = model.Architecture;
        var layers = new PackedLayer[a.Layers.Count];
        for (int i = 0; i < layers.Length; i++)
        {
            LayerArchitecture layer = a.Layers[i];
            int input = a.LayerInputSize(i);
            int h = layer.HiddenSize, hs = layer.StateSize;
            string p = $"{a.LayerPrefix(i)}.", l = $"_l{layer.Index}";
            float[] wih = Get(model, $"{p}weight_ih{l}"), whh = Get(model, $"{p}weight_hh{l}");
            float[]? bih = layer.Bias ? Get(model, $"{p}bias_ih{l}") : null, bhh = layer.Bias ? Get(model, $"{p}bias_hh{l}") : null;
            int columns = input + hs;
            float Joined(int row, int k) => k < input ? wih[(row * input) + k] : whh[(row * hs) + (k - input)];
            float BiasOf(int row) => (bih?[row] ?? 0f) + (bhh?[row] ?? 0f);
            PackedLinear cell = layer.Kind switch
            {
                CellKind.Lstm => Gated(h, columns, DeviceKernels.Lstm, (j, g, k) => Joined((g * h) + j, k), (j, g) => BiasOf((g * h) + j)),
                CellKind.Gru => Gated(h, columns, DeviceKernels.Gru, (j, g, k) => g switch
                {
                    0 or 1 => Joined((g * h) + j, k),
                    2 => k < input ? wih[(((2 * h) + j) * input) + k] : 0f,
                    _ => k < input ? 0f : whh[(((2 * h) + j) * hs) + (k - input)],
                }, (j, g) => g switch
                {
                    0 or 1 => BiasOf((g * h) + j),
                    2 => bih?[(2 * h) + j] ?? 0f,
                    _ => bhh?[(2 * h) + j] ?? 0f,
                }),
                _ => Plain(h, columns, layer.IsRelu ? DeviceKernels.RnnRelu : DeviceKernels.RnnTanh, (j, k) => Joined(j, k), BiasOf),
            };
            PackedLinear? projection = null;
            if (layer.ProjectionSize > 0)
            {
                float[] whr = Get(model, $"{p}weight_hr{l}");
                projection = Plain(hs, h, DeviceKernels.Linear, (o, k) => whr[(o * h) + k], _ => 0f);
            }

            float[]? gamma = layer.LayerNorm ? Get(model, $"{a.NormPrefix(i)}.weight") : null;
            float[]? beta = layer.LayerNorm ? Get(model, $"{a.NormPrefix(i)}.bias") : null;
            layers[i] = new PackedLayer(cell, projection, gamma, beta, input, h, hs, model.HiddenOffset(i), model.CellOffset(i));
        }

        PackedLinear? head = null, forecast = null;
        if (a.Classes > 0)
        {
            float[] w = Get(model, a.HeadPrefix + ".weight"), b = Get(model, a.HeadPrefix + ".bias");
            int n = a.HeadInputSize;
            head = Plain(a.Classes, n, DeviceKernels.Linear, (o, k) => w[(o * n) + k], o => b[o]);
        }

        if (a.ForecastSize > 0)
        {
            float[] w = Get(model, a.ForecastPrefix + ".weight"), b = Get(model, a.ForecastPrefix + ".bias");
            int n = a.FeatureSize;
            forecast = Plain(a.ForecastSize, n, DeviceKernels.Linear, (o, k) => w[(o * n) + k], o => b[o]);
        }

        return (layers, head, forecast);
    }

    /// <summary>Column of gate <paramref name="gate"/> of unit <paramref name="unit"/> in a gated layout.</summary>
    public static int GatedColumn(int unit, int gate) => ((unit / 16) * DeviceKernels.GateGroup) + (gate * 16) + (unit % 16);

    private static PackedLinear Gated(int units, int columns, int kind, Func<int, int, int, float> weight, Func<int, int, float> bias)
    {
        int depth = RoundUp(columns, DeviceKernels.TileK), width = RoundUp(RoundUp(units, 16) * 4, DeviceKernels.TileN);
        float[] w = new float[(long)depth * width], b = new float[width];
        for (int j = 0; j < units; j++)
        {
            for (int g = 0; g < 4; g++)
            {
                int n = GatedColumn(j, g);
                b[n] = bias(j, g);
                for (int k = 0; k < columns; k++)
                {
                    w[((long)k * width) + n] = weight(j, g, k);
                }
            }
        }

        return new PackedLinear(w, b, depth, width, units, kind);
    }

    private static PackedLinear Plain(int units, int columns, int kind, Func<int, int, float> weight, Func<int, float> bias)
    {
        int depth = RoundUp(columns, DeviceKernels.TileK), width = RoundUp(units, DeviceKernels.TileN);
        float[] w = new float[(long)depth * width], b = new float[width];
        for (int j = 0; j < units; j++)
        {
            b[j] = bias(j);
            for (int k = 0; k < columns; k++)
            {
                w[((long)k * width) + j] = weight(j, k);
            }
        }

        return new PackedLinear(w, b, depth, width, units, kind);
    }

    private static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;

    private static float[] Get(RecurrentModel model, string name) =>
        model.Tensors.TryGetValue(name, out Tensor? t) ? t.Data : throw new ModelFormatException($"tensor '{name}' is missing.");
}
