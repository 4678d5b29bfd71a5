using System.Globalization;
using System.Text;

namespace Signal.Edge.Daemon;

/// <summary>A histogram with fixed buckets, updated lock-free from the engine thread and read by <c>/metrics</c>.</summary>
/// <param name="bounds">Upper bounds of the buckets, ascending (a +Inf bucket is implied).</param>
internal sealed class Histogram(params double[] bounds)
{
    private readonly long[] _counts = new long[bounds.Length + 1];
    private long _sumNanos;

    /// <summary>Latency buckets in seconds, 50 µs to 10 s.</summary>
    public static double[] LatencyBuckets => [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    /// <summary>Records one value (seconds for latencies).</summary>
    public void Observe(double value)
    {
        int i = 0;
        while (i < bounds.Length && value > bounds[i])
        {
            i++;
        }

        Interlocked.Increment(ref _counts[i]);
        Interlocked.Add(ref _sumNanos, (long)(value * 1e9));
    }

    /// <summary>Writes the histogram in the Prometheus text format.</summary>
    public void Write(PrometheusWriter writer, string name, string help, string labels = "")
    {
        writer.Header(name, help, "histogram");
        long cumulative = 0;
        string sep = labels.Length == 0 ? string.Empty : labels + ",";
        for (int i = 0; i <= bounds.Length; i++)
        {
            cumulative += Interlocked.Read(ref _counts[i]);
            string le = i < bounds.Length ? bounds[i].ToString("R", CultureInfo.InvariantCulture) : "+Inf";
            writer.Sample(name + "_bucket", "{" + sep + "le=\"" + le + "\"}", cumulative);
        }

        writer.Sample(name + "_sum", labels.Length == 0 ? string.Empty : "{" + labels + "}", Interlocked.Read(ref _sumNanos) / 1e9);
        writer.Sample(name + "_count", labels.Length == 0 ? string.Empty : "{" + labels + "}", cumulative);
    }
}

/// <summary>
/// Writes the Prometheus text exposition format 0.0.4 (HELP and TYPE lines, then samples). Hand-written because the
/// OpenTelemetry Prometheus exporter is a pre-release package and the daemon has a tight memory budget; the format is
/// a few lines of text.
/// </summary>
internal sealed class PrometheusWriter
{
    private readonly StringBuilder _text = new(8192);
    private readonly HashSet<string> _headers = new(StringComparer.Ordinal);

    /// <summary>The content type of the format.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>Writes the HELP and TYPE lines of a metric once.</summary>
    public void Header(string name, string help, string type)
    {
        if (_headers.Add(name))
        {
            _text.Append("# HELP ").Append(name).Append(' ').Append(help.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal)).Append('\n');
            _text.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
        }
    }

    /// <summary>A counter sample.</summary>
    public void Counter(string name, string help, double value, params (string Key, string Value)[] labels)
    {
        Header(name, help, "counter");
        Sample(name, Labels(labels), value);
    }

    /// <summary>A gauge sample.</summary>
    public void Gauge(string name, string help, double value, params (string Key, string Value)[] labels)
    {
        Header(name, help, "gauge");
        Sample(name, Labels(labels), value);
    }

    /// <summary>One sample line.</summary>
    public void Sample(string name, string labels, double value) =>
        _text.Append(name).Append(labels).Append(' ').Append(Format(value)).Append('\n');

    /// <summary>Formats labels as <c>{k="v",…}</c> with the format's escaping.</summary>
    public static string Labels(params (string Key, string Value)[] labels)
    {
        if (labels.Length == 0)
        {
            return string.Empty;
        }

        var s = new StringBuilder("{");
        for (int i = 0; i < labels.Length; i++)
        {
            s.Append(i == 0 ? string.Empty : ",").Append(labels[i].Key).Append("=\"")
                .Append(labels[i].Value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal))
                .Append('"');
        }

        return s.Append('}').ToString();
    }

    /// <inheritdoc/>
    public override string ToString() => _text.ToString();

    private static string Format(double v) =>
        double.IsPositiveInfinity(v) ? "+Inf" : double.IsNegativeInfinity(v) ? "-Inf" : double.IsNaN(v) ? "NaN" : v.ToString("R", CultureInfo.InvariantCulture);
}
