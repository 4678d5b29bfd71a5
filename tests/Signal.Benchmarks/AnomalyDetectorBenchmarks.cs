using BenchmarkDotNet.Attributes;
using Signal.Engine.Anomaly;
using Signal.Models.Networks;

namespace Signal.Benchmarks;

/// <summary>
/// The streaming anomaly ensemble's cost per row (per live stream step), on a 16,000-row five-minute series with a
/// daily cycle (about the size of a nab-dev realTweets file), next to peers in the same run: one step of the GRU 1×32
/// forecaster <c>detect</c> trains, and one step of a 40-input LSTM with 64 units (a typical engine model).
/// </summary>
[MemoryDiagnoser]
public class AnomalyDetectorBenchmarks
{
    private const int Rows = 16_000;
    private double[] _values = null!;
    private RecurrentModel _gru = null!;
    private RecurrentModel _lstm = null!;
    private float[] _gruInput = null!;
    private float[] _lstmInput = null!;
    private float[] _forecast = null!;
    private float[] _probabilities = null!;

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(1);
        _values = [.. Enumerable.Range(0, Rows).Select(i => 50 + (20 * Math.Sin(2 * Math.PI * i / 288)) + (5 * rng.NextDouble()))];
        _gru = RecurrentModel.CreateRandom(new ModelArchitecture { InputSize = 1, Classes = 0, ForecastSize = 1, Layers = [new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = 32 }] }, seed: 1);
        _lstm = RecurrentModel.CreateRandom(new ModelArchitecture { InputSize = 40, Classes = 4, Layers = [new LayerArchitecture { Kind = CellKind.Lstm, HiddenSize = 64 }] }, seed: 1);
        _gruInput = [0.5f];
        _lstmInput = [.. Enumerable.Range(0, 40).Select(i => MathF.Sin(i))];
        _forecast = new float[1];
        _probabilities = new float[4];
    }

    /// <summary>A fresh detector over the whole series: the mean per row includes the warm-up and the full pattern history.</summary>
    [Benchmark(OperationsPerInvoke = Rows)]
    public double EnsembleStep()
    {
        var detector = new StreamingAnomalyDetector(new AnomalyDetectorOptions());
        double sum = 0;
        for (int i = 0; i < Rows; i++)
        {
            sum += detector.Step(i * 300.0, _values[i]).Score;
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Rows, Baseline = true)]
    public float GruForecasterStep()
    {
        RecurrentState state = _gru.CreateState();
        for (int i = 0; i < Rows; i++)
        {
            _gruInput[0] = (float)_values[i] / 50;
            _gru.Step(state, _gruInput, [], _forecast);
        }

        return _forecast[0];
    }

    [Benchmark(OperationsPerInvoke = Rows)]
    public float Lstm40x64Step()
    {
        RecurrentState state = _lstm.CreateState();
        for (int i = 0; i < Rows; i++)
        {
            _lstm.Step(state, _lstmInput, _probabilities);
        }

        return _probabilities[0];
    }
}
