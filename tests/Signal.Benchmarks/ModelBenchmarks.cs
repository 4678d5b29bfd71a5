using BenchmarkDotNet.Attributes;
using Signal.Models.Networks;

namespace Signal.Benchmarks;

/// <summary>
/// The recurrent step, alone and batched, with the FMA peak loop as the peer in the same run (the issue's
/// targets are fractions of it). FLOPs per stream step: 8·H·(I+H) for an LSTM layer, 6·H·(I+H) for GRU,
/// plus 2·H·classes for the head. <c>signal-edge bench models</c> prints the same cases as fractions.
/// </summary>
[MemoryDiagnoser]
public class ModelBenchmarks
{
    private const long PeakIterations = 1_000_000;
    private RecurrentModel _single = null!;
    private RecurrentModel _odd = null!;
    private RecurrentState _singleState = null!;
    private RecurrentState _oddState = null!;
    private float[] _input = null!;
    private float[] _probabilities = null!;
    private BatchStepper _lstm128One = null!;
    private BatchStepper _lstm128Two = null!;
    private BatchStepper _gru128One = null!;
    private RecurrentState[] _lstmStates = null!;
    private RecurrentState[] _gruStates = null!;
    private float[] _batchInputs = null!;
    private float[] _batchProbabilities = null!;

    [GlobalSetup]
    public void Setup()
    {
        _single = Model(CellKind.Lstm, 40, 64);
        _odd = Model(CellKind.Lstm, 39, 63);
        _singleState = _single.CreateState();
        _oddState = _odd.CreateState();
        _input = [.. Enumerable.Range(0, 40).Select(i => MathF.Sin(i))];
        _probabilities = new float[4];
        RecurrentModel lstm = Model(CellKind.Lstm, 40, 128);
        RecurrentModel gru = Model(CellKind.Gru, 40, 128);
        _lstm128One = new BatchStepper(lstm, 1024, threads: 1);
        _lstm128Two = new BatchStepper(lstm, 1024, threads: 2);
        _gru128One = new BatchStepper(gru, 1024, threads: 1);
        _lstmStates = [.. Enumerable.Range(0, 1024).Select(_ => lstm.CreateState())];
        _gruStates = [.. Enumerable.Range(0, 1024).Select(_ => gru.CreateState())];
        _batchInputs = [.. Enumerable.Range(0, 1024 * 40).Select(i => MathF.Sin(i * 0.37f))];
        _batchProbabilities = new float[1024 * 4];
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _lstm128One.Dispose();
        _lstm128Two.Dispose();
        _gru128One.Dispose();
    }

    /// <summary>12 independent Vector256 FMAs × 1,000,000 iterations = 192 MFLOP; GFLOP/s = 0.192 / seconds.</summary>
    [Benchmark(Baseline = true)]
    public float FmaPeakLoop256() => FmaPeakProbe.Run256(PeakIterations);

    /// <summary>12 independent Vector512 FMAs × 1,000,000 iterations = 384 MFLOP.</summary>
    [Benchmark]
    public float FmaPeakLoop512() => FmaPeakProbe.Run512(PeakIterations);

    [Benchmark]
    public void LstmSingleStream_I40_H64() => _single.Step(_singleState, _input, _probabilities);

    [Benchmark]
    public void LstmSingleStream_I39_H63() => _odd.Step(_oddState, _input.AsSpan(0, 39), _probabilities);

    [Benchmark]
    public void LstmBatch1024_I40_H128_OneCore() => _lstm128One.Step(_lstmStates, _batchInputs, _batchProbabilities);

    [Benchmark]
    public void LstmBatch1024_I40_H128_TwoCores() => _lstm128Two.Step(_lstmStates, _batchInputs, _batchProbabilities);

    [Benchmark]
    public void GruBatch1024_I40_H128_OneCore() => _gru128One.Step(_gruStates, _batchInputs, _batchProbabilities);

    private static RecurrentModel Model(CellKind kind, int input, int hidden) => RecurrentModel.CreateRandom(
        new ModelArchitecture { InputSize = input, Classes = 4, Layers = [new LayerArchitecture { Kind = kind, HiddenSize = hidden }] }, seed: 1);
}

/// <summary>Fixed-count FMA loops for BenchmarkDotNet (FmaPeak measures by time).</summary>
internal static class FmaPeakProbe
{
    public static float Run256(long iterations)
    {
        var a = System.Runtime.Intrinsics.Vector256.Create(1e-7f);
        var m = System.Runtime.Intrinsics.Vector256.Create(0.999999f);
        var c0 = System.Runtime.Intrinsics.Vector256.Create(1f);
        var c1 = c0; var c2 = c0; var c3 = c0; var c4 = c0; var c5 = c0; var c6 = c0; var c7 = c0; var c8 = c0; var c9 = c0; var c10 = c0; var c11 = c0;
        for (long i = 0; i < iterations; i++)
        {
            c0 = System.Runtime.Intrinsics.Vector256.FusedMultiplyAdd(c0, m, a);
            c1 = System.Runtime.Intrinsics.Vector256.FusedMultiplyAdd(c1, m, a);
            c2 = System.Runtime.Intrinsics.Vector256.FusedMultiplyAdd(c2, m, a);
            c3 = System.Runtime.Intrinsics.Vector256.FusedMultiplyAdd(c3, m, a);
            c4 = System.Runtime.Intrinsics.Vector256.FusedMultiplyAdd(c4, m, a);
            c5 = System.Runtime.Intrinsics.Vector256.FusedMultiplyAdd(c5, m, a);
            c6 = System.Runtime.Intrinsics.Vector256.FusedMultiplyAdd(c6, m, a);
            c7 = System.Runtime.Intrinsics.Vector256.FusedMultiplyAdd(c7, m, a);
            c8 = System.Runtime.Intrinsics.Vector256.FusedMultiplyAdd(c8, m, a);
            c9 = System.Runtime.Intrinsics.Vector256.FusedMultiplyAdd(c9, m, a);
            c10 = System.Runtime.Intrinsics.Vector256.FusedMultiplyAdd(c10, m, a);
            c11 = System.Runtime.Intrinsics.Vector256.FusedMultiplyAdd(c11, m, a);
        }

        return System.Runtime.Intrinsics.Vector256.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
    }

    public static float Run512(long iterations)
    {
        var a = System.Runtime.Intrinsics.Vector512.Create(1e-7f);
        var m = System.Runtime.Intrinsics.Vector512.Create(0.999999f);
        var c0 = System.Runtime.Intrinsics.Vector512.Create(1f);
        var c1 = c0; var c2 = c0; var c3 = c0; var c4 = c0; var c5 = c0; var c6 = c0; var c7 = c0; var c8 = c0; var c9 = c0; var c10 = c0; var c11 = c0;
        for (long i = 0; i < iterations; i++)
        {
            c0 = System.Runtime.Intrinsics.Vector512.FusedMultiplyAdd(c0, m, a);
            c1 = System.Runtime.Intrinsics.Vector512.FusedMultiplyAdd(c1, m, a);
            c2 = System.Runtime.Intrinsics.Vector512.FusedMultiplyAdd(c2, m, a);
            c3 = System.Runtime.Intrinsics.Vector512.FusedMultiplyAdd(c3, m, a);
            c4 = System.Runtime.Intrinsics.Vector512.FusedMultiplyAdd(c4, m, a);
            c5 = System.Runtime.Intrinsics.Vector512.FusedMultiplyAdd(c5, m, a);
            c6 = System.Runtime.Intrinsics.Vector512.FusedMultiplyAdd(c6, m, a);
            c7 = System.Runtime.Intrinsics.Vector512.FusedMultiplyAdd(c7, m, a);
            c8 = System.Runtime.Intrinsics.Vector512.FusedMultiplyAdd(c8, m, a);
            c9 = System.Runtime.Intrinsics.Vector512.FusedMultiplyAdd(c9, m, a);
            c10 = System.Runtime.Intrinsics.Vector512.FusedMultiplyAdd(c10, m, a);
            c11 = System.Runtime.Intrinsics.Vector512.FusedMultiplyAdd(c11, m, a);
        }

        return System.Runtime.Intrinsics.Vector512.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
    }
}
