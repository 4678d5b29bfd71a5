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
    public float FmaPeakLoop256() => Signal.Models.Diagnostics.FmaPeak.Loop256(PeakIterations);

    /// <summary>12 independent Vector512 FMAs × 1,000,000 iterations = 384 MFLOP.</summary>
    [Benchmark]
    public float FmaPeakLoop512() => Signal.Models.Diagnostics.FmaPeak.Loop512(PeakIterations);

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
