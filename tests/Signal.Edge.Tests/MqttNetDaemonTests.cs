using System.Net;
using System.Text.Json;
using Signal.Engine.Data;
using Signal.Engine.Mqtt;
using Xunit;

namespace Signal.Edge.Tests;

/// <summary>The daemon on its second MQTT client.</summary>
public sealed partial class DaemonTests
{
    [Fact]
    public async Task On_the_mqttnet_client_the_daemon_classifies_what_mosquitto_delivers()
    {
        using var broker = new LocalMosquitto();
        string folder = Directory.CreateTempSubdirectory("signal-mqttnet-").FullName;
        string model = DemoModelFile(folder, "bearing");
        string config = Path.Combine(folder, "edge.json");
        int port = EdgeProcess.FreePort();
        File.WriteAllText(config, $$"""
            {
              "models": [ { "path": "{{model}}", "topicTemplate": "sensors/{device}/{sensor}" } ],
              "mqtt": "{{broker.Address}}",
              "broker": { "client": "mqttnet", "clientId": "edge-mqttnet" },
              "engine": { "maxWait": "00:00:00.002" },
              "http": { "address": "127.0.0.1:{{port}}" }
            }
            """);
        string url = $"http://127.0.0.1:{port}/";
        long start = 1_790_000_000_000_000_000;
        BearingFault outer = BearingFault.Known.Single(f => f.Name == "outer");
        using (var daemon = new EdgeProcess(null, "run", "--config", config, "--quiet"))
        {
            await daemon.WaitUntil(async () => (await s_http.GetAsync(url + "readyz")).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "/readyz");
            await Publish(broker.Address,
                ("sensors/m1/vib", Messages(601, null, 40, start)),
                ("sensors/m2/vib", Messages(602, outer, 40, start, source: new VibrationSource(12_000, 602))));
            await daemon.WaitUntil(async () => (await Streams(url)).Count(s => s.GetProperty("steps").GetInt64() >= 40) == 2, TimeSpan.FromSeconds(20), "two streams with 40 steps");
            JsonElement[] streams = await Streams(url);
            Assert.Equal("normal", Find(streams, "m1/vib")!.Value.GetProperty("label").GetString());
            Assert.Equal("outer", Find(streams, "m2/vib")!.Value.GetProperty("label").GetString());
            Assert.Equal(0, daemon.Terminate(TimeSpan.FromSeconds(30)));
            Assert.Contains("MQTT (MQTTnet): connected", daemon.Output, StringComparison.Ordinal);
        }

        Directory.Delete(folder, recursive: true);
    }
}
