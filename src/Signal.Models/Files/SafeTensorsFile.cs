using System.Buffers.Binary;
using System.Text.Json;
using Signal.Models.Networks;

namespace Signal.Models.Files;

/// <summary>
/// Reads and writes the safetensors layout: an 8-byte little-endian header length N, N bytes of JSON
/// (<c>{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, …, "__metadata__": {string map}}</c>),
/// then the raw little-endian tensor bytes, offsets relative to the end of the header.
/// Written by hand: no safetensors package exists for .NET on our feed, and the format is a page long
/// (https://github.com/huggingface/safetensors).
/// </summary>
/// <remarks>
/// Reading accepts F32, F64, F16 and BF16 tensors (converted to float32), so a PyTorch <c>state_dict</c>
/// saved in any of them loads. Every malformation (short file, absurd header length, bad JSON, an offset
/// outside the data, a size that does not match the shape) raises <see cref="ModelFormatException"/>
/// naming the problem. Writing always produces F32, tensors in name order, 8-byte aligned header.
/// </remarks>
public static class SafeTensorsFile
{
    /// <summary>The largest header accepted (100 MB, the reference implementation's bound).</summary>
    public const int MaxHeaderLength = 100_000_000;

    /// <summary>Parses a whole file's bytes.</summary>
    /// <param name="file">The file's content.</param>
    /// <returns>The tensors by name and the metadata map.</returns>
    public static (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Metadata) Read(ReadOnlySpan<byte> file)
    {
        if (file.Length < 8)
        {
            throw new ModelFormatException($"file is {file.Length} bytes long; a safetensors file starts with an 8-byte header length.");
        }

        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(file);
        if (headerLength < 2 || headerLength > MaxHeaderLength)
        {
            throw new ModelFormatException($"header length {headerLength} is not plausible (expected 2 to {MaxHeaderLength}); this is not a safetensors model file.");
        }

        if ((ulong)file.Length - 8 < headerLength)
        {
            throw new ModelFormatException($"file is truncated: the header says {headerLength} bytes of JSON but only {file.Length - 8} bytes follow.");
        }

        ReadOnlySpan<byte> header = file.Slice(8, (int)headerLength);
        ReadOnlySpan<byte> data = file[(8 + (int)headerLength)..];
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        if (!System.Text.Unicode.Utf8.IsValid(header))
        {
            throw new ModelFormatException("header is not valid UTF-8 text; the file is corrupt or not a safetensors model file.");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"header is not valid JSON: {e.Message}", e);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new ModelFormatException("header is not a JSON object.");
            }

            foreach (JsonProperty entry in document.RootElement.EnumerateObject())
            {
                if (entry.Name == "__metadata__")
                {
                    ReadMetadata(entry.Value, metadata);
                    continue;
                }

                tensors[entry.Name] = ReadTensor(entry.Name, entry.Value, data);
            }
        }

        return (tensors, metadata);
    }

    /// <summary>Writes tensors (as F32) and metadata.</summary>
    /// <param name="destination">Where to write.</param>
    /// <param name="tensors">The tensors; names must be unique.</param>
    /// <param name="metadata">String metadata for <c>__metadata__</c>.</param>
    public static void Write(Stream destination, IEnumerable<Tensor> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(metadata);
        List<Tensor> ordered = [.. tensors.OrderBy(t => t.Name, StringComparer.Ordinal)];
        using var headerStream = new MemoryStream();
        using (var json = new Utf8JsonWriter(headerStream))
        {
            json.WriteStartObject();
            json.WriteStartObject("__metadata__");
            foreach (KeyValuePair<string, string> pair in metadata.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                json.WriteString(pair.Key, pair.Value);
            }

            json.WriteEndObject();
            long offset = 0;
            foreach (Tensor tensor in ordered)
            {
                json.WriteStartObject(tensor.Name);
                json.WriteString("dtype", "F32");
                json.WriteStartArray("shape");
                foreach (int d in tensor.Shape)
                {
                    json.WriteNumberValue(d);
                }

                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                offset += tensor.Data.Length * 4L;
                json.WriteNumberValue(offset);
                json.WriteEndArray();
                json.WriteEndObject();
            }

            json.WriteEndObject();
        }

        // Pad the header with spaces to a multiple of 8 so the data is aligned, as the reference writer does.
        while (headerStream.Length % 8 != 0)
        {
            headerStream.WriteByte((byte)' ');
        }

        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)headerStream.Length);
        destination.Write(length);
        headerStream.Position = 0;
        headerStream.CopyTo(destination);
        byte[] buffer = new byte[64 * 1024];
        foreach (Tensor tensor in ordered)
        {
            int i = 0;
            while (i < tensor.Data.Length)
            {
                int n = Math.Min(buffer.Length / 4, tensor.Data.Length - i);
                for (int j = 0; j < n; j++)
                {
                    BinaryPrimitives.WriteSingleLittleEndian(buffer.AsSpan(j * 4), tensor.Data[i + j]);
                }

                destination.Write(buffer, 0, n * 4);
                i += n;
            }
        }
    }

    private static void ReadMetadata(JsonElement element, Dictionary<string, string> metadata)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFormatException("header field '__metadata__' must be an object of strings.");
        }

        foreach (JsonProperty pair in element.EnumerateObject())
        {
            if (pair.Value.ValueKind != JsonValueKind.String)
            {
                throw new ModelFormatException($"metadata entry '{pair.Name}' must be a string (got {pair.Value.ValueKind}).");
            }

            metadata[pair.Name] = pair.Value.GetString()!;
        }
    }

    private static Tensor ReadTensor(string name, JsonElement entry, ReadOnlySpan<byte> data)
    {
        if (entry.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFormatException($"header entry for tensor '{name}' is not an object.");
        }

        if (!entry.TryGetProperty("dtype", out JsonElement dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
        {
            throw new ModelFormatException($"tensor '{name}' has no 'dtype' string.");
        }

        string dtype = dtypeElement.GetString()!;
        int elementSize = dtype switch
        {
            "F32" => 4,
            "F64" => 8,
            "F16" or "BF16" => 2,
            _ => throw new ModelFormatException($"tensor '{name}' has dtype '{dtype}'; weights must be F32, F64, F16 or BF16."),
        };

        if (!entry.TryGetProperty("shape", out JsonElement shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
        {
            throw new ModelFormatException($"tensor '{name}' has no 'shape' array.");
        }

        var shape = new List<int>();
        long count = 1;
        foreach (JsonElement d in shapeElement.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out int dim) || dim < 0)
            {
                throw new ModelFormatException($"tensor '{name}' has a shape entry that is not a non-negative integer: {d.GetRawText()}.");
            }

            shape.Add(dim);
            count *= dim;
            if (count > int.MaxValue / 8)
            {
                throw new ModelFormatException($"tensor '{name}' of shape {Tensor.FormatShape(shape)}… is too large.");
            }
        }

        if (!entry.TryGetProperty("data_offsets", out JsonElement offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2
            || !offsets[0].TryGetInt64(out long begin) || !offsets[1].TryGetInt64(out long end))
        {
            throw new ModelFormatException($"tensor '{name}' has no 'data_offsets' pair of integers.");
        }

        if (begin < 0 || end < begin || end > data.Length)
        {
            throw new ModelFormatException($"tensor '{name}' has data_offsets [{begin}, {end}] outside the {data.Length} data bytes (truncated file?).");
        }

        if (end - begin != count * elementSize)
        {
            throw new ModelFormatException($"tensor '{name}' of shape {Tensor.FormatShape(shape)} and dtype {dtype} needs {count * elementSize} bytes; its offsets span {end - begin}.");
        }

        ReadOnlySpan<byte> bytes = data.Slice((int)begin, (int)(end - begin));
        float[] values = new float[count];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = dtype switch
            {
                "F32" => BinaryPrimitives.ReadSingleLittleEndian(bytes[(i * 4)..]),
                "F64" => (float)BinaryPrimitives.ReadDoubleLittleEndian(bytes[(i * 8)..]),
                "F16" => (float)BinaryPrimitives.ReadHalfLittleEndian(bytes[(i * 2)..]),
                _ => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes[(i * 2)..]) << 16),
            };
        }

        return new Tensor(name, [.. shape], values);
    }

    /// <summary>Encodes a metadata value list as the JSON array the model file uses (for labels).</summary>
    internal static string ToJsonArray(IEnumerable<string> values) =>
        JsonSerializer.Serialize(values.ToArray(), ModelJsonContext.Default.StringArray);

    /// <summary>Decodes a JSON array of strings; a bad value raises <see cref="ModelFormatException"/> naming <paramref name="key"/>.</summary>
    internal static string[] FromJsonArray(string key, string json)
    {
        try
        {
            return JsonSerializer.Deserialize(json, ModelJsonContext.Default.StringArray)
                ?? throw new ModelFormatException($"metadata '{key}' is null.");
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"metadata '{key}' is not a JSON array of strings: {e.Message}", e);
        }
    }
}
