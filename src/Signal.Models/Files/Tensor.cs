namespace Signal.Models.Files;

/// <summary>A named float32 tensor in row-major order (PyTorch's layout and names).</summary>
public sealed class Tensor
{
    /// <summary>Creates a tensor; <paramref name="data"/> must hold the product of <paramref name="shape"/> values.</summary>
    /// <param name="name">The tensor's name, e.g. <c>layers.0.weight_ih_l0</c>.</param>
    /// <param name="shape">Its dimensions.</param>
    /// <param name="data">Its values, row-major; the tensor keeps the array.</param>
    public Tensor(string name, int[] shape, float[] data)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(data);
        long count = 1;
        foreach (int d in shape)
        {
            if (d < 0)
            {
                throw new ArgumentException($"tensor '{name}' has a negative dimension.", nameof(shape));
            }

            count *= d;
        }

        if (count != data.Length)
        {
            throw new ArgumentException($"tensor '{name}' of shape {FormatShape(shape)} needs {count} values; {data.Length} were given.", nameof(data));
        }

        Name = name;
        Shape = shape;
        Data = data;
    }

    /// <summary>The tensor's name.</summary>
    public string Name { get; }

    /// <summary>Its dimensions.</summary>
    public IReadOnlyList<int> Shape { get; }

    /// <summary>Its values, row-major.</summary>
    public float[] Data { get; }

    /// <summary>Formats a shape as <c>[a, b]</c>.</summary>
    /// <param name="shape">The dimensions.</param>
    /// <returns>The text.</returns>
    public static string FormatShape(IEnumerable<int> shape) => "[" + string.Join(", ", shape) + "]";

    /// <inheritdoc/>
    public override string ToString() => $"{Name} {FormatShape(Shape)}";
}
