using System.CommandLine;
using System.Globalization;
using Signal.Engine.Live;
using Signal.Engine.Payloads;
using Signal.Models.Networks;

namespace Signal.Edge.Commands;

/// <summary><c>signal-edge bench fuzz</c>: hostile payloads through the real decoders and engine, for long runs.</summary>
internal static class FuzzBench
{
    public static Command Create()
    {
        var cases = new Option<long>("--cases") { Description = "Payloads to run (default 1,000,000).", DefaultValueFactory = _ => 1_000_000 };
        var seed = new Option<int>("--seed") { Description = "First seed; each block of 100,000 cases uses the next one.", DefaultValueFactory = _ => 1 };
        var model = new Option<FileInfo?>("--model") { Description = "A model file to fuzz against (default: the bundled demo model, and a raw-sample model)." };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON." };
        var command = new Command("fuzz", """
            Runs fuzzed payloads (JSON, SenML, binary and feature messages with wrong types, extreme values and byte-level
            mutations) through the real payload decoder and a live engine. A case fails when the decoder throws or the
            engine has to contain an exception (internal_error): bad input must always be refused with a reason.
            Reports cases per second and the failures, with the first failing payloads in base64.
              signal-edge bench fuzz --cases 1000000
            """)
        {
            cases, seed, model, json,
        };
        command.SetAction((parse, cancel) => Task.FromResult(CommandErrors.Run(() =>
        {
            long total = parse.GetValue(cases);
            if (total < 1)
            {
                throw new ArgumentException("--cases must be at least 1.");
            }

            List<EngineModel> models = parse.GetValue(model) is { } file
                ? [EngineModel.From(RecurrentModel.Load(file.FullName), file.Name)]
                : [EngineModel.From(RecurrentModel.Load(Demo.DemoModel.Bundled()), "demo-bearing"), RawModel()];
            long run = 0, failed = 0, steps = 0;
            double seconds = 0;
            var failures = new List<FuzzFailure>();
            int block = 0;
            while (run < total && !cancel.IsCancellationRequested)
            {
                int n = (int)Math.Min(100_000, total - run);
                EngineModel m = models[block % models.Count];
                long done = run;
                FuzzResult r = PayloadFuzzer.Run(m, n, parse.GetValue(seed) + block, progress: c => Console.Error.Write($"\r{done + c:N0} cases"), cancellationToken: cancel);
                run += r.Cases;
                failed += r.Failures;
                steps += r.Steps;
                seconds += r.Elapsed.TotalSeconds;
                failures.AddRange(r.FirstFailures.Take(10 - failures.Count));
                block++;
                Console.Error.Write($"\r{run:N0} cases, {failed:N0} failures, {run / seconds:N0} cases/s");
            }

            Console.Error.WriteLine();
            if (parse.GetValue(json))
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{{\"cases\":{run},\"failures\":{failed},\"seconds\":{seconds:0.###},\"cases_per_second\":{run / seconds:0},\"steps\":{steps},\"first_failures\":[{string.Join(',', failures.Select(f => $"{{\"problem\":{System.Text.Json.JsonSerializer.Serialize(f.Problem, Signal.Engine.EngineJsonContext.Default.String)},\"payload_base64\":\"{Convert.ToBase64String(f.Payload)}\"}}"))}]}}"));
            }
            else
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{run:N0} cases in {seconds:0.0} s ({run / seconds:N0} cases/s), {steps:N0} network steps reached, {failed:N0} failures"));
                foreach (FuzzFailure f in failures)
                {
                    Console.WriteLine($"  {f.Problem}: {f.Topic} {Convert.ToBase64String(f.Payload)}");
                }
            }

            return failed == 0 ? 0 : 2;
        })));
        return command;
    }

    /// <summary>A small random GRU on raw 3-channel samples at 1 kHz (no feature stage), with both heads.</summary>
    private static EngineModel RawModel()
    {
        var architecture = new ModelArchitecture
        {
            InputSize = 3,
            Classes = 2,
            ForecastSize = 3,
            Layers = [new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = 16 }],
        };
        return EngineModel.From(RecurrentModel.CreateRandom(architecture, 1, ["normal", "fault"]), "raw");
    }
}
