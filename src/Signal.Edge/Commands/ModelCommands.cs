using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Signal.Engine.Data;
using Signal.Engine.Live;
using Signal.Models.Accelerators;
using Signal.Models.Diagnostics;
using Signal.Models.Networks;
using Signal.Models.Onnx;
using Spectre.Console;

namespace Signal.Edge.Commands;

/// <summary><c>signal-edge import</c>, <c>infer</c> and <c>bench models</c>: the model file from the command line.</summary>
internal static class ModelCommands
{
    public static Command CreateImport()
    {
        var onnx = new Option<FileInfo>("--onnx") { Description = "The ONNX model (from torch.onnx.export, tf2onnx or MATLAB's exportONNXNetwork).", Required = true };
        var output = new Option<FileInfo>("--out", "-o") { Description = "The model file to write (.sigm).", Required = true };
        var labels = new Option<string?>("--labels") { Description = "Class labels, comma-separated, in output order (default class0, class1, …)." };
        var command = new Command("import", """
            Imports a recurrent classifier from ONNX (LSTM/GRU/RNN layers, a dense head, optional softmax) into a
            Signal model file. Shape glue around the recurrent ops is folded; unsupported ops are named.

            Example:
              signal-edge import --onnx lstm.onnx --out lstm.sigm --labels normal,inner_race,outer_race,ball
            """)
        {
            onnx, output, labels,
        };
        command.SetAction(parse => CommandErrors.Run(() =>
        {
            FileInfo source = parse.GetValue(onnx)!;
            if (!source.Exists)
            {
                throw new FileNotFoundException($"ONNX file '{source.FullName}' does not exist.");
            }

            string[]? names = parse.GetValue(labels)?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            RecurrentModel probe = OnnxImporter.Import(source.FullName);
            if (names is not null && names.Length != probe.ClassCount)
            {
                throw new ArgumentException($"--labels names {names.Length} classes but the model has {probe.ClassCount}.");
            }

            RecurrentModel model = names is null ? probe : OnnxImporter.Import(source.FullName, names);
            FileInfo destination = parse.GetValue(output)!;
            model.Save(destination.FullName);
            Describe(model, $"Imported {source.Name}");
            AnsiConsole.MarkupLineInterpolated($"Wrote [green]{destination.FullName}[/].");
            return 0;
        }));
        return command;
    }

    public static Command CreateInfer()
    {
        var modelOption = new Option<FileInfo>("--model", "-m") { Description = "The model file (.sigm).", Required = true };
        var input = new Option<FileInfo>("--input", "-i") { Description = "CSV (a header row is allowed): a recording, one row per sample and one column per channel, which the model frames and turns into its inputs as the live engine does; or its inputs, one row per step and one column per input.", Required = true };
        var output = new Option<FileInfo>("--output", "-o") { Description = "The CSV to write: step, then one probability column per class label.", DefaultValueFactory = _ => new FileInfo("probabilities.csv") };
        var offline = new Option<bool>("--offline") { Description = "Run the whole sequence at once (needed for bidirectional models) instead of stepping it as the live engine does." };
        var command = new Command("infer", """
            Steps a model over a recording (one column per channel: framed, featurised and normalised by the model as the
            live engine does) or over its input vectors (one column per input), with the streaming path the live engine
            uses, and writes the class probabilities of every step. The column count tells which (datasets/README.md).

            Examples:
              signal-edge infer --model bearing.sigm --input datasets/examples/vibration.csv --output probabilities.csv
              signal-edge infer --model lstm.sigm --input sequence.csv --output probabilities.csv
            """)
        {
            modelOption, input, output, offline,
        };
        command.SetAction(parse => CommandErrors.Run(() =>
        {
            RecurrentModel model = RecurrentModel.Load(parse.GetValue(modelOption)!.FullName);
            if (model.ClassCount == 0)
            {
                throw new ArgumentException("the model has no classification head (it only forecasts); nothing to infer.");
            }

            bool whole = parse.GetValue(offline);
            RecurrentState? state = whole ? null : model.CreateState(); // refuses a bidirectional model before any work
            FileInfo source = parse.GetValue(input)!;
            EngineModel engineModel = EngineModel.From(model, Path.GetFileNameWithoutExtension(parse.GetValue(modelOption)!.Name));
            float[] values = ReadRows(source.FullName, out int columns);
            float[] sequence;
            int steps;
            string what;
            if (engineModel.TransformsSamples && columns == engineModel.Channels)
            {
                // A recording: the model frames, featurises and normalises it as the live engine does a stream's messages.
                sequence = engineModel.StepInputs(values, out steps);
                what = string.Create(CultureInfo.InvariantCulture, $"{values.Length / columns:N0} samples of {columns} channel(s) → {steps:N0} steps");
                if (steps == 0)
                {
                    throw new InvalidDataException($"{source.FullName}: {values.Length / columns} samples; the model's first step needs {FirstStepSamples(engineModel)}.");
                }
            }
            else if (columns == model.InputSize)
            {
                sequence = values;
                steps = values.Length / columns;
                what = string.Create(CultureInfo.InvariantCulture, $"{steps:N0} steps of {model.InputSize} inputs");
            }
            else
            {
                throw new InvalidDataException($"{source.FullName}: {columns} columns; the model takes {model.InputSize} inputs per step" +
                    (engineModel.TransformsSamples
                        ? $", made from a recording of {engineModel.Channels} channel(s) ({Framing(engineModel)}): give one column per channel, or one per input."
                        : " (one column per input, one row per step)."));
            }

            float[] probabilities = new float[steps * model.ClassCount];
            if (state is null)
            {
                model.Predict(sequence, steps, probabilities);
            }
            else
            {
                for (int t = 0; t < steps; t++)
                {
                    model.Step(state, sequence.AsSpan(t * model.InputSize, model.InputSize), probabilities.AsSpan(t * model.ClassCount, model.ClassCount));
                }
            }

            FileInfo destination = parse.GetValue(output)!;
            var text = new StringBuilder("step," + string.Join(",", model.Labels.Select(Quote)) + "\n");
            for (int t = 0; t < steps; t++)
            {
                text.Append(t.ToString(CultureInfo.InvariantCulture));
                for (int c = 0; c < model.ClassCount; c++)
                {
                    text.Append(',').Append(probabilities[(t * model.ClassCount) + c].ToString("R", CultureInfo.InvariantCulture));
                }

                text.Append('\n');
            }

            File.WriteAllText(destination.FullName, text.ToString());
            AnsiConsole.MarkupLineInterpolated($"{what} → {model.ClassCount} class probabilities per step. Wrote [green]{destination.FullName}[/].");
            return 0;
        }, CommandErrors.RecordingLayout + "; or the model's inputs, one column per input and one row per step"));
        return command;
    }

    public static Command CreateBench()
    {
        var json = new Option<bool>("--json") { Description = "Print the results as JSON only." };
        var seconds = new Option<double>("--seconds") { Description = "Measuring time per case.", DefaultValueFactory = _ => 1.0 };
        var modelFile = new Option<FileInfo?>("--model", "-m") { Description = "Also measure this model file (for example a trained ensemble), batched at 1,024 streams on one and two cores." };
        var accelerator = new Option<string?>("--accelerator") { Description = $"Measure batched steps on an accelerator ({AcceleratorKinds.Names}) beside the SIMD path on every core, at each --batches and --hidden." };
        var batches = new Option<string>("--batches") { Description = "With --accelerator: streams per step, comma-separated.", DefaultValueFactory = _ => "1024,4096,16384,65536,262144" };
        var hiddens = new Option<string>("--hidden") { Description = "With --accelerator: hidden sizes of the one-layer LSTM, comma-separated.", DefaultValueFactory = _ => "128,256,512,1024" };
        var noCpu = new Option<bool>("--no-cpu") { Description = "With --accelerator: skip the CPU side." };
        var models = new Command("models", """
            Measures the recurrent step: one LSTM stream (I=40, H=64) and batches of 1,024 streams (LSTM and GRU,
            H=128 and 64) on one and two cores, each as a fraction of this machine's FMA peak measured in the same run.
            With --model, the given model too (µs per batched step; divide by 1,024 for one stream's step).
            With --accelerator cuda: a one-layer LSTM (40 inputs) at each --hidden and --batches on the GPU, and the
            SIMD path on every core in the same run: stream-steps per second, the ratio, and the GPU's share of its FP32
            peak (docs/accelerators.md).
            """)
        {
            json, seconds, modelFile, accelerator, batches, hiddens, noCpu,
        };
        models.SetAction(parse => CommandErrors.Run(() =>
        {
            bool asJson = parse.GetValue(json);
            if (parse.GetValue(accelerator) is { } acceleratorName)
            {
                return BenchAccelerator(AcceleratorKinds.Parse(acceleratorName), ParseList("--batches", parse.GetValue(batches)!), ParseList("--hidden", parse.GetValue(hiddens)!),
                    parse.GetValue(seconds), !parse.GetValue(noCpu), asJson);
            }

            RecurrentModel? user = parse.GetValue(modelFile) is { } file ? RecurrentModel.Load(file.FullName) : null;
            (double peak, string width, IReadOnlyList<BenchmarkCase> cases) = asJson
                ? ModelBenchmark.Run(parse.GetValue(seconds), model: user)
                : ModelBenchmark.Run(parse.GetValue(seconds), name => AnsiConsole.MarkupLineInterpolated($"[grey]measuring {name}…[/]"), user);
            var report = new BenchReport(
                Environment.ProcessorCount, System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString(),
                System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription, width, peak / 1e9, cases);
            if (asJson)
            {
                Console.WriteLine(JsonSerializer.Serialize(report, EdgeJsonContext.Default.BenchReport));
                return 0;
            }

            AnsiConsole.MarkupLineInterpolated($"FMA peak of one core ({width}): [bold]{peak / 1e9:F1} GFLOP/s[/]");
            var table = new Table().AddColumns("case", "µs/step", "GFLOP/s", "of peak", "B alloc/step");
            foreach (BenchmarkCase c in cases)
            {
                table.AddRow(c.Name, c.MicrosecondsPerStep.ToString("F3", CultureInfo.InvariantCulture), c.GigaflopsPerSecond.ToString("F1", CultureInfo.InvariantCulture),
                    c.FractionOfPeak.ToString("P0", CultureInfo.InvariantCulture), c.AllocatedBytesPerStep.ToString("F0", CultureInfo.InvariantCulture));
            }

            AnsiConsole.Write(table);
            return 0;
        }));
        return new Command("bench", "Benchmarks on this machine.") { models, CreateTrainBench(), LiveCommands.CreateStreamsBench(), EndToEndBench.Create(), InfluxBench.Create(), DaemonBench.Create(), FuzzBench.Create() };
    }

    private static Command CreateTrainBench()
    {
        var json = new Option<bool>("--json") { Description = "Print the results as JSON only." };
        var accelerator = new Option<string>("--accelerator") { Description = $"The accelerator to measure ({AcceleratorKinds.Names}).", DefaultValueFactory = _ => "cuda" };
        var hidden = new Option<int>("--hidden") { Description = "Hidden units per layer.", DefaultValueFactory = _ => 256 };
        var layers = new Option<int>("--layers") { Description = "LSTM layers.", DefaultValueFactory = _ => 2 };
        var sequences = new Option<int>("--sequences") { Description = "Synthetic training sequences.", DefaultValueFactory = _ => 4096 };
        var steps = new Option<int>("--steps") { Description = "Steps per sequence.", DefaultValueFactory = _ => 100 };
        var batch = new Option<int>("--batch") { Description = "Sequences per mini-batch (both sides).", DefaultValueFactory = _ => 256 };
        var noCpu = new Option<bool>("--no-cpu") { Description = "Skip the CPU side." };
        var command = new Command("train", """
            Measures a training epoch of a stacked LSTM classifier (default 2 layers, H=256) on a synthetic set (noisy sines,
            4 classes, 40 inputs) on an accelerator and with the CPU trainer on every core, same weights, data and options;
            the second of two epochs is timed (the first compiles kernels). docs/accelerators.md.
            """)
        {
            json, accelerator, hidden, layers, sequences, steps, batch, noCpu,
        };
        command.SetAction(parse => CommandErrors.Run(() =>
        {
            bool asJson = parse.GetValue(json);
            (TrainingBenchSide device, TrainingBenchSide? cpu) = TrainingBenchmark.Run(AcceleratorKinds.Parse(parse.GetValue(accelerator)!), parse.GetValue(hidden), parse.GetValue(layers),
                parse.GetValue(sequences), parse.GetValue(steps), 40, parse.GetValue(batch), !parse.GetValue(noCpu),
                asJson ? null : name => AnsiConsole.MarkupLineInterpolated($"[grey]training {name}…[/]"));
            var report = new TrainBenchReport(device, cpu, cpu is null ? null : cpu.EpochSeconds / device.EpochSeconds);
            if (asJson)
            {
                Console.WriteLine(JsonSerializer.Serialize(report, EdgeJsonContext.Default.TrainBenchReport));
                return 0;
            }

            foreach (TrainingBenchSide side in cpu is null ? [device] : new[] { device, cpu })
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{side.Device}: epoch {side.EpochSeconds:F2} s ({side.SequencesPerSecond:N0} sequences/s), loss {side.FirstEpochLoss:F4} → {side.SecondEpochLoss:F4}"));
            }

            if (report.Speedup is { } speedup)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"accelerator / cpu: {speedup:F1}×"));
            }

            return 0;
        }));
        return command;
    }

    private static int BenchAccelerator(AcceleratorKind kind, int[] batches, int[] hiddens, double seconds, bool cpu, bool asJson)
    {
        if (kind is AcceleratorKind.Cpu or AcceleratorKind.Auto)
        {
            throw new ArgumentException($"--accelerator: '{AcceleratorKinds.Name(kind)}' is not a device to measure; give cuda, opencl or ilgpu-cpu.");
        }

        (string device, double? peak, int threads, IReadOnlyList<AcceleratorBenchCase> cases) = AcceleratorBenchmark.Run(kind, batches, hiddens, seconds, cpu,
            asJson ? null : name => AnsiConsole.MarkupLineInterpolated($"[grey]measuring {name}…[/]"));
        var report = new AcceleratorBenchReport(device, peak, threads, KernelInfo.Path, cases);
        if (asJson)
        {
            Console.WriteLine(JsonSerializer.Serialize(report, EdgeJsonContext.Default.AcceleratorBenchReport));
            return 0;
        }

        AnsiConsole.MarkupLineInterpolated($"{device}{(peak is { } p ? $", FP32 peak {p:N0} GFLOP/s" : string.Empty)}; CPU: {threads} threads, {KernelInfo.Path}");
        var table = new Table().AddColumns("model", "streams", "device µs/step", "cpu µs/step", "device steps/s", "cpu steps/s", "× cpu", "device GFLOP/s", "of peak");
        foreach (AcceleratorBenchCase c in cases)
        {
            table.AddRow(c.Model, c.Streams.ToString("N0", CultureInfo.InvariantCulture), c.DeviceMicroseconds.ToString("F1", CultureInfo.InvariantCulture),
                c.CpuMicroseconds > 0 ? c.CpuMicroseconds.ToString("F1", CultureInfo.InvariantCulture) : "-",
                c.DeviceStreamStepsPerSecond.ToString("N0", CultureInfo.InvariantCulture), c.CpuStreamStepsPerSecond > 0 ? c.CpuStreamStepsPerSecond.ToString("N0", CultureInfo.InvariantCulture) : "-",
                c.Speedup > 0 ? c.Speedup.ToString("F1", CultureInfo.InvariantCulture) : "-", c.DeviceGigaflops.ToString("N0", CultureInfo.InvariantCulture),
                c.FractionOfDevicePeak is { } f ? f.ToString("P1", CultureInfo.InvariantCulture) : "-");
        }

        AnsiConsole.Write(table);
        return 0;
    }

    private static int[] ParseList(string option, string value)
    {
        try
        {
            int[] list = [.. value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(v => int.Parse(v, NumberStyles.None, CultureInfo.InvariantCulture))];
            return list.Length > 0 && list.All(v => v > 0) ? list : throw new FormatException();
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            throw new ArgumentException($"{option}: '{value}' is not a comma-separated list of positive numbers.", e);
        }
    }

    private static void Describe(RecurrentModel model, string title)
    {
        AnsiConsole.MarkupLineInterpolated($"[bold]{title}[/]: input {model.InputSize}, {model.ClassCount} classes ({string.Join(", ", model.Labels)})");
        for (int i = 0; i < model.Architecture.Layers.Count; i++)
        {
            LayerArchitecture l = model.Architecture.Layers[i];
            AnsiConsole.MarkupLineInterpolated($"  layer {i}: {l.Kind.ToString().ToUpperInvariant()} hidden {l.HiddenSize}{(l.Bidirectional ? ", bidirectional" : string.Empty)}{(l.ProjectionSize > 0 ? $", projection {l.ProjectionSize}" : string.Empty)}");
        }
    }

    /// <summary>A CSV field: quoted (with doubled quotes) when it holds a comma or a quote.</summary>
    internal static string Quote(string label) => label.Contains(',', StringComparison.Ordinal) || label.Contains('"', StringComparison.Ordinal)
        ? "\"" + label.Replace("\"", "\"\"", StringComparison.Ordinal) + "\""
        : label;

    private static string Framing(EngineModel model) => model.Pipeline is { } p
        ? string.Create(CultureInfo.InvariantCulture, $"frames of {p.Spec.FrameLength} samples every {p.Spec.Hop} → {model.Network.InputSize} features")
        : string.Create(CultureInfo.InvariantCulture, $"{model.SamplesPerStep} sample(s) per step{(model.RawNormalization is null ? string.Empty : ", normalised")}");

    private static string FirstStepSamples(EngineModel model) => model.Pipeline is { } p
        ? string.Create(CultureInfo.InvariantCulture, $"{p.Spec.FrameLength} samples (one frame)")
        : string.Create(CultureInfo.InvariantCulture, $"{model.SamplesPerStep} samples");

    /// <summary>
    /// The input rows: a recording as <c>features</c> and <c>replay</c> read it (<see cref="Recording.Load"/>: CSV with an
    /// optional header, .npy or .npz), every value finite (the error names the line).
    /// </summary>
    private static float[] ReadRows(string path, out int columns)
    {
        Recording rows = Recording.Load(path);
        int bad = Array.FindIndex(rows.Samples, v => !float.IsFinite(v));
        if (bad >= 0)
        {
            throw new InvalidDataException($"{path}, {rows.Where(bad / rows.Channels)}, column {(bad % rows.Channels) + 1}: {rows.Samples[bad]} is not a finite number.");
        }

        columns = rows.Channels;
        return rows.Samples;
    }
}

/// <summary>The JSON of <c>signal-edge bench train</c>.</summary>
/// <param name="Device">The accelerator's epoch.</param>
/// <param name="Cpu">The CPU trainer's epoch, or null.</param>
/// <param name="Speedup">CPU epoch time over the accelerator's.</param>
internal sealed record TrainBenchReport(TrainingBenchSide Device, TrainingBenchSide? Cpu, double? Speedup);

/// <summary>The JSON of <c>signal-edge bench models --accelerator</c>.</summary>
/// <param name="Device">The accelerator.</param>
/// <param name="DevicePeakGflops">Its FP32 peak, where known.</param>
/// <param name="CpuThreads">Threads of the SIMD path measured beside it.</param>
/// <param name="CpuKernelPath">Vector width of the SIMD path.</param>
/// <param name="Cases">The measured cases.</param>
internal sealed record AcceleratorBenchReport(string Device, double? DevicePeakGflops, int CpuThreads, string CpuKernelPath, IReadOnlyList<AcceleratorBenchCase> Cases);

/// <summary>The JSON of <c>signal-edge bench models</c>.</summary>
/// <param name="Processors">Logical processors.</param>
/// <param name="Architecture">Process architecture.</param>
/// <param name="Runtime">.NET runtime.</param>
/// <param name="KernelPath">Vector width the kernels used.</param>
/// <param name="FmaPeakGflops">Measured single-core FMA peak at that width.</param>
/// <param name="Cases">The measured cases.</param>
internal sealed record BenchReport(int Processors, string Architecture, string Runtime, string KernelPath, double FmaPeakGflops, IReadOnlyList<BenchmarkCase> Cases);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
[System.Text.Json.Serialization.JsonSerializable(typeof(BenchReport))]
[System.Text.Json.Serialization.JsonSerializable(typeof(AcceleratorBenchReport))]
[System.Text.Json.Serialization.JsonSerializable(typeof(TrainBenchReport))]
internal sealed partial class EdgeJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
