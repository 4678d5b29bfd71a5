using Signal.Features.Pipeline;
using Signal.Models.Networks;
using Signal.Models.Onnx;

namespace Signal.Edge.Commands;

/// <summary>How every command reports bad input: one plain line on standard error and exit code 1.</summary>
internal static class CommandErrors
{
    /// <summary>What <c>features</c>, <c>replay</c> and <c>infer</c> read: a recording.</summary>
    public const string RecordingLayout = "a recording: CSV with one column per channel and one row per sample (a header row of channel names is allowed), or .npy/.npz; example: datasets/examples/vibration.csv";

    /// <summary>What <c>detect</c> reads.</summary>
    public const string TimeSeriesLayout = "CSV 'timestamp,<value>…': a header, then per reading an ISO 8601 or 'YYYY-MM-DD HH:MM:SS' time and one or more numbers; example: datasets/examples/temperature.csv";

    /// <summary>What <c>train</c> and <c>eval</c> read.</summary>
    public const string LabelledLayout = "CSV 'recording,timestamp,<channel>…,label' (timestamps in seconds or ISO 8601; each recording's rows together), a UCR or UEA folder, or a folder of .npz/.npy recordings; example: datasets/examples/machines.csv";

    /// <summary>Runs a command, turning input and file errors into <c>error: …</c> and exit code 1.</summary>
    /// <param name="command">The command's work.</param>
    /// <param name="layout">The input layout the command reads, added to errors about a file's content (datasets/README.md).</param>
    public static int Run(Func<int> command, string? layout = null)
    {
        try
        {
            return command();
        }
        catch (InvalidDataException ex) when (layout is not null)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            Console.Error.WriteLine($"  (this command reads {layout})");
            return 1;
        }
        catch (Exception ex) when (ex is FeatureSpecException or ModelFormatException or OnnxImportException or InvalidDataException or IOException
            or ArgumentException or Signal.Engine.Mqtt.MqttException or UnauthorizedAccessException or NotSupportedException or FormatException
            or Signal.Models.Accelerators.AcceleratorUnavailableException)
        {
            // Plain text on standard error, so scripts and logs read it as it is.
            Console.Error.WriteLine($"error: {ex.Message}");
            return 1;
        }
    }
}
