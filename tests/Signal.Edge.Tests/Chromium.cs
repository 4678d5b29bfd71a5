using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;

namespace Signal.Edge.Tests;

/// <summary>
/// Debian's headless Chromium driven over the Chrome DevTools Protocol (a WebSocket and JSON; no driver package):
/// navigate, evaluate JavaScript in the page, take a screenshot.
/// </summary>
internal sealed class Chromium : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _profile;
    private readonly ClientWebSocket _socket = new();
    private int _id;

    private Chromium(Process process, string profile)
    {
        _process = process;
        _profile = profile;
    }

    public static string? Executable => new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome" }.FirstOrDefault(File.Exists);

    public static async Task<Chromium> StartAsync()
    {
        string exe = Executable ?? throw new InvalidOperationException("chromium is not installed (scripts/test.sh installs Debian's 'chromium').");
        string profile = Directory.CreateTempSubdirectory("signal-chromium-").FullName;
        var start = new ProcessStartInfo(exe) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string a in new[] { "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--remote-debugging-port=0", "--remote-allow-origins=*", $"--user-data-dir={profile}", "--window-size=1400,900", "about:blank" })
        {
            start.ArgumentList.Add(a);
        }

        var process = Process.Start(start)!;
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        var chromium = new Chromium(process, profile);

        // Chromium writes the port it chose to DevToolsActivePort in the profile.
        string portFile = Path.Combine(profile, "DevToolsActivePort");
        var clock = Stopwatch.StartNew();
        while (!File.Exists(portFile) || File.ReadAllLines(portFile).Length < 2)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30) && !process.HasExited, "chromium did not open its DevTools port");
            await Task.Delay(100);
        }

        int port = int.Parse(File.ReadAllLines(portFile)[0], System.Globalization.CultureInfo.InvariantCulture);
        using var http = new HttpClient();
        JsonArray targets = JsonNode.Parse(await http.GetStringAsync($"http://127.0.0.1:{port}/json/list"))!.AsArray();
        string page = targets.First(t => (string?)t!["type"] == "page")!["webSocketDebuggerUrl"]!.GetValue<string>();
        await chromium._socket.ConnectAsync(new Uri(page), CancellationToken.None);
        return chromium;
    }

    public async Task NavigateAsync(string url) => await CallAsync("Page.navigate", new JsonObject { ["url"] = url });

    /// <summary>Evaluates an expression in the page and returns its value.</summary>
    public async Task<JsonNode?> EvaluateAsync(string expression)
    {
        JsonNode result = await CallAsync("Runtime.evaluate", new JsonObject { ["expression"] = expression, ["returnByValue"] = true });
        return result["result"]?["value"];
    }

    public async Task<byte[]> ScreenshotAsync()
    {
        JsonNode result = await CallAsync("Page.captureScreenshot", new JsonObject { ["format"] = "png" });
        return Convert.FromBase64String(result["data"]!.GetValue<string>());
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await CallAsync("Browser.close", []);
        }
        catch (Exception e) when (e is WebSocketException or InvalidOperationException)
        {
        }

        _socket.Dispose();
        if (!_process.WaitForExit(5000))
        {
            _process.Kill(entireProcessTree: true);
        }

        _process.Dispose();
        try
        {
            Directory.Delete(_profile, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private async Task<JsonNode> CallAsync(string method, JsonObject parameters)
    {
        int id = ++_id;
        string request = new JsonObject { ["id"] = id, ["method"] = method, ["params"] = parameters }.ToJsonString();
        await _socket.SendAsync(Encoding.UTF8.GetBytes(request), WebSocketMessageType.Text, true, CancellationToken.None);
        var buffer = new byte[1 << 16];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            using var message = new MemoryStream();
            WebSocketReceiveResult received;
            do
            {
                received = await _socket.ReceiveAsync(buffer, timeout.Token);
                message.Write(buffer, 0, received.Count);
            }
            while (!received.EndOfMessage);

            JsonNode reply = JsonNode.Parse(message.ToArray())!;
            if ((int?)reply["id"] != id)
            {
                continue; // an event
            }

            if (reply["error"] is { } error)
            {
                throw new InvalidOperationException($"{method}: {error.ToJsonString()}");
            }

            return reply["result"]!;
        }
    }
}
