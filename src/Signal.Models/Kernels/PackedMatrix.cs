using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Signal.Models.Kernels;

/// <summary>
/// A weight matrix W (<see cref="Rows"/> outputs × <see cref="Columns"/> inputs, PyTorch's row-major
/// layout) and its bias, repacked once for the product kernels: output rows are grouped in panels of
/// <see cref="PanelWidth"/>; inside a panel the weights of one input k for all the panel's outputs are
/// contiguous, so the kernels load them as whole vectors and broadcast the input. The last panel is
/// padded with zero weights and zero bias. The storage is 64-byte aligned.
/// </summary>
internal sealed class PackedMatrix
{
    private readonly float[] _storage;
    private readonly int _offset;

    /// <summary>Packs <paramref name="weights"/> (rows × columns, row-major) and an optional bias of <paramref name="rows"/> values.</summary>
    public PackedMatrix(ReadOnlySpan<float> weights, int rows, int columns, ReadOnlySpan<float> bias, KernelPath path)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(columns);
        if (weights.Length != rows * columns)
        {
            throw new ArgumentException($"weights hold {weights.Length} values; {rows}×{columns} = {rows * columns} are required.", nameof(weights));
        }

        if (!bias.IsEmpty && bias.Length != rows)
        {
            throw new ArgumentException($"bias holds {bias.Length} values; {rows} are required.", nameof(bias));
        }

        Path = path;
        Rows = rows;
        Columns = columns;
        PanelWidth = Kernels.PanelWidth(path);
        Panels = (rows + PanelWidth - 1) / PanelWidth;
        PaddedRows = Panels * PanelWidth;
        int size = PaddedRows * columns;
        _storage = GC.AllocateArray<float>(size + 16, pinned: true);
        _offset = AlignedOffset(_storage);
        Bias = new float[PaddedRows];
        bias.CopyTo(Bias);

        Span<float> data = Data;
        for (int p = 0; p < Panels; p++)
        {
            for (int j = 0; j < PanelWidth; j++)
            {
                int n = (p * PanelWidth) + j;
                if (n >= rows)
                {
                    break;
                }

                ReadOnlySpan<float> row = weights.Slice(n * columns, columns);
                int baseIndex = p * columns * PanelWidth;
                for (int k = 0; k < columns; k++)
                {
                    data[baseIndex + (k * PanelWidth) + j] = row[k];
                }
            }
        }
    }

    /// <summary>The path this packing was made for (it fixes <see cref="PanelWidth"/>).</summary>
    public KernelPath Path { get; }

    /// <summary>Outputs (rows of W).</summary>
    public int Rows { get; }

    /// <summary>Inputs (columns of W).</summary>
    public int Columns { get; }

    /// <summary>Outputs per panel.</summary>
    public int PanelWidth { get; }

    /// <summary>Number of panels.</summary>
    public int Panels { get; }

    /// <summary><see cref="Rows"/> rounded up to whole panels: the products write this many columns.</summary>
    public int PaddedRows { get; }

    /// <summary>Bias per output, zero-padded to <see cref="PaddedRows"/>.</summary>
    public float[] Bias { get; }

    /// <summary>The packed weights: panel p, input k, lane j at (p·Columns + k)·PanelWidth + j.</summary>
    public Span<float> Data => _storage.AsSpan(_offset, PaddedRows * Columns);

    private static unsafe int AlignedOffset(float[] pinned)
    {
        nint address = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(pinned));
        int misalignment = (int)(address & 63);
        return misalignment == 0 ? 0 : (64 - misalignment) / sizeof(float);
    }
}
