using System.Diagnostics;
using Signal.Models.Kernels;
using Signal.Models.Networks;

namespace Signal.Benchmarks;

/// <summary>Component timings while tuning kernels: <c>dotnet run -c Release --project tests/Signal.Benchmarks -- profile</c>.</summary>
internal static class Profile
{
    public static void Run()
    {
        RecurrentModel single = RecurrentModel.CreateRandom(new ModelArchitecture
        {
            InputSize = 40, Classes = 4, Layers = [new LayerArchitecture { HiddenSize = 64 }],
        }, 1);
        RecurrentState one = single.CreateState();
        float[] stepInput = new float[40], stepProbabilities = new float[4];
        var singleCell = new Cell(single.Architecture.Layers[0], 40, single.Tensors["layers.0.weight_ih_l0"], single.Tensors["layers.0.weight_hh_l0"],
            single.Tensors["layers.0.bias_ih_l0"], single.Tensors["layers.0.bias_hh_l0"], null, single.Path);
        var oneBuffers = new CellBuffers(singleCell, 1);
        float[] oneGates = new float[singleCell.Main.PaddedRows];
        TimeMany("single Step", () => single.Step(one, stepInput, stepProbabilities));
        TimeMany("single Step, no head", () => single.Step(one, stepInput, default));
        TimeMany("single cell step", () => singleCell.Step(oneBuffers, 1, single.Path));
        TimeMany("single gemm", () => Kernels.Gemm(oneBuffers.A, 104, 1, singleCell.Main, oneGates, singleCell.Main.PaddedRows, single.Path));

        const int rows = 1024, input = 40, hidden = 128;
        RecurrentModel model = RecurrentModel.CreateRandom(new ModelArchitecture
        {
            InputSize = input, Classes = 4, Layers = [new LayerArchitecture { HiddenSize = hidden }],
        }, 1);
        RecurrentState[] states = [.. Enumerable.Range(0, rows).Select(_ => model.CreateState())];
        float[] x = [.. Enumerable.Range(0, rows * input).Select(i => MathF.Sin(i))];
        float[] p = new float[rows * 4];
        var ws = new RecurrentModel.Workspace(model, rows);
        CellBuffers b = ws.Cells[0];
        var cell = new Cell(model.Architecture.Layers[0], input, model.Tensors["layers.0.weight_ih_l0"], model.Tensors["layers.0.weight_hh_l0"],
            model.Tensors["layers.0.bias_ih_l0"], model.Tensors["layers.0.bias_hh_l0"], null, model.Path);
        using var stepper = new BatchStepper(model, rows, threads: 1);
        Time("stepper.Step", () => stepper.Step(states, x, p));
        Time("full step", () => model.StepRows(states, x, p, default, ws));
        Time("full step, no head", () => model.StepRows(states, x, default, default, ws));
        Time("cell step (gemm + gates)", () => cell.Step(b, rows, model.Path));
        float[] gates = new float[rows * cell.Main.PaddedRows];
        Time("gemm only", () => Kernels.Gemm(b.A, cell.InputStride, rows, cell.Main, gates, cell.Main.PaddedRows, model.Path));
        Time("gates only", () =>
        {
            int gs = cell.Main.PaddedRows;
            for (int r = 0; r < rows; r++)
            {
                Kernels.LstmGates(gates.AsSpan(r * gs, 4 * hidden), b.C.AsSpan(r * hidden, hidden), b.Out.AsSpan(r * hidden, hidden), hidden, model.Path);
            }
        });
    }

    private static void TimeMany(string name, Action action)
    {
        double best = double.MaxValue;
        for (int round = 0; round < 50; round++)
        {
            long start = Stopwatch.GetTimestamp();
            for (int i = 0; i < 10000; i++)
            {
                action();
            }

            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds / 10000);
        }

        Console.WriteLine($"{name,-28} {best * 1e9,9:F0} ns");
    }

    private static void Time(string name, Action action)
    {
        action();
        double best = double.MaxValue;
        for (int round = 0; round < 200; round++)
        {
            long start = Stopwatch.GetTimestamp();
            action();
            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
        }

        Console.WriteLine($"{name,-28} {best * 1e6,9:F1} µs");
    }
}
