using Signal.Engine.Data;
using Xunit;

namespace Signal.Edge.Tests;

[Collection("console")]
public sealed class LiveCommandTests
{
    private static (int Code, string Error) Fails(params string[] args) => Cli.Fails(args);

    [Fact]
    public void A_config_file_with_a_bad_field_is_refused_with_its_json_path()
    {
        string config = Path.GetTempFileName();
        File.WriteAllText(config, """{ "engine": { "maxBatchh": 4 } }""");
        (int code, string error) = Fails("run", "--config", config, "--model", "x.sigm");
        Assert.Equal(1, code);
        Assert.Contains("'engine:maxBatchh' is not a setting (did you mean 'maxBatch'?)", error, StringComparison.Ordinal);

        File.WriteAllText(config, """{ "engine": { "maxBatch": 0 } }""");
        string model = Path.Combine(AppContext.BaseDirectory, "model-for-config.sigm");
        Signal.Models.Networks.RecurrentModel.CreateRandom(new() { InputSize = 2, Classes = 2, Layers = [new() { HiddenSize = 4 }] }, 1, ["a", "b"]).Save(model);
        (code, error) = Fails("run", "--config", config, "--model", model);
        Assert.Equal(1, code);
        Assert.Contains("engine.maxBatch: 0 is outside", error, StringComparison.Ordinal);
        (code, error) = Fails("run", "--model", model, "--publish", "sometimes");
        Assert.Contains("--publish: 'sometimes'", error, StringComparison.Ordinal);
        File.Delete(config);
    }

    [Fact]
    public void A_password_in_an_address_flag_is_refused_without_repeating_it()
    {
        (int code, string error) = Fails("run", "--model", "x.sigm", "--mqtt", "mqtt://edge:s3cret-pw@127.0.0.1:1883");
        Assert.Equal(1, code);
        Assert.Contains("--mqtt: the address holds a password", error, StringComparison.Ordinal);
        Assert.Contains("SIGNAL__BROKER__PASSWORD", error, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret-pw", error, StringComparison.Ordinal);

        (code, error) = Fails("run", "--model", "x.sigm", "--influx", "http://admin:s3cret-pw@127.0.0.1:8086/signal");
        Assert.Equal(1, code);
        Assert.Contains("--influx: the address holds a password", error, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret-pw", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Fault_schedules_parse_and_bad_entries_are_quoted()
    {
        IReadOnlyList<FaultWindow> windows = FaultWindow.ParseSchedule("outer@10-20:0-2;5, inner@30.5-40");
        Assert.Equal(2, windows.Count);
        Assert.Equal(("outer", 10.0, 20.0), (windows[0].Fault.Name, windows[0].Start.TotalSeconds, windows[0].End.TotalSeconds));
        Assert.Equal([0, 1, 2, 5], windows[0].Streams!.Order());
        Assert.Null(windows[1].Streams);
        Assert.Contains("'wobble@1-2'", Assert.Throws<FormatException>(() => FaultWindow.ParseSchedule("wobble@1-2")).Message, StringComparison.Ordinal);
        Assert.Contains("'outer@5-3'", Assert.Throws<FormatException>(() => FaultWindow.ParseSchedule("outer@5-3")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bench_e2e_runs_through_a_private_broker_and_every_message_reaches_the_engine()
    {
        string output = Cli.Output("bench", "e2e", "--streams", "20", "--messages", "400", "--duration", "1", "--rounds", "1", "--qos", "1", "--rate", "1000", "--chunk", "50");
        using var json = System.Text.Json.JsonDocument.Parse(output);
        System.Text.Json.JsonElement saturation = json.RootElement.GetProperty("saturation")[0];
        Assert.Equal(400, saturation.GetProperty("ceiling").GetProperty("received").GetInt64());
        Assert.Equal(400, saturation.GetProperty("engine").GetProperty("received").GetInt64());

        // 20 streams × 20 messages; the first message of a stream fills half a frame, every later one completes a frame.
        System.Text.Json.JsonElement detail = saturation.GetProperty("engine_detail");
        Assert.Equal(20 * 19, detail.GetProperty("steps").GetInt64());
        Assert.Equal(0, detail.GetProperty("rejected").GetInt64());
        Assert.Equal(0, detail.GetProperty("resets").GetInt64());
        System.Text.Json.JsonElement paced = json.RootElement.GetProperty("paced");
        Assert.Equal(20 * 20, paced.GetProperty("engine").GetProperty("received").GetInt64());
        Assert.Equal(20 * 19, paced.GetProperty("latency_samples").GetInt64());
        Assert.Equal(0, paced.GetProperty("latency_unmatched").GetInt64());
        Assert.InRange(paced.GetProperty("p50_ms").GetDouble(), 0.001, 1000);
    }

    [Fact]
    public void Run_refuses_an_invalid_topic_filter_and_an_unwritable_state_folder_before_starting()
    {
        // Console-capturing, so here in the "console" collection rather than beside the daemon process tests.
        string folder = Directory.CreateTempSubdirectory("signal-refuse-").FullName;
        string model = Path.Combine(folder, "bearing.sigm");
        File.WriteAllBytes(model, Demo.DemoModel.Bundled());
        string config = Path.Combine(folder, "edge.json");
        File.WriteAllText(config, $$"""{ "models": [ { "path": "{{model}}" } ], "http": { "address": "none" } }""");
        (int code, string error) = Cli.Fails("run", "--config", config, "--topic", "sensors/#/x");
        Assert.Equal(1, code);
        Assert.Contains("topic: 'sensors/#/x' is not a valid MQTT topic filter: '#' must be a whole level and the last one", error, StringComparison.Ordinal);
        (code, error) = Cli.Fails("run", "--config", config, "--state", "/proc/nope");
        Assert.Equal(1, code);
        Assert.Contains("state:folder: '/proc/nope' cannot be created or written", error, StringComparison.Ordinal);
        Directory.Delete(folder, recursive: true);
    }
}
