using System.Text.Json.Serialization;
using System.CommandLine;
using System.Reflection;
using System.Runtime;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Text.Json;
using Signal.Engine.Mqtt;
using System.Globalization;
using Signal.Models.Accelerators;
using Signal.Models.Diagnostics;

namespace Signal.Edge.Commands;

/// <summary><c>signal-edge info</c>: version, runtime, and the SIMD instruction sets in use.</summary>
internal static partial class InfoCommand
{

    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Print one JSON object." };
        var command = new Command("info", "Prints the version, the .NET runtime, the machine, the SIMD instruction sets the kernels use, the libmosquitto found and the MQTT client broker.client auto picks.")
        {
            json,
        };
        command.SetAction(parse => CommandErrors.Run(() =>
        {
            Dictionary<string, object?> info = Collect();
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(info, InfoJson.Default.DictionaryStringObject));
            }
            else
            {
                foreach ((string key, object? value) in info)
                {
                    Console.WriteLine($"{key,-26} {(value is IEnumerable<string> list ? string.Join(", ", list) : value ?? "-")}");
                }
            }

            return 0;
        }));
        return command;
    }

    /// <summary>Everything <c>info</c> prints, in order.</summary>
    public static Dictionary<string, object?> Collect()
    {
        string? mosquitto;
        try
        {
            mosquitto = MosquittoConnection.LibraryVersion;
        }
        catch (MqttException)
        {
            mosquitto = null;
        }

        Assembly self = typeof(InfoCommand).Assembly;
        return new Dictionary<string, object?>
        {
            ["version"] = self.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? self.GetName().Version?.ToString(),
            ["runtime"] = RuntimeInformation.FrameworkDescription,
            ["os"] = RuntimeInformation.OSDescription,
            ["architecture"] = RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant(),
            ["processors"] = Environment.ProcessorCount,
            ["gc"] = $"{(GCSettings.IsServerGC ? "server" : "workstation")}, {(GCSettings.LatencyMode == GCLatencyMode.Batch ? "non-concurrent" : "concurrent")}",
            ["kernel_path"] = KernelInfo.Path,
            ["kernel_floats_per_vector"] = KernelInfo.Width,
            ["vector512"] = Vector512.IsHardwareAccelerated,
            ["vector256"] = Vector256.IsHardwareAccelerated,
            ["vector128"] = Vector128.IsHardwareAccelerated,
            ["instruction_sets"] = InstructionSets(),
            ["libmosquitto"] = mosquitto ?? "not found (apt install libmosquitto1); the daemon uses MQTTnet instead",
            ["mqtt_client"] = MqttConnections.Resolve(new MqttOptions()),
            ["accelerators"] = Accelerators(),
        };
    }

    /// <summary>The devices ILGPU finds (it is loaded only here and when an accelerator is configured).</summary>
    private static List<string> Accelerators()
    {
        var list = new List<string>();
        foreach (AcceleratorInfo a in AcceleratorSelection.ListDevices())
        {
            list.Add(a.Error is not null
                ? $"{a.Kind}: none ({a.Error})"
                : string.Create(CultureInfo.InvariantCulture, $"{a.Kind}: {a.Name} ({(a.MemoryBytes > 0 ? $"{a.MemoryBytes / (1024.0 * 1024 * 1024):F1} GiB, " : string.Empty)}{a.Detail})"));
        }

        return list;
    }

    private static List<string> InstructionSets()
    {
        var sets = new List<string>();
        void Add(bool supported, string name)
        {
            if (supported)
            {
                sets.Add(name);
            }
        }

        Add(System.Runtime.Intrinsics.X86.Sse42.IsSupported, "SSE4.2");
        Add(System.Runtime.Intrinsics.X86.Avx.IsSupported, "AVX");
        Add(System.Runtime.Intrinsics.X86.Avx2.IsSupported, "AVX2");
        Add(System.Runtime.Intrinsics.X86.Fma.IsSupported, "FMA");
        Add(System.Runtime.Intrinsics.X86.Avx512F.IsSupported, "AVX-512F");
        Add(System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported, "NEON (AdvSimd)");
        Add(System.Runtime.Intrinsics.Arm.AdvSimd.Arm64.IsSupported, "NEON A64");
        Add(System.Runtime.Intrinsics.Arm.Dp.IsSupported, "DotProd");
        return sets.Count == 0 ? ["none (scalar kernels)"] : sets;
    }

    /// <summary>Source-generated JSON of <see cref="Collect"/>'s values (strings, numbers, booleans, lists of strings): works in the NativeAOT build too.</summary>
    [JsonSourceGenerationOptions(WriteIndented = true)]
    [JsonSerializable(typeof(Dictionary<string, object?>))]
    [JsonSerializable(typeof(List<string>))]
    [JsonSerializable(typeof(string))]
    [JsonSerializable(typeof(int))]
    [JsonSerializable(typeof(bool))]
    private sealed partial class InfoJson : JsonSerializerContext;
}
