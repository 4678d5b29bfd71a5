using System.Globalization;

namespace Signal.Engine.Mqtt;

/// <summary>How a <see cref="MosquittoConnection"/> reaches and talks to the broker. Validated once by <see cref="Validate"/>.</summary>
public sealed class MqttOptions
{
    /// <summary>
    /// The MQTT client: <c>auto</c> (default: libmosquitto when <c>libmosquitto.so.1</c> loads and the address is not
    /// a WebSocket one, else MQTTnet), <c>libmosquitto</c> or <c>mqttnet</c> (see <see cref="MqttConnections"/>).
    /// </summary>
    public string Client { get; set; } = "auto";

    /// <summary>The WebSocket path (e.g. <c>/mqtt</c>) when the address is <c>ws://</c> or <c>wss://</c>, else null (plain TCP).</summary>
    public string? WebSocketPath { get; set; }

    /// <summary>Broker host name or address. Default <c>127.0.0.1</c>.</summary>
    public string Host { get; set; } = "127.0.0.1";

    /// <summary>Broker port. Default 1883 (8883 when <see cref="UseTls"/> is set from an <c>mqtts://</c> address).</summary>
    public int Port { get; set; } = 1883;

    /// <summary>Client id; with <see cref="CleanSession"/> off the broker keeps this id's session. Default <c>signal-edge-{host name}</c>.</summary>
    public string ClientId { get; set; } = "signal-edge-" + Environment.MachineName;

    /// <summary>Seconds between keep-alive pings. Default 30.</summary>
    public int KeepAliveSeconds { get; set; } = 30;

    /// <summary>
    /// Start a fresh session on connect. Default false: the broker keeps the subscriptions and queues QoS 1/2
    /// messages while the engine is away or paused, so nothing is lost across reconnects.
    /// </summary>
    public bool CleanSession { get; set; }

    /// <summary>MQTT protocol version: 4 (3.1.1, default) or 5.</summary>
    public int ProtocolVersion { get; set; } = 4;

    /// <summary>MQTT 5 only: seconds the broker keeps the session after a disconnect. Default 86,400 (one day).</summary>
    public uint SessionExpirySeconds { get; set; } = 86_400;

    /// <summary>MQTT 5 only: the most unacknowledged QoS 1/2 messages the broker may send at once. Default 100.</summary>
    public int ReceiveMaximum { get; set; } = 100;

    /// <summary>User name, or null.</summary>
    public string? Username { get; set; }

    /// <summary>Password, or null. Never logged.</summary>
    public string? Password { get; set; }

    /// <summary>Connect with TLS.</summary>
    public bool UseTls { get; set; }

    /// <summary>TLS: the CA certificate file (PEM) that signed the broker's certificate.</summary>
    public string? CaFile { get; set; }

    /// <summary>TLS: the client certificate (PEM) for mutual TLS, or null.</summary>
    public string? CertFile { get; set; }

    /// <summary>TLS: the client certificate's private key (PEM, unencrypted), or null.</summary>
    public string? KeyFile { get; set; }

    /// <summary>TLS: skip the broker host name check (testing only).</summary>
    public bool TlsInsecure { get; set; }

    /// <summary>First delay before reconnecting after a lost connection. Default 0.5 s; doubles up to <see cref="ReconnectDelayMax"/>, with ±20 % jitter.</summary>
    public TimeSpan ReconnectDelay { get; set; } = TimeSpan.FromSeconds(0.5);

    /// <summary>Longest delay between reconnect attempts. Default 30 s.</summary>
    public TimeSpan ReconnectDelayMax { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Received messages held for the consumer before intake pauses. Default 10,000. While paused the
    /// connection stops reading the socket, so the broker holds further messages (see <see cref="MosquittoConnection"/>).
    /// </summary>
    public int ReceiveCapacity { get; set; } = 10_000;

    /// <summary>Last-will topic the broker publishes when the connection dies without a clean disconnect, or null.</summary>
    public string? WillTopic { get; set; }

    /// <summary>Last-will payload. Default <c>offline</c>.</summary>
    public string WillPayload { get; set; } = "offline";

    /// <summary>Last-will QoS. Default 1.</summary>
    public int WillQos { get; set; } = 1;

    /// <summary>Publish the last will retained. Default true.</summary>
    public bool WillRetain { get; set; } = true;

    /// <summary>
    /// Reads <c>mqtt://[user[:password]@]host[:port]</c>, <c>mqtts://…</c>, or a WebSocket address
    /// <c>ws://host[:port]/path</c> or <c>wss://…</c> (MQTTnet only) into <see cref="Host"/>, <see cref="Port"/>,
    /// <see cref="UseTls"/>, <see cref="WebSocketPath"/> and the credentials.
    /// </summary>
    /// <param name="address">The broker address.</param>
    /// <returns>This instance.</returns>
    /// <exception cref="ArgumentException">The address is not an mqtt://, mqtts://, ws:// or wss:// URL.</exception>
    public MqttOptions WithAddress(string address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (!Uri.TryCreate(address, UriKind.Absolute, out Uri? uri) || uri.Scheme is not ("mqtt" or "mqtts" or "ws" or "wss") || string.IsNullOrEmpty(uri.Host))
        {
            throw new ArgumentException($"mqtt: '{address}' is not a broker address like mqtt://127.0.0.1:1883, mqtts://broker:8883 or ws://broker:8080/mqtt.", nameof(address));
        }

        bool webSocket = uri.Scheme is "ws" or "wss";
        UseTls = uri.Scheme is "mqtts" or "wss";
        Host = uri.Host;
        WebSocketPath = webSocket ? (uri.AbsolutePath.Length > 0 ? uri.AbsolutePath : "/") : null;
        Port = uri.IsDefaultPort || uri.Port <= 0 ? (webSocket ? (UseTls ? 443 : 80) : UseTls ? 8883 : 1883) : uri.Port;
        if (!string.IsNullOrEmpty(uri.UserInfo))
        {
            string[] parts = uri.UserInfo.Split(':', 2);
            Username = Uri.UnescapeDataString(parts[0]);
            Password = parts.Length > 1 ? Uri.UnescapeDataString(parts[1]) : Password;
        }

        return this;
    }

    /// <summary>Checks every field.</summary>
    /// <exception cref="ArgumentException">A field is out of range; the message names it.</exception>
    public void Validate()
    {
        static void Fail(string field, string why) => throw new ArgumentException($"mqtt.{field}: {why}");
        if (string.IsNullOrWhiteSpace(Host))
        {
            Fail("host", "is empty.");
        }

        if (Client is not ("auto" or "libmosquitto" or "mqttnet"))
        {
            Fail("client", $"'{Client}' is not auto, libmosquitto or mqttnet.");
        }

        if (Port is < 1 or > 65535)
        {
            Fail("port", $"{Port} is not a TCP port (1-65535).");
        }

        if (string.IsNullOrEmpty(ClientId) || ClientId.Length > 65535)
        {
            Fail("clientId", "must be 1 to 65,535 characters.");
        }

        if (KeepAliveSeconds is < 5 or > 65535)
        {
            Fail("keepAliveSeconds", $"{KeepAliveSeconds} is outside 5-65,535 (libmosquitto's minimum is 5).");
        }

        if (ProtocolVersion is not (4 or 5))
        {
            Fail("protocolVersion", $"{ProtocolVersion} is not 4 (MQTT 3.1.1) or 5.");
        }

        if (ReceiveMaximum is < 1 or > 65535)
        {
            Fail("receiveMaximum", $"{ReceiveMaximum} is outside 1-65,535.");
        }

        if (ReceiveCapacity < 16)
        {
            Fail("receiveCapacity", $"{ReceiveCapacity} is below 16 messages.");
        }

        if (ReconnectDelay <= TimeSpan.Zero || ReconnectDelayMax < ReconnectDelay)
        {
            Fail("reconnectDelay", "must be positive and not above reconnectDelayMax.");
        }

        if (WillQos is < 0 or > 2)
        {
            Fail("willQos", $"{WillQos} is not 0, 1 or 2.");
        }

        foreach ((string field, string? path) in new[] { ("caFile", CaFile), ("certFile", CertFile), ("keyFile", KeyFile) })
        {
            if (path is not null && !File.Exists(path))
            {
                Fail(field, $"'{path}' does not exist.");
            }
        }

        if (UseTls && CaFile is null)
        {
            Fail("caFile", "TLS needs the CA certificate that signed the broker's certificate.");
        }

        if ((CertFile is null) != (KeyFile is null))
        {
            Fail(CertFile is null ? "certFile" : "keyFile", "a client certificate needs both certFile and keyFile.");
        }
    }

    /// <summary>The broker as <c>mqtt://host:port</c>, without credentials (safe to log).</summary>
    /// <returns>The address.</returns>
    public override string ToString() => WebSocketPath is { } path
        ? string.Create(CultureInfo.InvariantCulture, $"{(UseTls ? "wss" : "ws")}://{Host}:{Port}{path}")
        : string.Create(CultureInfo.InvariantCulture, $"{(UseTls ? "mqtts" : "mqtt")}://{Host}:{Port}");
}
