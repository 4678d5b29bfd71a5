using System.Globalization;
using System.Text.RegularExpressions;
using Signal.Models.Files;

namespace Signal.Models.Networks;

/// <summary>
/// Reads an architecture off PyTorch <c>state_dict</c> names when a file carries no
/// <c>signal.architecture</c> metadata, so a plain <c>safetensors.torch.save_file(model.state_dict())</c>
/// of an <c>nn.LSTM</c>/<c>nn.GRU</c>/<c>nn.RNN</c> stack with an <c>nn.Linear</c> head loads directly.
/// </summary>
/// <remarks>
/// Recurrent layers are found by <c>{prefix}.weight_ih_l{k}</c>, ordered by prefix position then k. The
/// kind follows from the row count of <c>weight_hh</c> over the hidden size (4 LSTM, 3 GRU, 1 RNN, whose
/// non-linearity is then taken to be tanh). The head is the one remaining <c>{name}.weight</c>/<c>.bias</c>
/// pair whose input is the last layer's output; a second one whose output equals the model input is the
/// forecasting head.
/// </remarks>
internal static partial class ArchitectureInference
{
    [GeneratedRegex(@"^(?<prefix>.+)\.weight_ih_l(?<index>\d+)(?<reverse>_reverse)?$")]
    private static partial Regex RecurrentWeight();

    public static ModelArchitecture FromTensors(IReadOnlyDictionary<string, Tensor> tensors)
    {
        var found = new List<(string Prefix, int Index)>();
        foreach (string name in tensors.Keys.OrderBy(n => n, StringComparer.Ordinal))
        {
            Match m = RecurrentWeight().Match(name);
            if (m.Success && !m.Groups["reverse"].Success)
            {
                found.Add((m.Groups["prefix"].Value, int.Parse(m.Groups["index"].Value, CultureInfo.InvariantCulture)));
            }
        }

        if (found.Count == 0)
        {
            throw new ModelFormatException("the file has no 'signal.architecture' metadata and no PyTorch recurrent weights ('<name>.weight_ih_l0') to infer one from.");
        }

        var prefixes = found.Select(f => f.Prefix).Distinct().ToList();
        prefixes.Sort(ComparePrefixes);
        found.Sort((a, b) => prefixes.IndexOf(a.Prefix) != prefixes.IndexOf(b.Prefix) ? prefixes.IndexOf(a.Prefix).CompareTo(prefixes.IndexOf(b.Prefix)) : a.Index.CompareTo(b.Index));

        var architecture = new ModelArchitecture();
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach ((string prefix, int index) in found)
        {
            string l = $"_l{index}";
            Tensor wih = tensors[$"{prefix}.weight_ih{l}"];
            Tensor whh = Get(tensors, $"{prefix}.weight_hh{l}");
            tensors.TryGetValue($"{prefix}.weight_hr{l}", out Tensor? whr);
            if (wih.Shape.Count != 2 || whh.Shape.Count != 2)
            {
                throw new ModelFormatException($"tensor '{prefix}.weight_ih{l}' or '.weight_hh{l}' is not a matrix.");
            }

            int hidden = whr is not null ? whr.Shape[1] : whh.Shape[1];
            int gates = hidden == 0 || whh.Shape[0] % hidden != 0 ? 0 : whh.Shape[0] / hidden;
            var layer = new LayerArchitecture
            {
                Kind = gates switch
                {
                    4 => CellKind.Lstm,
                    3 => CellKind.Gru,
                    1 => CellKind.Rnn,
                    _ => throw new ModelFormatException($"tensor '{prefix}.weight_hh{l}' of shape {Tensor.FormatShape(whh.Shape)} is not an LSTM, GRU or RNN weight (rows must be 4, 3 or 1 times the hidden size)."),
                },
                HiddenSize = hidden,
                ProjectionSize = whr is not null ? whr.Shape[0] : 0,
                Bidirectional = tensors.ContainsKey($"{prefix}.weight_ih{l}_reverse"),
                Bias = tensors.ContainsKey($"{prefix}.bias_ih{l}"),
                Prefix = prefix,
                Index = index,
            };
            if (architecture.Layers.Count == 0)
            {
                architecture.InputSize = wih.Shape[1];
            }

            architecture.Layers.Add(layer);
            foreach (string suffix in new[] { string.Empty, "_reverse" })
            {
                foreach (string kind in new[] { "weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr" })
                {
                    used.Add($"{prefix}.{kind}{l}{suffix}");
                }
            }
        }

        int features = architecture.FeatureSize;
        foreach (string name in tensors.Keys.OrderBy(n => n, StringComparer.Ordinal))
        {
            if (used.Contains(name) || !name.EndsWith(".weight", StringComparison.Ordinal))
            {
                continue;
            }

            string prefix = name[..^".weight".Length];
            Tensor w = tensors[name];
            if (w.Shape.Count != 2 || w.Shape[1] != features || !tensors.ContainsKey(prefix + ".bias"))
            {
                continue;
            }

            if (architecture.Classes == 0 && (w.Shape[0] != architecture.InputSize || prefix.Contains("head", StringComparison.Ordinal) || prefix.Contains("class", StringComparison.Ordinal) || prefix == "fc"))
            {
                architecture.Classes = w.Shape[0];
                architecture.HeadPrefix = prefix;
            }
            else if (architecture.ForecastSize == 0 && w.Shape[0] == architecture.InputSize)
            {
                architecture.ForecastSize = w.Shape[0];
                architecture.ForecastPrefix = prefix;
            }
        }

        architecture.Validate();
        return architecture;
    }

    private static Tensor Get(IReadOnlyDictionary<string, Tensor> tensors, string name) =>
        tensors.TryGetValue(name, out Tensor? t) ? t : throw new ModelFormatException($"tensor '{name}' is missing.");

    /// <summary>"layers.2" before "layers.10": numeric segments compare as numbers.</summary>
    private static int ComparePrefixes(string a, string b)
    {
        string[] x = a.Split('.');
        string[] y = b.Split('.');
        for (int i = 0; i < Math.Min(x.Length, y.Length); i++)
        {
            int c = int.TryParse(x[i], out int xi) && int.TryParse(y[i], out int yi) ? xi.CompareTo(yi) : string.CompareOrdinal(x[i], y[i]);
            if (c != 0)
            {
                return c;
            }
        }

        return x.Length.CompareTo(y.Length);
    }
}
