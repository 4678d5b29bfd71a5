using System.CommandLine;
using System.Globalization;
using System.Text;
using Signal.Edge.Commands;
using Signal.Engine.Data;

namespace Signal.Edge.Demo;

/// <summary>
/// <c>signal-edge demo-model</c>: how the demo's bundled model is made. It generates bearing vibration recordings with
/// the same generator the demo's simulated sensors use (other seeds), writes them as <c>.npy</c> files, and trains on
/// them with <c>signal-edge train</c>, so the bundled file is reproducible from this repository alone.
/// </summary>
internal static class DemoModel
{
    /// <summary>The sample rate of the demo's sensors and model.</summary>
    public const double Rate = 12_000;

    /// <summary>The embedded resource holding the bundled model.</summary>
    public const string Resource = "Signal.Edge.demo-bearing.sigm";

    public static Command Create()
    {
        var output = new Option<FileInfo>("--out", "-o") { Description = "The model file to write.", Required = true };
        var recordings = new Option<int>("--recordings") { Description = "Recordings per class (the last of each is the test split).", DefaultValueFactory = _ => 6 };
        var seconds = new Option<double>("--seconds") { Description = "Seconds per recording.", DefaultValueFactory = _ => 8 };
        var command = new Command("demo-model", """
            Makes the demo's model: generates simulated bearing vibration (normal, inner, outer and ball faults) at
            12 kHz, trains a GRU with a classifier and a forecasting head (anomaly score) on it with 'signal-edge train --task both' and writes the model. scripts/make-demo-model.sh runs
            this to refresh the bundled file (src/Signal.Edge/Demo/demo-bearing.sigm).
            """)
        {
            output, recordings, seconds,
        };
        command.SetAction(parse => CommandErrors.Run(() =>
        {
            string folder = Directory.CreateTempSubdirectory("signal-demo-data-").FullName;
            try
            {
                int perClass = parse.GetValue(recordings);
                int samples = (int)(parse.GetValue(seconds) * Rate);
                if (perClass < 2 || samples < 4096)
                {
                    throw new ArgumentException("demo-model: need --recordings ≥ 2 and --seconds long enough for a few frames.");
                }

                string[] labels = ["normal", .. BearingFault.Known.Select(f => f.Name)];
                var buffer = new float[samples];
                for (int c = 0; c < labels.Length; c++)
                {
                    BearingFault? fault = BearingFault.Known.FirstOrDefault(f => f.Name == labels[c]);
                    for (int i = 0; i < perClass; i++)
                    {
                        new VibrationSource(Rate, 10_000 + (100 * c) + i).Next(buffer, fault);
                        WriteNpy(Path.Combine(folder, string.Create(CultureInfo.InvariantCulture, $"{labels[c]}_{i}.npy")), buffer);
                    }
                }

                Console.WriteLine($"generated {labels.Length * perClass} recordings of {samples / Rate:0.#} s in {folder}");
                return Program.Main([
                    "train", "--data", folder, "--out", parse.GetValue(output)!.FullName, "--rate", "12000",
                    "--label-pattern", "^(?<label>[a-z]+)_", "--test-pattern", string.Create(CultureInfo.InvariantCulture, $"_{perClass - 1}\\.npy$"),
                    "--task", "both", "--hidden", "32", "--loss", "every", "--seed", "1",
                ]);
            }
            finally
            {
                Directory.Delete(folder, recursive: true);
            }
        }));
        return command;
    }

    /// <summary>The bundled model's bytes.</summary>
    public static byte[] Bundled()
    {
        using Stream stream = typeof(DemoModel).Assembly.GetManifestResourceStream(Resource)
            ?? throw new InvalidOperationException($"the demo model resource '{Resource}' is missing from this build.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    /// <summary>Writes a 1-D float32 array in NumPy's .npy format, version 1.0.</summary>
    internal static void WriteNpy(string path, ReadOnlySpan<float> values)
    {
        string header = string.Create(CultureInfo.InvariantCulture, $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({values.Length},), }}");
        int total = 10 + header.Length + 1;
        header = header.PadRight(header.Length + ((64 - (total % 64)) % 64)) + "\n";
        using var file = new BinaryWriter(File.Create(path));
        file.Write((byte)0x93);
        file.Write(Encoding.ASCII.GetBytes("NUMPY"));
        file.Write((byte)1);
        file.Write((byte)0);
        file.Write((ushort)header.Length);
        file.Write(Encoding.ASCII.GetBytes(header));
        foreach (float v in values)
        {
            file.Write(v);
        }
    }
}
