using System.Buffers.Binary;
using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Signal.Features.Fft;
using Signal.Features.Pipeline;
using Signal.Models.Accelerators;
using Signal.Models.Networks;
using Signal.Models.Onnx;

namespace Signal.Edge.Commands;

/// <summary>
/// <c>signal-edge selftest</c>: the kernels of this machine against the committed numpy/scipy/PyTorch golden files
/// (tests/reference/golden), at the tolerances of the test suites. Meant for a new board or a new build (the ARM64 build
/// under qemu in CI runs it): FFT, frame features with mel and MFCC, IIR and FIR filters, and LSTM/GRU/RNN models stepped
/// one input at a time, in batches of streams, and imported from ONNX.
/// </summary>
internal static class SelfTestCommand
{
    /// <summary>Per-step probabilities within this of PyTorch (the models suite's bound).</summary>
    private const double ModelTolerance = 1e-5;

    private static readonly string[] s_levels = ["mean", "rms", "std", "peak_to_peak", "crest_factor"];
    private static readonly string[] s_shapes = ["spectral_centroid", "spectral_bandwidth"];

    public static Command Create()
    {
        var golden = new Option<DirectoryInfo>("--golden")
        {
            Description = "The golden files: tests/reference/golden of a checkout.",
            DefaultValueFactory = _ => new DirectoryInfo(Path.Combine("tests", "reference", "golden")),
        };
        var accelerator = new Option<string>("--accelerator")
        {
            Description = $"Also step the golden models in batches on this accelerator ({AcceleratorKinds.Names}) against PyTorch, and compare it with the SIMD path on models of every supported kind (docs/accelerators.md).",
            DefaultValueFactory = _ => "cpu",
        };
        var command = new Command("selftest", """
            Checks this machine's kernels against the committed numpy/scipy/PyTorch golden files at the test suites'
            tolerances: real FFT (16 to 8192 points), frame features (time-domain statistics, spectral shape, mel, MFCC,
            band energies, log power), IIR and FIR filters streamed in two chunks, and every golden LSTM/GRU/RNN model
            stepped one input at a time, in a batch of 8 streams, and imported from ONNX. One line per check, then
            "N passed, N failed"; exits 1 when a check fails.

            Example (from a checkout, e.g. the linux-arm64 build under qemu):
              signal-edge selftest --golden tests/reference/golden
              signal-edge selftest --accelerator cuda     # the GPU backend too
            """)
        {
            golden, accelerator,
        };
        command.SetAction(parse => CommandErrors.Run(() => Run(parse.GetValue(golden)!.FullName, AcceleratorKinds.Parse(parse.GetValue(accelerator)!))));
        return command;
    }

    private static int Run(string folder, AcceleratorKind accelerator)
    {
        if (accelerator == AcceleratorKind.Auto)
        {
            throw new ArgumentException("--accelerator: give the device to check (cuda, opencl or ilgpu-cpu), not auto.");
        }

        if (!Directory.Exists(Path.Combine(folder, "features")) || !Directory.Exists(Path.Combine(folder, "models")))
        {
            throw new ArgumentException($"--golden: '{folder}' holds no features/ and models/ golden files (tests/reference/golden of a checkout).");
        }

        Console.WriteLine($"selftest on {System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant()}, kernel path {Signal.Models.Diagnostics.KernelInfo.Path}");
        int passed = 0, failed = 0;
        void Check(string name, Func<string> body)
        {
            try
            {
                string detail = body();
                passed++;
                Console.WriteLine($"  passed: {name} ({detail})");
            }
            catch (SelfTestFailure e)
            {
                failed++;
                Console.WriteLine($"  FAILED: {name}: {e.Message}");
            }
            catch (Exception e) when (accelerator != AcceleratorKind.Cpu && e is not OutOfMemoryException)
            {
                // On an accelerator every check reports, so one device error does not hide the others.
                failed++;
                Console.WriteLine($"  FAILED: {name}: {e.GetType().Name}: {e.Message}");
            }
        }

        Check("real FFT matches numpy.fft.rfft", () => Fft(Load(folder, "features", "fft")));
        Check("frame features, mel and MFCC match numpy/scipy", () => Frames(Load(folder, "features", "frames")));
        Check("IIR and FIR filters match scipy", () => Filters(Load(folder, "features", "filters")));
        string[] models = [.. Directory.GetFiles(Path.Combine(folder, "models"), "*.json").Select(f => Path.GetFileNameWithoutExtension(f)!).Order(StringComparer.Ordinal)];
        foreach (string name in models.Where(n => !n.StartsWith("bi", StringComparison.Ordinal)))
        {
            Check($"{name} stepped and batched matches PyTorch", () => Model(folder, name));
        }

        foreach (string name in models.Where(n => File.Exists(Path.Combine(folder, "models", n + ".onnx")) && !n.StartsWith("bi", StringComparison.Ordinal)))
        {
            Check($"{name} imported from ONNX matches PyTorch", () => Onnx(folder, name));
        }

        if (accelerator != AcceleratorKind.Cpu)
        {
            string device = AcceleratorKinds.Name(accelerator);
            foreach (string name in models.Where(n => !n.StartsWith("bi", StringComparison.Ordinal)))
            {
                RecurrentModel model = RecurrentModel.Load(Path.Combine(folder, "models", name + ".safetensors"));
                if (AcceleratorSelection.WhyNotSupported(model) is { } why)
                {
                    Console.WriteLine($"  not run: {name} on {device} ({why}; the engine steps it on the CPU)");
                    continue;
                }

                Check($"{name} batched on {device} matches PyTorch", () => Model(folder, name, accelerator));
            }

            foreach ((string name, ModelArchitecture _) in AcceleratorCheck.Models())
            {
                Check($"{name} on {device} equals the SIMD path within {AcceleratorCheck.Tolerance:G1}", () =>
                {
                    int index = AcceleratorCheck.Models().Select(m => m.Name).ToList().IndexOf(name);
                    (string label, ModelArchitecture architecture) = AcceleratorCheck.Models(scale: accelerator == AcceleratorKind.IlgpuCpu ? 1 : 8)[index];
                    AcceleratorCheckCase result = AcceleratorCheck.Compare(label, RecurrentModel.CreateRandom(architecture, seed: 40 + index), accelerator,
                        streams: accelerator == AcceleratorKind.IlgpuCpu ? 150 : 3000, steps: 8);
                    string detail = string.Create(CultureInfo.InvariantCulture, $"{label}, {result.Streams} streams, {result.Steps} steps: probabilities {result.ProbabilityError:G2}, forecasts {result.ForecastError:G2}, states {result.StateError:G2}");
                    return result.Passed ? detail : throw new SelfTestFailure(detail);
                });
            }

            foreach ((string cells, Signal.Models.Training.LossKind loss, bool pooling, double smoothing, bool weighted) in AcceleratorCheck.TrainingCases())
            {
                string label = $"training {cells}, {loss}{(pooling ? ", mean pooling" : string.Empty)}{(smoothing > 0 ? ", label smoothing" : string.Empty)}{(weighted ? ", class weights" : string.Empty)}";
                Check($"{label} on {device}: gradients equal the CPU trainer's within {AcceleratorCheck.Tolerance:G1}", () =>
                {
                    // A ReLU stack is compared at the small size: its data keeps every ReLU pre-activation at least 0.005 from
                    // the kink (checked on the host), where the larger case has outputs of 1.5e-8, whose side of 0 depends on
                    // rounding (CUDA contracts multiply-adds) and flips the derivative.
                    bool small = accelerator == AcceleratorKind.IlgpuCpu || cells.Contains("relu", StringComparison.Ordinal);
                    var r = AcceleratorCheck.CompareTraining(cells, loss, pooling, smoothing, weighted, accelerator, hidden: small ? 6 : 96, count: small ? 5 : 64);
                    string detail = string.Create(CultureInfo.InvariantCulture, $"loss {r.LossError:G2}, largest gradient difference {r.GradientError:G2} ({r.WorstTensor})");
                    return r.LossError <= AcceleratorCheck.Tolerance && r.GradientError <= AcceleratorCheck.Tolerance && r.CountsAgree && r.AllGradientsNonZero
                        ? detail : throw new SelfTestFailure(detail + (r.CountsAgree ? string.Empty : ", counts differ"));
                });
            }
        }

        Console.WriteLine($"{passed} passed, {failed} failed");
        return failed == 0 ? 0 : 1;
    }

    private static JsonElement Load(string folder, string kind, string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, kind, name + ".json")));
        return doc.RootElement.Clone();
    }

    private static string Fft(JsonElement golden)
    {
        double worst = 0;
        int lengths = 0;
        foreach (JsonElement c in golden.GetProperty("cases").EnumerateArray())
        {
            int n = c.GetProperty("n").GetInt32();
            float[] input = Floats(c.GetProperty("input"));
            double scale = Math.Sqrt(input.Sum(v => (double)v * v));
            var fft = new RealFft(n);
            var re = new float[fft.BinCount];
            var im = new float[fft.BinCount];
            fft.Forward(input, re, im);
            // Single precision: the error grows like log2(N)·ε·‖x‖ (the suite's bound).
            double tolerance = 2e-7 * Math.Log2(n) * scale;
            worst = Math.Max(worst, Close(Doubles(c.GetProperty("real")), re, tolerance, 0, $"N={n} real") / tolerance);
            worst = Math.Max(worst, Close(Doubles(c.GetProperty("imag")), im, tolerance, 0, $"N={n} imag") / tolerance);
            lengths++;
        }

        return string.Create(CultureInfo.InvariantCulture, $"{lengths} lengths, worst error {worst:P0} of the tolerance");
    }

    private static string Frames(JsonElement g)
    {
        double[] edges = Doubles(g.GetProperty("band_edges"));
        var spec = new FeatureSpec
        {
            SampleRate = g.GetProperty("rate").GetDouble(),
            FrameLength = g.GetProperty("frame").GetInt32(),
            Hop = g.GetProperty("hop").GetInt32(),
            Features = [
                .. s_levels.Concat(s_shapes).Concat(["spectral_flatness", "spectral_entropy"]).Select(n => new FeatureRequest { Name = n }),
                new FeatureRequest { Name = "band_energy", Edges = edges },
                new FeatureRequest { Name = "mel", Count = 40 },
                new FeatureRequest { Name = "mfcc", Count = 13 },
                new FeatureRequest { Name = "log_power" },
            ],
        };
        var pipeline = new FeaturePipeline(spec);
        float[] rows = pipeline.ExtractAll(Floats(g.GetProperty("signal")));
        JsonElement[] expected = [.. g.GetProperty("rows").EnumerateArray()];
        if (rows.Length / pipeline.OutputLength != expected.Length)
        {
            throw new SelfTestFailure($"{rows.Length / pipeline.OutputLength} frames, expected {expected.Length}");
        }

        IReadOnlyList<string> names = pipeline.ColumnNames;
        for (int r = 0; r < expected.Length; r++)
        {
            int start = r * pipeline.OutputLength;
            ReadOnlySpan<float> Columns(string first, int count) => rows.AsSpan(start + IndexOf(names, first), count);
            JsonElement e = expected[r];
            // The feature suite's tolerances (float32 sums over the frame; spectral quantities relative to its power).
            foreach (string n in s_levels)
            {
                Close([e.GetProperty(n).GetDouble()], Columns(n, 1), 1e-5, 1e-4, $"frame {r} {n}");
            }

            foreach (string n in s_shapes)
            {
                Close([e.GetProperty(n).GetDouble()], Columns(n, 1), 0.05, 1e-4, $"frame {r} {n}");
            }

            Close([e.GetProperty("spectral_flatness").GetDouble()], Columns("spectral_flatness", 1), 1e-5, 1e-3, $"frame {r} spectral_flatness");
            Close([e.GetProperty("spectral_entropy").GetDouble()], Columns("spectral_entropy", 1), 1e-5, 1e-4, $"frame {r} spectral_entropy");
            Close(Doubles(e.GetProperty("band_energy")), Columns("band_energy_0", edges.Length - 1), 1e-3, 1e-4, $"frame {r} band_energy");
            double[] mel = Doubles(e.GetProperty("mel"));
            Close(mel, Columns("mel_0", 40), 1e-6 * (1 + mel.Max()), 1e-4, $"frame {r} mel");
            Close(Doubles(e.GetProperty("mfcc")), Columns("mfcc_0", 13), 2e-3, 1e-4, $"frame {r} mfcc");
            Close(Doubles(e.GetProperty("log_power")), Columns("log_power_0", 513), 0.02, 1e-4, $"frame {r} log_power");
        }

        return $"{expected.Length} frames of {pipeline.OutputLength} features";
    }

    private static string Filters(JsonElement g)
    {
        double rate = g.GetProperty("rate").GetDouble();
        float[] x = Floats(g.GetProperty("signal"));
        int cases = 0;
        foreach (JsonElement c in g.GetProperty("cases").EnumerateArray())
        {
            var spec = new FilterSpec
            {
                Design = c.GetProperty("design").GetString()!,
                Mode = c.GetProperty("mode").GetString()!,
                Order = c.GetProperty("order").GetInt32(),
                Frequency = c.GetProperty("frequency").GetDouble(),
                Frequencies = c.TryGetProperty("frequencies", out JsonElement band) ? Doubles(band) : null,
                Rp = c.TryGetProperty("rp", out JsonElement rp) ? rp.GetDouble() : null,
                Rs = c.TryGetProperty("rs", out JsonElement rs) ? rs.GetDouble() : null,
                Taps = c.TryGetProperty("taps", out JsonElement taps) ? taps.GetInt32() : null,
                Window = c.TryGetProperty("window", out JsonElement window) ? window.GetString() : null,
                Q = c.GetProperty("q").GetDouble() is > 0 and var q ? q : 0.7071,
            };
            Signal.Features.Filters.StreamFilter filter = spec.CreateFilter(rate);
            float[] y = (float[])x.Clone();
            filter.Process(y.AsSpan(0, 1000));
            filter.Process(y.AsSpan(1000)); // in two chunks: the state carries over

            // Odd elliptic prototypes from NWaves differ from scipy's at about 1e-5 (IirDesign's remarks).
            double tolerance = spec.Design == "elliptic" && spec.Order % 2 == 1 ? 2e-4 : 1e-5;
            Close(Doubles(c.GetProperty("output")), y, tolerance, tolerance, $"{spec.Design} {spec.Mode} order {spec.Order}");
            cases++;
        }

        return $"{cases} designs";
    }

    private static string Model(string folder, string name, AcceleratorKind accelerator = AcceleratorKind.Cpu)
    {
        (int steps, int inputs, int classes, int forecast) = Shape(folder, name);
        RecurrentModel model = RecurrentModel.Load(Path.Combine(folder, "models", name + ".safetensors"));
        float[] x = ReadFloats(folder, name + ".inputs.f32");
        float[] expected = ReadFloats(folder, name + ".probabilities.f32");
        float[] expectedForecasts = forecast > 0 ? ReadFloats(folder, name + ".forecasts.f32") : [];

        double worst = 0;
        if (accelerator == AcceleratorKind.Cpu)
        {
            // One input at a time, as a stream is stepped.
            RecurrentState state = model.CreateState();
            var probabilities = new float[steps * classes];
            var forecasts = new float[steps * forecast];
            for (int t = 0; t < steps; t++)
            {
                model.Step(state, x.AsSpan(t * inputs, inputs), probabilities.AsSpan(t * classes, classes), forecast > 0 ? forecasts.AsSpan(t * forecast, forecast) : default);
            }

            worst = Close(expected, probabilities, ModelTolerance, 0, "stepped");
            if (forecast > 0)
            {
                worst = Math.Max(worst, Close(expectedForecasts, forecasts, ModelTolerance, 0, "stepped forecast"));
            }
        }

        // A batch of 8 streams, as the engine steps them (the kernels' batched path, or the accelerator's); each must
        // match alone.
        const int Streams = 8;
        using IRecurrentStepper stepper = AcceleratorSelection.CreateStepper(model, Streams, accelerator, threads: 1);
        RecurrentState[] states = [.. Enumerable.Range(0, Streams).Select(_ => model.CreateState())];
        var batchInputs = new float[Streams * inputs];
        var batchProbabilities = new float[Streams * classes];
        var batchForecasts = new float[Streams * forecast];
        var perStream = new float[Streams][];
        var perStreamForecasts = new float[Streams][];
        for (int s = 0; s < Streams; s++)
        {
            perStream[s] = new float[steps * classes];
            perStreamForecasts[s] = new float[steps * forecast];
        }

        for (int t = 0; t < steps; t++)
        {
            for (int s = 0; s < Streams; s++)
            {
                x.AsSpan(t * inputs, inputs).CopyTo(batchInputs.AsSpan(s * inputs));
            }

            stepper.Step(states, batchInputs, batchProbabilities, forecast > 0 ? batchForecasts : default);
            for (int s = 0; s < Streams; s++)
            {
                batchProbabilities.AsSpan(s * classes, classes).CopyTo(perStream[s].AsSpan(t * classes));
                batchForecasts.AsSpan(s * forecast, forecast).CopyTo(perStreamForecasts[s].AsSpan(t * forecast));
            }
        }

        for (int s = 0; s < Streams; s++)
        {
            worst = Math.Max(worst, Close(expected, perStream[s], ModelTolerance, 0, $"batched stream {s}"));
            if (forecast > 0)
            {
                worst = Math.Max(worst, Close(expectedForecasts, perStreamForecasts[s], ModelTolerance, 0, $"batched stream {s} forecast"));
            }
        }

        return string.Create(CultureInfo.InvariantCulture, $"{steps} steps, {classes} classes, largest |Δ| {worst:G2}");
    }

    private static string Onnx(string folder, string name)
    {
        (int steps, int inputs, int classes, _) = Shape(folder, name);
        RecurrentModel model = OnnxImporter.Import(Path.Combine(folder, "models", name + ".onnx"));
        float[] x = ReadFloats(folder, name + ".inputs.f32");
        RecurrentState state = model.CreateState();
        var probabilities = new float[steps * classes];
        for (int t = 0; t < steps; t++)
        {
            model.Step(state, x.AsSpan(t * inputs, inputs), probabilities.AsSpan(t * classes, classes));
        }

        double worst = Close(ReadFloats(folder, name + ".probabilities.f32"), probabilities, ModelTolerance, 0, "imported");
        return string.Create(CultureInfo.InvariantCulture, $"largest |Δ| {worst:G2}");
    }

    private static (int Steps, int Inputs, int Classes, int Forecast) Shape(string folder, string name)
    {
        JsonElement e = Load(folder, "models", name);
        return (e.GetProperty("steps").GetInt32(), e.GetProperty("inputs").GetInt32(), e.GetProperty("classes").GetInt32(), e.GetProperty("forecast").GetInt32());
    }

    private static float[] ReadFloats(string folder, string file)
    {
        byte[] bytes = File.ReadAllBytes(Path.Combine(folder, "models", file));
        var values = new float[bytes.Length / 4];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(4 * i));
        }

        return values;
    }

    /// <summary>Requires |actual − expected| ≤ abs + rel·|expected| everywhere, naming the first index that fails; returns the largest |Δ|.</summary>
    private static double Close(ReadOnlySpan<double> expected, ReadOnlySpan<float> actual, double abs, double rel, string what)
    {
        if (expected.Length != actual.Length)
        {
            throw new SelfTestFailure($"{what}: {actual.Length} values, expected {expected.Length}");
        }

        double worst = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = Math.Abs(actual[i] - expected[i]);
            worst = Math.Max(worst, d);
            if (!(d <= abs + (rel * Math.Abs(expected[i]))))
            {
                throw new SelfTestFailure(string.Create(CultureInfo.InvariantCulture, $"{what}[{i}]: got {actual[i]:R}, expected {expected[i]:R} (tolerance {abs + (rel * Math.Abs(expected[i])):G3})"));
            }
        }

        return worst;
    }

    private static double Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double abs, double rel, string what)
    {
        double[] wide = new double[expected.Length];
        for (int i = 0; i < wide.Length; i++)
        {
            wide[i] = expected[i];
        }

        return Close(wide, actual, abs, rel, what);
    }

    private static int IndexOf(IReadOnlyList<string> names, string name)
    {
        for (int i = 0; i < names.Count; i++)
        {
            if (names[i] == name)
            {
                return i;
            }
        }

        throw new SelfTestFailure($"the pipeline has no column '{name}'");
    }

    private static double[] Doubles(JsonElement e) => [.. e.EnumerateArray().Select(x => x.GetDouble())];

    private static float[] Floats(JsonElement e) => [.. e.EnumerateArray().Select(x => (float)x.GetDouble())];

    private sealed class SelfTestFailure(string message) : Exception(message);
}
