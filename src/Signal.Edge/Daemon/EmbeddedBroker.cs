using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace Signal.Edge.Daemon;

/// <summary>The <c>embeddedBroker</c> settings: an MQTT broker inside the daemon, so sensors publish straight to the edge box.</summary>
public sealed class EmbeddedBrokerSettings
{
    /// <summary>Where it listens, <c>address:port</c> (default <c>0.0.0.0:1883</c>; <c>127.0.0.1:…</c> for this machine only).</summary>
    public string Address { get; set; } = "0.0.0.0:1883";

    /// <summary>
    /// A file of <c>user:password</c> lines (<c>#</c> starts a comment) whose users may connect; null lets anyone
    /// connect. Keep it readable by the daemon's user alone.
    /// </summary>
    public string? UsersFile { get; set; }

    /// <summary>The listen end point.</summary>
    /// <exception cref="ArgumentException">The address is not <c>address:port</c>.</exception>
    public IPEndPoint EndPoint() => IPEndPoint.TryParse(Address, out IPEndPoint? end) && end.Port is > 0 and <= 65535
        ? end
        : throw new ArgumentException($"embeddedBroker:address: '{Address}' is not address:port (e.g. 0.0.0.0:1883).");

    /// <summary>Checks the values; the message names the key (and the users file's line).</summary>
    /// <exception cref="ArgumentException">A value is wrong.</exception>
    public void Validate()
    {
        _ = EndPoint();
        _ = Users();
    }

    /// <summary>The users and their passwords, or null when anyone may connect.</summary>
    /// <exception cref="ArgumentException">The file is missing or a line is not <c>user:password</c>.</exception>
    public Dictionary<string, string>? Users()
    {
        if (UsersFile is null)
        {
            return null;
        }

        if (!File.Exists(UsersFile))
        {
            throw new ArgumentException($"embeddedBroker:usersFile: '{UsersFile}' does not exist.");
        }

        var users = new Dictionary<string, string>(StringComparer.Ordinal);
        string[] lines = File.ReadAllLines(UsersFile);
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0 || colon == line.Length - 1)
            {
                throw new ArgumentException($"embeddedBroker:usersFile: {UsersFile} line {i + 1} is not user:password.");
            }

            users[line[..colon]] = line[(colon + 1)..];
        }

        return users;
    }
}

/// <summary>
/// The daemon's embedded MQTT broker (MQTTnet.Server): persistent sessions in memory, users from a file, and a
/// user of the daemon's own with a password drawn at start, so the daemon subscribes to it as to any broker.
/// </summary>
/// <remarks>
/// MQTT 5 clients may connect without a client id (one is assigned); MQTTnet.Server refuses an empty client id from an
/// MQTT 3.1.1 client ("identifier rejected"), so 3.1.1 sensors must send one (<c>mosquitto_pub -i …</c>). No TLS yet.
/// </remarks>
internal sealed class EmbeddedBroker : IDisposable
{
    /// <summary>The daemon's own user on the embedded broker.</summary>
    public const string OwnUser = "signal-edge";

    private readonly MqttServer _server;

    private EmbeddedBroker(MqttServer server, IPEndPoint endPoint, string ownPassword)
    {
        _server = server;
        EndPoint = endPoint;
        OwnPassword = ownPassword;
    }

    /// <summary>Where it listens.</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>The password of <see cref="OwnUser"/>, drawn at start.</summary>
    public string OwnPassword { get; }

    /// <summary>The address the daemon's own client connects to (loopback when the broker listens on every address).</summary>
    public string ClientAddress => string.Create(CultureInfo.InvariantCulture, $"mqtt://{(EndPoint.Address.Equals(IPAddress.Any) ? "127.0.0.1" : EndPoint.Address.ToString())}:{EndPoint.Port}");

    /// <summary>Starts the broker.</summary>
    /// <exception cref="ArgumentException">A setting is wrong.</exception>
    /// <exception cref="IOException">The port cannot be opened (in use, or not allowed).</exception>
    public static EmbeddedBroker Start(EmbeddedBrokerSettings settings)
    {
        IPEndPoint end = settings.EndPoint();
        Dictionary<string, string>? users = settings.Users();
        string ownPassword = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
        MqttServerOptions options = new MqttServerOptionsBuilder()
            .WithDefaultEndpoint()
            .WithDefaultEndpointBoundIPAddress(end.Address)
            .WithDefaultEndpointPort(end.Port)
            .WithPersistentSessions(true)
            .Build();
        MqttServer server = new MqttServerFactory().CreateMqttServer(options);
        server.ValidatingConnectionAsync += e =>
        {
            bool own = e.UserName == OwnUser && CryptographicOperations.FixedTimeEquals(System.Text.Encoding.UTF8.GetBytes(e.Password ?? string.Empty), System.Text.Encoding.UTF8.GetBytes(ownPassword));
            bool allowed = own || users is null || (e.UserName is not null && users.TryGetValue(e.UserName, out string? password)
                && CryptographicOperations.FixedTimeEquals(System.Text.Encoding.UTF8.GetBytes(e.Password ?? string.Empty), System.Text.Encoding.UTF8.GetBytes(password)));
            if (!allowed)
            {
                e.ReasonCode = MqttConnectReasonCode.BadUserNameOrPassword;
            }
            else if (string.IsNullOrEmpty(e.ClientId))
            {
                // MQTT allows an empty client id with a clean session (mosquitto_pub sends one): the broker assigns one.
                e.AssignedClientIdentifier = "auto-" + Guid.NewGuid().ToString("N");
            }

            return Task.CompletedTask;
        };
        try
        {
            server.StartAsync().GetAwaiter().GetResult();
        }
        catch (System.Net.Sockets.SocketException e)
        {
            server.Dispose();
            throw new IOException($"embeddedBroker:address: cannot listen on {end}: {e.Message}", e);
        }

        return new EmbeddedBroker(server, end, ownPassword);
    }

    /// <summary>Stops listening and drops every session.</summary>
    public void Dispose()
    {
        _server.StopAsync(new MqttServerStopOptions()).GetAwaiter().GetResult();
        _server.Dispose();
    }
}
