using System.Buffers.Binary;
using Google.Protobuf;

namespace Signal.Models.Onnx;

/// <summary>A constant tensor of an ONNX graph, held as doubles (exact for shapes and indices below 2⁵³).</summary>
internal sealed class ConstTensor(long[] dims, double[] data)
{
    public long[] Dims { get; } = dims;

    public double[] Data { get; } = data;

    public int Rank => Dims.Length;

    public static ConstTensor Scalar(double value) => new([], [value]);

    public static ConstTensor Vector(params double[] values) => new([values.Length], values);

    public float[] ToFloats() => [.. Data.Select(d => (float)d)];

    public override string ToString() => $"[{string.Join(", ", Dims)}]";
}

/// <summary>One node of an ONNX graph.</summary>
internal sealed class OnnxNode
{
    public string Name { get; set; } = string.Empty;

    public string OpType { get; set; } = string.Empty;

    public string Domain { get; set; } = string.Empty;

    public List<string> Inputs { get; } = [];

    public List<string> Outputs { get; } = [];

    public Dictionary<string, OnnxAttribute> Attributes { get; } = new(StringComparer.Ordinal);

    public string Describe => string.IsNullOrEmpty(Name) ? $"{OpType} node" : $"{OpType} node '{Name}'";

    public long Int(string name, long fallback) => Attributes.TryGetValue(name, out OnnxAttribute? a) ? a.Int : fallback;

    public float Float(string name, float fallback) => Attributes.TryGetValue(name, out OnnxAttribute? a) ? a.Float : fallback;

    public string? String(string name) => Attributes.TryGetValue(name, out OnnxAttribute? a) ? a.String : null;

    public long[]? Ints(string name) => Attributes.TryGetValue(name, out OnnxAttribute? a) ? [.. a.Ints] : null;

    public List<string>? Strings(string name) => Attributes.TryGetValue(name, out OnnxAttribute? a) ? a.Strings : null;
}

/// <summary>A node attribute (the fields our importer reads).</summary>
internal sealed class OnnxAttribute
{
    public string Name { get; set; } = string.Empty;

    public float Float { get; set; }

    public long Int { get; set; }

    public string? String { get; set; }

    public ConstTensor? Tensor { get; set; }

    public List<float> Floats { get; } = [];

    public List<long> Ints { get; } = [];

    public List<string> Strings { get; } = [];
}

/// <summary>A graph input or output with its static shape (null entries are symbolic dimensions).</summary>
internal sealed record OnnxValueInfo(string Name, long?[]? Shape);

/// <summary>The parts of an ONNX model the importer uses.</summary>
internal sealed class OnnxGraph
{
    public List<OnnxNode> Nodes { get; } = [];

    public Dictionary<string, ConstTensor> Initializers { get; } = new(StringComparer.Ordinal);

    public List<OnnxValueInfo> Inputs { get; } = [];

    public List<OnnxValueInfo> Outputs { get; } = [];

    public long OpsetVersion { get; set; }

    public string Producer { get; set; } = string.Empty;

    /// <summary>
    /// Reads an ONNX ModelProto. Written against onnx.proto's field numbers with Google.Protobuf's
    /// CodedInputStream (no generated classes: the feed has no protoc), reading only the messages the
    /// import needs and skipping every other field.
    /// </summary>
    public static OnnxGraph Parse(byte[] bytes)
    {
        var graph = new OnnxGraph();
        try
        {
            ReadMessage(bytes, (field, input) =>
            {
                switch (field)
                {
                    case 2:
                        graph.Producer = input.ReadString();
                        return true;
                    case 7:
                        ReadGraph(input.ReadBytes().ToByteArray(), graph);
                        return true;
                    case 8:
                        long version = 0;
                        string domain = string.Empty;
                        ReadMessage(input.ReadBytes().ToByteArray(), (f, i) =>
                        {
                            if (f == 1)
                            {
                                domain = i.ReadString();
                                return true;
                            }

                            if (f == 2)
                            {
                                version = i.ReadInt64();
                                return true;
                            }

                            return false;
                        });
                        if (domain is "" or "ai.onnx")
                        {
                            graph.OpsetVersion = version;
                        }

                        return true;
                    default:
                        return false;
                }
            });
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new OnnxImportException($"the file is not a valid ONNX protobuf: {e.Message}", e);
        }

        if (graph.Nodes.Count == 0)
        {
            throw new OnnxImportException("the file holds no ONNX graph (no nodes); is it an ONNX model?");
        }

        return graph;
    }

    /// <summary>The wire type of the field being read (callbacks of packed-or-not repeated fields need it).</summary>
    [ThreadStatic]
    private static uint t_wire;

    private static void ReadMessage(byte[] bytes, Func<int, CodedInputStream, bool> field)
    {
        var input = new CodedInputStream(bytes);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            t_wire = (uint)WireFormat.GetTagWireType(tag);
            if (!field(WireFormat.GetTagFieldNumber(tag), input))
            {
                input.SkipLastField();
            }
        }
    }

    private static void ReadGraph(byte[] bytes, OnnxGraph graph) => ReadMessage(bytes, (field, input) =>
    {
        switch (field)
        {
            case 1:
                graph.Nodes.Add(ReadNode(input.ReadBytes().ToByteArray()));
                return true;
            case 5:
                (string name, ConstTensor tensor) = ReadTensor(input.ReadBytes().ToByteArray());
                graph.Initializers[name] = tensor;
                return true;
            case 11:
                graph.Inputs.Add(ReadValueInfo(input.ReadBytes().ToByteArray()));
                return true;
            case 12:
                graph.Outputs.Add(ReadValueInfo(input.ReadBytes().ToByteArray()));
                return true;
            default:
                return false;
        }
    });

    private static OnnxNode ReadNode(byte[] bytes)
    {
        var node = new OnnxNode();
        ReadMessage(bytes, (field, input) =>
        {
            switch (field)
            {
                case 1:
                    node.Inputs.Add(input.ReadString());
                    return true;
                case 2:
                    node.Outputs.Add(input.ReadString());
                    return true;
                case 3:
                    node.Name = input.ReadString();
                    return true;
                case 4:
                    node.OpType = input.ReadString();
                    return true;
                case 5:
                    OnnxAttribute attribute = ReadAttribute(input.ReadBytes().ToByteArray());
                    node.Attributes[attribute.Name] = attribute;
                    return true;
                case 7:
                    node.Domain = input.ReadString();
                    return true;
                default:
                    return false;
            }
        });
        return node;
    }

    private static OnnxAttribute ReadAttribute(byte[] bytes)
    {
        var a = new OnnxAttribute();
        ReadMessage(bytes, (field, input) =>
        {
            uint wire = t_wire;
            switch (field)
            {
                case 1:
                    a.Name = input.ReadString();
                    return true;
                case 2:
                    a.Float = input.ReadFloat();
                    return true;
                case 3:
                    a.Int = input.ReadInt64();
                    return true;
                case 4:
                    a.String = input.ReadBytes().ToStringUtf8();
                    return true;
                case 5:
                    a.Tensor = ReadTensor(input.ReadBytes().ToByteArray()).Tensor;
                    return true;
                case 7:
                    ReadRepeated(input, wire, i => a.Floats.Add(i.ReadFloat()));
                    return true;
                case 8:
                    ReadRepeated(input, wire, i => a.Ints.Add(i.ReadInt64()));
                    return true;
                case 9:
                    a.Strings.Add(input.ReadBytes().ToStringUtf8());
                    return true;
                default:
                    return false;
            }
        });
        return a;
    }

    /// <summary>Reads one element of a repeated scalar field, or all of a packed one.</summary>
    private static void ReadRepeated(CodedInputStream input, uint wire, Action<CodedInputStream> element)
    {
        if (wire == (uint)WireFormat.WireType.LengthDelimited)
        {
            var packed = new CodedInputStream(input.ReadBytes().ToByteArray());
            while (!packed.IsAtEnd)
            {
                element(packed);
            }
        }
        else
        {
            element(input);
        }
    }

    private static (string Name, ConstTensor Tensor) ReadTensor(byte[] bytes)
    {
        var dims = new List<long>();
        int dataType = 0;
        string name = string.Empty;
        byte[]? raw = null;
        var floats = new List<double>();
        var ints = new List<double>();
        bool external = false;
        ReadMessage(bytes, (field, input) =>
        {
            uint wire = t_wire;
            switch (field)
            {
                case 1:
                    ReadRepeated(input, wire, i => dims.Add(i.ReadInt64()));
                    return true;
                case 2:
                    dataType = input.ReadInt32();
                    return true;
                case 4:
                    ReadRepeated(input, wire, i => floats.Add(i.ReadFloat()));
                    return true;
                case 5:
                    ReadRepeated(input, wire, i => ints.Add(i.ReadInt32()));
                    return true;
                case 7:
                    ReadRepeated(input, wire, i => ints.Add(i.ReadInt64()));
                    return true;
                case 8:
                    name = input.ReadString();
                    return true;
                case 9:
                    raw = input.ReadBytes().ToByteArray();
                    return true;
                case 10:
                    ReadRepeated(input, wire, i => floats.Add(i.ReadDouble()));
                    return true;
                case 14:
                    external = input.ReadInt32() == 1;
                    return true;
                default:
                    return false;
            }
        });

        if (external)
        {
            throw new OnnxImportException($"tensor '{name}' is stored in an external data file; export the model with its weights inside (torch.onnx.export does this below 2 GB).");
        }

        long count = 1;
        foreach (long d in dims)
        {
            if (d < 0 || d > int.MaxValue)
            {
                throw new OnnxImportException($"tensor '{name}' has an invalid dimension {d}.");
            }

            count *= d;
            if (count > 1 << 28)
            {
                throw new OnnxImportException($"tensor '{name}' is too large.");
            }
        }

        double[] data;
        if (raw is not null)
        {
            int size = dataType switch
            {
                1 or 6 => 4, // float, int32
                7 or 11 => 8, // int64, double
                9 or 2 or 3 => 1, // bool, uint8, int8
                10 => 2, // float16
                _ => throw new OnnxImportException($"tensor '{name}' has ONNX data type {dataType}, which the importer does not read (float, double, float16, int32, int64, bool are supported)."),
            };
            if (raw.Length != count * size)
            {
                throw new OnnxImportException($"tensor '{name}' of shape [{string.Join(", ", dims)}] has {raw.Length} bytes of raw data; {count * size} expected.");
            }

            data = new double[count];
            for (int i = 0; i < count; i++)
            {
                ReadOnlySpan<byte> b = raw.AsSpan(i * size);
                data[i] = dataType switch
                {
                    1 => BinaryPrimitives.ReadSingleLittleEndian(b),
                    6 => BinaryPrimitives.ReadInt32LittleEndian(b),
                    7 => BinaryPrimitives.ReadInt64LittleEndian(b),
                    11 => BinaryPrimitives.ReadDoubleLittleEndian(b),
                    10 => (double)BinaryPrimitives.ReadHalfLittleEndian(b),
                    3 => (sbyte)b[0],
                    _ => b[0],
                };
            }
        }
        else
        {
            data = floats.Count > 0 ? [.. floats] : [.. ints];
            if (data.Length != count)
            {
                throw new OnnxImportException($"tensor '{name}' of shape [{string.Join(", ", dims)}] holds {data.Length} values; {count} expected.");
            }
        }

        return (name, new ConstTensor([.. dims], data));
    }

    private static OnnxValueInfo ReadValueInfo(byte[] bytes)
    {
        string name = string.Empty;
        long?[]? shape = null;
        ReadMessage(bytes, (field, input) =>
        {
            if (field == 1)
            {
                name = input.ReadString();
                return true;
            }

            if (field != 2)
            {
                return false;
            }

            // TypeProto.tensor_type (1) → Tensor.shape (2) → TensorShapeProto.dim (1) → dim_value (1) | dim_param (2).
            ReadMessage(input.ReadBytes().ToByteArray(), (f, i) =>
            {
                if (f != 1)
                {
                    return false;
                }

                ReadMessage(i.ReadBytes().ToByteArray(), (f2, i2) =>
                {
                    if (f2 != 2)
                    {
                        return false;
                    }

                    var dims = new List<long?>();
                    ReadMessage(i2.ReadBytes().ToByteArray(), (f3, i3) =>
                    {
                        if (f3 != 1)
                        {
                            return false;
                        }

                        long? value = null;
                        ReadMessage(i3.ReadBytes().ToByteArray(), (f4, i4) =>
                        {
                            if (f4 == 1)
                            {
                                value = i4.ReadInt64();
                                return true;
                            }

                            return false;
                        });
                        dims.Add(value);
                        return true;
                    });
                    shape = [.. dims];
                    return true;
                });
                return true;
            });
            return true;
        });
        return new OnnxValueInfo(name, shape);
    }
}

/// <summary>An ONNX model that cannot be imported; the message says what and why.</summary>
public sealed class OnnxImportException : Exception
{
    /// <summary>Creates the exception.</summary>
    public OnnxImportException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">What is wrong.</param>
    public OnnxImportException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the underlying error.</summary>
    /// <param name="message">What is wrong.</param>
    /// <param name="inner">The underlying error.</param>
    public OnnxImportException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
