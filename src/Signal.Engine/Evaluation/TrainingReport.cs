using System.Globalization;
using System.Net;
using System.Text;
using Signal.Models.Training;

namespace Signal.Engine.Evaluation;

/// <summary>
/// The report written next to a trained model (<c>&lt;model&gt;.report.html</c>): loss and accuracy curves and the
/// confusion matrix as inline SVG, per-class precision/recall/F1 and the options used. Self-contained: no
/// script, no external style sheet or font.
/// </summary>
public static class TrainingReport
{
    /// <summary>Writes the report.</summary>
    /// <param name="path">The HTML file.</param>
    /// <param name="title">Heading (model and data set).</param>
    /// <param name="history">Every epoch.</param>
    /// <param name="test">Metrics on the test split.</param>
    /// <param name="options">Options as name/value pairs.</param>
    public static void Write(string path, string title, IReadOnlyList<EpochReport> history, ClassificationMetrics test, IReadOnlyDictionary<string, string> options)
    {
        ArgumentNullException.ThrowIfNull(history);
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(options);
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>").Append(E(title)).Append("</title>");
        html.Append("<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}th{background:#f4f4f4}svg{background:#fff;border:1px solid #ddd;margin:.5em 1em .5em 0}</style></head><body>");
        html.Append("<h1>").Append(E(title)).Append("</h1>");
        html.Append(CultureInfo.InvariantCulture, $"<p>Test accuracy <b>{test.Accuracy:P2}</b>, macro-F1 <b>{test.MacroF1:F4}</b> over {test.Count} sequences; {history.Count} epochs.</p>");
        html.Append(Curves("Loss", history.Select(h => h.Loss).ToList(), history.Select(h => h.ValidationLoss).ToList(), "training", "validation", percent: false));
        html.Append(Curves("Accuracy", history.Select(h => h.Accuracy).ToList(), history.Select(h => h.ValidationAccuracy).ToList(), "training", "validation", percent: true));
        html.Append(Confusion(test));
        html.Append("<h2>Per class (test split)</h2><table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th></tr>");
        for (int c = 0; c < test.ClassNames.Count; c++)
        {
            html.Append(CultureInfo.InvariantCulture, $"<tr><td style=\"text-align:left\">{E(test.ClassNames[c])}</td><td>{test.Precision(c):F3}</td><td>{test.Recall(c):F3}</td><td>{test.F1(c):F3}</td></tr>");
        }

        html.Append("</table><h2>Accuracy by fraction of the sequence seen</h2><p>");
        html.Append(string.Join(" · ", test.AccuracyBySeen.Select((a, i) => $"{(i + 1) * 10}%: {a.ToString("P0", CultureInfo.InvariantCulture)}")));
        html.Append("</p><h2>Options</h2><table>");
        foreach (KeyValuePair<string, string> pair in options)
        {
            html.Append("<tr><th style=\"text-align:left\">").Append(E(pair.Key)).Append("</th><td style=\"text-align:left\">").Append(E(pair.Value)).Append("</td></tr>");
        }

        html.Append("</table></body></html>\n");
        File.WriteAllText(path, html.ToString());
    }

    private static string E(string text) => WebUtility.HtmlEncode(text);

    private static string Curves(string name, List<double> a, List<double> b, string aName, string bName, bool percent)
    {
        const int w = 520, h = 260, left = 50, bottom = 30, top = 25, right = 10;
        double[] all = [.. a.Concat(b).Where(double.IsFinite)];
        double max = all.Length == 0 ? 1 : all.Max(), min = percent ? 0 : Math.Min(0, all.DefaultIfEmpty(0).Min());
        if (percent)
        {
            max = 1;
        }

        max = max <= min ? min + 1 : max;
        int n = Math.Max(2, a.Count);
        string Path(List<double> values) => string.Join(" ", values.Select((v, i) => double.IsFinite(v)
            ? FormattableString.Invariant($"{(i == 0 ? 'M' : 'L')}{left + ((w - left - right) * i / (double)(n - 1)):F1},{h - bottom - ((h - top - bottom) * (v - min) / (max - min)):F1}")
            : string.Empty).Where(s => s.Length > 0));
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{name} per epoch\">");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{left}\" y=\"16\" font-size=\"14\" font-weight=\"bold\">{name} per epoch</text>");
        svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{left}\" y1=\"{h - bottom}\" x2=\"{w - right}\" y2=\"{h - bottom}\" stroke=\"#888\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{h - bottom}\" stroke=\"#888\"/>");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"4\" y=\"{top + 10}\" font-size=\"11\">{(percent ? max.ToString("P0", CultureInfo.InvariantCulture) : max.ToString("G3", CultureInfo.InvariantCulture))}</text>");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"4\" y=\"{h - bottom}\" font-size=\"11\">{(percent ? min.ToString("P0", CultureInfo.InvariantCulture) : min.ToString("G3", CultureInfo.InvariantCulture))}</text>");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{w - right - 60}\" y=\"{h - 8}\" font-size=\"11\">epoch {a.Count}</text>");
        svg.Append("<path fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" d=\"").Append(Path(a)).Append("\"/>");
        if (b.Any(double.IsFinite))
        {
            svg.Append("<path fill=\"none\" stroke=\"#ff7f0e\" stroke-width=\"2\" d=\"").Append(Path(b)).Append("\"/>");
        }

        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{w - 200}\" y=\"16\" font-size=\"11\" fill=\"#1f77b4\">{aName}</text>");
        if (b.Any(double.IsFinite))
        {
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{w - 120}\" y=\"16\" font-size=\"11\" fill=\"#ff7f0e\">{bName}</text>");
        }

        return svg.Append("</svg>").ToString();
    }

    private static string Confusion(ClassificationMetrics m)
    {
        int k = m.ClassNames.Count;
        int cell = Math.Clamp(360 / Math.Max(1, k), 18, 60), left = 110, top = 40;
        int w = left + (k * cell) + 10, h = top + (k * cell) + 30;
        int max = Math.Max(1, m.Confusion.Cast<int>().Max());
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"confusion matrix\">");
        svg.Append("<text x=\"4\" y=\"16\" font-size=\"14\" font-weight=\"bold\">Confusion matrix (rows: true, columns: predicted)</text>");
        for (int t = 0; t < k; t++)
        {
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"4\" y=\"{top + (t * cell) + (cell / 2) + 4}\" font-size=\"11\">{E(m.ClassNames[t])}</text>");
            for (int p = 0; p < k; p++)
            {
                int count = m.Confusion[t, p];
                int shade = 255 - (int)(200.0 * count / max);
                string color = t == p ? $"rgb({shade},{255},{shade})" : $"rgb(255,{shade},{shade})";
                svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{left + (p * cell)}\" y=\"{top + (t * cell)}\" width=\"{cell}\" height=\"{cell}\" fill=\"{color}\" stroke=\"#ccc\"/>");
                svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{left + (p * cell) + (cell / 2)}\" y=\"{top + (t * cell) + (cell / 2) + 4}\" font-size=\"11\" text-anchor=\"middle\">{count}</text>");
            }
        }

        return svg.Append("</svg>").ToString();
    }
}
