using System.Diagnostics;
using Signal.Models.Kernels;

namespace Signal.Benchmarks;

/// <summary>Quick component timings while tuning kernels: <c>dotnet run -c Release -- profile</c>.</summary>
internal static class Profile
{
    public static void Run()
    {
        var model = Signal.Models.Networks.RecurrentModel.CreateRandom(new Signal.Models.Networks.ModelArchitecture
        {
            InputSize = 40, Classes = 4, Layers = [new Signal.Models.Networks.LayerArchitecture { HiddenSize = 64 }],
        }, 1);
        var state = model.CreateState();
        float[] x = new float[40], p = new float[4];
        foreach (bool head in new[] { true, false, true, false })
        {
            double bestStep = double.MaxValue;
            for (int round = 0; round < 30; round++)
            {
                long start = Stopwatch.GetTimestamp();
                for (int i = 0; i < 20000; i++)
                {
                    model.Step(state, x, head ? p : default);
                }

                bestStep = Math.Min(bestStep, Stopwatch.GetElapsedTime(start).TotalSeconds / 20000);
            }

            Console.WriteLine($"single step head={head}: {bestStep * 1e9:F0} ns");
        }

        foreach (KernelPath path in new[] { KernelPath.Vector256, KernelPath.Vector512 })
        {
            const int rows = 1024, h = 128;
            float[] g = [.. Enumerable.Range(0, rows * 4 * h).Select(i => (float)Math.Sin(i))];
            float[] c = new float[rows * h], hh = new float[rows * h];
            double best = double.MaxValue;
            for (int round = 0; round < 20; round++)
            {
                long start = Stopwatch.GetTimestamp();
                for (int r = 0; r < rows; r++)
                {
                    Kernels.LstmGates(g.AsSpan(r * 4 * h, 4 * h), c.AsSpan(r * h, h), hh.AsSpan(r * h, h), h, path);
                }

                best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
            }

            Console.WriteLine($"{path} lstm gates 1024x128: {best * 1e6:F1} µs");
        }

        foreach (KernelPath path in new[] { KernelPath.Vector256, KernelPath.Vector512 })
        {
            if (!Kernels.IsSupported(path))
            {
                continue;
            }

            foreach ((int rows, int k, int n) in new[] { (1024, 168, 512), (1024, 104, 256), (1, 104, 256) })
            {
                var random = new Random(1);
                float[] w = [.. Enumerable.Range(0, n * k).Select(_ => (float)random.NextDouble())];
                var packed = new PackedMatrix(w, n, k, new float[n], path);
                float[] a = [.. Enumerable.Range(0, rows * k).Select(_ => (float)random.NextDouble())];
                float[] c = new float[rows * packed.PaddedRows];
                int reps = Math.Max(1, 20_000_000 / (rows * k * n / 100));
                double best = double.MaxValue;
                for (int round = 0; round < 10; round++)
                {
                    long start = Stopwatch.GetTimestamp();
                    for (int i = 0; i < reps; i++)
                    {
                        Kernels.Gemm(a, k, rows, packed, c, packed.PaddedRows, path);
                    }

                    best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds / reps);
                }

                Console.WriteLine($"{path} gemm rows={rows} K={k} N={n}: {best * 1e6:F2} µs, {2.0 * rows * k * n / best / 1e9:F1} GFLOP/s");
            }
        }
    }
}
