using ILGPU;

namespace Signal.Models.Accelerators.Device;

/// <summary>The scalar arguments of <see cref="DeviceKernels.Cell"/>.</summary>
internal struct CellArguments
{
    /// <summary>Streams in the step.</summary>
    public int Rows;

    /// <summary>Columns of the layer input x (the first part of A = [x | h]).</summary>
    public int InputSize;

    /// <summary>Row stride of x.</summary>
    public int InputStride;

    /// <summary>Floats per state slot.</summary>
    public int SlotSize;

    /// <summary>Offset of this layer's h inside a slot.</summary>
    public int HiddenOffset;

    /// <summary>Length of h read into A (0: A = x alone, for the heads and the projection).</summary>
    public int HiddenSize;

    /// <summary>Offset of this layer's c inside a slot (LSTM).</summary>
    public int CellOffset;

    /// <summary>Rows of the packed weights (A's columns rounded up to <see cref="DeviceKernels.TileK"/>).</summary>
    public int Depth;

    /// <summary>Columns of the packed weights (a multiple of <see cref="DeviceKernels.TileN"/>).</summary>
    public int Width;

    /// <summary>Hidden units (LSTM, GRU, RNN) or outputs (linear).</summary>
    public int Units;

    /// <summary>What the epilogue computes: <see cref="DeviceKernels.Lstm"/>, <see cref="DeviceKernels.Gru"/>, …</summary>
    public int Kind;

    /// <summary>Row stride of the output.</summary>
    public int OutputStride;
}

/// <summary>
/// The accelerator's kernels (ILGPU). <see cref="Cell"/> (generated, DeviceKernels.Cell.cs) is the one that matters for
/// speed: a tiled matrix product
/// C = A·W + b over A = [x | h] (h gathered from each stream's slot) with the cell's gates fused into its epilogue, so a
/// layer's step is one launch that writes the new h and updates c in place. Exponentials are computed here from plain
/// arithmetic (<see cref="Exp"/>), so the CPU accelerator in CI and CUDA run the same code without CUDA's libdevice.
/// </summary>
internal static partial class DeviceKernels
{
    /// <summary>Epilogue: LSTM gates i, f, g, o of a unit in a thread's four columns.</summary>
    public const int Lstm = 0;

    /// <summary>Epilogue: GRU columns r, z, n (input part), n (hidden part) of a unit.</summary>
    public const int Gru = 1;

    /// <summary>Epilogue: tanh.</summary>
    public const int RnnTanh = 2;

    /// <summary>Epilogue: ReLU.</summary>
    public const int RnnRelu = 3;

    /// <summary>Epilogue: none (a linear layer: projection, heads).</summary>
    public const int Linear = 4;

    /// <summary>Rows of A per thread group.</summary>
    public const int TileM = 128;

    /// <summary>Columns of W per thread group of <see cref="Cell"/>.</summary>
    public const int TileN = 128;

    /// <summary>Columns of one gate group: a gated cell's 16 units × 4 gates (<see cref="DeviceModel.GatedColumn"/>).</summary>
    public const int GateGroup = 64;

    /// <summary>Depth of one shared-memory stage.</summary>
    public const int TileK = 16;

    /// <summary>Threads per group (16 × 16; each computes 8 rows × 8 columns).</summary>
    public const int GroupSize = 256;

    private const int RowsPerThread = 8;
    private const int ColumnGroups = 16;
    private const int StrideA = TileM + 1; // one float of padding: the transposed store hits 16 different banks

    private static void Epilogue(CellArguments p, int row, int colBase, int tx, float g0, float g1, float g2, float g3, ArrayView<int> slots, ArrayView<float> state, ArrayView<float> bias, ArrayView<float> output)
    {
        if (row >= p.Rows)
        {
            return;
        }

        int c0 = colBase + tx;
        if (p.Kind == Lstm || p.Kind == Gru)
        {
            int unit = (colBase / 4) + tx;
            if (unit >= p.Units)
            {
                return;
            }

            g0 += bias[c0];
            g1 += bias[c0 + 16];
            g2 += bias[c0 + 32];
            g3 += bias[c0 + 48];
            long slot = (long)SlotOf(slots, row) * p.SlotSize;
            float h;
            if (p.Kind == Lstm)
            {
                long ci = slot + p.CellOffset + unit;
                float c = (Sigmoid(g1) * state[ci]) + (Sigmoid(g0) * Tanh(g2));
                state[ci] = c;
                h = Sigmoid(g3) * Tanh(c);
            }
            else
            {
                float r = Sigmoid(g0);
                float z = Sigmoid(g1);
                float n = Tanh(g2 + (r * g3));
                float previous = state[slot + p.HiddenOffset + unit];
                h = ((1 - z) * n) + (z * previous);
            }

            output[((long)row * p.OutputStride) + unit] = h;
            return;
        }

        Store(p, row, c0, g0, bias, output);
        Store(p, row, c0 + 16, g1, bias, output);
        Store(p, row, c0 + 32, g2, bias, output);
        Store(p, row, c0 + 48, g3, bias, output);
    }

    private static int SlotOf(ArrayView<int> slots, int row) => slots[row];

    private static void Store(CellArguments p, int row, int column, float value, ArrayView<float> bias, ArrayView<float> output)
    {
        if (column >= p.Units)
        {
            return;
        }

        value += bias[column];
        if (p.Kind == RnnTanh)
        {
            value = Tanh(value);
        }
        else if (p.Kind == RnnRelu)
        {
            value = value > 0 ? value : 0;
        }

        output[((long)row * p.OutputStride) + column] = value;
    }

    /// <summary>e^x from plain arithmetic: 2^n · e^r with |r| ≤ ln 2 / 2 and a degree-7 Taylor polynomial (relative error below 2e-7).</summary>
    public static float Exp(float x)
    {
        x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
        float t = x * 1.44269504f;
        int n = (int)(t + (t >= 0 ? 0.5f : -0.5f));
        float r = x - (n * 0.693145752f) - (n * 1.42860677e-06f);
        float q = 1f + (r * (1f + (r * (0.5f + (r * (0.166666672f + (r * (0.0416666679f + (r * (0.00833333377f + (r * (0.00138888892f + (r * 0.000198412701f)))))))))))));
        return q * Interop.IntAsFloat((uint)((n + 127) << 23));
    }

    /// <summary>The logistic function 1 / (1 + e^−x).</summary>
    public static float Sigmoid(float x) => 1f / (1f + Exp(-x));

    /// <summary>tanh x = sign(x) · (1 − 2 / (e^{2|x|} + 1)).</summary>
    public static float Tanh(float x)
    {
        float a = x < 0 ? -x : x;
        float t = 1f - (2f / (Exp(2f * a) + 1f));
        return x < 0 ? -t : t;
    }

    /// <summary>
    /// Layer normalisation of each row (one thread per row), as <c>Kernels.LayerNorm</c>: mean and variance in double,
    /// then (x − m) · scale · γ + β.
    /// </summary>
    public static void LayerNorm(Index1D row, int columns, int inputStride, float epsilon, ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> output)
    {
        int r = row;
        long start = (long)r * inputStride;
        double sum = 0;
        for (int i = 0; i < columns; i++)
        {
            sum += x[start + i];
        }

        double mean = sum / columns;
        double squares = 0;
        for (int i = 0; i < columns; i++)
        {
            double d = x[start + i] - mean;
            squares += d * d;
        }

        float scale = (float)(1.0 / Math.Sqrt((squares / columns) + epsilon));
        float m = (float)mean;
        long o = (long)r * columns;
        for (int i = 0; i < columns; i++)
        {
            output[o + i] = ((x[start + i] - m) * scale * gamma[i]) + beta[i];
        }
    }

    /// <summary>Copies each row's new h (<paramref name="width"/> floats) into its stream's slot at <paramref name="offset"/>.</summary>
    public static void Scatter(Index1D index, int width, int sourceStride, int slotSize, int offset, ArrayView<float> source, ArrayView<int> slots, ArrayView<float> state)
    {
        int row = index / width;
        int k = index - (row * width);
        state[((long)slots[row] * slotSize) + offset + k] = source[((long)row * sourceStride) + k];
    }

    /// <summary>Writes whole states (<paramref name="slotSize"/> floats per row of <paramref name="staged"/>) into their slots.</summary>
    public static void LoadStates(Index1D index, int slotSize, ArrayView<float> staged, ArrayView<int> slots, ArrayView<float> state)
    {
        int row = index / slotSize;
        int k = index - (row * slotSize);
        state[((long)slots[row] * slotSize) + k] = staged[index];
    }

    /// <summary>
    /// Copies whole rows of <paramref name="slotSize"/> values, the rows named by <paramref name="slots"/>, into consecutive
    /// rows of <paramref name="staged"/>: states out of their slots, and the trainer's counted head rows.
    /// </summary>
    public static void GatherStates(Index1D index, int slotSize, ArrayView<float> state, ArrayView<int> slots, ArrayView<float> staged)
    {
        int row = index / slotSize;
        int k = index - (row * slotSize);
        staged[index] = state[((long)slots[row] * slotSize) + k];
    }

    /// <summary>
    /// Mean pooling of one step: each stream's running mean of the top layer advances (m ← m + w (h − m), w from the
    /// count of steps kept after the mean, as <c>RecurrentModel.AdvanceMean</c>), and the head's input row [h | m] is
    /// written. The count itself advances in <see cref="PoolCount"/>, after every element has read it.
    /// </summary>
    public static void Pool(Index1D index, int features, int inputStride, int slotSize, int poolOffset, int poolingSteps, ArrayView<float> x, ArrayView<int> slots, ArrayView<float> state, ArrayView<float> headInput)
    {
        int row = index / features;
        int k = index - (row * features);
        long pool = ((long)slots[row] * slotSize) + poolOffset;
        float count = state[pool + features] + 1;
        float weight = 1f / (poolingSteps > 0 && count > poolingSteps ? poolingSteps : count);
        float h = x[((long)row * inputStride) + k];
        float m = state[pool + k];
        m += weight * (h - m);
        state[pool + k] = m;
        long o = (long)row * 2 * features;
        headInput[o + k] = h;
        headInput[o + features + k] = m;
    }

    /// <summary>Advances each stream's pooled step count by one.</summary>
    public static void PoolCount(Index1D row, int features, int slotSize, int poolOffset, ArrayView<int> slots, ArrayView<float> state)
    {
        long at = ((long)slots[(int)row] * slotSize) + poolOffset + features;
        state[at] += 1;
    }

    /// <summary>Softmax of each row's logits into the probabilities (one thread per row).</summary>
    public static void Softmax(Index1D row, int classes, ArrayView<float> logits, ArrayView<float> probabilities) =>
        SoftmaxRow((long)(int)row * classes, classes, logits, probabilities);

    /// <summary>probabilities[o…o+classes) = softmax(logits[o…o+classes)), the maximum subtracted first.</summary>
    private static void SoftmaxRow(long o, int classes, ArrayView<float> logits, ArrayView<float> probabilities)
    {
        float top = logits[o];
        for (int i = 1; i < classes; i++)
        {
            float v = logits[o + i];
            top = v > top ? v : top;
        }

        float total = 0;
        for (int i = 0; i < classes; i++)
        {
            float e = Exp(logits[o + i] - top);
            probabilities[o + i] = e;
            total += e;
        }

        float inverse = 1f / total;
        for (int i = 0; i < classes; i++)
        {
            probabilities[o + i] *= inverse;
        }
    }

    /// <summary>
    /// The classification head for a few classes (one thread per stream): each class's logit as a dot product of the
    /// row with that class's weights (row-major, PyTorch's layout), then the softmax. For a handful of classes this
    /// reads each row once instead of computing a 128-column tile of which all but a few columns are padding.
    /// </summary>
    public static void HeadSmall(Index1D index, int classes, int inputs, int inputStride, ArrayView<float> x, ArrayView<float> weights, ArrayView<float> bias, ArrayView<float> logits, ArrayView<float> probabilities)
    {
        int row = index;
        long xi = (long)row * inputStride;
        long o = (long)row * classes;
        for (int c = 0; c < classes; c++)
        {
            long wi = (long)c * inputs;
            float sum = bias[c];
            for (int k = 0; k < inputs; k++)
            {
                sum += x[xi + k] * weights[wi + k];
            }

            logits[o + c] = sum;
        }

        SoftmaxRow(o, classes, logits, probabilities);
    }
}
