using System.Globalization;
using System.Net;
using System.Text.Json;
using Signal.Engine.Data;
using Signal.Models.Networks;
using Xunit;

namespace Signal.Edge.Tests;

/// <summary>The demo as the README runs it (a child process, no broker, no database), its dashboard in a real browser, and hot reload.</summary>
public sealed class DemoTests
{
    private static readonly HttpClient s_http = new() { Timeout = TimeSpan.FromSeconds(5) };

    [Fact]
    public async Task The_dashboard_shows_live_streams_in_headless_chromium()
    {
        string folder = Directory.CreateTempSubdirectory("signal-demo-test-").FullName;
        int port = EdgeProcess.FreePort();
        string url = $"http://127.0.0.1:{port}/";
        const string token = "a-dashboard-token-0123456789";
        using var demo = new EdgeProcess(new Dictionary<string, string> { ["SIGNAL__HTTP__TOKEN"] = token },
            "demo", "--sensors", "4", "--period", "8", "--http", $"127.0.0.1:{port}", "--output", Path.Combine(folder, "demo.lp"), "--duration", "120");
        await demo.WaitUntil(async () => (await s_http.GetAsync(url + "readyz")).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "/readyz");

        // The token guards the API and the dashboard, not the probes.
        Assert.Equal(HttpStatusCode.Unauthorized, (await s_http.GetAsync(url + "api/streams")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await s_http.GetAsync(url + "metrics")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await s_http.GetAsync(url + "healthz")).StatusCode);
        Assert.DoesNotContain(token, demo.Output, StringComparison.Ordinal);

        await using Chromium browser = await Chromium.StartAsync();
        await browser.NavigateAsync(url + "?token=" + token);

        // Live updates: the page counts the snapshots it rendered; wait for several, with all four sensors shown.
        JsonElement state = default;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(40))
        {
            string? json = (await browser.EvaluateAsync("""
                JSON.stringify({
                  updates: Number(document.body.dataset.updates),
                  rows: [...document.querySelectorAll('#rows tr.stream')].map(r => ({ stream: r.dataset.stream, label: r.querySelector('.label').textContent, spark: r.querySelectorAll('svg.spark polyline').length, threshold: r.querySelectorAll('svg.spark line.t').length })),
                  ready: document.getElementById('ready').textContent,
                  steps: document.getElementById('rate').textContent,
                  scripts: [...document.scripts].filter(s => s.src).length,
                  sheets: [...document.querySelectorAll('link[rel=stylesheet]')].length
                })
                """))?.GetValue<string>();
            state = JsonDocument.Parse(json ?? "{}").RootElement.Clone();
            if (state.TryGetProperty("updates", out JsonElement u) && u.GetInt32() >= 4 && state.GetProperty("rows").GetArrayLength() == 4)
            {
                break;
            }

            await Task.Delay(250);
        }

        Assert.True(state.GetProperty("updates").GetInt32() >= 4, $"the page rendered {state} \n{demo.Output}");
        JsonElement[] rows = [.. state.GetProperty("rows").EnumerateArray()];
        Assert.Equal(["sim0/vib", "sim1/vib", "sim2/vib", "sim3/vib"], rows.Select(r => r.GetProperty("stream").GetString()));
        Assert.All(rows, r => Assert.Contains(r.GetProperty("label").GetString(), new[] { "normal", "inner", "outer", "ball" }));
        Assert.All(rows, r => Assert.Equal(1, r.GetProperty("spark").GetInt32()));
        Assert.All(rows, r => Assert.Equal(1, r.GetProperty("threshold").GetInt32()));
        Assert.Equal("ready", state.GetProperty("ready").GetString());
        Assert.True(int.Parse(state.GetProperty("steps").GetString()!, NumberStyles.AllowThousands, CultureInfo.InvariantCulture) > 0);
        Assert.Equal(0, state.GetProperty("scripts").GetInt32()); // nothing loaded from elsewhere
        Assert.Equal(0, state.GetProperty("sheets").GetInt32());

        string artifacts = Path.Combine(AppContext.BaseDirectory, "artifacts");
        Directory.CreateDirectory(artifacts);
        byte[] png = await browser.ScreenshotAsync();
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png[..4]);
        await File.WriteAllBytesAsync(Path.Combine(artifacts, "dashboard.png"), png);

        Assert.Equal(0, demo.Terminate(TimeSpan.FromSeconds(30)));
        Assert.Contains("points written to", demo.Output, StringComparison.Ordinal);
        string[] lines = await File.ReadAllLinesAsync(Path.Combine(folder, "demo.lp"));
        Assert.Contains(lines, l => l.StartsWith("classification,model=demo-bearing,stream=sim0/vib ", StringComparison.Ordinal));
        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public async Task A_changed_model_file_is_reloaded_keeping_state_when_compatible_and_resetting_it_otherwise()
    {
        string folder = Directory.CreateTempSubdirectory("signal-reload-").FullName;
        string model = Path.Combine(folder, "bearing.sigm");
        await File.WriteAllBytesAsync(model, Demo.DemoModel.Bundled());
        int port = EdgeProcess.FreePort();
        string url = $"http://127.0.0.1:{port}/";
        using var demo = new EdgeProcess(null, "demo", "--sensors", "2", "--model", model, "--http", $"127.0.0.1:{port}", "--output", Path.Combine(folder, "demo.lp"), "--duration", "120");
        await demo.WaitUntil(async () => (await s_http.GetStringAsync(url + "api/streams")).Contains("sim1/vib", StringComparison.Ordinal), TimeSpan.FromSeconds(20), "streams");

        async Task<double> Reloads(string result)
        {
            string metrics = await s_http.GetStringAsync(url + "metrics");
            string prefix = $"signal_model_reloads_total{{model=\"bearing\",result=\"{result}\"}} ";
            return double.Parse(metrics.Split('\n').Single(l => l.StartsWith(prefix, StringComparison.Ordinal))[prefix.Length..], CultureInfo.InvariantCulture);
        }

        // The same architecture (here: the same file written again): every stream keeps its state.
        await File.WriteAllBytesAsync(model, Demo.DemoModel.Bundled());
        await demo.WaitUntil(async () => await Reloads("kept") == 1, TimeSpan.FromSeconds(20), "a reload that keeps state");

        // SIGHUP (systemctl reload) reloads too.
        demo.HangUp();
        await demo.WaitUntil(async () => await Reloads("kept") == 2, TimeSpan.FromSeconds(20), "a reload on SIGHUP");

        // Another architecture behind the same features: the streams start afresh.
        RecurrentModel current = RecurrentModel.Load(model);
        RecurrentModel wider = RecurrentModel.CreateRandom(new ModelArchitecture
        {
            InputSize = current.InputSize,
            Classes = current.ClassCount,
            Layers = [new LayerArchitecture { Kind = CellKind.Lstm, HiddenSize = 8 }],
        }, 3, [.. current.Labels]).WithMetadata(current.Metadata.ToDictionary());
        string staged = Path.Combine(folder, "staged.tmp");
        wider.Save(staged);
        File.Move(staged, model, overwrite: true);
        await demo.WaitUntil(async () => await Reloads("reset") == 1, TimeSpan.FromSeconds(20), "a reload that resets state");

        // A broken file is refused and the running model stays.
        await File.WriteAllTextAsync(model, "not a model");
        await demo.WaitUntil(async () => await Reloads("failed") >= 1, TimeSpan.FromSeconds(20), "a refused reload");
        Assert.Equal(HttpStatusCode.OK, (await s_http.GetAsync(url + "healthz")).StatusCode);
        long before = JsonDocument.Parse(await s_http.GetStringAsync(url + "api/health")).RootElement.GetProperty("steps").GetInt64();
        await demo.WaitUntil(async () => JsonDocument.Parse(await s_http.GetStringAsync(url + "api/health")).RootElement.GetProperty("steps").GetInt64() > before + 10, TimeSpan.FromSeconds(20), "steps after a refused reload");
        Assert.Equal(0, demo.Terminate(TimeSpan.FromSeconds(30)));
        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public void Without_http_the_daemon_runs_on_the_plain_host_and_stops_on_time()
    {
        string folder = Directory.CreateTempSubdirectory("signal-nohttp-").FullName;
        string lp = Path.Combine(folder, "demo.lp");
        using var demo = new EdgeProcess(null, "demo", "--sensors", "2", "--http", "none", "--output", lp, "--duration", "3");
        Assert.True(demo.WaitForExit(TimeSpan.FromSeconds(30)), demo.Output);
        Assert.Equal(0, demo.ExitCode);
        Assert.Contains("dashboard: off", demo.Output, StringComparison.Ordinal);
        Assert.Contains("points written to", demo.Output, StringComparison.Ordinal);
        Assert.Contains(File.ReadLines(lp), l => l.StartsWith("classification,model=demo-bearing,stream=sim1/vib ", StringComparison.Ordinal));
        Directory.Delete(folder, recursive: true);
    }
}
