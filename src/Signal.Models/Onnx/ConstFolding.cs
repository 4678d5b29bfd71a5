namespace Signal.Models.Onnx;

/// <summary>
/// Evaluates the shape-arithmetic ops of an exported graph on constant inputs (numpy broadcasting).
/// Unknown sizes travel as NaN, so glue that only needs the batch and feature sizes folds while glue that
/// would need the sequence length is reported.
/// </summary>
internal static class ConstFolding
{
    public static ConstTensor Evaluate(OnnxNode node, Func<int, ConstTensor?> input)
    {
        ConstTensor In(int i) => input(i) ?? throw new OnnxImportException($"{node.Describe} lacks constant input {i}.");
        long[] Ints(ConstTensor t) => [.. t.Data.Select(d => double.IsNaN(d) ? throw new OnnxImportException($"{node.Describe} needs a size that depends on the sequence length.") : (long)d)];
        long[]? AxesAttr() => node.Ints("axes") ?? (input(1) is { } a ? Ints(a) : null);

        switch (node.OpType)
        {
            case "Add":
                return Binary(In(0), In(1), (a, b) => a + b);
            case "Sub":
                return Binary(In(0), In(1), (a, b) => a - b);
            case "Mul":
                return Binary(In(0), In(1), (a, b) => a * b);
            case "Div":
                return Binary(In(0), In(1), (a, b) => IsInteger(In(0)) && IsInteger(In(1)) ? Math.Floor(a / b) : a / b);
            case "Equal":
                return Binary(In(0), In(1), (a, b) => a == b ? 1 : 0);
            case "Less":
                return Binary(In(0), In(1), (a, b) => a < b ? 1 : 0);
            case "Greater":
                return Binary(In(0), In(1), (a, b) => a > b ? 1 : 0);
            case "Max":
                return Binary(In(0), In(1), Math.Max);
            case "Min":
                return Binary(In(0), In(1), Math.Min);
            case "Not":
                return new ConstTensor(In(0).Dims, [.. In(0).Data.Select(d => d == 0 ? 1.0 : 0.0)]);
            case "Neg":
                return new ConstTensor(In(0).Dims, [.. In(0).Data.Select(d => -d)]);
            case "Where":
                ConstTensor condition = In(0);
                ConstTensor chosen = Binary(Binary(condition, In(1), (c, x) => c != 0 ? x : double.PositiveInfinity), In(2), (x, y) => double.IsPositiveInfinity(x) ? y : x);
                return chosen;
            case "Unsqueeze":
            {
                ConstTensor x = In(0);
                long[] axes = AxesAttr() ?? throw new OnnxImportException($"{node.Describe} has no axes.");
                int rank = x.Rank + axes.Length;
                var dims = x.Dims.ToList();
                foreach (long a in axes.Select(a => a < 0 ? a + rank : a).Order())
                {
                    dims.Insert((int)a, 1);
                }

                return new ConstTensor([.. dims], x.Data);
            }

            case "Squeeze":
            {
                ConstTensor x = In(0);
                long[]? axes = AxesAttr();
                var dims = x.Dims.Where((d, i) => axes is null ? d != 1 : !axes.Any(a => (a < 0 ? a + x.Rank : a) == i)).ToArray();
                return new ConstTensor(dims, x.Data);
            }

            case "Concat":
            {
                var parts = Enumerable.Range(0, node.Inputs.Count).Select(In).ToList();
                int rank = parts[0].Rank;
                int axis = (int)node.Int("axis", 0);
                axis = axis < 0 ? axis + rank : axis;
                long outer = parts[0].Dims.Take(axis).Aggregate(1L, (a, b) => a * b);
                var data = new List<double>();
                for (long o = 0; o < outer; o++)
                {
                    foreach (ConstTensor p in parts)
                    {
                        long inner = p.Dims.Skip(axis).Aggregate(1L, (a, b) => a * b);
                        data.AddRange(p.Data.Skip((int)(o * inner)).Take((int)inner));
                    }
                }

                long[] dims = (long[])parts[0].Dims.Clone();
                dims[axis] = parts.Sum(p => p.Dims[axis]);
                return new ConstTensor(dims, [.. data]);
            }

            case "Gather":
            {
                ConstTensor x = In(0), indices = In(1);
                int axis = (int)node.Int("axis", 0);
                axis = axis < 0 ? axis + x.Rank : axis;
                long outer = x.Dims.Take(axis).Aggregate(1L, (a, b) => a * b);
                long inner = x.Dims.Skip(axis + 1).Aggregate(1L, (a, b) => a * b);
                long size = x.Dims[axis];
                var data = new List<double>();
                for (long o = 0; o < outer; o++)
                {
                    foreach (double index in indices.Data)
                    {
                        long k = (long)index < 0 ? (long)index + size : (long)index;
                        if (k < 0 || k >= size)
                        {
                            throw new OnnxImportException($"{node.Describe}: index {index} is out of range for size {size}.");
                        }

                        data.AddRange(x.Data.Skip((int)(((o * size) + k) * inner)).Take((int)inner));
                    }
                }

                long[] dims = [.. x.Dims.Take(axis), .. indices.Dims, .. x.Dims.Skip(axis + 1)];
                return new ConstTensor(dims, [.. data]);
            }

            case "Slice":
            {
                ConstTensor x = In(0);
                double[] starts = In(1).Data, ends = In(2).Data;
                double[] axes = input(3)?.Data ?? [.. Enumerable.Range(0, starts.Length).Select(i => (double)i)];
                double[] steps = input(4)?.Data ?? [.. starts.Select(_ => 1.0)];
                long[] begin = new long[x.Rank], count = (long[])x.Dims.Clone(), step = [.. Enumerable.Repeat(1L, x.Rank)];
                for (int i = 0; i < axes.Length; i++)
                {
                    int axis = (int)(axes[i] < 0 ? axes[i] + x.Rank : axes[i]);
                    long size = x.Dims[axis];
                    step[axis] = (long)steps[i];
                    if (step[axis] == 0)
                    {
                        throw new OnnxImportException($"{node.Describe}: a slice step of 0.");
                    }

                    // ONNX's rules: a positive step clamps start and end to [0, size]; a negative one (which walks
                    // backwards, as exporters reverse a list of pads) clamps start to [0, size − 1] and end to [−1, size − 1].
                    double first = starts[i] < 0 ? starts[i] + size : starts[i], last = ends[i] < 0 ? ends[i] + size : ends[i];
                    if (step[axis] > 0)
                    {
                        begin[axis] = (long)Math.Clamp(first, 0, size);
                        long stop = (long)Math.Clamp(last, 0, size);
                        count[axis] = Math.Max(0, (stop - begin[axis] + step[axis] - 1) / step[axis]);
                    }
                    else
                    {
                        begin[axis] = (long)Math.Clamp(first, 0, size - 1);
                        long stop = (long)Math.Clamp(last, -1, size - 1);
                        count[axis] = Math.Max(0, (begin[axis] - stop - step[axis] - 1) / -step[axis]);
                    }
                }

                long[] dims = count;
                double[] data = new double[dims.Aggregate(1L, (a, b) => a * b)];
                long[] strides = Strides(x.Dims);
                for (int j = 0; j < data.Length; j++)
                {
                    long rest = j, source = 0;
                    for (int a = x.Rank - 1; a >= 0; a--)
                    {
                        long coordinate = rest % dims[a];
                        rest /= dims[a];
                        source += (begin[a] + (coordinate * step[a])) * strides[a];
                    }

                    data[j] = x.Data[source];
                }

                return new ConstTensor(dims, data);
            }

            case "ConstantOfShape":
            {
                long[] dims = Ints(In(0));
                double value = node.Attributes.TryGetValue("value", out OnnxAttribute? v) && v.Tensor is not null ? v.Tensor.Data[0] : 0;
                return new ConstTensor(dims, [.. Enumerable.Repeat(value, (int)dims.Aggregate(1L, (a, b) => a * b))]);
            }

            case "Expand":
            {
                ConstTensor x = In(0);
                long[] shape = Ints(In(1));
                return Binary(x, new ConstTensor(shape, new double[shape.Aggregate(1L, (a, b) => a * b)]), (a, _) => a);
            }

            case "Reshape":
            {
                ConstTensor x = In(0);
                long[] target = Ints(In(1));
                for (int i = 0; i < target.Length; i++)
                {
                    if (target[i] == 0)
                    {
                        target[i] = x.Dims[i];
                    }
                }

                int infer = Array.IndexOf(target, -1L);
                if (infer >= 0)
                {
                    target[infer] = x.Data.Length / Math.Max(1, target.Where((_, i) => i != infer).Aggregate(1L, (a, b) => a * b));
                }

                return new ConstTensor(target, x.Data);
            }

            case "Transpose":
            {
                ConstTensor x = In(0);
                long[] perm = node.Ints("perm") ?? [.. Enumerable.Range(0, x.Rank).Reverse().Select(i => (long)i)];
                long[] dims = [.. perm.Select(p => x.Dims[p])];
                long[] strides = Strides(x.Dims);
                double[] data = new double[x.Data.Length];
                for (int j = 0; j < data.Length; j++)
                {
                    long rest = j, source = 0;
                    for (int a = x.Rank - 1; a >= 0; a--)
                    {
                        source += rest % dims[a] * strides[perm[a]];
                        rest /= dims[a];
                    }

                    data[j] = x.Data[source];
                }

                return new ConstTensor(dims, data);
            }

            case "Range":
            {
                double start = In(0).Data[0], limit = In(1).Data[0], delta = In(2).Data[0];
                var values = new List<double>();
                for (double v = start; delta > 0 ? v < limit : v > limit; v += delta)
                {
                    values.Add(v);
                }

                return ConstTensor.Vector([.. values]);
            }

            default:
                throw new OnnxImportException(
                    $"unsupported: {node.Describe} on constant values. The importer folds Shape, Gather, Unsqueeze, Squeeze, Concat, Slice, ConstantOfShape, Expand, Reshape, Transpose, Range, Cast, Where, Equal and arithmetic.");
        }
    }

    private static bool IsInteger(ConstTensor t) => t.Data.All(d => double.IsNaN(d) || d == Math.Floor(d));

    private static long[] Strides(long[] dims)
    {
        long[] strides = new long[dims.Length];
        long s = 1;
        for (int i = dims.Length - 1; i >= 0; i--)
        {
            strides[i] = s;
            s *= dims[i];
        }

        return strides;
    }

    /// <summary>Element-wise with numpy broadcasting.</summary>
    private static ConstTensor Binary(ConstTensor a, ConstTensor b, Func<double, double, double> op)
    {
        int rank = Math.Max(a.Rank, b.Rank);
        long[] da = [.. Enumerable.Repeat(1L, rank - a.Rank), .. a.Dims];
        long[] db = [.. Enumerable.Repeat(1L, rank - b.Rank), .. b.Dims];
        long[] dims = new long[rank];
        for (int i = 0; i < rank; i++)
        {
            if (da[i] != db[i] && da[i] != 1 && db[i] != 1)
            {
                throw new OnnxImportException($"shapes [{string.Join(", ", a.Dims)}] and [{string.Join(", ", b.Dims)}] do not broadcast.");
            }

            dims[i] = Math.Max(da[i], db[i]);
        }

        long[] sa = Strides(da), sb = Strides(db);
        double[] data = new double[dims.Aggregate(1L, (x, y) => x * y)];
        for (int j = 0; j < data.Length; j++)
        {
            long rest = j, ia = 0, ib = 0;
            for (int d = rank - 1; d >= 0; d--)
            {
                long coordinate = rest % dims[d];
                rest /= dims[d];
                ia += (da[d] == 1 ? 0 : coordinate) * sa[d];
                ib += (db[d] == 1 ? 0 : coordinate) * sb[d];
            }

            data[j] = op(a.Data[ia], b.Data[ib]);
        }

        return new ConstTensor(dims, data);
    }
}
