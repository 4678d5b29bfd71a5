using Signal.Features.Normalization;
using Signal.Features.Pipeline;

namespace Signal.Features.Tests;

public sealed class SpecTests
{
    private static FeatureSpec Valid => new() { SampleRate = 1000, FrameLength = 64, Hop = 32, Features = [new() { Name = "rms" }] };

    public static TheoryData<string, string> BadSpecs => new()
    {
        { """{"sampleRate": 1000, "frameLength": 64, "hop": 65, "features": [{"name": "rms"}]}""", "hop" },
        { """{"sampleRate": 0, "features": [{"name": "rms"}]}""", "sampleRate" },
        { """{"sampleRate": 1000, "features": []}""", "features" },
        { """{"sampleRate": 1000, "features": [{"name": "rms"}, {"name": "loudness"}]}""", "features[1].name" },
        { """{"sampleRate": 1000, "features": [{"name": "band_energy", "edges": [0, 100, 600]}]}""", "features[0].edges" },
        { """{"sampleRate": 1000, "features": [{"name": "band_energy", "edges": [0, 300, 200]}]}""", "features[0].edges" },
        { """{"sampleRate": 1000, "features": [{"name": "dominant_band"}]}""", "features[0].edges" },
        { """{"sampleRate": 1000, "features": [{"name": "mfcc", "count": 30, "melBands": 20}]}""", "features[0].count" },
        { """{"sampleRate": 1000, "features": [{"name": "mel", "count": 10, "maxFrequency": 900}]}""", "features[0].maxFrequency" },
        { """{"sampleRate": 1000, "window": "kaiser", "features": [{"name": "rms"}]}""", "window" },
        { """{"sampleRate": 1000, "filters": [{"design": "butterworth", "mode": "lowpass", "frequency": 700}], "features": [{"name": "rms"}]}""", "filters[0].frequency" },
        { """{"sampleRate": 1000, "filters": [{"design": "butterworth", "mode": "notch", "frequency": 50}], "features": [{"name": "rms"}]}""", "filters[0].frequencies" },
        { """{"sampleRate": 1000, "filters": [{"design": "butterworth", "mode": "bandpass", "frequencies": [300, 200]}], "features": [{"name": "rms"}]}""", "filters[0].frequencies" },
        { """{"sampleRate": 1000, "filters": [{"design": "elliptic", "mode": "lowpass", "frequency": 100, "rp": 3, "rs": 2}], "features": [{"name": "rms"}]}""", "filters[0].rs" },
        { """{"sampleRate": 1000, "filters": [{"design": "chebyshev3", "mode": "lowpass", "frequency": 100}], "features": [{"name": "rms"}]}""", "filters[0].design" },
        { """{"sampleRate": 1000, "channels": 2, "channelNames": ["x"], "features": [{"name": "rms"}]}""", "channelNames" },
        { """{"sampleRate": 1000, "features": [{"name": "rms"}], "normalization": {"mean": [1, 2], "std": [1, 1]}}""", "normalization.mean" },
        { """{"sampleRate": 1000, "frameSize": 64, "features": [{"name": "rms"}]}""", "$" },
        { """{"sampleRate": 1000, "features": [{"name": "rms"}""", "$" },
    };

    [Theory]
    [MemberData(nameof(BadSpecs))]
    public void Invalid_specs_are_refused_with_the_field_named(string json, string field)
    {
        var ex = Assert.Throws<FeatureSpecException>(() => FeaturePipeline.FromJson(json));
        Assert.StartsWith(field, ex.Field, StringComparison.Ordinal);
        Assert.Contains(field.TrimStart('$'), ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Spec_survives_a_json_round_trip()
    {
        FeatureSpec spec = Valid with
        {
            Channels = 2,
            Filters = [new FilterSpec { Design = "biquad", Mode = "notch", Frequency = 50, Q = 30 }],
            Features = [.. FeatureRequest.ParseList("rms,mel:8,mfcc:4,spectral_rolloff:0.9,band_energy:0/100/500")],
            Normalization = new NormalizationStats { Mean = [.. Enumerable.Range(0, 2 * 16).Select(i => (float)i)], Std = [.. Enumerable.Repeat(2f, 32)] },
        };
        FeatureSpec back = FeatureSpec.FromJson(spec.ToJson());
        Assert.Equal(spec.ToJson(), back.ToJson());
        Assert.Equal(new FeaturePipeline(spec).ColumnNames, new FeaturePipeline(back).ColumnNames);
    }

    [Fact]
    public void Flag_list_gives_the_documented_column_names()
    {
        var spec = new FeatureSpec
        {
            SampleRate = 12000,
            FrameLength = 1024,
            Hop = 512,
            Features = FeatureRequest.ParseList("rms,zcr,spectral_centroid,mel:40,mfcc:13"),
        };
        var pipeline = new FeaturePipeline(spec);
        string[] expected = ["rms", "zcr", "spectral_centroid", .. Enumerable.Range(0, 40).Select(i => $"mel_{i}"), .. Enumerable.Range(0, 13).Select(i => $"mfcc_{i}")];
        Assert.Equal(expected, pipeline.ColumnNames);
        var three = new FeaturePipeline(spec with { Channels = 3, ChannelNames = ["x", "y", "z"] });
        Assert.Equal(3 * expected.Length, three.OutputLength);
        Assert.Equal("rms_x", three.ColumnNames[0]);
        Assert.Equal("mfcc_12_z", three.ColumnNames[^1]);
        Assert.Equal("rms_ch1", new FeaturePipeline(spec with { Channels = 2 }).ColumnNames[expected.Length]);
    }

    [Fact]
    public void A_bad_flag_item_names_its_position()
    {
        var ex = Assert.Throws<FeatureSpecException>(() => FeatureRequest.ParseList("rms,mel:forty"));
        Assert.Equal("features[1].count", ex.Field);
    }

    [Fact]
    public void Normaliser_learns_mean_and_population_std_and_the_pipeline_applies_them()
    {
        var rng = new Random(11);
        double[][] rows = [.. Enumerable.Range(0, 500).Select(_ => new[] { (rng.NextDouble() * 10) + 5, rng.NextDouble() - 3 })];
        var normaliser = new OnlineNormalizer(2);
        var half = new OnlineNormalizer(2);
        for (int i = 0; i < rows.Length; i++)
        {
            (i < 200 ? normaliser : half).Add([(float)rows[i][0], (float)rows[i][1]]);
        }

        normaliser.Merge(half);
        NormalizationStats stats = normaliser.ToStats();
        for (int c = 0; c < 2; c++)
        {
            double mean = rows.Average(r => (double)(float)r[c]);
            double std = Math.Sqrt(rows.Average(r => Math.Pow((float)r[c] - mean, 2)));
            Assert.Equal(mean, stats.Mean[c], 4);
            Assert.Equal(std, stats.Std[c], 4);
        }

        var raw = new FeaturePipeline(Valid with { Features = [new() { Name = "mean" }] });
        var normalised = new FeaturePipeline(raw.Spec with { Normalization = new NormalizationStats { Mean = [2f], Std = [4f] } });
        float[] x = [.. Enumerable.Range(0, 64).Select(i => (float)i)];
        Assert.Equal((raw.ExtractAll(x)[0] - 2f) / 4f, normalised.ExtractAll(x)[0]);
    }
}
