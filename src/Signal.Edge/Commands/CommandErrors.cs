using Signal.Features.Pipeline;
using Signal.Models.Networks;
using Signal.Models.Onnx;

namespace Signal.Edge.Commands;

/// <summary>How every command reports bad input: one plain line on standard error and exit code 1.</summary>
internal static class CommandErrors
{
    /// <summary>Runs a command, turning input and file errors into <c>error: …</c> and exit code 1.</summary>
    public static int Run(Func<int> command)
    {
        try
        {
            return command();
        }
        catch (Exception ex) when (ex is FeatureSpecException or ModelFormatException or OnnxImportException or InvalidDataException or IOException
            or ArgumentException or Signal.Engine.Mqtt.MqttException or UnauthorizedAccessException or NotSupportedException or FormatException)
        {
            // Plain text on standard error, so scripts and logs read it as it is.
            Console.Error.WriteLine($"error: {ex.Message}");
            return 1;
        }
    }
}
