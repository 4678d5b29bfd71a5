using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Signal.Engine.Mqtt;

namespace Signal.Edge.Daemon;

/// <summary>How a command runs the daemon.</summary>
internal sealed class HostRun
{
    /// <summary>Stop after this long, or null to run until SIGINT/SIGTERM.</summary>
    public TimeSpan? Duration { get; init; }

    /// <summary>Send every log line to standard error (the demo keeps standard output for its table).</summary>
    public bool LogToStandardError { get; init; }

    /// <summary>Called once the daemon runs, with the dashboard's address (null without HTTP); runs until the token is cancelled.</summary>
    public Func<EdgeDaemon, Uri?, CancellationToken, Task>? WhileRunning { get; init; }
}

/// <summary>
/// Builds and runs the daemon on the Generic Host with Kestrel: configuration, structured console logs, graceful
/// shutdown on SIGINT/SIGTERM, and the HTTP endpoints <c>/healthz</c>, <c>/readyz</c>, <c>/metrics</c>,
/// <c>/api/streams</c>, <c>/api/events</c> (server-sent events) and the dashboard at <c>/</c>.
/// </summary>
internal static partial class EdgeHost
{
    private const string TokenCookie = "signal_token";


    /// <summary>Runs until stopped; returns the exit code (0, or 1 when the message loop failed).</summary>
    public static int Run(EdgeSettings settings, IConfigurationRoot configuration, Func<ILoggerFactory, IMqttConnection> connect, HostRun run)
    {
        settings.ApplyCredentials();
        IHostApplicationBuilder builder;
        WebApplicationBuilder? web = null;
        if (settings.Http.Enabled)
        {
            // The empty builder with Kestrel's core and routing's core only: no host filtering, forwarded headers,
            // HTTPS redirection or static files, which an edge daemon's few endpoints do not use (less to load and JIT).
            web = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = "signal-edge", ContentRootPath = AppContext.BaseDirectory, Args = [] });
            web.Host.UseConsoleLifetime();
            web.Services.AddRoutingCore();
            web.WebHost.UseKestrelCore().ConfigureKestrel(k =>
            {
                k.Listen(settings.Http.EndPoint());
                k.AddServerHeader = false;
            });
            builder = web;
        }
        else
        {
            builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { ApplicationName = "signal-edge", ContentRootPath = AppContext.BaseDirectory });
        }

        builder.Configuration.Sources.Clear();
        builder.Configuration.AddConfiguration(configuration);
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(settings.Logging.Level);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Information);
        builder.Logging.AddFilter("Orleans", LogLevel.Warning);
        builder.Logging.AddFilter("Polly", LogLevel.Warning);
        if (settings.Logging.Format == "json")
        {
            builder.Logging.AddJsonConsole(o =>
            {
                o.UseUtcTimestamp = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
            });
        }
        else
        {
            builder.Logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.UseUtcTimestamp = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            });
        }

        builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = run.LogToStandardError ? LogLevel.Trace : LogLevel.None);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(60));
        builder.Services.AddSingleton(settings);
        builder.Services.AddSingleton<StreamBoard>();
        builder.Services.AddSingleton(sp => connect(sp.GetRequiredService<ILoggerFactory>()));
        builder.Services.AddSingleton<IConfiguration>(configuration);
        builder.Services.AddSingleton<EdgeDaemon>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<EdgeDaemon>());
#if !SIGNAL_NO_CLUSTER
        if (settings.Cluster is { } cluster)
        {
            // After the daemon, so the silo stops before the daemon closes the broker connection its shards publish on.
            Signal.Edge.Cluster.ClusterHosting.Add(builder, cluster);
        }
#endif

        IHost host;
        if (web is not null)
        {
            WebApplication app = web.Build();
            MapEndpoints(app, settings);
            host = app;
        }
        else
        {
            host = ((HostApplicationBuilder)builder).Build();
        }

        // Constructing the daemon loads the models: a bad file fails here, before anything listens.
        EdgeDaemon daemon = host.Services.GetRequiredService<EdgeDaemon>();
        IHostApplicationLifetime lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
        using var stop = new CancellationTokenSource();
        using CancellationTokenRegistration stopping = lifetime.ApplicationStopping.Register(stop.Cancel);
        Task? watcher = null;
        lifetime.ApplicationStarted.Register(() =>
        {
            Uri? dashboard = web is null ? null : Dashboard(host.Services);
            if (dashboard is not null)
            {
                ILogger logger = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("signal-edge");
                string auth = settings.Http.Token is null ? "no token" : "bearer token required";
                LogDashboard(logger, dashboard, auth);
            }
            if (run.Duration is { } d)
            {
                _ = Task.Delay(d, stop.Token).ContinueWith(_ => lifetime.StopApplication(), TaskScheduler.Default);
            }

            if (run.WhileRunning is { } body)
            {
                watcher = Task.Run(() => body(daemon, dashboard, stop.Token));
            }
        });
        try
        {
            host.Run();
        }
        catch (Exception e) when (settings.Cluster is { } joining && e is not OperationCanceledException)
        {
            // The silo could not join (Redis unreachable, the silo port taken): one line instead of a stack trace.
            // Nothing was accepted yet: the daemon subscribes only once the silo has joined.
            string why = e.Message.Split('\n')[0];
            throw new IOException($"cluster: the silo did not start ({e.GetType().Name}: {why}); check that Redis at '{joining.Redis}' is reachable and port {joining.SiloPort} is free (cluster:redis, cluster:siloPort).", e);
        }

        watcher?.GetAwaiter().GetResult();
        return daemon.Fault is null ? 0 : 1;
    }

    /// <summary>The address Kestrel actually listens on (a port of 0 is resolved).</summary>
    private static Uri? Dashboard(IServiceProvider services)
    {
        string? address = services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault();
        return address is null ? null : new Uri(address.Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal).Replace("[::]", "[::1]", StringComparison.Ordinal) + "/");
    }

    private static void MapEndpoints(WebApplication app, EdgeSettings settings)
    {
        EdgeDaemon daemon = app.Services.GetRequiredService<EdgeDaemon>();
        CancellationToken stopping = app.Lifetime.ApplicationStopping;
        byte[]? token = settings.Http.Token is { } t ? Encoding.UTF8.GetBytes(t) : null;
        app.Use(async (context, next) =>
        {
            string path = context.Request.Path.Value ?? "/";
            if (token is null || path is "/healthz" or "/readyz" || Authorized(context, token))
            {
                await next(context).ConfigureAwait(false);
                return;
            }

            // The dashboard can be opened once with ?token=…; the token then lives in an HttpOnly cookie, since
            // EventSource cannot send an Authorization header.
            if (path == "/" && context.Request.Query["token"].FirstOrDefault() is { } query && Same(Encoding.UTF8.GetBytes(query), token))
            {
                context.Response.Cookies.Append(TokenCookie, query, new CookieOptions { HttpOnly = true, SameSite = SameSiteMode.Strict, Secure = context.Request.IsHttps });
                context.Response.Redirect("/");
                return;
            }

            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            context.Response.Headers.WWWAuthenticate = "Bearer realm=\"signal-edge\"";
            await context.Response.WriteAsync("401: a bearer token is required (Authorization: Bearer …, or open /?token=… once).\n").ConfigureAwait(false);
        });

        app.MapGet("/healthz", (HttpContext c) =>
        {
            c.Response.StatusCode = daemon.IsAlive ? 200 : 503;
            return c.Response.WriteAsync(daemon.IsAlive ? "ok\n" : "the message loop is not running\n");
        });
        app.MapGet("/readyz", (HttpContext c) =>
        {
            (bool ready, bool running, bool broker, bool storage, string? problem) = daemon.Readiness();
            c.Response.StatusCode = ready ? 200 : 503;
            return c.Response.WriteAsJsonAsync(new ReadyReport(ready, new ReadyChecks(running, broker, storage), problem), EdgeHttpJson.Default.ReadyReport);
        });
        app.MapGet("/metrics", (HttpContext c) =>
        {
            c.Response.ContentType = PrometheusWriter.ContentType;
            return c.Response.WriteAsync(EdgeMetrics.Render(daemon));
        });
        app.MapGet("/api/streams", (HttpContext c) =>
        {
            // Paged (?offset=&limit=, at most http.maxStreamsPerResponse): 10,000 streams must not cost one response each.
            int offset = int.TryParse(c.Request.Query["offset"], NumberStyles.None, CultureInfo.InvariantCulture, out int o) ? o : 0;
            int limit = int.TryParse(c.Request.Query["limit"], NumberStyles.None, CultureInfo.InvariantCulture, out int l) ? Math.Min(l, settings.Http.MaxStreamsPerResponse) : settings.Http.MaxStreamsPerResponse;
            IReadOnlyList<StreamView> page = daemon.Board.Snapshot(offset, limit, out int total);
            c.Response.Headers["X-Total-Count"] = total.ToString(CultureInfo.InvariantCulture);
            return c.Response.WriteAsJsonAsync(page, EdgeHttpJson.Default.IReadOnlyListStreamView);
        });
        app.MapGet("/api/health", (HttpContext c) => c.Response.WriteAsJsonAsync(Health(daemon), EdgeHttpJson.Default.HealthReport));
        app.MapGet("/api/cluster", async (HttpContext c) =>
        {
            if (daemon.Cluster is not { } cluster)
            {
                c.Response.StatusCode = StatusCodes.Status404NotFound;
                await c.Response.WriteAsync("404: this daemon is not a cluster silo (no \"cluster\" section; docs/cluster.md).\n").ConfigureAwait(false);
                return;
            }

            await c.Response.WriteAsJsonAsync(cluster.Status(), EdgeHttpJson.Default.ClusterStatus).ConfigureAwait(false);
        });
        var snapshots = new SnapshotCache(daemon, settings.Http.EventInterval, settings.Http.MaxStreamsPerResponse);
        int eventClients = 0;
        app.MapGet("/api/events", async (HttpContext c) =>
        {
            if (Interlocked.Increment(ref eventClients) > settings.Http.MaxEventClients)
            {
                Interlocked.Decrement(ref eventClients);
                c.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                c.Response.Headers.RetryAfter = "10";
                await c.Response.WriteAsync($"503: {settings.Http.MaxEventClients} event streams are open already (http.maxEventClients).\n").ConfigureAwait(false);
                return;
            }

            try
            {
                await Events(c).ConfigureAwait(false);
            }
            finally
            {
                Interlocked.Decrement(ref eventClients);
            }
        });

        async Task Events(HttpContext c)
        {
            c.Response.ContentType = "text/event-stream";
            c.Response.Headers.CacheControl = "no-cache";
            // The stream ends with the request or when the host stops (Kestrel waits for open requests on shutdown).
            using var ended = CancellationTokenSource.CreateLinkedTokenSource(c.RequestAborted, stopping);
            CancellationToken aborted = ended.Token;
            using var timer = new PeriodicTimer(settings.Http.EventInterval);
            try
            {
                do
                {
                    // One serialisation per interval, shared by every client.
                    await c.Response.Body.WriteAsync(snapshots.Current(), aborted).ConfigureAwait(false);
                    await c.Response.Body.FlushAsync(aborted).ConfigureAwait(false);
                }
                while (await timer.WaitForNextTickAsync(aborted).ConfigureAwait(false));
            }
            catch (OperationCanceledException)
            {
            }
        }
        app.MapGet("/", (HttpContext c) =>
        {
            c.Response.ContentType = "text/html; charset=utf-8";
            c.Response.Headers.ContentSecurityPolicy = "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'";
            return c.Response.Body.WriteAsync(DashboardPage.Html).AsTask();
        });
    }

    /// <summary>The dashboard's event, serialised at most once per interval however many clients read it.</summary>
    private sealed class SnapshotCache(EdgeDaemon daemon, TimeSpan interval, int maxStreams)
    {
        private readonly Lock _gate = new();
        private byte[] _event = [];
        private long _madeAt;

        public byte[] Current()
        {
            lock (_gate)
            {
                if (_event.Length == 0 || System.Diagnostics.Stopwatch.GetElapsedTime(_madeAt) >= interval * 0.9)
                {
                    IReadOnlyList<StreamView> streams = daemon.Board.Snapshot(0, maxStreams, out int total);
                    string json = JsonSerializer.Serialize(new SnapshotEvent(Health(daemon), total, streams), EdgeHttpJson.Default.SnapshotEvent);
                    _event = Encoding.UTF8.GetBytes("event: snapshot\ndata: " + json + "\n\n");
                    _madeAt = System.Diagnostics.Stopwatch.GetTimestamp();
                }

                return _event;
            }
        }
    }

    private static HealthReport Health(EdgeDaemon daemon)
    {
        (bool ready, bool running, bool broker, bool storage, string? problem) = daemon.Readiness();
        return new HealthReport(
            ready,
            running,
            broker,
            storage,
            problem,
            Math.Round((DateTimeOffset.UtcNow - daemon.StartedAt).TotalSeconds, 1),
            daemon.Slots.Sum(s => s.Engine.StreamCount),
            daemon.Slots.Sum(s => s.Engine.Counters.Messages),
            daemon.Slots.Sum(s => s.Engine.Counters.Steps),
            daemon.Slots.Sum(s => s.Engine.Counters.RejectedTotal),
            daemon.Board.ActiveAlerts,
            [.. daemon.Slots.Select(s => new ModelHealth(s.Name, s.Engine.Model.Labels, s.Engine.Model.HasForecast, s.Reloads + s.ReloadResets))],
            daemon.Influx?.Counters.Written,
            daemon.Influx?.SpoolPoints);
    }

    private static bool Authorized(HttpContext context, byte[] token)
    {
        string? header = context.Request.Headers.Authorization.FirstOrDefault();
        if (header is not null && header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && Same(Encoding.UTF8.GetBytes(header[7..].Trim()), token))
        {
            return true;
        }

        return context.Request.Cookies.TryGetValue(TokenCookie, out string? cookie) && Same(Encoding.UTF8.GetBytes(cookie), token);
    }

    private static bool Same(byte[] given, byte[] token) => CryptographicOperations.FixedTimeEquals(given, token);

    [LoggerMessage(Level = LogLevel.Information, Message = "dashboard {Url} (health /healthz /readyz, metrics /metrics, API /api/streams; {Auth})")]
    private static partial void LogDashboard(ILogger logger, Uri url, string auth);
}

/// <summary><c>/readyz</c>'s answer.</summary>
internal sealed record ReadyReport(bool Ready, ReadyChecks Checks, string? StorageProblem);

/// <summary>The checks behind <see cref="ReadyReport"/>.</summary>
internal sealed record ReadyChecks(bool Running, bool Broker, bool Storage);

/// <summary><c>/api/health</c>'s answer, also the <c>health</c> of every dashboard event.</summary>
internal sealed record HealthReport(bool Ready, bool Running, bool Broker, bool Storage, string? StorageProblem, double UptimeS, int Streams,
    long Messages, long Steps, long Rejected, long ActiveAlerts, IReadOnlyList<ModelHealth> Models, long? StorageWritten, long? StorageSpooled);

/// <summary>One model in <see cref="HealthReport"/>.</summary>
internal sealed record ModelHealth(string Name, IReadOnlyList<string> Labels, bool Forecast, long Reloads);

/// <summary>The dashboard's server-sent snapshot.</summary>
internal sealed record SnapshotEvent(HealthReport Health, int StreamsTotal, IReadOnlyList<StreamView> Streams);

/// <summary>Source-generated JSON of the HTTP endpoints (snake_case, web defaults): no reflection, so the NativeAOT daemon serves the same JSON.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(ReadyReport))]
[JsonSerializable(typeof(HealthReport))]
[JsonSerializable(typeof(SnapshotEvent))]
[JsonSerializable(typeof(IReadOnlyList<StreamView>))]
[JsonSerializable(typeof(Signal.Edge.Cluster.ClusterStatus))]
internal sealed partial class EdgeHttpJson : JsonSerializerContext;
