using System.Text.Json;
using Signal.Engine.Data;
using Signal.Models.Networks;
using Xunit;

namespace Signal.Edge.Tests;

[Collection("console")]
public sealed class AnomalyCommandTests
{
    /// <summary>A folder of generated 12 kHz vibration recordings: 24 s of a healthy bearing, 4 s of each fault (two of each).</summary>
    private static string WriteRecordings()
    {
        string folder = Directory.CreateTempSubdirectory("signal-anomaly-data-").FullName;
        var buffer = new float[24 * 12_000];
        new VibrationSource(12_000, 70).Next(buffer, null);
        Demo.DemoModel.WriteNpy(Path.Combine(folder, "normal_0.npy"), buffer);
        var fault = new float[4 * 12_000];
        int seed = 71;
        foreach (BearingFault f in BearingFault.Known)
        {
            for (int i = 0; i < 2; i++)
            {
                new VibrationSource(12_000, seed++).Next(fault, f);
                Demo.DemoModel.WriteNpy(Path.Combine(folder, $"{f.Name}_{i}.npy"), fault);
            }
        }

        return folder;
    }

    [Fact]
    public void A_forecaster_trained_on_normal_recordings_finds_spliced_faults_event_by_event()
    {
        string folder = WriteRecordings();
        string model = Path.Combine(folder, "anomaly.sigm");
        string[] common = ["--data", folder, "--rate", "12000", "--label-pattern", "^(?<label>[a-z]+)_", "--test-pattern", "_1\\.npy$"];
        Cli.Output(["train", "--task", "forecast", "--out", model, "--epochs", "40", "--hidden", "32", .. common]);

        RecurrentModel network = RecurrentModel.Load(model);
        Assert.Equal(0, network.ClassCount);
        Assert.Equal(network.InputSize, network.ForecastSize);
        Assert.True(double.Parse(network.Metadata["signal.anomaly.threshold"], System.Globalization.CultureInfo.InvariantCulture) > 0);
        Assert.Contains("\"normal\":\"normal\"", network.Metadata["signal.provenance"], StringComparison.Ordinal);

        using var json = JsonDocument.Parse(Cli.Output("eval", "--task", "anomaly", "--model", model, "--data", folder, "--json"));
        JsonElement r = json.RootElement;
        // Every fault sequence of both splits (each of the six recordings, or its parts), plus the held-out normal data alone.
        int events = r.GetProperty("events").GetInt32();
        Assert.True(events >= 6, $"{events} events");
        Assert.Equal(events + 1, r.GetProperty("streams").GetInt32());
        foreach (string key in new[] { "precision", "recall", "f1", "mean_delay_s" })
        {
            Assert.True(r.TryGetProperty(key, out _), key);
        }

        Assert.Equal(1.0, r.GetProperty("recall").GetDouble());
        Assert.True(r.GetProperty("f1").GetDouble() >= 0.9, r.ToString());
        Assert.True(r.GetProperty("mean_delay_s").GetDouble() < 1, r.ToString());
    }

    [Fact]
    public void Normal_recordings_alone_are_evaluated_with_injected_anomalies_in_their_held_out_part()
    {
        // A machine that has never failed: two recordings of one class, no class named normal, so all of it is normal.
        string folder = Directory.CreateTempSubdirectory("signal-normal-only-").FullName;
        var buffer = new float[24 * 12_000];
        for (int i = 0; i < 2; i++)
        {
            new VibrationSource(12_000, 80 + i).Next(buffer, null);
            Demo.DemoModel.WriteNpy(Path.Combine(folder, $"pump_{i}.npy"), buffer);
        }

        string model = Path.Combine(folder, "pump.sigm");
        Cli.Output("train", "--task", "forecast", "--out", model, "--epochs", "40", "--hidden", "32", "--data", folder, "--rate", "12000",
            "--label-pattern", "^(?<label>[a-z]+)_", "--test-pattern", "_1\\.npy$");
        Assert.Contains("\"normal\":\"all data\"", RecurrentModel.Load(model).Metadata["signal.provenance"], StringComparison.Ordinal);

        using var json = JsonDocument.Parse(Cli.Output("eval", "--task", "anomaly", "--model", model, "--data", folder, "--json"));
        JsonElement r = json.RootElement;
        Assert.Equal(20, r.GetProperty("events").GetInt32()); // 5 each of spikes, level shift, frequency drift, dropout
        Assert.Equal(21, r.GetProperty("streams").GetInt32()); // and the held-out normal data alone
        Assert.Equal(1.0, r.GetProperty("recall").GetDouble());
        Assert.True(r.GetProperty("f1").GetDouble() >= 0.9, r.ToString());
        Assert.True(r.GetProperty("mean_delay_s").GetDouble() < 1, r.ToString());
    }

    [Fact]
    public void A_combined_model_classifies_and_forecasts_normal_behaviour()
    {
        string folder = WriteRecordings();
        string model = Path.Combine(folder, "both.sigm");
        Cli.Output("train", "--task", "both", "--out", model, "--epochs", "30", "--hidden", "32", "--loss", "every", "--data", folder, "--rate", "12000",
            "--label-pattern", "^(?<label>[a-z]+)_", "--test-pattern", "_1\\.npy$");
        RecurrentModel network = RecurrentModel.Load(model);
        Assert.Equal(["ball", "inner", "normal", "outer"], network.Labels);
        Assert.Equal(network.InputSize, network.ForecastSize);
        Assert.True(network.Metadata.ContainsKey("signal.anomaly.scale"));
        Assert.True(network.Metadata.ContainsKey("signal.anomaly.threshold"));
        Assert.Contains("\"anomaly\"", JsonSerializer.Serialize(Signal.Engine.Live.AlertRule.Defaults(Signal.Engine.Live.EngineModel.From(network)).Select(r => r.Name)), StringComparison.Ordinal);
    }

    [Fact]
    public void The_bundled_model_finds_injected_spikes_shifts_drift_and_dropouts_in_generated_vibration()
    {
        string model = Path.Combine(Directory.CreateTempSubdirectory("signal-generated-").FullName, "demo.sigm");
        File.WriteAllBytes(model, Demo.DemoModel.Bundled());
        using var json = JsonDocument.Parse(Cli.Output("eval", "--task", "anomaly", "--model", model, "--data", "generated", "--json"));
        JsonElement r = json.RootElement;
        Assert.Equal(20, r.GetProperty("events").GetInt32()); // 5 each of 4 kinds
        Assert.Equal(21, r.GetProperty("streams").GetInt32());
        Assert.Equal(1.0, r.GetProperty("recall").GetDouble());
        Assert.True(r.GetProperty("f1").GetDouble() >= 0.95, r.ToString());
        Assert.True(r.GetProperty("mean_delay_s").GetDouble() < 1, r.ToString());
    }
}
