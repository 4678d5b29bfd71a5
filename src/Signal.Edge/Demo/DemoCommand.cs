using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Signal.Edge.Commands;
using Signal.Edge.Daemon;
using Signal.Engine.Data;
using Signal.Engine.Mqtt;
using Spectre.Console;

namespace Signal.Edge.Demo;

/// <summary>
/// <c>signal-edge demo</c>: the whole daemon on built-in defaults with nothing installed: the bundled model, simulated
/// sensors whose bearings develop faults and recover, a live table here, the dashboard, and line protocol in a file.
/// </summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var sensors = new Option<int>("--sensors", "-n") { Description = "Simulated sensors.", DefaultValueFactory = _ => 6 };
        var duration = new Option<double?>("--duration") { Description = "Stop after this many seconds (default: until Ctrl-C)." };
        var http = new Option<string>("--http") { Description = "Where the dashboard listens: ip:port (port 0: any free port) or none. Default 127.0.0.1:8080, or a free port when 8080 is taken." };
        var output = new Option<FileInfo>("--output", "-o") { Description = "The line-protocol file everything is stored in.", DefaultValueFactory = _ => new FileInfo("signal-demo.lp") };
        var model = new Option<FileInfo?>("--model", "-m") { Description = "Run this model instead of the bundled one (12 kHz vibration, 1 channel)." };
        var period = new Option<double>("--period") { Description = "Seconds of each sensor's fault cycle (a fault lasts 40 % of it).", DefaultValueFactory = _ => 30 };
        var state = new Option<string?>("--state") { Description = "Checkpoint folder (stream state survives a restart of the demo)." };
        var transport = new Option<string>("--transport") { Description = "mqtt (default: the sensors publish to an embedded MQTT broker on a free loopback port and the daemon subscribes, the production path) or memory (the sensors hand their messages to the daemon in-process).", DefaultValueFactory = _ => "mqtt" };
        var command = new Command("demo", """
            Runs the whole pipeline with nothing installed: simulated bearing-vibration sensors (faults switched on and
            off), the bundled model (trained by 'signal-edge demo-model' on generated data), a live table here, the
            dashboard in a browser, and every class, score and alert written as InfluxDB line protocol to a file.

            Example:
              signal-edge demo --duration 60
            """)
        {
            sensors, duration, http, output, model, period, state, transport,
        };
        command.SetAction(parse => CommandErrors.Run(() =>
        {
            int n = parse.GetValue(sensors);
            double cycle = parse.GetValue(period);
            if (n is < 1 or > 10_000 || !(cycle >= 5))
            {
                throw new ArgumentException("demo: need --sensors between 1 and 10000 and --period of at least 5 s.");
            }

            string via = parse.GetValue(transport)!;
            if (via is not ("mqtt" or "memory"))
            {
                throw new ArgumentException($"demo: --transport is mqtt or memory (got '{via}').");
            }

            string folder = Directory.CreateTempSubdirectory("signal-demo-").FullName;
            try
            {
                string modelPath = parse.GetValue(model)?.FullName ?? Path.Combine(folder, "demo-bearing.sigm");
                if (parse.GetValue(model) is null)
                {
                    File.WriteAllBytes(modelPath, DemoModel.Bundled());
                }

                string lp = parse.GetValue(output)!.FullName;
                var flags = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
                {
                    ["model"] = modelPath,
                    ["http:address"] = parse.GetValue(http) ?? DefaultAddress(),
                    ["logging:level"] = "Warning",
                    ["logging:classChanges"] = "false",
                    ["state:folder"] = parse.GetValue(state),
                    ["state:checkpointInterval"] = "00:00:00",
                    ["publish:mode"] = "change",
                };
                IConfigurationRoot configuration = EdgeSettings.Configuration(null, flags);
                EdgeSettings settings = EdgeSettings.Load(configuration);
                settings.Influx = new Signal.Engine.Storage.InfluxOptions().WithAddress(new Uri(lp).AbsoluteUri);
                settings.Influx.Validate();
                Func<int, TimeSpan, BearingFault?> schedule = SimulatedSensors.Rotating(n, TimeSpan.FromSeconds(cycle), TimeSpan.FromSeconds(cycle * 0.4));
                double? seconds = parse.GetValue(duration);
                TimeSpan? limit = seconds is { } s ? TimeSpan.FromSeconds(s) : null;
                if (via == "memory")
                {
                    SimulatedSensors? simulated = null;
                    return EdgeHost.Run(settings, configuration, _ => simulated = new SimulatedSensors(n, DemoModel.Rate, 600, schedule), new HostRun
                    {
                        Duration = limit,
                        LogToStandardError = true,
                        WhileRunning = (daemon, url, stop) => Show(daemon, simulated!, url, lp, stop),
                    });
                }

                // Over MQTT: an embedded broker on a free loopback port; the sensors publish to it, the daemon subscribes.
                using var embedded = EmbeddedBroker.Start(new EmbeddedBrokerSettings { Address = $"127.0.0.1:{Signal.Engine.LocalServer.FreePort()}" });
                MqttOptions Client(string id) => new MqttOptions
                {
                    ClientId = $"{id}-{Environment.ProcessId}",
                    Username = EmbeddedBroker.OwnUser,
                    Password = embedded.OwnPassword,
                }.WithAddress(embedded.ClientAddress);
                MqttOptions daemonOptions = Client("signal-demo");
                daemonOptions.WillTopic = settings.Publish.StatusTopic;
                var sensorsOverMqtt = new SimulatedSensors(n, DemoModel.Rate, 600, schedule);
                return EdgeHost.Run(settings, configuration, logs => MqttConnections.Create(daemonOptions, logs.CreateLogger("signal-edge.mqtt")), new HostRun
                {
                    Duration = limit,
                    LogToStandardError = true,
                    WhileRunning = (daemon, url, stop) => Task.WhenAll(
                        Show(daemon, sensorsOverMqtt, url, lp, stop),
                        PublishSensors(daemon, sensorsOverMqtt, Client("signal-demo-sensors"), stop)),
                });
            }
            finally
            {
                Directory.Delete(folder, recursive: true);
            }
        }));
        return command;
    }

    /// <summary>
    /// The simulated sensors' side of the demo over MQTT: once the daemon's subscription is in place, every message the
    /// sensors produce is published at QoS 1 to the embedded broker, as a real sensor gateway would.
    /// </summary>
    private static async Task PublishSensors(EdgeDaemon daemon, SimulatedSensors sensors, MqttOptions options, CancellationToken stop)
    {
        await using IMqttConnection publisher = MqttConnections.Create(options);
        await using (sensors.ConfigureAwait(false))
        {
            try
            {
                await publisher.ConnectAsync(TimeSpan.FromSeconds(10), stop).ConfigureAwait(false);
                while (!daemon.Readiness().Broker)
                {
                    await Task.Delay(50, stop).ConfigureAwait(false);
                }

                await sensors.ConnectAsync(TimeSpan.FromSeconds(10), stop).ConfigureAwait(false);
                while (await sensors.WaitToReadAsync(stop).ConfigureAwait(false))
                {
                    while (sensors.TryRead(out MqttMessage message))
                    {
                        try
                        {
                            while (!publisher.Publish(message.Topic, message.Payload, qos: 1))
                            {
                                await Task.Delay(10, stop).ConfigureAwait(false); // reconnecting: keep the message
                            }
                        }
                        finally
                        {
                            message.Release();
                        }
                    }
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
            }
        }
    }

    /// <summary>127.0.0.1:8080 when it is free, else any free port.</summary>
    private static string DefaultAddress()
    {
        try
        {
            using var probe = new TcpListener(IPAddress.Loopback, 8080);
            probe.Start();
            return "127.0.0.1:8080";
        }
        catch (SocketException)
        {
            return "127.0.0.1:0";
        }
    }

    private static async Task Show(EdgeDaemon daemon, SimulatedSensors sensors, Uri? url, string lp, CancellationToken stop)
    {
        AnsiConsole.MarkupLine($"[bold]Signal demo[/]: {sensors.CurrentFaults.Count} simulated sensors at 12 kHz, model [green]{Markup.Escape(daemon.Slots[0].Name)}[/] ({Markup.Escape(string.Join(", ", daemon.Slots[0].Engine.Model.Labels))})");
        AnsiConsole.MarkupLine(url is null ? "dashboard: off" : $"dashboard: [link]{url}[/]");
        AnsiConsole.MarkupLine($"line protocol: {Markup.Escape(lp)}");
        AnsiConsole.MarkupLine("Ctrl-C stops (storage is flushed first).");
        bool live = AnsiConsole.Profile.Capabilities.Interactive && !Console.IsOutputRedirected;
        try
        {
            if (live)
            {
                await AnsiConsole.Live(Table(daemon, sensors)).StartAsync(async ctx =>
                {
                    while (!stop.IsCancellationRequested)
                    {
                        await Task.Delay(500, stop).ConfigureAwait(false);
                        ctx.UpdateTarget(Table(daemon, sensors));
                    }
                }).ConfigureAwait(false);
            }
            else
            {
                while (!stop.IsCancellationRequested)
                {
                    await Task.Delay(2000, stop).ConfigureAwait(false);
                    Console.WriteLine(string.Join("  ", daemon.Board.Snapshot().Select(v =>
                        string.Create(CultureInfo.InvariantCulture, $"{v.Stream}={v.Label ?? "-"}({v.Confidence:P0}){(v.Alerts.Count > 0 ? "!" : "")}"))));
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        await daemon.Stopped.ConfigureAwait(false);
        long steps = daemon.Slots.Sum(s => s.Engine.Counters.Steps);
        long raised = daemon.Board.RaisedBySeverity.Values.Sum();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"demo stopped: {steps:N0} steps, {raised:N0} alerts raised, {daemon.Influx?.Counters.Written ?? 0:N0} points written to {lp}"));
    }

    private static Table Table(EdgeDaemon daemon, SimulatedSensors sensors)
    {
        var table = new Table().RoundedBorder().Title("[bold]live streams[/]")
            .AddColumns("stream", "simulated", "class", "confidence", "score / threshold", "alerts", "steps");
        foreach (StreamView v in daemon.Board.Snapshot())
        {
            int index = int.TryParse(v.Stream.AsSpan(3, v.Stream.IndexOf('/', StringComparison.Ordinal) - 3), CultureInfo.InvariantCulture, out int i) ? i : -1;
            string truth = index >= 0 && index < sensors.CurrentFaults.Count ? sensors.CurrentFaults[index] ?? "normal" : "?";
            string label = v.Label ?? "-";
            string colour = label == "normal" ? "green" : "yellow";
            table.AddRow(
                Markup.Escape(v.Stream),
                Markup.Escape(truth),
                $"[{colour}]{Markup.Escape(label)}[/]",
                string.Create(CultureInfo.InvariantCulture, $"{v.Confidence:P0}"),
                string.Create(CultureInfo.InvariantCulture, $"{v.Score:0.00} / {v.Threshold:0.00}"),
                v.Alerts.Count == 0 ? "[grey]-[/]" : "[red]" + Markup.Escape(string.Join(", ", v.Alerts.Select(a => a.Rule))) + "[/]",
                v.Steps.ToString("N0", CultureInfo.InvariantCulture));
        }

        (bool ready, _, _, bool storage, _) = daemon.Readiness();

        // The demo logs at Warning (the table owns the terminal), so model reloads (--model, then edit the file or
        // SIGHUP) are shown here.
        long kept = daemon.Slots.Sum(s => s.Reloads), reset = daemon.Slots.Sum(s => s.ReloadResets), refused = daemon.Slots.Sum(s => s.ReloadFailures);
        string reloads = kept + reset + refused == 0 ? string.Empty
            : string.Create(CultureInfo.InvariantCulture, $" · model reloads: {kept} kept state, {reset} reset, {refused} refused");
        table.Caption(string.Create(CultureInfo.InvariantCulture,
            $"{(ready ? "ready" : "not ready")} · storage {(storage ? "ok" : "failing")} · {daemon.Slots.Sum(s => s.Engine.Counters.Steps):N0} steps · {daemon.Board.ActiveAlerts} active alerts · {daemon.Influx?.Counters.Written ?? 0:N0} points stored{reloads}"));
        return table;
    }
}
