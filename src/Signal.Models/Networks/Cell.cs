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
        // Tiles of rows keep each tile's gate pre-activations in L2 between the product and the activations.
        for (int start = 0; start < rows; start += RowTile)
        {
            StepTile(b, start, Math.Min(RowTile, rows - start), path);
        }
    }

    /// <summary>Rows per tile: a multiple of the 6-row register block.</summary>
    internal const int RowTile = 96;

    private void StepTile(CellBuffers b, int start, int rows, KernelPath path)
    {
        int lda = InputStride;
        int gs = Main.PaddedRows;
        int os = OutputStride;
        int h = Hidden;
        Span<float> a = b.A.AsSpan(start * lda);
        Span<float> g = b.G; // tile-local: gate pre-activations never leave L2
        Span<float> output = b.Out.AsSpan(start * os);
        switch (Kind)
        {
            case CellKind.Lstm:
                Kernels.Kernels.Gemm(a, lda, rows, Main, g, gs, path);
                Span<float> c = b.C.AsSpan(start * h);
                Span<float> ht = b.Ht;
                float[]?[] owners = b.CellOwners;
                for (int r = 0; r < rows; r++)
                {
                    Span<float> hOut = Projection is null ? output.Slice(r * os, h) : ht.Slice(r * h, h);
                    // The batched path updates each stream's c where it lives instead of copying it in and out.
                    Span<float> cr = owners[start + r] is { } owner ? owner.AsSpan(b.CellOffset, h) : c.Slice(r * h, h);
                    Kernels.Kernels.LstmGates(g.Slice(r * gs, 4 * h), cr, hOut, h, path);
                }

                if (Projection is not null)
                {
                    Kernels.Kernels.Gemm(ht, h, rows, Projection, output, os, path);
                }

                break;
            case CellKind.Gru:
                int gs2 = Recurrent!.PaddedRows;
                Span<float> g2 = b.G2;
                Kernels.Kernels.Gemm(a, lda, rows, Main, g, gs, path);
                Kernels.Kernels.Gemm(a[InputSize..], lda, rows, Recurrent, g2, gs2, path);
                for (int r = 0; r < rows; r++)
                {
                    Kernels.Kernels.GruGates(g.Slice(r * gs, 3 * h), g2.Slice(r * gs2, 3 * h), a.Slice((r * lda) + InputSize, h), output.Slice(r * os, h), h, path);
                }

                break;
            default:
                Kernels.Kernels.Gemm(a, lda, rows, Main, g, gs, path);
                for (int r = 0; r < rows; r++)
                {
                    Kernels.Kernels.RnnActivation(g.Slice(r * gs, h), output.Slice(r * os, h), Relu, path);
                }

                break;
        }
    }
}

/// <summary>Scratch matrices for stepping a number of streams (rows) through one <see cref="Cell"/>.</summary>
internal sealed class CellBuffers
{
    public CellBuffers(Cell cell, int rows)
    {
        A = new float[rows * cell.InputStride];
        C = new float[rows * cell.CellSize];
        int tile = Math.Min(rows, Cell.RowTile);
        G = new float[tile * cell.Main.PaddedRows];
        G2 = new float[tile * (cell.Recurrent?.PaddedRows ?? 0)];
        Ht = new float[cell.Projection is null ? 0 : tile * cell.Hidden];
        Out = new float[rows * cell.OutputStride];
        CellOwners = new float[]?[rows];
    }

    /// <summary>Inputs [x | h], one row per stream.</summary>
    public float[] A { get; }

    /// <summary>LSTM cell states, one row per stream.</summary>
    public float[] C { get; }

    /// <summary>Gate pre-activations (W_ih for GRU), for one tile of rows.</summary>
    public float[] G { get; }

    /// <summary>GRU hidden-product gates.</summary>
    public float[] G2 { get; }

    /// <summary>LSTM hidden state before projection.</summary>
    public float[] Ht { get; }

    /// <summary>New hidden states, one row per stream (row stride <see cref="Cell.OutputStride"/>).</summary>
    public float[] Out { get; }

    /// <summary>Per row, the array holding that stream's c at <see cref="CellOffset"/>, or null to use <see cref="C"/>.</summary>
    public float[]?[] CellOwners { get; }

    /// <summary>Offset of c inside <see cref="CellOwners"/>' arrays.</summary>
    public int CellOffset { get; set; }
}
