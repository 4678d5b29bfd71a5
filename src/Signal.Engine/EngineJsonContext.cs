using System.Text.Json.Serialization;

namespace Signal.Engine;

/// <summary>
/// Source-generated JSON for what the engine reads and writes besides model files (calibrations, NAB labels): no
/// reflection, so it works in the NativeAOT daemon. Public so the command line serialises the same shapes the same way.
/// </summary>
[JsonSerializable(typeof(float[]))]
[JsonSerializable(typeof(double[]))]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(Dictionary<string, string>))]
[JsonSerializable(typeof(Dictionary<string, double>))]
[JsonSerializable(typeof(Dictionary<string, string[][]>))]
public sealed partial class EngineJsonContext : JsonSerializerContext;
