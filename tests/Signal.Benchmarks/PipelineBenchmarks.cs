using BenchmarkDotNet.Attributes;
using Signal.Features.Pipeline;

namespace Signal.Benchmarks;

/// <summary>
/// The full per-frame pipeline of the target: Hann window, power spectrum, 40 mel bands, 13 MFCC,
/// spectral and time statistics. 1000 is the odd length (zero-padded to 1024). Frames per second = 1e9 / ns.
/// </summary>
[MemoryDiagnoser]
public class PipelineBenchmarks
{
    private FeatureExtractor _extractor = null!;
    private float[] _frame = null!, _features = null!;

    [Params(1000, 1024)]
    public int FrameLength { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var spec = new FeatureSpec
        {
            SampleRate = 12000,
            FrameLength = FrameLength,
            Hop = FrameLength / 2,
            Window = "hann",
            Features = FeatureRequest.ParseList(
                "mean,rms,std,peak_to_peak,crest_factor,skewness,kurtosis,zcr," +
                "spectral_centroid,spectral_bandwidth,spectral_rolloff,spectral_flatness,spectral_entropy,spectral_flux,peak_frequency,peak_magnitude," +
                "mel:40,mfcc:13"),
        };
        var pipeline = new FeaturePipeline(spec);
        _extractor = pipeline.CreateExtractor();
        var rng = new Random(2);
        _frame = [.. Enumerable.Range(0, FrameLength).Select(i => (float)(Math.Sin(i * 0.3) + rng.NextDouble()))];
        _features = new float[pipeline.OutputLength];
    }

    [Benchmark(Description = "Extract one frame")]
    public void ExtractFrame() => _extractor.ExtractFrame(_frame, _features);
}
