using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using Microsoft.Extensions.Configuration;
using Signal.Engine.Live;
using Signal.Engine.Mqtt;
using Signal.Engine.Storage;

namespace Signal.Edge.Daemon;

/// <summary>
/// Everything <c>signal-edge run</c> is configured with: the JSON file, then <c>SIGNAL__SECTION__KEY</c> environment
/// variables, then flags, each overriding the one before. See docs/daemon.md for every key.
/// </summary>
internal sealed class EdgeSettings
{
    /// <summary>With a value, the daemon is one silo of an Orleans cluster (docs/cluster.md).</summary>
    public Signal.Edge.Cluster.ClusterSettings? Cluster { get; set; }

    /// <summary>One model file (shorthand for a single entry in <see cref="Models"/>).</summary>
    public string? Model { get; set; }

    /// <summary>Several models at once, each for the topics its template matches (first match wins).</summary>
    public List<ModelSettings> Models { get; set; } = [];

    /// <summary>Broker address, <c>mqtt://host:port</c> or <c>mqtts://host:port</c>.</summary>
    public string Mqtt { get; set; } = "mqtt://127.0.0.1:1883";

    /// <summary>Subscription filter; default: the filters of the models' topic templates.</summary>
    public string? Topic { get; set; }

    /// <summary>QoS of the subscription.</summary>
    public int Qos { get; set; } = 1;

    /// <summary>MQTT client options.</summary>
    public MqttOptions Broker { get; set; } = new();

    /// <summary>Engine options shared by every model (each model may set its own topic template).</summary>
    public EngineOptions Engine { get; set; } = new();

    /// <summary>How results go back to MQTT.</summary>
    public PublishOptions Publish { get; set; } = new();

    /// <summary>InfluxDB storage, or null for none.</summary>
    public InfluxOptions? Influx { get; set; }

    /// <summary>An MQTT broker inside the daemon (sensors publish to the edge box, no broker installed), or null for none.</summary>
    public EmbeddedBrokerSettings? EmbeddedBroker { get; set; }

    /// <summary>The HTTP endpoints and dashboard.</summary>
    public HttpSettings Http { get; set; } = new();

    /// <summary>Checkpoints of stream state.</summary>
    public StateSettings State { get; set; } = new();

    /// <summary>Logging.</summary>
    public LogSettings Logging { get; set; } = new();

    /// <summary>Secrets read from files (relative names resolve in systemd's <c>$CREDENTIALS_DIRECTORY</c>).</summary>
    public CredentialSettings Credentials { get; set; } = new();

    /// <summary>Builds the configuration: JSON file, then environment (<c>SIGNAL__</c>), then flags.</summary>
    public static IConfigurationRoot Configuration(string? file, IReadOnlyDictionary<string, string?> flags, IDictionary<string, string?>? environment = null)
    {
        var builder = new ConfigurationBuilder();
        if (file is not null)
        {
            if (!File.Exists(file))
            {
                throw new ArgumentException($"--config: '{file}' does not exist.");
            }

            builder.AddJsonFile(Path.GetFullPath(file), optional: false, reloadOnChange: false);
        }

        if (environment is null)
        {
            builder.AddEnvironmentVariables("SIGNAL__");
        }
        else
        {
            builder.AddInMemoryCollection(environment.Where(kv => kv.Key.StartsWith("SIGNAL__", StringComparison.OrdinalIgnoreCase))
                .Select(kv => KeyValuePair.Create(kv.Key["SIGNAL__".Length..].Replace("__", ":", StringComparison.Ordinal), kv.Value)));
        }

        builder.AddInMemoryCollection(flags);
        try
        {
            return builder.Build();
        }
        catch (InvalidDataException e)
        {
            string where = string.Empty;
            try
            {
                using var _ = System.Text.Json.JsonDocument.Parse(File.ReadAllText(file!), new System.Text.Json.JsonDocumentOptions { CommentHandling = System.Text.Json.JsonCommentHandling.Skip, AllowTrailingCommas = true });
            }
            catch (System.Text.Json.JsonException json)
            {
                where = $" (line {json.LineNumber + 1}, byte {json.BytePositionInLine + 1}: {json.Message})";
            }

            throw new ArgumentException($"config '{file}': not valid JSON{where}.", e);
        }
    }

    /// <summary>Binds and validates the settings; every message names the key at fault.</summary>
    /// <exception cref="ArgumentException">A key is unknown, has the wrong type, or a value is out of range.</exception>
    public static EdgeSettings Load(IConfiguration configuration)
    {
        var settings = new EdgeSettings();
        CheckKeys(configuration.GetChildren(), typeof(EdgeSettings));
        try
        {
            configuration.Bind(settings, o => o.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException e)
        {
            // The binder names the key ('engine:maxBatch') or the unknown keys and the type they were meant for.
            throw new ArgumentException("config: " + (e.InnerException is { } inner ? $"{e.Message} ({inner.Message})" : e.Message), e);
        }

        settings.Validate();
        return settings;
    }

    /// <summary>
    /// Every class the settings are made of. <see cref="CheckKeys"/> reads their public properties by reflection, which a
    /// trimmed or NativeAOT build keeps only for types named like this (a test checks the list against the types reachable
    /// from <see cref="EdgeSettings"/>).
    /// </summary>
    internal static readonly Type[] SettingsTypes =
    [
        Keep<EdgeSettings>(), Keep<ModelSettings>(), Keep<MqttOptions>(), Keep<EngineOptions>(), Keep<PublishOptions>(), Keep<InfluxOptions>(),
        Keep<EmbeddedBrokerSettings>(), Keep<HttpSettings>(), Keep<StateSettings>(), Keep<LogSettings>(), Keep<CredentialSettings>(), Keep<AlertRule>(),
        Keep<Signal.Edge.Cluster.ClusterSettings>(),
    ];

    private static Type Keep<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicProperties)] T>() => typeof(T);

    /// <summary>
    /// Refuses keys that match no setting, naming the whole path and the nearest setting, before anything binds
    /// (the binder's own message names only the type).
    /// </summary>
    [UnconditionalSuppressMessage("Trimming", "IL2070", Justification = "Only the types of SettingsTypes reach here; their public properties are kept.")]
    [UnconditionalSuppressMessage("Trimming", "IL2072", Justification = "Only the types of SettingsTypes reach here; their public properties are kept.")]
    private static void CheckKeys(IEnumerable<IConfigurationSection> sections, Type type)
    {
        System.Reflection.PropertyInfo[] properties = Array.IndexOf(SettingsTypes, type) >= 0
            ? type.GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance)
            : throw new InvalidOperationException($"{type.FullName} is not in EdgeSettings.SettingsTypes: its keys cannot be checked in a trimmed build.");
        foreach (IConfigurationSection section in sections)
        {
            System.Reflection.PropertyInfo? property = properties.FirstOrDefault(p => string.Equals(p.Name, section.Key, StringComparison.OrdinalIgnoreCase));
            if (property is null)
            {
                string nearest = properties.Where(p => p.CanWrite).MinBy(p => Signal.Engine.EditDistance.Between(p.Name.ToLowerInvariant(), section.Key.ToLowerInvariant()))?.Name ?? "?";
                throw new ArgumentException($"config: '{section.Path}' is not a setting (did you mean '{char.ToLowerInvariant(nearest[0])}{nearest[1..]}'?).");
            }

            Type target = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            IConfigurationSection[] children = [.. section.GetChildren()];
            if (children.Length == 0 || target == typeof(string) || target.IsPrimitive || target.IsEnum || target == typeof(TimeSpan) || target == typeof(Uri))
            {
                continue;
            }

            if (target.IsGenericType && target.GetGenericArguments() is [Type item] && typeof(System.Collections.IEnumerable).IsAssignableFrom(target))
            {
                if (item.IsClass && item != typeof(string))
                {
                    foreach (IConfigurationSection element in children)
                    {
                        CheckKeys(element.GetChildren(), item);
                    }
                }

                continue;
            }

            CheckKeys(children, target);
        }
    }

    /// <summary>The models to run, with the shorthand <see cref="Model"/> folded in.</summary>
    public IReadOnlyList<ModelSettings> AllModels() =>
        Model is not null ? [new ModelSettings { Path = Model, TopicTemplate = Models.FirstOrDefault()?.TopicTemplate }] : Models;

    /// <summary>Checks every value; the message names the key.</summary>
    public void Validate()
    {
        IReadOnlyList<ModelSettings> models = AllModels();
        if (models.Count == 0)
        {
            throw new ArgumentException("model: no model given (--model, \"model\" or \"models\" in the config file).");
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < models.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(models[i].Path))
            {
                throw new ArgumentException($"models:{i}:path: no model file given.");
            }

            if (!names.Add(models[i].DisplayName))
            {
                throw new ArgumentException($"models:{i}:name: '{models[i].DisplayName}' is used twice; give each model its own name.");
            }
        }

        if (Qos is < 0 or > 2)
        {
            throw new ArgumentException($"qos: {Qos} is not 0, 1 or 2.");
        }

        if (Topic is not null && MqttTopics.FilterProblem(Topic) is { } topicProblem)
        {
            throw new ArgumentException($"topic: '{Topic}' is not a valid MQTT topic filter: {topicProblem}.");
        }

        Engine.Validate();
        Publish.Validate();
        Influx?.Validate();
        EmbeddedBroker?.Validate();
        Http.Validate();
        State.Validate();
        Logging.Validate();
        if (Cluster is not null)
        {
            Cluster.Validate();
            if (Broker.ClientId == new MqttOptions().ClientId)
            {
                // Silos on one machine must not share a client id (the broker would disconnect one for the other).
                Broker.ClientId += "-" + Cluster.SiloPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
        }
    }

    /// <summary>Puts secrets from files into the options that use them.</summary>
    public void ApplyCredentials()
    {
        if (CredentialSettings.Read(Credentials.MqttPasswordFile, "credentials:mqttPasswordFile") is { } mqtt)
        {
            Broker.Password = mqtt;
        }

        if (CredentialSettings.Read(Credentials.InfluxPasswordFile, "credentials:influxPasswordFile") is { } influxPassword)
        {
            (Influx ?? throw new ArgumentException("credentials:influxPasswordFile: no InfluxDB is configured.")).Password = influxPassword;
        }

        if (CredentialSettings.Read(Credentials.InfluxTokenFile, "credentials:influxTokenFile") is { } influxToken)
        {
            (Influx ?? throw new ArgumentException("credentials:influxTokenFile: no InfluxDB is configured.")).Token = influxToken;
        }

        if (CredentialSettings.Read(Credentials.HttpTokenFile, "credentials:httpTokenFile") is { } httpToken)
        {
            Http.Token = httpToken;
        }
    }
}

/// <summary>One model the daemon runs.</summary>
internal sealed class ModelSettings
{
    /// <summary>The model file (.sigm); watched for changes.</summary>
    public string Path { get; set; } = string.Empty;

    /// <summary>Its name in results, metrics and checkpoints; default: the file name.</summary>
    public string? Name { get; set; }

    /// <summary>Topic → stream id template of this model's streams; default: <c>engine.topicTemplate</c>.</summary>
    public string? TopicTemplate { get; set; }

    /// <summary>The name used when <see cref="Name"/> is not set.</summary>
    public string DisplayName => Name ?? System.IO.Path.GetFileNameWithoutExtension(Path);
}

/// <summary>The HTTP endpoints: health, metrics, the streams API and the dashboard.</summary>
internal sealed class HttpSettings
{
    /// <summary><c>host:port</c> to listen on (port 0: any free port), or <c>none</c>. Default 127.0.0.1:8080.</summary>
    public string Address { get; set; } = "127.0.0.1:8080";

    /// <summary>A bearer token required on every endpoint but <c>/healthz</c> and <c>/readyz</c>; prefer <c>credentials.httpTokenFile</c> or <c>SIGNAL__HTTP__TOKEN</c>.</summary>
    public string? Token { get; set; }

    /// <summary>How often the dashboard's event stream sends a snapshot.</summary>
    public TimeSpan EventInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The most dashboard event streams (<c>/api/events</c>) open at once; more are answered 503. Default 8.</summary>
    public int MaxEventClients { get; set; } = 8;

    /// <summary>The most streams in one <c>/api/streams</c> page (<c>?limit=</c>) and in each event snapshot. Default 1,000.</summary>
    public int MaxStreamsPerResponse { get; set; } = 1000;

    /// <summary>False when <see cref="Address"/> is <c>none</c>.</summary>
    public bool Enabled => !string.Equals(Address, "none", StringComparison.OrdinalIgnoreCase);

    /// <summary>The parsed address.</summary>
    public IPEndPoint EndPoint()
    {
        int colon = Address.LastIndexOf(':');
        IPAddress? ip = null;
        if (colon <= 0 || !IPAddress.TryParse(Address[..colon].Trim('[', ']'), out ip) || ip is null
            || !int.TryParse(Address.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port > 65535)
        {
            throw new ArgumentException($"http:address: '{Address}' is not ip:port (e.g. 127.0.0.1:8080, 0.0.0.0:8080, [::1]:8080) or none.");
        }

        return new IPEndPoint(ip, port);
    }

    /// <summary>Checks the values.</summary>
    public void Validate()
    {
        if (Enabled)
        {
            EndPoint();
        }

        if (EventInterval < TimeSpan.FromMilliseconds(50))
        {
            throw new ArgumentException($"http:eventInterval: {EventInterval} is below 50 ms.");
        }

        if (MaxEventClients is < 0 or > 10_000)
        {
            throw new ArgumentException($"http:maxEventClients: {MaxEventClients} is not between 0 and 10,000.");
        }

        if (MaxStreamsPerResponse is < 1 or > 1_000_000)
        {
            throw new ArgumentException($"http:maxStreamsPerResponse: {MaxStreamsPerResponse} is not between 1 and 1,000,000.");
        }

        if (Token is { Length: < 16 })
        {
            throw new ArgumentException("http:token: a token must have at least 16 characters.");
        }
    }
}

/// <summary>Where and how often stream state is checkpointed.</summary>
internal sealed class StateSettings
{
    /// <summary>The folder of checkpoints (one file per model); default: systemd's <c>$STATE_DIRECTORY</c>, else none.</summary>
    public string? Folder { get; set; } = Environment.GetEnvironmentVariable("STATE_DIRECTORY") is { Length: > 0 } dir ? dir.Split(':')[0] : null;

    /// <summary>Checkpoints are also written this often while running (a crash loses at most this much context). Default 5 minutes; zero: only at shutdown.</summary>
    public TimeSpan CheckpointInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Checks the values.</summary>
    public void Validate()
    {
        if (CheckpointInterval < TimeSpan.Zero)
        {
            throw new ArgumentException($"state:checkpointInterval: {CheckpointInterval} is negative.");
        }

        if (Folder is not null)
        {
            // Found now, not at the first checkpoint or at shutdown: a folder that cannot be written loses every state.
            try
            {
                Directory.CreateDirectory(Folder);
                string probe = Path.Combine(Folder, $".write-test-{Environment.ProcessId}");
                File.WriteAllBytes(probe, []);
                File.Delete(probe);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
            {
                throw new ArgumentException($"state:folder: '{Folder}' cannot be created or written ({e.Message}); checkpoints go there.", e);
            }
        }
    }
}

/// <summary>Log format and level.</summary>
internal sealed class LogSettings
{
    /// <summary><c>plain</c> (one line per event) or <c>json</c> (one JSON object per line).</summary>
    public string Format { get; set; } = "plain";

    /// <summary>The minimum level: Trace, Debug, Information, Warning, Error or Critical.</summary>
    public Microsoft.Extensions.Logging.LogLevel Level { get; set; } = Microsoft.Extensions.Logging.LogLevel.Information;

    /// <summary>Log every change of a stream's class (alerts are always logged). <c>--quiet</c> turns it off.</summary>
    public bool ClassChanges { get; set; } = true;

    /// <summary>Checks the values.</summary>
    public void Validate()
    {
        if (Format is not ("plain" or "json"))
        {
            throw new ArgumentException($"logging:format: '{Format}' is not plain or json.");
        }
    }
}

/// <summary>Secrets kept in files, never on the command line or in logs.</summary>
internal sealed class CredentialSettings
{
    /// <summary>A file holding the MQTT password.</summary>
    public string? MqttPasswordFile { get; set; }

    /// <summary>A file holding the InfluxDB 1.x password.</summary>
    public string? InfluxPasswordFile { get; set; }

    /// <summary>A file holding the InfluxDB 2.x/3.x token.</summary>
    public string? InfluxTokenFile { get; set; }

    /// <summary>A file holding the HTTP bearer token.</summary>
    public string? HttpTokenFile { get; set; }

    /// <summary>Reads one secret (trailing newline removed); relative paths resolve in <c>$CREDENTIALS_DIRECTORY</c> when set.</summary>
    public static string? Read(string? file, string key)
    {
        if (file is null)
        {
            return null;
        }

        string path = !System.IO.Path.IsPathRooted(file) && Environment.GetEnvironmentVariable("CREDENTIALS_DIRECTORY") is { Length: > 0 } dir
            ? System.IO.Path.Combine(dir, file)
            : file;
        if (!File.Exists(path))
        {
            throw new ArgumentException($"{key}: '{path}' does not exist.");
        }

        string secret = File.ReadAllText(path).TrimEnd('\r', '\n');
        return secret.Length == 0 ? throw new ArgumentException($"{key}: '{path}' is empty.") : secret;
    }
}
