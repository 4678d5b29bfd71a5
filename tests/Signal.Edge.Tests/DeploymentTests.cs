using System.Reflection.PortableExecutable;
using System.Text.Json;
using Signal.Edge.Daemon;
using Xunit;

namespace Signal.Edge.Tests;

public sealed class DeploymentTests
{
    // The project copies deploy/edge.json and the unit beside the tests (source paths are mapped to /_/ on CI).
    private static string Deployed(string file) => Path.Combine(AppContext.BaseDirectory, "deploy", file);

    [Fact]
    public void The_build_is_portable_managed_code_with_no_native_library_of_its_own()
    {
        // A framework-dependent, RID-less build runs on linux-arm64 as on x64 when every assembly is IL only and
        // not tied to one machine, and the dependency manifest lists no native asset (libmosquitto comes from Debian).
        string folder = AppContext.BaseDirectory;
        using var deps = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "signal-edge.deps.json")));
        foreach (JsonProperty library in deps.RootElement.GetProperty("targets").EnumerateObject().Single().Value.EnumerateObject())
        {
            Assert.False(library.Value.TryGetProperty("native", out _), $"{library.Name} brings a native library");
            // Windows-only implementations (System.Diagnostics.PerformanceCounter, which Orleans' Redis grain directory
            // brings) are never loaded on Linux; anything for Linux, Unix or macOS would tie the build to a platform.
            if (library.Value.TryGetProperty("runtimeTargets", out JsonElement targets))
            {
                foreach (JsonProperty target in targets.EnumerateObject())
                {
                    Assert.True(target.Name.StartsWith("runtimes/win", StringComparison.Ordinal), $"{library.Name} brings platform-specific assets: {target.Name}");
                }
            }
        }

        string[] ours = ["signal-edge.dll", "Signal.Engine.dll", "Signal.Features.dll", "Signal.Models.dll", "System.Reactive.dll", "System.CommandLine.dll", "Spectre.Console.dll", "MathNet.Numerics.dll", "System.Numerics.Tensors.dll", "Google.Protobuf.dll"];
        foreach (string name in ours)
        {
            using var pe = new PEReader(File.OpenRead(Path.Combine(folder, name)));
            Assert.True(pe.PEHeaders.CorHeader!.Flags.HasFlag(System.Reflection.PortableExecutable.CorFlags.ILOnly), $"{name} is not IL only");
            Assert.Equal(Machine.I386, pe.PEHeaders.CoffHeader.Machine);
        }
    }

    [Fact]
    public void The_example_config_loads_and_the_systemd_unit_is_hardened()
    {
        EdgeSettings settings = EdgeSettings.Load(EdgeSettings.Configuration(Deployed("edge.json"), new Dictionary<string, string?>(), new Dictionary<string, string?>()));
        Assert.Equal(["bearing", "pump"], settings.AllModels().Select(m => m.DisplayName));
        Assert.Equal("json", settings.Logging.Format);

        string[] unit = File.ReadAllLines(Deployed("signal-edge.service"));
        foreach (string line in new[] { "User=signal", "ProtectSystem=strict", "StateDirectory=signal-edge", "NoNewPrivileges=yes", "ProtectHome=yes", "PrivateTmp=yes", "KillSignal=SIGTERM", "ExecReload=/bin/kill -HUP $MAINPID", "Type=notify", "NotifyAccess=main", "WatchdogSec=30" })
        {
            Assert.Contains(line, unit);
        }

        Assert.DoesNotContain(unit, l => l.StartsWith("Environment=DOTNET_TC_", StringComparison.Ordinal));
        Assert.Contains("Environment=DOTNET_GCgen0size=0x1000000", unit); // docs/daemon.md: resident memory under load
        Assert.Contains(unit, l => l.StartsWith("ExecStart=/usr/bin/dotnet /opt/signal-edge/signal-edge.dll run --config /etc/signal/edge.json", StringComparison.Ordinal));
    }

    [Fact]
    public void The_memory_settings_ship_in_the_runtimeconfig_so_they_hold_however_the_daemon_is_started()
    {
        // docs/daemon.md: these keep an idle daemon with 100 streams under 80 MB. The unit no longer sets them.
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "signal-edge.runtimeconfig.json")));
        JsonElement properties = config.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");
        Assert.Equal(4096, properties.GetProperty("System.Runtime.TieredCompilation.CallCountThreshold").GetInt32());
        Assert.False(properties.GetProperty("System.GC.Concurrent").GetBoolean());
        Assert.False(properties.GetProperty("System.GC.Server").GetBoolean());
    }
}
