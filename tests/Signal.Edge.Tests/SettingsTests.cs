using Signal.Edge.Daemon;
using Xunit;

namespace Signal.Edge.Tests;

public sealed class SettingsTests
{
    private static string File(string json)
    {
        string path = Path.GetTempFileName();
        System.IO.File.WriteAllText(path, json);
        return path;
    }

    private static EdgeSettings Load(string? file, Dictionary<string, string?>? flags = null, Dictionary<string, string?>? environment = null) =>
        EdgeSettings.Load(EdgeSettings.Configuration(file, flags ?? [], environment ?? []));

    [Fact]
    public void Flags_override_the_environment_which_overrides_the_file()
    {
        string file = File("""
            { "model": "a.sigm", "engine": { "maxBatch": 64, "maxWait": "00:00:00.010" }, "http": { "address": "127.0.0.1:9000" },
              "influx": { "url": "http://127.0.0.1:8086", "database": "plant", "batchSize": 100 } }
            """);
        EdgeSettings settings = Load(file,
            new() { ["http:address"] = "0.0.0.0:9100" },
            new() { ["SIGNAL__ENGINE__MAXBATCH"] = "32", ["SIGNAL__HTTP__ADDRESS"] = "127.0.0.1:9050", ["OTHER__ENGINE__MAXBATCH"] = "7" });
        Assert.Equal(32, settings.Engine.MaxBatch);
        Assert.Equal(TimeSpan.FromMilliseconds(10), settings.Engine.MaxWait);
        Assert.Equal("0.0.0.0:9100", settings.Http.Address);
        Assert.Equal("plant", settings.Influx!.Database);
        Assert.Equal(100, settings.Influx.BatchSize);
        Assert.Equal(["a.sigm"], settings.AllModels().Select(m => m.Path));
    }

    [Theory]
    [InlineData("""{ "model": "a.sigm", "engine": { "maxBatchh": 4 } }""", "'engine:maxBatchh' is not a setting (did you mean 'maxBatch'?)")]
    [InlineData("""{ "model": "a.sigm", "engine": { "maxBatch": "lots" } }""", "'Engine:MaxBatch'")]
    [InlineData("""{ "model": "a.sigm", "engine": { "maxBatch": 0 } }""", "engine.maxBatch: 0 is outside")]
    [InlineData("""{ "model": "a.sigm", "http": { "address": "localhost" } }""", "http:address: 'localhost' is not ip:port")]
    [InlineData("""{ "model": "a.sigm", "logging": { "format": "xml" } }""", "logging:format: 'xml'")]
    [InlineData("""{ "models": [ { "path": "a.sigm" }, { "path": "b/a.sigm" } ] }""", "models:1:name: 'a' is used twice")]
    [InlineData("""{ "engine": { } }""", "no model given")]
    [InlineData("""{ "model": "a.sigm", "cluster": { "shardBy": "site" } }""", "cluster:shardBy: 'site' is not \"hash\" or \"level:N\"")]
    [InlineData("""{ "model": "a.sigm", "cluster": { "group": "a/b" } }""", "cluster:group: 'a/b' must be a non-empty name")]
    [InlineData("""{ "model": "a.sigm", "cluster": { "advertisedAddress": "node-1" } }""", "cluster:advertisedAddress: 'node-1' is not an IP address")]
    [InlineData("""{ "model": "a.sigm", "cluster": { "shards": 0 } }""", "cluster:shards: 0 is not between 1 and 65,536")]
    [InlineData("""{ "model": "a.sigm", "cluster": { "sharz": 4 } }""", "'cluster:sharz' is not a setting (did you mean 'shards'?)")]
    [InlineData("""{ "model": "a.sigm", "engine": { "alerts": [ { "nmae": "x" } ] } }""", "'engine:alerts:0:nmae' is not a setting (did you mean 'name'?)")]
    [InlineData("""{ "model": "a.sigm", "engine": { "maxBatch": 4 }""", "not valid JSON (line 1")]
    public void A_bad_setting_is_refused_with_the_key_named(string json, string expected)
    {
        ArgumentException e = Assert.ThrowsAny<ArgumentException>(() => Load(File(json)));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Secrets_come_from_files_and_relative_names_resolve_in_the_credentials_directory()
    {
        string folder = Directory.CreateTempSubdirectory("signal-credentials-").FullName;
        System.IO.File.WriteAllText(Path.Combine(folder, "http-token"), "0123456789abcdef-token\n");
        System.IO.File.WriteAllText(Path.Combine(folder, "mqtt-password"), "s3cret");
        EdgeSettings settings = Load(File($$"""
            { "model": "a.sigm", "credentials": { "httpTokenFile": "{{Path.Combine(folder, "http-token")}}", "mqttPasswordFile": "{{Path.Combine(folder, "mqtt-password")}}" } }
            """));
        settings.ApplyCredentials();
        Assert.Equal("0123456789abcdef-token", settings.Http.Token);
        Assert.Equal("s3cret", settings.Broker.Password);

        EdgeSettings missing = Load(File("""{ "model": "a.sigm", "credentials": { "influxTokenFile": "/nonexistent/token" } }"""));
        Assert.Contains("credentials:influxTokenFile: '/nonexistent/token' does not exist", Assert.Throws<ArgumentException>(missing.ApplyCredentials).Message, StringComparison.Ordinal);
        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public void Every_class_the_settings_are_made_of_is_kept_for_the_key_check_in_the_trimmed_build()
    {
        // What CheckKeys descends into: the class-typed properties (nullable or not) and the classes listed in collections.
        var reachable = new HashSet<Type>();
        void Visit(Type type)
        {
            if (!reachable.Add(type))
            {
                return;
            }

            foreach (System.Reflection.PropertyInfo property in type.GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance))
            {
                Type target = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
                if (target.IsGenericType && target.GetGenericArguments() is [Type item] && typeof(System.Collections.IEnumerable).IsAssignableFrom(target))
                {
                    target = item;
                }

                if (target.IsClass && target != typeof(string) && target != typeof(Uri) && !target.IsArray)
                {
                    Visit(target);
                }
            }
        }

        Visit(typeof(EdgeSettings));
        Assert.True(reachable.Count >= 11, $"only {reachable.Count} settings classes found");
        Assert.Empty(reachable.Except(EdgeSettings.SettingsTypes).Select(t => t.FullName));
    }
}
