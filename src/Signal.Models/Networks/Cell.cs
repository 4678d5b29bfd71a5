using Signal.Models.Files;
using Signal.Models.Kernels;

namespace Signal.Models.Networks;

/// <summary>
/// One direction of one recurrent layer with its weights packed for the kernels. LSTM and RNN keep
/// [W_ih | W_hh] as one matrix over the concatenated input [x | h] with b_ih + b_hh folded into one bias,
/// so a step is one product; GRU keeps the two products apart because its reset gate multiplies the
/// hidden product of the candidate.
/// </summary>
internal sealed class Cell
{
    public Cell(LayerArchitecture layer, int inputSize, Tensor weightIh, Tensor weightHh, Tensor? biasIh, Tensor? biasHh, Tensor? weightHr, KernelPath path)
    {
        Kind = layer.Kind;
        InputSize = inputSize;
        Hidden = layer.HiddenSize;
        StateSize = layer.StateSize;
        Relu = layer.IsRelu;
        int gates = layer.GateCount * Hidden;
        if (Kind == CellKind.Gru)
        {
            Main = new PackedMatrix(weightIh.Data, gates, inputSize, biasIh?.Data ?? [], path);
            Recurrent = new PackedMatrix(weightHh.Data, gates, Hidden, biasHh?.Data ?? [], path);
        }
        else
        {
            int columns = inputSize + StateSize;
            float[] joined = new float[gates * columns];
            for (int n = 0; n < gates; n++)
            {
                weightIh.Data.AsSpan(n * inputSize, inputSize).CopyTo(joined.AsSpan(n * columns));
                weightHh.Data.AsSpan(n * StateSize, StateSize).CopyTo(joined.AsSpan((n * columns) + inputSize));
            }

            float[] bias = new float[gates];
            for (int n = 0; n < gates; n++)
            {
                bias[n] = (biasIh?.Data[n] ?? 0f) + (biasHh?.Data[n] ?? 0f);
            }

            Main = new PackedMatrix(joined, gates, columns, bias, path);
        }

        if (weightHr is not null)
        {
            Projection = new PackedMatrix(weightHr.Data, StateSize, Hidden, [], path);
        }
    }

    public CellKind Kind { get; }

    public int InputSize { get; }

    public int Hidden { get; }

    /// <summary>Size of the recurrent state h (the projection size when projected).</summary>
    public int StateSize { get; }

    public bool Relu { get; }

    public PackedMatrix Main { get; }

    public PackedMatrix? Recurrent { get; }

    public PackedMatrix? Projection { get; }

    /// <summary>Row stride of the input matrix A = [x | h].</summary>
    public int InputStride => InputSize + StateSize;

    /// <summary>Row stride of the output matrix (wide enough for the padded projection product).</summary>
    public int OutputStride => Math.Max(StateSize, Projection?.PaddedRows ?? 0);

    /// <summary>Floats the cell state c holds (LSTM only).</summary>
    public int CellSize => Kind == CellKind.Lstm ? Hidden : 0;

    /// <summary>Multiply-adds per step, for FLOP counts (each is two FLOPs).</summary>
    public long MultiplyAdds => ((long)Main.Rows * Main.Columns) + ((long)(Recurrent?.Rows ?? 0) * (Recurrent?.Columns ?? 0))
        + ((long)(Projection?.Rows ?? 0) * (Projection?.Columns ?? 0));

    /// <summary>
    /// Advances <paramref name="rows"/> streams: reads [x | h] from <see cref="CellBuffers.A"/> and c from
    /// <see cref="CellBuffers.C"/>, writes the new h to <see cref="CellBuffers.Out"/> and the new c in place.
    /// </summary>
    public void Step(CellBuffers b, int rows, KernelPath path)
    {
        int lda = InputStride;
        int gs = Main.PaddedRows;
        int os = OutputStride;
        int h = Hidden;
        switch (Kind)
        {
            case CellKind.Lstm:
                Kernels.Kernels.Gemm(b.A, lda, rows, Main, b.G, gs, path);
                for (int r = 0; r < rows; r++)
                {
                    Span<float> hOut = Projection is null ? b.Out.AsSpan(r * os, h) : b.Ht.AsSpan(r * h, h);
                    Kernels.Kernels.LstmGates(b.G.AsSpan(r * gs, 4 * h), b.C.AsSpan(r * h, h), hOut, h, path);
                }

                if (Projection is not null)
                {
                    Kernels.Kernels.Gemm(b.Ht, h, rows, Projection, b.Out, os, path);
                }

                break;
            case CellKind.Gru:
                int gs2 = Recurrent!.PaddedRows;
                Kernels.Kernels.Gemm(b.A, lda, rows, Main, b.G, gs, path);
                Kernels.Kernels.Gemm(b.A.AsSpan(InputSize), lda, rows, Recurrent, b.G2, gs2, path);
                for (int r = 0; r < rows; r++)
                {
                    Kernels.Kernels.GruGates(b.G.AsSpan(r * gs, 3 * h), b.G2.AsSpan(r * gs2, 3 * h), b.A.AsSpan((r * lda) + InputSize, h), b.Out.AsSpan(r * os, h), h, path);
                }

                break;
            default:
                Kernels.Kernels.Gemm(b.A, lda, rows, Main, b.G, gs, path);
                for (int r = 0; r < rows; r++)
                {
                    Kernels.Kernels.RnnActivation(b.G.AsSpan(r * gs, h), b.Out.AsSpan(r * os, h), Relu, path);
                }

                break;
        }
    }
}

/// <summary>Scratch matrices for stepping up to <see cref="Rows"/> streams through one <see cref="Cell"/>.</summary>
internal sealed class CellBuffers
{
    public CellBuffers(Cell cell, int rows)
    {
        Rows = rows;
        A = new float[rows * cell.InputStride];
        C = new float[rows * cell.CellSize];
        G = new float[rows * cell.Main.PaddedRows];
        G2 = new float[rows * (cell.Recurrent?.PaddedRows ?? 0)];
        Ht = new float[cell.Projection is null ? 0 : rows * cell.Hidden];
        Out = new float[rows * cell.OutputStride];
    }

    public int Rows { get; }

    /// <summary>Inputs [x | h], one row per stream.</summary>
    public float[] A { get; }

    /// <summary>LSTM cell states, one row per stream.</summary>
    public float[] C { get; }

    /// <summary>Gate pre-activations (W_ih for GRU).</summary>
    public float[] G { get; }

    /// <summary>GRU hidden-product gates.</summary>
    public float[] G2 { get; }

    /// <summary>LSTM hidden state before projection.</summary>
    public float[] Ht { get; }

    /// <summary>New hidden states, one row per stream (row stride <see cref="Cell.OutputStride"/>).</summary>
    public float[] Out { get; }
}
