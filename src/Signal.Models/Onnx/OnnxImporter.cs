using Signal.Models.Files;
using Signal.Models.Networks;

namespace Signal.Models.Onnx;

/// <summary>
/// Imports recurrent classifiers from ONNX: an optional causal convolutional front end (Pad of zeros before the first
/// step, Conv, Relu, optionally a residual Add, as <c>torch.onnx.export</c> writes <c>F.pad</c> + <c>Conv1d</c>),
/// LSTM, GRU and RNN ops (ONNX gate orders iofc and zrh, converted to PyTorch's ifgo and rzn), followed by a dense head (Gemm, or MatMul + Add) and optionally
/// Softmax, as <c>torch.onnx.export</c>, tf2onnx and MATLAB's exporter write them.
/// </summary>
/// <remarks>
/// Exporters wrap the recurrent ops in shape arithmetic (Shape, Gather, Unsqueeze, Concat,
/// ConstantOfShape, Expand, Slice, Transpose, Squeeze, Reshape…) that builds zero initial states and
/// moves axes about. The importer folds that glue by evaluating the graph for one stream (batch 1) with
/// the sequence length left symbolic: constant sub-graphs are computed, data-dependent values are tracked
/// as "a feature vector per step" through layout ops, and the recurrent and dense ops become layers of a
/// <see cref="RecurrentModel"/>. Whatever cannot be folded that way is refused with the op named.
/// A graph that ends at the dense layer gets the softmax the engine applies anyway; a graph that selects
/// the last step (<c>y[:, -1]</c>) runs the same head at every step, so its last row is the graph's output.
/// </remarks>
public static class OnnxImporter
{
    /// <summary>Imports an ONNX file.</summary>
    /// <param name="path">The .onnx file.</param>
    /// <param name="labels">Class labels; default <c>class0</c>, <c>class1</c>, …</param>
    /// <returns>The model.</returns>
    /// <exception cref="OnnxImportException">The graph uses something the importer cannot express; the message names it.</exception>
    public static RecurrentModel Import(string path, IReadOnlyList<string>? labels = null)
    {
        byte[] bytes = File.ReadAllBytes(path);
        RecurrentModel model = Import(bytes, labels);
        return model.WithMetadata(new Dictionary<string, string> { ["signal.source"] = "onnx:" + Path.GetFileName(path) });
    }

    /// <summary>Imports ONNX model bytes.</summary>
    /// <param name="bytes">The ModelProto.</param>
    /// <param name="labels">Class labels.</param>
    /// <returns>The model.</returns>
    public static RecurrentModel Import(byte[] bytes, IReadOnlyList<string>? labels = null)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        OnnxGraph graph = OnnxGraph.Parse(bytes);
        OnnxImportException? first = null;
        // Which input axis is time is not written in the file; try batch-first (PyTorch's batch_first, Keras) then time-first.
        foreach (int timeAxis in new[] { 1, 0 })
        {
            try
            {
                return new Evaluation(graph, timeAxis).Run(labels);
            }
            catch (OnnxImportException e)
            {
                first ??= e;
            }
            catch (Exception e) when (e is IndexOutOfRangeException or ArgumentException or InvalidCastException or OverflowException or InvalidOperationException)
            {
                first ??= new OnnxImportException($"the graph is malformed: {e.Message}", e);
            }
        }

        throw first!;
    }

    /// <summary>A value that depends on the input: one feature vector per step (batch 1).</summary>
    private sealed class Dynamic
    {
        /// <summary>Dimensions; the time axis holds -1.</summary>
        public required long[] Dims { get; init; }

        /// <summary>Position of the time axis, or -1 when a single step was selected.</summary>
        public required int TimeAxis { get; init; }

        /// <summary>What produced it: -1 the model input, k the output of recurrent layer k.</summary>
        public required int Layer { get; init; }

        /// <summary>The dense head applied to it (null before the head).</summary>
        public Dense? Head { get; init; }

        public bool Softmax { get; init; }

        public bool LastStepOnly { get; init; }

        /// <summary>Zeros a Pad put before the first step (a causal convolution's left padding), not yet consumed by a Conv.</summary>
        public long Pad { get; init; }

        /// <summary>The value before that Pad (what a residual Add adds back).</summary>
        public Dynamic? Unpadded { get; init; }

        /// <summary>A convolution whose ReLU has not come yet, or -1.</summary>
        public int AwaitRelu { get; init; } = -1;

        /// <summary>The convolution whose activated output this is (a residual Add may follow), or -1.</summary>
        public int ConvOutput { get; init; } = -1;

        /// <summary>With <see cref="ConvOutput"/>: that convolution's input.</summary>
        public Dynamic? ConvInput { get; init; }

        public long Features => Dims.Where((_, i) => i != TimeAxis).Aggregate(1L, (a, b) => a * b);

        public Dynamic With(long[] dims, int timeAxis, bool? lastOnly = null) => new()
        {
            Dims = dims,
            TimeAxis = timeAxis,
            Layer = Layer,
            Head = Head,
            Softmax = Softmax,
            LastStepOnly = lastOnly ?? LastStepOnly,
            Pad = Pad,
            Unpadded = Unpadded,
            AwaitRelu = AwaitRelu,
        };
    }

    /// <summary>y = W·x + b with W stored [outputs × inputs].</summary>
    private sealed record Dense(float[] Weight, float[] Bias, int Outputs, int Inputs);

    private sealed class Evaluation(OnnxGraph graph, int inputTimeAxis)
    {
        private readonly Dictionary<string, object> _values = new(StringComparer.Ordinal);
        private readonly List<LayerArchitecture> _layers = [];
        private readonly List<ConvolutionArchitecture> _convolutions = [];
        private readonly Dictionary<string, Tensor> _tensors = new(StringComparer.Ordinal);
        private int _inputSize;

        public RecurrentModel Run(IReadOnlyList<string>? labels)
        {
            foreach ((string name, ConstTensor t) in graph.Initializers)
            {
                _values[name] = t;
            }

            OnnxValueInfo input = graph.Inputs.FirstOrDefault(i => !graph.Initializers.ContainsKey(i.Name))
                ?? throw new OnnxImportException("the graph has no input.");
            if (input.Shape is not { Length: 2 or 3 } shape || shape[^1] is not { } features)
            {
                throw new OnnxImportException($"input '{input.Name}' must be [batch, steps, features] or [steps, features] with a fixed feature count.");
            }

            int timeAxis = shape.Length == 2 ? 0 : inputTimeAxis;
            long[] dims = new long[shape.Length];
            for (int i = 0; i < dims.Length; i++)
            {
                dims[i] = i == timeAxis ? -1 : i == dims.Length - 1 ? features : 1;
            }

            _values[input.Name] = new Dynamic { Dims = dims, TimeAxis = timeAxis, Layer = -1 };
            foreach (OnnxNode node in graph.Nodes)
            {
                Evaluate(node);
            }

            string outputName = graph.Outputs.Count > 0 ? graph.Outputs[0].Name : throw new OnnxImportException("the graph has no output.");
            if (!_values.TryGetValue(outputName, out object? output) || output is not Dynamic result || result.Head is null)
            {
                throw new OnnxImportException($"output '{outputName}' is not a dense layer over the recurrent layers' output; the importer needs a recurrent stack followed by one dense head.");
            }

            if (result.Layer != _layers.Count - 1)
            {
                throw new OnnxImportException("the dense head does not read the last recurrent layer's output.");
            }

            Dense head = result.Head;
            _tensors["head.weight"] = new Tensor("head.weight", [head.Outputs, head.Inputs], head.Weight);
            _tensors["head.bias"] = new Tensor("head.bias", [head.Outputs], head.Bias);
            var architecture = new ModelArchitecture { InputSize = _inputSize, Convolutions = _convolutions, Layers = _layers, Classes = head.Outputs };
            var metadata = new Dictionary<string, string>
            {
                ["signal.onnx.producer"] = graph.Producer,
                ["signal.onnx.opset"] = graph.OpsetVersion.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["signal.onnx.lastStepOnly"] = result.LastStepOnly ? "true" : "false",
            };
            try
            {
                return RecurrentModel.Create(architecture, _tensors, labels, metadata);
            }
            catch (ModelFormatException e)
            {
                throw new OnnxImportException("the imported network is not valid: " + e.Message, e);
            }
        }

        private object Get(OnnxNode node, int index)
        {
            if (index >= node.Inputs.Count || node.Inputs[index].Length == 0)
            {
                throw new OnnxImportException($"{node.Describe} lacks input {index}.");
            }

            return _values.TryGetValue(node.Inputs[index], out object? v) ? v
                : throw new OnnxImportException($"{node.Describe} reads '{node.Inputs[index]}', which no earlier node produced.");
        }

        private object? Optional(OnnxNode node, int index) =>
            index < node.Inputs.Count && node.Inputs[index].Length > 0 ? Get(node, index) : null;

        private ConstTensor Const(OnnxNode node, int index) => Get(node, index) as ConstTensor
            ?? throw new OnnxImportException($"{node.Describe}: input {index} ('{node.Inputs[index]}') must be a constant for the importer (it depends on the input data).");

        private void Set(OnnxNode node, int index, object value)
        {
            if (index < node.Outputs.Count && node.Outputs[index].Length > 0)
            {
                _values[node.Outputs[index]] = value;
            }
        }

        private void Evaluate(OnnxNode node)
        {
            if (node.Domain is not ("" or "ai.onnx"))
            {
                throw Unsupported(node, $"domain '{node.Domain}'");
            }

            bool dynamic = node.Inputs.Any(i => i.Length > 0 && _values.TryGetValue(i, out object? v) && v is Dynamic);
            switch (node.OpType)
            {
                case "LSTM" or "GRU" or "RNN":
                    Recurrent(node);
                    return;
                case "Identity" or "Dropout" or "Cast":
                    Set(node, 0, Get(node, 0));
                    return;
                case "Constant":
                    Set(node, 0, ConstantValue(node));
                    return;
                case "Shape":
                    Set(node, 0, ShapeOf(node, Get(node, 0)));
                    return;
            }

            if (!dynamic)
            {
                Set(node, 0, ConstFolding.Evaluate(node, i => Optional(node, i) as ConstTensor));
                return;
            }

            Dynamic x = Get(node, 0) as Dynamic ?? (node.OpType is "Add" or "MatMul" ? Swap(node) : throw Unsupported(node, "a dynamic value in this position"));
            Set(node, 0, node.OpType switch
            {
                "Transpose" => Transpose(node, x),
                "Squeeze" => Squeeze(node, x),
                "Unsqueeze" => Unsqueeze(node, x),
                "Reshape" => Reshape(node, x),
                "Gather" => Gather(node, x),
                "Slice" => SliceTime(node, x),
                "MatMul" => MatMul(node, x),
                "Gemm" => Gemm(node, x),
                "Add" => Optional(node, 1) is Dynamic && Get(node, 0) is Dynamic ? Residual(node) : AddBias(node, x),
                "Pad" => PadTime(node, x),
                "Conv" => Convolution(node, x),
                "Relu" => Relu(node, x),
                "Softmax" => Softmax(node, x),
                _ => throw Unsupported(node, "it on the data path"),
            });
        }

        private Dynamic Swap(OnnxNode node) => Get(node, 1) as Dynamic ?? throw Unsupported(node, "this operand order");

        private static OnnxImportException Unsupported(OnnxNode node, string what) =>
            new($"unsupported: {node.Describe} ({what}). The importer reads causal convolutions (Pad on the left of time, Conv, Relu, a residual Add), LSTM/GRU/RNN layers, a Gemm or MatMul+Add head and Softmax, and folds shape glue (Shape, Gather, Unsqueeze, Squeeze, Concat, ConstantOfShape, Expand, Slice, Transpose, Reshape, Cast, arithmetic).");

        private static ConstTensor ConstantValue(OnnxNode node)
        {
            foreach ((string name, OnnxAttribute a) in node.Attributes)
            {
                switch (name)
                {
                    case "value" when a.Tensor is not null:
                        return a.Tensor;
                    case "value_float":
                        return ConstTensor.Scalar(a.Float);
                    case "value_int":
                        return ConstTensor.Scalar(a.Int);
                    case "value_floats":
                        return ConstTensor.Vector([.. a.Floats.Select(f => (double)f)]);
                    case "value_ints":
                        return ConstTensor.Vector([.. a.Ints.Select(i => (double)i)]);
                }
            }

            throw Unsupported(node, "a Constant without a numeric value");
        }

        private static ConstTensor ShapeOf(OnnxNode node, object value)
        {
            double[] dims = value switch
            {
                ConstTensor c => [.. c.Dims.Select(d => (double)d)],
                Dynamic d => [.. d.Dims.Select(v => v < 0 ? double.NaN : v)], // the sequence length is unknown: NaN
                _ => throw Unsupported(node, "shape of an unknown value"),
            };
            long start = node.Int("start", 0), end = node.Int("end", dims.Length);
            start = start < 0 ? start + dims.Length : start;
            end = end < 0 ? end + dims.Length : Math.Min(end, dims.Length);
            return ConstTensor.Vector(dims[(int)start..(int)Math.Max(start, end)]);
        }

        private static Dynamic Transpose(OnnxNode node, Dynamic x)
        {
            long[] perm = node.Ints("perm") ?? [.. Enumerable.Range(0, x.Dims.Length).Reverse().Select(i => (long)i)];
            long[] dims = [.. perm.Select(p => x.Dims[p])];
            int time = x.TimeAxis < 0 ? -1 : Array.IndexOf(perm, (long)x.TimeAxis);
            // Feature order is the row-major order of the non-time axes: only size-1 axes may move across others.
            long[] order = [.. perm.Where(p => p != x.TimeAxis && x.Dims[p] != 1)];
            if (!order.SequenceEqual(order.Order()))
            {
                throw Unsupported(node, "a transpose that reorders feature axes");
            }

            return x.With(dims, time);
        }

        private Dynamic Squeeze(OnnxNode node, Dynamic x)
        {
            long[]? axes = node.Ints("axes") ?? (Optional(node, 1) is ConstTensor a ? [.. a.Data.Select(d => (long)d)] : null);
            var keep = new List<int>();
            for (int i = 0; i < x.Dims.Length; i++)
            {
                bool squeeze = axes is null ? x.Dims[i] == 1 : axes.Any(a => Normalize(a, x.Dims.Length) == i);
                if (squeeze && (x.Dims[i] != 1 || i == x.TimeAxis))
                {
                    throw Unsupported(node, $"squeezing axis {i} of size {(i == x.TimeAxis ? "steps" : x.Dims[i])}");
                }

                if (!squeeze)
                {
                    keep.Add(i);
                }
            }

            return x.With([.. keep.Select(i => x.Dims[i])], keep.IndexOf(x.TimeAxis));
        }

        private Dynamic Unsqueeze(OnnxNode node, Dynamic x)
        {
            long[] axes = node.Ints("axes") ?? [.. Const(node, 1).Data.Select(d => (long)d)];
            int rank = x.Dims.Length + axes.Length;
            var inserted = axes.Select(a => Normalize(a, rank)).ToHashSet();
            var dims = new List<long>();
            int source = 0, time = -1;
            for (int i = 0; i < rank; i++)
            {
                if (inserted.Contains(i))
                {
                    dims.Add(1);
                    continue;
                }

                if (source == x.TimeAxis)
                {
                    time = i;
                }

                dims.Add(x.Dims[source++]);
            }

            return x.With([.. dims], time);
        }

        private Dynamic Reshape(OnnxNode node, Dynamic x)
        {
            double[] target = Const(node, 1).Data;
            long[] dims = new long[target.Length];
            int time = -1, infer = -1;
            for (int i = 0; i < target.Length; i++)
            {
                double t = target[i];
                if (double.IsNaN(t) || (t == 0 && i == x.TimeAxis))
                {
                    time = time < 0 ? i : throw Unsupported(node, "a reshape with two unknown axes");
                    dims[i] = -1;
                }
                else if (t == 0)
                {
                    dims[i] = x.Dims[i];
                }
                else if (t == -1)
                {
                    infer = i;
                }
                else
                {
                    dims[i] = (long)t;
                }
            }

            long known = dims.Where((d, i) => i != time && i != infer).Aggregate(1L, (a, b) => a * b);
            if (infer >= 0)
            {
                if (time < 0 && x.TimeAxis >= 0 && known == x.Features)
                {
                    time = infer;
                    dims[infer] = -1;
                }
                else if (known > 0 && x.Features % known == 0)
                {
                    dims[infer] = x.Features / known;
                }
                else
                {
                    throw Unsupported(node, "a reshape whose inferred axis cannot be resolved");
                }
            }

            if ((time >= 0) != (x.TimeAxis >= 0) || dims.Where((_, i) => i != time).Aggregate(1L, (a, b) => a * b) != x.Features)
            {
                throw Unsupported(node, $"a reshape to [{string.Join(", ", target)}] that mixes steps with features");
            }

            return x.With(dims, time);
        }

        private Dynamic Gather(OnnxNode node, Dynamic x)
        {
            ConstTensor indices = Const(node, 1);
            int axis = Normalize(node.Int("axis", 0), x.Dims.Length);
            if (indices.Rank != 0)
            {
                throw Unsupported(node, "a gather of several indices on the data path");
            }

            double index = indices.Data[0];
            if (axis == x.TimeAxis)
            {
                if (index != -1)
                {
                    throw Unsupported(node, "selecting a step other than the last");
                }

                return x.With([.. x.Dims.Where((_, i) => i != axis)], -1, lastOnly: true);
            }

            if (x.Dims[axis] != 1)
            {
                throw Unsupported(node, $"selecting part of a feature axis of size {x.Dims[axis]}");
            }

            int time = x.TimeAxis > axis ? x.TimeAxis - 1 : x.TimeAxis;
            return x.With([.. x.Dims.Where((_, i) => i != axis)], time);
        }

        private Dynamic SliceTime(OnnxNode node, Dynamic x)
        {
            double[] starts = Const(node, 1).Data, ends = Const(node, 2).Data;
            double[] axes = Optional(node, 3) is ConstTensor a ? a.Data : [.. Enumerable.Range(0, starts.Length).Select(i => (double)i)];
            bool last = false;
            for (int i = 0; i < axes.Length; i++)
            {
                int axis = Normalize((long)axes[i], x.Dims.Length);
                bool whole = starts[i] == 0 && ends[i] >= (axis == x.TimeAxis ? long.MaxValue / 2 : x.Dims[axis]);
                if (axis == x.TimeAxis && starts[i] == -1 && ends[i] >= long.MaxValue / 2)
                {
                    last = true;
                }
                else if (!whole)
                {
                    throw Unsupported(node, $"a slice of axis {axis} that is not the last step or the whole axis");
                }
            }

            return x.With(x.Dims, x.TimeAxis, lastOnly: last || x.LastStepOnly);
        }

        private Dynamic MatMul(OnnxNode node, Dynamic x)
        {
            ConstTensor w = Const(node, ReferenceEquals(Get(node, 0), x) ? 1 : 0);
            if (!ReferenceEquals(Get(node, 0), x) || w.Rank != 2)
            {
                throw Unsupported(node, "a MatMul other than features × constant matrix");
            }

            int inputs = (int)w.Dims[0], outputs = (int)w.Dims[1];
            float[] weight = new float[outputs * inputs];
            for (int o = 0; o < outputs; o++)
            {
                for (int i = 0; i < inputs; i++)
                {
                    weight[(o * inputs) + i] = (float)w.Data[(i * outputs) + o];
                }
            }

            return DenseOver(node, x, new Dense(weight, new float[outputs], outputs, inputs));
        }

        private Dynamic Gemm(OnnxNode node, Dynamic x)
        {
            if (node.Int("transA", 0) != 0)
            {
                throw Unsupported(node, "transA");
            }

            ConstTensor b = Const(node, 1);
            bool transB = node.Int("transB", 0) != 0;
            float alpha = node.Float("alpha", 1f), beta = node.Float("beta", 1f);
            int outputs = (int)(transB ? b.Dims[0] : b.Dims[1]), inputs = (int)(transB ? b.Dims[1] : b.Dims[0]);
            float[] weight = new float[outputs * inputs];
            for (int o = 0; o < outputs; o++)
            {
                for (int i = 0; i < inputs; i++)
                {
                    weight[(o * inputs) + i] = alpha * (float)b.Data[transB ? (o * inputs) + i : (i * outputs) + o];
                }
            }

            float[] bias = new float[outputs];
            if (Optional(node, 2) is ConstTensor c)
            {
                for (int o = 0; o < outputs; o++)
                {
                    bias[o] = beta * (float)c.Data[c.Data.Length == 1 ? 0 : o];
                }
            }

            return DenseOver(node, x, new Dense(weight, bias, outputs, inputs));
        }

        private static Dynamic DenseOver(OnnxNode node, Dynamic x, Dense dense)
        {
            if (x.Head is not null || x.Layer < 0)
            {
                throw Unsupported(node, x.Layer < 0 ? "a dense layer before the recurrent layers" : "a second dense layer (the head is one dense layer)");
            }

            if (x.Features != dense.Inputs || x.Dims[^1] != dense.Inputs)
            {
                throw Unsupported(node, $"a dense layer of {dense.Inputs} inputs over {x.Features} features");
            }

            long[] dims = (long[])x.Dims.Clone();
            dims[^1] = dense.Outputs;
            return new Dynamic { Dims = dims, TimeAxis = x.TimeAxis, Layer = x.Layer, Head = dense, LastStepOnly = x.LastStepOnly };
        }

        private Dynamic AddBias(OnnxNode node, Dynamic x)
        {
            ConstTensor b = Const(node, ReferenceEquals(Get(node, 0), x) ? 1 : 0);
            if (x.Head is null || x.Softmax || b.Data.Length != x.Head.Outputs)
            {
                throw Unsupported(node, "an Add that is not the dense head's bias");
            }

            float[] bias = [.. x.Head.Bias.Select((v, i) => v + (float)b.Data[i])];
            return new Dynamic { Dims = x.Dims, TimeAxis = x.TimeAxis, Layer = x.Layer, Head = x.Head with { Bias = bias }, LastStepOnly = x.LastStepOnly };
        }

        private static Dynamic Softmax(OnnxNode node, Dynamic x)
        {
            int axis = Normalize(node.Int("axis", -1), x.Dims.Length);
            if (x.Head is null || axis != x.Dims.Length - 1)
            {
                throw Unsupported(node, "a softmax that is not over the head's classes");
            }

            return new Dynamic { Dims = x.Dims, TimeAxis = x.TimeAxis, Layer = x.Layer, Head = x.Head, Softmax = true, LastStepOnly = x.LastStepOnly };
        }

        /// <summary>A Pad of zeros before the first step of a [1, channels, steps] value: a causal convolution's padding.</summary>
        private Dynamic PadTime(OnnxNode node, Dynamic x)
        {
            ConstTensor pads = Const(node, 1);
            int rank = x.Dims.Length;
            string mode = node.String("mode") ?? "constant";
            bool zeros = Optional(node, 2) is not ConstTensor value || value.Data.All(v => v == 0);
            if (x.Layer != -1 || x.Head is not null || x.AwaitRelu >= 0 || rank != 3 || x.TimeAxis != 2 || Optional(node, 3) is not null || mode != "constant" || !zeros
                || pads.Data.Length != 2 * rank || pads.Data.Where((v, i) => i != x.TimeAxis && v != 0).Any() || pads.Data[x.TimeAxis] < 0)
            {
                throw Unsupported(node, "a Pad other than zeros before the first step of the [batch, channels, steps] input of a convolution");
            }

            return new Dynamic { Dims = x.Dims, TimeAxis = x.TimeAxis, Layer = -1, Pad = x.Pad + (long)pads.Data[x.TimeAxis], Unpadded = x.Unpadded ?? x };
        }

        /// <summary>A Conv over the steps whose left padding is (kernel − 1) · dilation: causal, as Signal steps it.</summary>
        private Dynamic Convolution(OnnxNode node, Dynamic x)
        {
            ConstTensor w = Const(node, 1);
            ConstTensor? b = Optional(node, 2) as ConstTensor;
            if (x.Layer != -1 || x.Head is not null || x.AwaitRelu >= 0 || x.Dims.Length != 3 || x.TimeAxis != 2 || w.Rank != 3 || w.Dims[1] != x.Dims[1])
            {
                throw Unsupported(node, "a Conv that is not a 1-D convolution over the steps of the input or of the previous convolution (with its ReLU)");
            }

            int channels = (int)w.Dims[0], inputs = (int)w.Dims[1], kernel = (int)w.Dims[2];
            long dilation = node.Ints("dilations") is [var d] ? d : 1;
            bool plain = node.Int("group", 1) == 1 && (node.Ints("strides") ?? [1]).All(v => v == 1) && (node.Ints("pads") ?? [0, 0]).All(v => v == 0)
                && (node.String("auto_pad") ?? "NOTSET") == "NOTSET";
            if (!plain || x.Pad != (kernel - 1) * dilation)
            {
                throw Unsupported(node, $"a Conv that is not causal (needs stride 1, one group, no padding of its own and {(kernel - 1) * dilation} zeros padded before the first step; has {x.Pad})");
            }

            int index = _convolutions.Count;
            if (index == 0)
            {
                _inputSize = inputs;
            }

            _convolutions.Add(new ConvolutionArchitecture { Channels = channels, Kernel = kernel, Dilation = (int)dilation });
            _tensors[$"convs.{index}.weight"] = new Tensor($"convs.{index}.weight", [channels, inputs, kernel], w.ToFloats());
            _tensors[$"convs.{index}.bias"] = new Tensor($"convs.{index}.bias", [channels], b?.ToFloats() ?? new float[channels]);
            return new Dynamic { Dims = [1, channels, -1], TimeAxis = 2, Layer = -1, AwaitRelu = index, ConvInput = x.Unpadded };
        }

        private static Dynamic Relu(OnnxNode node, Dynamic x)
        {
            if (x.AwaitRelu < 0)
            {
                throw Unsupported(node, "a Relu that does not follow a convolution");
            }

            return new Dynamic { Dims = x.Dims, TimeAxis = x.TimeAxis, Layer = -1, ConvOutput = x.AwaitRelu, ConvInput = x.ConvInput };
        }

        /// <summary>The activated output of the last convolution plus that convolution's input: a residual block.</summary>
        private Dynamic Residual(OnnxNode node)
        {
            var (a, b) = ((Dynamic)Get(node, 0), (Dynamic)Get(node, 1));
            Dynamic output = a.ConvOutput >= 0 ? a : b, other = ReferenceEquals(output, a) ? b : a;
            if (output.ConvOutput != _convolutions.Count - 1 || output.ConvOutput < 0 || !ReferenceEquals(output.ConvInput, other) || !output.Dims.SequenceEqual(other.Dims))
            {
                throw Unsupported(node, "an Add of two data values other than a convolution's activated output and that convolution's input");
            }

            _convolutions[^1].Residual = true;
            return new Dynamic { Dims = output.Dims, TimeAxis = output.TimeAxis, Layer = -1 };
        }

        private void Recurrent(OnnxNode node)
        {
            if (Get(node, 0) is not Dynamic x)
            {
                throw Unsupported(node, "a recurrent layer over constant input");
            }

            if (x.AwaitRelu >= 0 || x.Pad != 0)
            {
                throw Unsupported(node, "a recurrent layer over a convolution without its ReLU, or over padded steps");
            }

            int layout = (int)node.Int("layout", 0);
            if (x.Head is not null || x.Layer != _layers.Count - 1 || x.LastStepOnly)
            {
                throw Unsupported(node, "a recurrent layer that does not follow the previous one directly");
            }

            if (x.TimeAxis != layout || x.Dims.Length != 3 || x.Dims[1 - layout] != 1)
            {
                throw Unsupported(node, $"input of shape [{string.Join(", ", x.Dims.Select(d => d < 0 ? "steps" : d.ToString(System.Globalization.CultureInfo.InvariantCulture)))}] for layout {layout}");
            }

            ConstTensor w = Const(node, 1), r = Const(node, 2);
            ConstTensor? b = Optional(node, 3) as ConstTensor;
            if (Optional(node, 4) is not null)
            {
                throw Unsupported(node, "sequence_lens (export for one stream without per-sequence lengths)");
            }

            foreach (int state in node.OpType == "LSTM" ? new[] { 5, 6, 7 } : [5])
            {
                object? v = Optional(node, state);
                if (v is Dynamic || (v is ConstTensor c && c.Data.Any(d => d != 0)))
                {
                    throw Unsupported(node, state == 7 ? "peephole weights" : "a non-zero initial state");
                }
            }

            if (node.Float("clip", 0) != 0 || node.Int("input_forget", 0) != 0)
            {
                throw Unsupported(node, "clip or input_forget");
            }

            string direction = node.String("direction") ?? "forward";
            if (direction is not ("forward" or "bidirectional"))
            {
                throw Unsupported(node, $"direction '{direction}'");
            }

            int hidden = (int)node.Int("hidden_size", r.Dims[^1]);
            int directions = direction == "bidirectional" ? 2 : 1;
            int input = (int)x.Dims[2];
            CellKind kind = node.OpType switch { "LSTM" => CellKind.Lstm, "GRU" => CellKind.Gru, _ => CellKind.Rnn };
            int gates = kind switch { CellKind.Lstm => 4, CellKind.Gru => 3, _ => 1 };
            if (w.Rank != 3 || w.Dims[0] != directions || w.Dims[1] != gates * hidden || w.Dims[2] != input || r.Dims[2] != hidden)
            {
                throw Unsupported(node, $"weights W {w} / R {r} for {directions} direction(s), hidden {hidden}, input {input}");
            }

            string nonlinearity = "tanh";
            List<string>? activations = node.Strings("activations");
            string[] expected = kind switch { CellKind.Lstm => ["Sigmoid", "Tanh", "Tanh"], CellKind.Gru => ["Sigmoid", "Tanh"], _ => ["Tanh"] };
            if (activations is { Count: > 0 })
            {
                if (kind == CellKind.Rnn && activations.All(a => a == "Relu"))
                {
                    nonlinearity = "relu";
                }
                else if (!activations.SequenceEqual(Enumerable.Range(0, directions).SelectMany(_ => expected)))
                {
                    throw Unsupported(node, $"activations {string.Join(",", activations)}");
                }
            }

            if (kind == CellKind.Gru && node.Int("linear_before_reset", 0) != 1)
            {
                throw Unsupported(node, "linear_before_reset = 0 (PyTorch's and our GRU apply the reset gate after the hidden product; re-export with linear_before_reset=1)");
            }

            int index = _layers.Count;
            if (index == 0 && _convolutions.Count == 0)
            {
                _inputSize = input;
            }

            // ONNX block order → PyTorch block order: LSTM i,o,f,c → i,f,g,o; GRU z,r,h → r,z,n.
            int[] order = kind switch { CellKind.Lstm => [0, 2, 3, 1], CellKind.Gru => [1, 0, 2], _ => [0] };
            for (int d = 0; d < directions; d++)
            {
                string suffix = d == 0 ? string.Empty : "_reverse";
                string p = $"layers.{index}.";
                _tensors[$"{p}weight_ih_l0{suffix}"] = new Tensor($"{p}weight_ih_l0{suffix}", [gates * hidden, input], Reorder(w, d, order, hidden, input, 0));
                _tensors[$"{p}weight_hh_l0{suffix}"] = new Tensor($"{p}weight_hh_l0{suffix}", [gates * hidden, hidden], Reorder(r, d, order, hidden, hidden, 0));
                _tensors[$"{p}bias_ih_l0{suffix}"] = new Tensor($"{p}bias_ih_l0{suffix}", [gates * hidden], b is null ? new float[gates * hidden] : Reorder(b, d, order, hidden, 1, 0));
                _tensors[$"{p}bias_hh_l0{suffix}"] = new Tensor($"{p}bias_hh_l0{suffix}", [gates * hidden], b is null ? new float[gates * hidden] : Reorder(b, d, order, hidden, 1, gates * hidden));
            }

            _layers.Add(new LayerArchitecture { Kind = kind, HiddenSize = hidden, Bidirectional = directions == 2, Nonlinearity = nonlinearity });

            // Y is [steps, directions, 1, hidden] (layout 0) or [1, steps, directions, hidden] (layout 1); Y_h/Y_c hold the last step.
            long[] y = layout == 0 ? [-1, directions, 1, hidden] : [1, -1, directions, hidden];
            Set(node, 0, new Dynamic { Dims = y, TimeAxis = layout, Layer = index });
            var last = new Dynamic { Dims = layout == 0 ? [directions, 1, hidden] : [1, directions, hidden], TimeAxis = -1, Layer = index, LastStepOnly = true };
            Set(node, 1, last);
            Set(node, 2, new Dynamic { Dims = last.Dims, TimeAxis = -1, Layer = -2 });
        }

        private static float[] Reorder(ConstTensor t, int direction, int[] order, int hidden, int columns, int offset)
        {
            int blocks = order.Length;
            long stride = t.Data.Length / t.Dims[0];
            float[] result = new float[blocks * hidden * columns];
            for (int block = 0; block < blocks; block++)
            {
                long source = (direction * stride) + offset + ((long)order[block] * hidden * columns);
                for (int i = 0; i < hidden * columns; i++)
                {
                    result[(block * hidden * columns) + i] = (float)t.Data[source + i];
                }
            }

            return result;
        }

        private static int Normalize(long axis, int rank) => (int)(axis < 0 ? axis + rank : axis);
    }
}
