using System.Globalization;
using System.Text;
using System.Text.Json;
using Signal.Models.Files;

namespace Signal.Models.Networks;

/// <summary>
/// Ensembles of recurrent models as one model: K members with the same inputs, classes and layer kinds (hidden sizes
/// may differ) become one network whose layers hold every member's units side by side, with block-diagonal recurrent
/// and between-layer weights, and whose heads average the members' logits. Stepping it steps every member in one
/// batched product per layer (the live engine, checkpoints and model files need nothing new), and each member can be
/// taken out again (<see cref="Member"/>) to be judged alone.
/// </summary>
/// <remarks>
/// The classification head averages logits (the normalised geometric mean of the members' probabilities), which a
/// single linear head can do exactly; averaging probabilities cannot be one linear head. The block-diagonal layout
/// computes the zero blocks too: a merged layer of K members of H units costs about K times the members' summed
/// recurrent products (measured in docs/training.md). Layer norm (it normalises over all units) and bidirectional
/// layers are refused.
/// </remarks>
public static class ModelEnsemble
{
    /// <summary>The model-file metadata key holding the members' sizes and head biases.</summary>
    public const string MetadataKey = "signal.ensemble";

    /// <summary>Merges <paramref name="members"/> into one model whose heads average theirs (see the type's remarks).</summary>
    /// <param name="members">One or more models of the same inputs, classes, pooling, labels and layer kinds.</param>
    /// <returns>The ensemble, with the first member's metadata and <see cref="MetadataKey"/>.</returns>
    /// <exception cref="ArgumentException">The members do not fit together; the message names the field.</exception>
    public static RecurrentModel Merge(IReadOnlyList<RecurrentModel> members)
    {
        ArgumentNullException.ThrowIfNull(members);
        if (members.Count == 0)
        {
            throw new ArgumentException("an ensemble needs at least one member.", nameof(members));
        }

        ModelArchitecture first = members[0].Architecture;
        for (int k = 0; k < members.Count; k++)
        {
            Check(first, members[k].Architecture, members[0].Labels, members[k].Labels, k);
        }

        var sizes = members.Select(m => m.Architecture.Layers.Select(l => (l.HiddenSize, l.ProjectionSize)).ToArray()).ToArray();
        int[][] channels = [.. members.Select(m => m.Architecture.Convolutions.Select(c => c.Channels).ToArray())];
        ModelArchitecture merged = MergedArchitecture(first, sizes, channels);
        var tensors = RecurrentModel.RequiredTensors(merged).ToDictionary(r => r.Name, r => new Tensor(r.Name, r.Shape, new float[r.Shape.Aggregate(1, (a, b) => a * b)]));
        for (int k = 0; k < members.Count; k++)
        {
            Copy(members[k].Architecture, members[k].Tensors, merged, tensors, sizes, channels, k, toMember: false);
        }

        // The biases are averaged; each member's own are kept in the metadata so a member can be taken out exactly.
        float[][] headBiases = [.. members.Select(m => first.Classes > 0 ? m.Tensors[m.Architecture.HeadPrefix + ".bias"].Data : [])];
        float[][] forecastBiases = [.. members.Select(m => first.ForecastSize > 0 ? m.Tensors[m.Architecture.ForecastPrefix + ".bias"].Data : [])];
        Average(tensors, merged.HeadPrefix + ".bias", headBiases, first.Classes);
        Average(tensors, merged.ForecastPrefix + ".bias", forecastBiases, first.ForecastSize);
        var metadata = new Dictionary<string, string>(members[0].Metadata) { [MetadataKey] = Describe(sizes, channels, headBiases, forecastBiases) };
        return RecurrentModel.Create(merged, tensors, members[0].Labels, metadata);
    }

    /// <summary>The number of members of <paramref name="model"/>: 1 for a model that is not an ensemble.</summary>
    /// <param name="model">A model.</param>
    /// <returns>Members.</returns>
    public static int MemberCount(RecurrentModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.Metadata.TryGetValue(MetadataKey, out string? json) ? Parse(json, model.Architecture).Sizes.Length : 1;
    }

    /// <summary>Member <paramref name="index"/> of an ensemble, as the model it was before merging (weights equal up to the rounding of the 1/K head scale).</summary>
    /// <param name="ensemble">A model written by <see cref="Merge"/>.</param>
    /// <param name="index">0 ≤ index &lt; <see cref="MemberCount"/>.</param>
    /// <returns>The member, with the ensemble's labels and metadata less <see cref="MetadataKey"/>.</returns>
    /// <exception cref="ArgumentException">The model is not an ensemble, or the index is out of range.</exception>
    /// <exception cref="ModelFormatException">The ensemble's metadata does not match its architecture.</exception>
    public static RecurrentModel Member(RecurrentModel ensemble, int index)
    {
        ArgumentNullException.ThrowIfNull(ensemble);
        if (!ensemble.Metadata.TryGetValue(MetadataKey, out string? json))
        {
            throw new ArgumentException($"the model has no '{MetadataKey}' metadata: it is not an ensemble.", nameof(ensemble));
        }

        (var sizes, int[][] channels, float[][] headBiases, float[][] forecastBiases) = Parse(json, ensemble.Architecture);
        if (index < 0 || index >= sizes.Length)
        {
            throw new ArgumentException($"member {index} does not exist; the ensemble has {sizes.Length}.", nameof(index));
        }

        ModelArchitecture a = ensemble.Architecture;
        ModelArchitecture member = MergedArchitecture(a, [sizes[index]], [channels[index]]);
        var tensors = RecurrentModel.RequiredTensors(member).ToDictionary(r => r.Name, r => new Tensor(r.Name, r.Shape, new float[r.Shape.Aggregate(1, (x, y) => x * y)]));
        Copy(member, tensors, a, ensemble.Tensors, sizes, channels, index, toMember: true);
        if (a.Classes > 0)
        {
            headBiases[index].CopyTo(tensors[member.HeadPrefix + ".bias"].Data, 0);
        }

        if (a.ForecastSize > 0)
        {
            forecastBiases[index].CopyTo(tensors[member.ForecastPrefix + ".bias"].Data, 0);
        }

        var metadata = ensemble.Metadata.Where(p => p.Key != MetadataKey).ToDictionary(p => p.Key, p => p.Value);
        return RecurrentModel.Create(member, tensors, ensemble.Labels, metadata);
    }

    private static void Check(ModelArchitecture a, ModelArchitecture b, IReadOnlyList<string> labelsA, IReadOnlyList<string> labelsB, int k)
    {
        string? problem = null;
        if (b.InputSize != a.InputSize || b.Classes != a.Classes || b.ForecastSize != a.ForecastSize)
        {
            problem = $"inputs/classes/forecast size {b.InputSize}/{b.Classes}/{b.ForecastSize}, member 0 has {a.InputSize}/{a.Classes}/{a.ForecastSize}";
        }
        else if (b.Pooling != a.Pooling || b.PoolingSteps != a.PoolingSteps)
        {
            problem = $"pooling {b.Pooling}/{b.PoolingSteps}, member 0 has {a.Pooling}/{a.PoolingSteps}";
        }
        else if (b.InputNormalization != a.InputNormalization || (a.RunningNormalization && (b.InputChannels != a.InputChannels || b.NormalizationSamples != a.NormalizationSamples)))
        {
            problem = $"input normalisation {b.InputNormalization}/{b.InputChannels}/{b.NormalizationSamples}, member 0 has {a.InputNormalization}/{a.InputChannels}/{a.NormalizationSamples}";
        }
        else if (!labelsA.SequenceEqual(labelsB))
        {
            problem = "other labels than member 0";
        }
        else if (b.Convolutions.Count != a.Convolutions.Count
            || a.Convolutions.Zip(b.Convolutions).Any(p => p.First.Kernel != p.Second.Kernel || p.First.Dilation != p.Second.Dilation || p.First.Residual != p.Second.Residual))
        {
            problem = "another convolutional front end (count, kernels, dilations or residuals) than member 0's";
        }
        else if (b.Layers.Count != a.Layers.Count)
        {
            problem = $"{b.Layers.Count} layers, member 0 has {a.Layers.Count}";
        }
        else
        {
            for (int i = 0; i < a.Layers.Count && problem is null; i++)
            {
                LayerArchitecture x = a.Layers[i], y = b.Layers[i];
                if (y.LayerNorm || y.Bidirectional)
                {
                    problem = $"layer {i} is {(y.LayerNorm ? "layer-normalised" : "bidirectional")}, which an ensemble cannot hold side by side";
                }
                else if (y.Kind != x.Kind || y.Bias != x.Bias || y.Nonlinearity != x.Nonlinearity || (y.ProjectionSize > 0) != (x.ProjectionSize > 0))
                {
                    problem = $"layer {i} is {y.Kind} (bias {y.Bias}, {y.Nonlinearity}, projection {y.ProjectionSize}), member 0's is {x.Kind} (bias {x.Bias}, {x.Nonlinearity}, projection {x.ProjectionSize})";
                }
            }
        }

        if (problem is not null)
        {
            throw new ArgumentException($"ensemble member {k} does not fit: {problem}.");
        }
    }

    private static ModelArchitecture MergedArchitecture(ModelArchitecture a, (int Hidden, int Projection)[][] sizes, int[][] channels) => new()
    {
        Convolutions = [.. a.Convolutions.Select((c, i) => new ConvolutionArchitecture
        {
            Channels = channels.Sum(m => m[i]),
            Kernel = c.Kernel,
            Dilation = c.Dilation,
            Residual = c.Residual,
        })],
        InputSize = a.InputSize,
        Classes = a.Classes,
        ForecastSize = a.ForecastSize,
        Pooling = a.Pooling,
        PoolingSteps = a.PoolingSteps,
        InputNormalization = a.InputNormalization,
        InputChannels = a.InputChannels,
        NormalizationSamples = a.NormalizationSamples,
        LayerNormEpsilon = a.LayerNormEpsilon,
        Layers = [.. a.Layers.Select((l, i) => new LayerArchitecture
        {
            Kind = l.Kind,
            Bias = l.Bias,
            Nonlinearity = l.Nonlinearity,
            HiddenSize = sizes.Sum(s => s[i].Hidden),
            ProjectionSize = sizes.Sum(s => s[i].Projection),
        })],
    };

    /// <summary>
    /// Copies member <paramref name="k"/>'s weights into the merged tensors (or, <paramref name="toMember"/>, back):
    /// gate rows go to the member's units within each gate block, input columns to the previous layer's units of the
    /// same member, head columns to its output and pooled units, scaled by 1/K (the average of the logits).
    /// </summary>
    private static void Copy(ModelArchitecture a, IReadOnlyDictionary<string, Tensor> member, ModelArchitecture merged, IReadOnlyDictionary<string, Tensor> tensors, (int Hidden, int Projection)[][] sizes, int[][] channels, int k, bool toMember)
    {
        int State(int m, int i) => sizes[m][i].Projection > 0 ? sizes[m][i].Projection : sizes[m][i].Hidden;
        int Offset(Func<int, int> size) => Enumerable.Range(0, k).Sum(size);

        // The front end: the first convolution reads the shared input; later ones read their own member's channels.
        for (int c = 0; c < a.Convolutions.Count; c++)
        {
            int kernel = a.Convolutions[c].Kernel, channelOffset = Offset(m => channels[m][c]);
            int convInputOffset = c == 0 ? 0 : Offset(m => channels[m][c - 1]);
            Place(member, tensors, $"convs.{c}.weight", $"convs.{c}.weight", r => channelOffset + r, col => ((convInputOffset + (col / kernel)) * kernel) + (col % kernel), 1f, toMember);
            Place(member, tensors, $"convs.{c}.bias", $"convs.{c}.bias", r => channelOffset + r, col => col, 1f, toMember);
        }

        int frontOffset = a.Convolutions.Count == 0 ? 0 : Offset(m => channels[m][^1]);
        for (int i = 0; i < a.Layers.Count; i++)
        {
            LayerArchitecture layer = a.Layers[i];
            int hidden = layer.HiddenSize, total = merged.Layers[i].HiddenSize;
            int hiddenOffset = Offset(m => sizes[m][i].Hidden), stateOffset = Offset(m => State(m, i));
            int inputOffset = i == 0 ? frontOffset : Offset(m => State(m, i - 1));
            int GateRow(int r) => ((r / hidden) * total) + hiddenOffset + (r % hidden);
            string Name(ModelArchitecture x, string kind) => $"{x.LayerPrefix(i)}.{kind}_l{x.Layers[i].Index}";
            Place(member, tensors, Name(a, "weight_ih"), Name(merged, "weight_ih"), GateRow, c => inputOffset + c, 1f, toMember);
            Place(member, tensors, Name(a, "weight_hh"), Name(merged, "weight_hh"), GateRow, c => stateOffset + c, 1f, toMember);
            if (layer.Bias)
            {
                Place(member, tensors, Name(a, "bias_ih"), Name(merged, "bias_ih"), GateRow, c => c, 1f, toMember);
                Place(member, tensors, Name(a, "bias_hh"), Name(merged, "bias_hh"), GateRow, c => c, 1f, toMember);
            }

            if (layer.ProjectionSize > 0)
            {
                Place(member, tensors, Name(a, "weight_hr"), Name(merged, "weight_hr"), r => stateOffset + r, c => hiddenOffset + c, 1f, toMember);
            }

        }

        int top = a.Layers.Count - 1, width = a.FeatureSize, mergedWidth = merged.FeatureSize;
        int featureOffset = top < 0 ? 0 : Offset(m => State(m, top));
        float scale = 1f / sizes.Length;
        if (a.Classes > 0)
        {
            // The head's input is [output, pooled mean, pooled maximum]: every block holds the member's units at the same offset.
            Place(member, tensors, a.HeadPrefix + ".weight", merged.HeadPrefix + ".weight", r => r,
                c => ((c / width) * mergedWidth) + featureOffset + (c % width), scale, toMember);
        }

        if (a.ForecastSize > 0)
        {
            Place(member, tensors, a.ForecastPrefix + ".weight", merged.ForecastPrefix + ".weight", r => r, c => featureOffset + c, scale, toMember);
        }
    }

    private static void Place(IReadOnlyDictionary<string, Tensor> member, IReadOnlyDictionary<string, Tensor> tensors, string memberName, string mergedName, Func<int, int> row, Func<int, int> column, float scale, bool toMember)
    {
        // A tensor of three dimensions (a convolution's [out, in, kernel]) is taken as [out, in · kernel].
        Tensor small = member[memberName], big = tensors[mergedName];
        int rows = small.Shape[0], columns = small.Data.Length / Math.Max(1, rows), bigColumns = big.Data.Length / Math.Max(1, big.Shape[0]);
        for (int r = 0; r < rows; r++)
        {
            int R = row(r);
            for (int c = 0; c < columns; c++)
            {
                int at = (R * bigColumns) + (small.Shape.Count > 1 ? column(c) : 0);
                if (toMember)
                {
                    small.Data[(r * columns) + c] = big.Data[at] / scale;
                }
                else
                {
                    big.Data[at] = small.Data[(r * columns) + c] * scale;
                }
            }
        }
    }

    private static void Average(Dictionary<string, Tensor> tensors, string name, float[][] biases, int size)
    {
        if (size == 0)
        {
            return;
        }

        float[] target = tensors[name].Data;
        for (int j = 0; j < size; j++)
        {
            double sum = 0;
            foreach (float[] b in biases)
            {
                sum += b[j];
            }

            target[j] = (float)(sum / biases.Length);
        }
    }

    private static string Describe((int Hidden, int Projection)[][] sizes, int[][] channels, float[][] headBiases, float[][] forecastBiases)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream))
        {
            json.WriteStartObject();
            json.WriteStartArray("members");
            for (int k = 0; k < sizes.Length; k++)
            {
                json.WriteStartObject();
                json.WriteStartArray("hidden");
                foreach ((int hidden, _) in sizes[k])
                {
                    json.WriteNumberValue(hidden);
                }

                json.WriteEndArray();
                json.WriteStartArray("projection");
                foreach ((_, int projection) in sizes[k])
                {
                    json.WriteNumberValue(projection);
                }

                json.WriteEndArray();
                json.WriteStartArray("channels");
                foreach (int c in channels[k])
                {
                    json.WriteNumberValue(c);
                }

                json.WriteEndArray();
                json.WriteStartArray("headBias");
                foreach (float v in headBiases[k])
                {
                    json.WriteNumberValue(v);
                }

                json.WriteEndArray();
                json.WriteStartArray("forecastBias");
                foreach (float v in forecastBiases[k])
                {
                    json.WriteNumberValue(v);
                }

                json.WriteEndArray();
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static ((int Hidden, int Projection)[][] Sizes, int[][] Channels, float[][] HeadBiases, float[][] ForecastBiases) Parse(string text, ModelArchitecture a)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(text);
            JsonElement[] members = [.. document.RootElement.GetProperty("members").EnumerateArray()];
            var sizes = new (int, int)[members.Length][];
            var heads = new float[members.Length][];
            var forecasts = new float[members.Length][];
            var channels = new int[members.Length][];
            for (int k = 0; k < members.Length; k++)
            {
                channels[k] = members[k].TryGetProperty("channels", out JsonElement c) ? [.. c.EnumerateArray().Select(e => e.GetInt32())] : [];
                if (channels[k].Length != a.Convolutions.Count || channels[k].Any(x => x < 1))
                {
                    throw new ModelFormatException($"metadata '{MetadataKey}': member {k}'s convolution channels do not match the architecture's {a.Convolutions.Count} convolutions.");
                }

                int[] hidden = [.. members[k].GetProperty("hidden").EnumerateArray().Select(e => e.GetInt32())];
                int[] projection = [.. members[k].GetProperty("projection").EnumerateArray().Select(e => e.GetInt32())];
                heads[k] = [.. members[k].GetProperty("headBias").EnumerateArray().Select(e => e.GetSingle())];
                forecasts[k] = [.. members[k].GetProperty("forecastBias").EnumerateArray().Select(e => e.GetSingle())];
                if (hidden.Length != a.Layers.Count || projection.Length != a.Layers.Count || heads[k].Length != a.Classes || forecasts[k].Length != a.ForecastSize
                    || hidden.Any(h => h < 1) || projection.Any(p => p < 0))
                {
                    throw new ModelFormatException($"metadata '{MetadataKey}': member {k} does not match the architecture ({a.Layers.Count} layers, {a.Classes} classes, forecast size {a.ForecastSize}).");
                }

                sizes[k] = [.. hidden.Zip(projection)];
            }

            for (int c = 0; c < a.Convolutions.Count; c++)
            {
                if (channels.Sum(m => m[c]) != a.Convolutions[c].Channels)
                {
                    throw new ModelFormatException(string.Create(CultureInfo.InvariantCulture, $"metadata '{MetadataKey}': the members' convolution {c} channels do not add up to its {a.Convolutions[c].Channels}."));
                }
            }

            for (int i = 0; i < a.Layers.Count; i++)
            {
                if (sizes.Sum(s => s[i].Item1) != a.Layers[i].HiddenSize || sizes.Sum(s => s[i].Item2) != a.Layers[i].ProjectionSize)
                {
                    throw new ModelFormatException(string.Create(CultureInfo.InvariantCulture, $"metadata '{MetadataKey}': the members' layer {i} sizes do not add up to the layer's {a.Layers[i].HiddenSize} units."));
                }
            }

            return (sizes, channels, heads, forecasts);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new ModelFormatException($"metadata '{MetadataKey}' does not read: {e.Message}", e);
        }
    }
}
