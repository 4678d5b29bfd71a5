using BenchmarkDotNet.Attributes;
using MathNet.Numerics.IntegralTransforms;
using Signal.Features.Fft;

namespace Signal.Benchmarks;

/// <summary>Real FFT: Signal's plan against FFTW (r2c, FFTW_MEASURE, single precision) and MathNet.Numerics in one run.</summary>
[MemoryDiagnoser]
public unsafe class FftBenchmarks
{
    private RealFft _plan = null!;
    private float[] _input = null!, _re = null!, _im = null!, _mathNet = null!;
    private float* _fftwIn, _fftwOut;
    private nint _fftwPlan;

    [Params(256, 512, 1024, 2048)]
    public int N { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(1);
        _input = [.. Enumerable.Range(0, N).Select(_ => (float)rng.NextDouble())];
        _plan = new RealFft(N);
        _re = new float[_plan.BinCount];
        _im = new float[_plan.BinCount];
        _mathNet = new float[N + 2];
        if (Fftw.IsAvailable)
        {
            _fftwIn = (float*)Fftw.Malloc((nuint)(N * sizeof(float)));
            _fftwOut = (float*)Fftw.Malloc((nuint)((N + 2) * sizeof(float)));
            _fftwPlan = Fftw.PlanR2C(N, _fftwIn, _fftwOut, Fftw.Measure);
            _input.AsSpan().CopyTo(new Span<float>(_fftwIn, N));
        }

        Console.WriteLine($"// Signal FFT path: {RealFft.Path}; FFTW available: {Fftw.IsAvailable}");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_fftwPlan != 0)
        {
            Fftw.Destroy(_fftwPlan);
            Fftw.Free(_fftwIn);
            Fftw.Free(_fftwOut);
        }
    }

    [Benchmark(Baseline = true, Description = "FFTW r2c")]
    public void FftwR2C()
    {
        if (_fftwPlan != 0)
        {
            Fftw.Execute(_fftwPlan);
        }
    }

    [Benchmark(Description = "Signal RealFft")]
    public void Signal() => _plan.Forward(_input, _re, _im);

    [Benchmark(Description = "MathNet ForwardReal")]
    public void MathNet()
    {
        _input.AsSpan().CopyTo(_mathNet);
        Fourier.ForwardReal(_mathNet, N, FourierOptions.NoScaling);
    }
}
