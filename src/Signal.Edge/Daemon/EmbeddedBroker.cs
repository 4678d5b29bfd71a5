using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
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

    /// <summary>
    /// The broker's certificate (PEM) for TLS, with <see cref="KeyFile"/>: sensors then connect with <c>mqtts</c> to
    /// <see cref="Address"/> (plain MQTT is not served there). Null: plain MQTT.
    /// </summary>
    public string? CertFile { get; set; }

    /// <summary>The private key (PEM) of <see cref="CertFile"/>. Keep it readable by the daemon's user alone.</summary>
    public string? KeyFile { get; set; }

    /// <summary>Whether sensors connect with TLS.</summary>
    public bool UsesTls => CertFile is not null;

    /// <summary>The TLS certificate with its key, or null without TLS.</summary>
    /// <exception cref="ArgumentException">Only one of the files is given, one is missing, or they do not load as a certificate and its key.</exception>
    public X509Certificate2? Certificate()
    {
        if (CertFile is null && KeyFile is null)
        {
            return null;
        }

        if (CertFile is null || KeyFile is null)
        {
            throw new ArgumentException($"embeddedBroker:{(CertFile is null ? "certFile" : "keyFile")}: TLS needs both certFile and keyFile.");
        }

        foreach ((string key, string path) in new[] { ("certFile", CertFile), ("keyFile", KeyFile) })
        {
            if (!File.Exists(path))
            {
                throw new ArgumentException($"embeddedBroker:{key}: '{path}' does not exist.");
            }
        }

        try
        {
            return X509Certificate2.CreateFromPemFile(CertFile, KeyFile);
        }
        catch (CryptographicException e)
        {
            throw new ArgumentException($"embeddedBroker:certFile/keyFile: '{CertFile}' and '{KeyFile}' are not a PEM certificate and its private key: {e.Message}", e);
        }
    }

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
        Certificate()?.Dispose();
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
/// MQTT 3.1.1 client ("identifier rejected"), so 3.1.1 sensors must send one (<c>mosquitto_pub -i …</c>). With TLS the
/// configured address serves TLS only, and the daemon's own client connects to a plain listener on a free loopback
/// port (authenticated like everyone else), so it needs no CA for the broker's certificate.
/// </remarks>
internal sealed class EmbeddedBroker : IDisposable
{
    /// <summary>The daemon's own user on the embedded broker.</summary>
    public const string OwnUser = "signal-edge";

    private readonly MqttServer _server;

    private readonly X509Certificate2? _certificate;

    private EmbeddedBroker(MqttServer server, IPEndPoint endPoint, string ownPassword, int ownPort, X509Certificate2? certificate)
    {
        _server = server;
        EndPoint = endPoint;
        OwnPassword = ownPassword;
        _ownPort = ownPort;
        _certificate = certificate;
    }

    private readonly int _ownPort;

    /// <summary>Where it listens.</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>The password of <see cref="OwnUser"/>, drawn at start.</summary>
    public string OwnPassword { get; }

    /// <summary>The address the daemon's own client connects to (loopback when the broker listens on every address).</summary>
    public string ClientAddress => _certificate is not null
        ? string.Create(CultureInfo.InvariantCulture, $"mqtt://127.0.0.1:{_ownPort}")
        : string.Create(CultureInfo.InvariantCulture, $"mqtt://{(EndPoint.Address.Equals(IPAddress.Any) ? "127.0.0.1" : EndPoint.Address.ToString())}:{EndPoint.Port}");

    /// <summary>Whether sensors connect with TLS.</summary>
    public bool UsesTls => _certificate is not null;

    /// <summary>Starts the broker.</summary>
    /// <exception cref="ArgumentException">A setting is wrong.</exception>
    /// <exception cref="IOException">The port cannot be opened (in use, or not allowed).</exception>
    public static EmbeddedBroker Start(EmbeddedBrokerSettings settings)
    {
        IPEndPoint end = settings.EndPoint();
        Dictionary<string, string>? users = settings.Users();
        string ownPassword = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
        X509Certificate2? certificate = settings.Certificate();
        int ownPort = certificate is null ? end.Port : Signal.Engine.LocalServer.FreePort();
        MqttServerOptionsBuilder builder = new MqttServerOptionsBuilder()
            .WithDefaultEndpoint()
            .WithDefaultEndpointBoundIPAddress(certificate is null ? end.Address : IPAddress.Loopback)
            .WithDefaultEndpointPort(ownPort)
            .WithPersistentSessions(true);
        if (certificate is not null)
        {
            builder = builder.WithEncryptedEndpoint()
                .WithEncryptedEndpointBoundIPAddress(end.Address)
                .WithEncryptedEndpointPort(end.Port)
                .WithEncryptionCertificate(certificate)
                .WithEncryptionSslProtocol(System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13);
        }

        MqttServerOptions options = builder.Build();
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
            certificate?.Dispose();
            throw new IOException($"embeddedBroker:address: cannot listen on {end}: {e.Message}", e);
        }

        return new EmbeddedBroker(server, end, ownPassword, ownPort, certificate);
    }

    /// <summary>Stops listening and drops every session.</summary>
    public void Dispose()
    {
        _server.StopAsync(new MqttServerStopOptions()).GetAwaiter().GetResult();
        _server.Dispose();
        _certificate?.Dispose();
    }
}
