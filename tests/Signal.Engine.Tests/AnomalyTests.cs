using System.Reactive.Linq;
using Signal.Engine.Anomaly;
using Signal.Engine.Data;
using Signal.Engine.Evaluation;
using Signal.Engine.Live;
using Signal.Features.Normalization;
using Signal.Features.Pipeline;
using Signal.Models.Networks;
using Signal.Models.Training;

namespace Signal.Engine.Tests;

public sealed class AnomalyTests
{
    [Fact]
    public void Quantiles_and_smoothing_match_numpy()
    {
        // numpy.quantile (linear interpolation) and the recurrence s = s + 0.2 (r - s), computed by numpy.
        double[] v = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5];
        Assert.Equal(6.0, AnomalyCalibration.QuantileOf(v, 0.9), 12);
        Assert.Equal(8.97, AnomalyCalibration.QuantileOf(v, 0.999), 12);
        Assert.Equal(4.0, AnomalyCalibration.QuantileOf(v, 0.5), 12);
        double[] expected = [3.0, 2.6, 2.88, 2.504, 3.0032, 4.20256, 3.762048, 4.2096384, 4.36771072, 4.0941685759999995, 4.275334860799999];
        double[] smoothed = [.. AnomalyCalibration.Smoothed(v, 0.2)];
        for (int i = 0; i < v.Length; i++)
        {
            Assert.Equal(expected[i], smoothed[i], 12);
        }
    }

    private static EngineModel ForecastModel(float[] scale, double threshold)
    {
        EngineModel plain = TestModels.WithFeatures(channels: 3, forecast: true);
        var metadata = new Dictionary<string, string>(plain.Network.Metadata)
        {
            [AnomalyCalibration.ScaleKey] = System.Text.Json.JsonSerializer.Serialize(scale),
            [EngineModel.AnomalyThresholdKey] = threshold.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        };
        return EngineModel.From(plain.Network.WithMetadata(metadata), "forecast");
    }

    [Fact]
    public void Scores_are_forecast_errors_scaled_per_feature_with_the_largest_as_evidence()
    {
        var rng = new Random(5);
        float[] scale = [.. Enumerable.Range(0, TestModels.WithFeatures().Network.InputSize).Select(_ => (float)(0.2 + rng.NextDouble()))];
        EngineModel model = ForecastModel(scale, 1e-9); // every step is near the threshold, so every step has its evidence
        float[] signal = TestModels.Signal(1500, 3, 2);
        using var engine = new SignalEngine(model, new EngineOptions { AnomalyWarmupSteps = 0 });
        var scores = new List<AnomalyScore>();
        engine.AnomalyScores.Subscribe(scores.Add);
        foreach (byte[] m in TestModels.Messages(signal, 3, 1000, seed: 4))
        {
            engine.Process("sensors/a/vib", m);
        }

        engine.Flush();

        // Reference: the offline pipeline and network, errors computed here.
        float[] inputs = model.Pipeline!.ExtractAll(signal);
        int d = model.Network.InputSize, steps = inputs.Length / d;
        RecurrentState state = model.Network.CreateState();
        var forecast = new float[d];
        var previous = new float[d];
        var probabilities = new float[model.Network.ClassCount];
        double smoothed = double.NaN;
        Assert.Equal(steps - 1, scores.Count);
        for (int t = 0; t < steps; t++)
        {
            float[] x = inputs[(t * d)..((t + 1) * d)];
            if (t > 0)
            {
                double[] parts = [.. Enumerable.Range(0, d).Select(j => Math.Pow((x[j] - previous[j]) / scale[j], 2))];
                double raw = parts.Average();
                smoothed = double.IsNaN(smoothed) ? raw : smoothed + (0.2 * (raw - smoothed));
                AnomalyScore s = scores[t - 1];
                Assert.Equal(raw, s.Raw, raw * 1e-5);
                Assert.Equal(smoothed, s.Score, smoothed * 1e-5);
                int top = Array.IndexOf(parts, parts.Max());
                Assert.Equal(model.Pipeline.ColumnNames[top], s.TopFeature);
                Assert.Equal(3, s.Evidence!.Count);
                Assert.Equal(parts.Max() / parts.Sum(), s.Evidence[0].Share, 1e-5);
                Assert.True(s.Evidence[0].Share >= s.Evidence[1].Share && s.Evidence[1].Share >= s.Evidence[2].Share);
            }

            model.Network.Step(state, x, probabilities, forecast);
            forecast.CopyTo(previous, 0);
        }

        // Far below the threshold a score names its top feature but builds no evidence list.
        using var quiet = new SignalEngine(ForecastModel(scale, 1e9));
        var quietScores = new List<AnomalyScore>();
        quiet.AnomalyScores.Subscribe(quietScores.Add);
        foreach (byte[] m in TestModels.Messages(signal, 3, 1000, seed: 4))
        {
            quiet.Process("sensors/a/vib", m);
        }

        quiet.Flush();
        Assert.Equal(scores.Select(s => s.TopFeature), quietScores.Select(s => s.TopFeature));
        Assert.All(quietScores, s => Assert.Null(s.Evidence));
    }

    [Fact]
    public void A_slow_sensor_stepped_sample_by_sample_is_judged_by_the_streaming_ensemble_on_its_values()
    {
        // Ten days of five-minute readings with a daily cycle; from day 7 the level rises by 40 for 50 readings.
        EngineModel model = TestModels.Raw(1, forecast: true);
        var rng = new Random(8);
        float[] signal = [.. Enumerable.Range(0, 2880).Select(i => (float)(20 + (8 * Math.Sin(2 * Math.PI * i / 288)) + rng.NextDouble() + (i is >= 2016 and < 2066 ? 40 : 0)))];
        using var engine = new SignalEngine(model, new EngineOptions { AnomalyLikelihoodWarmup = 600 });
        var alerts = new List<Alert>();
        var scores = new List<AnomalyScore>();
        engine.Alerts.Where(a => a.Rule == "anomaly").Subscribe(alerts.Add);
        engine.AnomalyScores.Subscribe(scores.Add);
        foreach (byte[] m in TestModels.Messages(signal, 1, 1.0 / 300, seed: 9))
        {
            engine.Process("sensors/boiler/temperature", m);
        }

        engine.Flush();
        Assert.Equal(2879, scores.Count);
        Assert.All(scores, s => Assert.Equal(AnomalyDetectorOptions.DefaultThreshold, s.Threshold));
        Alert raised = Assert.Single(alerts, a => a.State == AlertState.Raised);
        int at = scores.FindIndex(s => s.TimestampNs == raised.TimestampNs) + 1; // scores start at the second sample
        Assert.InRange(at, 2016, 2026);
        Assert.All(scores.Take(2010), s => Assert.True(s.Score < AnomalyDetectorOptions.DefaultThreshold || s.TimestampNs < scores[600].TimestampNs, $"score {s.Score:0.00} before the shift"));
        string[] detectors = ["value", "difference", "seasonal", "change", "pattern", "extreme", "forecast"];
        Assert.NotNull(raised.Evidence);
        Assert.All(raised.Evidence!, e => Assert.Contains(e.Feature, detectors));
        // The three most surprised detectors, strongest first, each with its share of all detectors' evidence.
        Assert.Equal(3, raised.Evidence!.Count);
        Assert.True(raised.Evidence[0].Share >= raised.Evidence[1].Share && raised.Evidence[1].Share >= raised.Evidence[2].Share && raised.Evidence[2].Share > 0);
        Assert.InRange(raised.Evidence.Sum(e => e.Share), 0.3, 1.0);
    }

    [Fact]
    public void A_warming_stream_raises_no_anomaly_alert_then_alerts_above_its_own_threshold()
    {
        int d = TestModels.WithFeatures().Network.InputSize;
        EngineModel model = ForecastModel([.. Enumerable.Repeat(1f, d)], 1e-9); // a threshold every step exceeds
        float[] signal = TestModels.Signal(3000, 3, 3);
        using var eager = new SignalEngine(model, new EngineOptions { AnomalyWarmupSteps = 0 });
        using var warming = new SignalEngine(model, new EngineOptions { AnomalyWarmupSteps = 30, AnomalyWarmupSigmas = 0 });
        var eagerAlerts = new List<Alert>();
        var alerts = new List<Alert>();
        var scores = new List<AnomalyScore>();
        eager.Alerts.Where(a => a.Rule == "anomaly").Subscribe(eagerAlerts.Add);
        warming.Alerts.Where(a => a.Rule == "anomaly").Subscribe(alerts.Add);
        warming.AnomalyScores.Subscribe(scores.Add);
        foreach (byte[] m in TestModels.Messages(signal, 3, 1000, seed: 6))
        {
            eager.Process("sensors/a/vib", m);
            warming.Process("sensors/a/vib", m);
        }

        eager.Flush();
        warming.Flush();
        Assert.NotEmpty(eagerAlerts);
        Assert.True(eagerAlerts[0].TimestampNs < scores[29].TimestampNs);

        // With 0 sigmas the stream's own threshold is the mean of its 30 warm-up scores.
        double mean = scores.Take(30).Average(s => s.Score);
        Assert.All(scores.Take(29), s => Assert.Equal(1e-9, s.Threshold));
        Assert.All(scores.Skip(29), s => Assert.Equal(mean, s.Threshold, mean * 1e-9));
        Assert.All(alerts, a => Assert.True(a.TimestampNs > scores[29].TimestampNs));
        Assert.Contains("largest forecast errors:", eagerAlerts[0].Reason, StringComparison.Ordinal);
        Assert.Equal(3, eagerAlerts[0].Evidence!.Count);
    }
}

public sealed class DynamicThresholdTests
{
    [Fact]
    public void The_dynamic_threshold_and_its_pruning_match_the_numpy_reference()
    {
        // tests/reference/anomaly_reference.py: Hundman et al. 2018's equations written with numpy.
        using var golden = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "golden", "anomaly", "dynamic_threshold.json")));
        int withAnomalies = 0;
        foreach (System.Text.Json.JsonElement c in golden.RootElement.GetProperty("cases").EnumerateArray())
        {
            double[] scores = [.. c.GetProperty("scores").EnumerateArray().Select(v => v.GetDouble())];
            (double threshold, IReadOnlyList<(int Start, int End)> anomalies) = DynamicThreshold.Evaluate(scores, new DynamicThresholdOptions { Window = scores.Length });
            Assert.Equal(c.GetProperty("threshold").GetDouble(), threshold, 9);
            (int, int)[] expected = [.. c.GetProperty("anomalies").EnumerateArray().Select(r => (r[0].GetInt32(), r[1].GetInt32()))];
            Assert.Equal(expected, anomalies);
            withAnomalies += expected.Length > 0 ? 1 : 0;
        }

        Assert.Equal(5, withAnomalies);
        double[] values = [.. golden.RootElement.GetProperty("quantile_values").EnumerateArray().Select(v => v.GetDouble())];
        foreach (System.Text.Json.JsonProperty q in golden.RootElement.GetProperty("quantiles").EnumerateObject())
        {
            Assert.Equal(q.Value.GetDouble(), AnomalyCalibration.QuantileOf(values, double.Parse(q.Name, System.Globalization.CultureInfo.InvariantCulture)), 12);
        }
    }
}
