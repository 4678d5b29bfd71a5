using System.Buffers;
using System.Diagnostics;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace Signal.Engine.Mqtt;

/// <summary>
/// An <see cref="IMqttConnection"/> on MQTTnet 5 (managed code: no libmosquitto needed, and WebSockets), with the
/// same contract as <see cref="MosquittoConnection"/>: persistent sessions, QoS 0/1/2, reconnect with back-off and
/// re-subscription, a back-off when the session is taken over, TLS and mutual TLS, MQTT 5 session expiry and receive
/// maximum, the intake limit, and the last will.
/// </summary>
/// <remarks>
/// <para><b>Intake limit.</b> MQTTnet reads the socket on its own (keep-alive included) and hands each publish to
/// our handler from a queue of its own. At <see cref="MqttOptions.ReceiveCapacity"/> waiting messages the handler
/// waits for the consumer before it takes (and acknowledges) the next QoS 1/2 message, so the broker's in-flight
/// window (receive maximum) fills and the rest stays at the broker. QoS 0 messages beyond the capacity and a quarter
/// are dropped and counted, as with libmosquitto.</para>
/// <para><b>Publishing.</b> A publish is handed to MQTTnet while connected; unlike libmosquitto, MQTTnet's client keeps
/// no outgoing queue across a reconnect, so a QoS 1/2 message in flight when the connection drops is lost and counted
/// in <see cref="MqttCounters.PublishFailures"/>.</para>
/// <para>Measured with <c>bench e2e --client libmosquitto,mqttnet</c> (1,000 streams, 2 cores): the engine on MQTTnet
/// took 0.90× libmosquitto's rate at QoS 0 and 1.07× at QoS 1 (the broker's ceiling there), with about 1.7 KB more
/// allocated per message (MQTTnet's packet and event objects); libmosquitto stays the default where it loads
/// (<see cref="MqttConnections"/>). WebSocket addresses use MQTTnet's WebSocket transport ("mqtt" subprotocol), tested
/// against mosquitto behind a WebSocket front that relays the bytes (tests/Signal.Engine.Tests/WebSocketTests.cs: Debian's
/// mosquitto 2.0.11 would not open a WebSocket listener on our machines).</para>
/// </remarks>
public sealed partial class MqttNetConnection : IMqttConnection
{
    private readonly MqttOptions _options;
    private readonly ILogger _logger;
    private readonly IMqttClient _client;
    private readonly MqttClientOptions _clientOptions;
    private readonly SemaphoreSlim _space = new(0);
    private readonly Dictionary<string, int> _subscriptions = new(StringComparer.Ordinal);
    private readonly Lock _subscriptionsLock = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _wake = new(0);
    private Task? _loop;
    private readonly MqttSession _session;
    private readonly MqttIntake _intake;
    private volatile bool _disposed;
    private volatile string? _subscriptionProblem;

    /// <summary>Creates the connection (nothing is sent until <see cref="ConnectAsync"/>).</summary>
    /// <param name="options">Broker, session, TLS and intake options (validated here).</param>
    /// <param name="logger">Where connection events are logged, or null.</param>
    /// <exception cref="ArgumentException">An option is out of range; the message names it.</exception>
    public MqttNetConnection(MqttOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _logger = logger ?? NullLogger.Instance;
        _session = new MqttSession(options, _logger, " (MQTTnet)");
        _client = new MqttClientFactory().CreateMqttClient();
        _clientOptions = BuildOptions(options);
        _intake = new MqttIntake(options.ReceiveCapacity, Counters, roomAgain: () => _space.Release()); // the handler may be waiting at the limit
        _client.ApplicationMessageReceivedAsync += OnReceived;
        _client.DisconnectedAsync += OnDisconnected;
    }

    /// <inheritdoc/>
    public bool IsConnected => _session.Connected;

    /// <inheritdoc/>
    public bool IsPaused => _intake.IsPaused;

    /// <inheritdoc/>
    public string? SubscriptionProblem => _subscriptionProblem;

    /// <inheritdoc/>
    public MqttCounters Counters { get; } = new();

    /// <summary>Messages received and not yet taken by the consumer.</summary>
    public int Queued => _intake.Queued;

    /// <inheritdoc/>
    public event EventHandler<MqttConnectionEventArgs>? ConnectionChanged;

    /// <inheritdoc/>
    public async Task ConnectAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _loop ??= Task.Run(() => LoopAsync(_stop.Token), CancellationToken.None);
        await _session.WaitForFirstAsync(timeout, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public void Subscribe(string pattern, int qos)
    {
        MqttSession.CheckSubscription(pattern, qos);
        lock (_subscriptionsLock)
        {
            _subscriptions[pattern] = qos;
        }

        if (_session.Connected)
        {
            _ = SubscribeAsync([new(pattern, qos)], _stop.Token);
        }
    }

    /// <inheritdoc/>
    public void Unsubscribe(string pattern)
    {
        ArgumentException.ThrowIfNullOrEmpty(pattern);
        lock (_subscriptionsLock)
        {
            if (!_subscriptions.Remove(pattern))
            {
                return;
            }
        }

        if (_session.Connected)
        {
            _ = UnsubscribeAsync(pattern);
        }
    }

    private async Task UnsubscribeAsync(string pattern)
    {
        try
        {
            await _client.UnsubscribeAsync(new MqttClientUnsubscribeOptionsBuilder().WithTopicFilter(pattern).Build(), _stop.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is MQTTnet.Exceptions.MqttCommunicationException or OperationCanceledException or InvalidOperationException)
        {
            // Disconnected meanwhile: the subscription is gone from the list, so a reconnect does not renew it.
        }
    }

    /// <inheritdoc/>
    public bool Publish(string topic, ReadOnlySpan<byte> payload, int qos = 0, bool retain = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)qos, 2u, nameof(qos));
        if (_disposed || !_session.Connected)
        {
            Interlocked.Increment(ref Counters._publishFailures);
            return false;
        }

        MqttApplicationMessage message = new MqttApplicationMessageBuilder()
            .WithTopic(topic)
            .WithPayload(payload.ToArray())
            .WithQualityOfServiceLevel((MqttQualityOfServiceLevel)qos)
            .WithRetainFlag(retain)
            .Build();
        Interlocked.Increment(ref Counters._published);
        _ = PublishAsync(message);
        return true;
    }

    /// <inheritdoc/>
    public bool TryRead(out MqttMessage message) => _intake.TryRead(out message);

    /// <inheritdoc/>
    public ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default) => _intake.WaitToReadAsync(cancellationToken);

    /// <summary>Disconnects cleanly (no last will), stops reconnecting and releases every message not taken.</summary>
    /// <returns>A task that completes when closed.</returns>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await _stop.CancelAsync().ConfigureAwait(false);
        _wake.Release();
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }

        if (_client.IsConnected)
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await _client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithReason(MqttClientDisconnectOptionsReason.NormalDisconnection).Build(), timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or MQTTnet.Exceptions.MqttCommunicationException)
            {
            }
        }

        SetConnected(false, "disconnected by the engine");
        _client.Dispose();
        _intake.Close();

        _stop.Dispose();
        _wake.Dispose();
        _space.Dispose();
    }

    private static MqttClientOptions BuildOptions(MqttOptions o)
    {
        MqttClientOptionsBuilder builder = new MqttClientOptionsBuilder()
            .WithClientId(o.ClientId)
            .WithKeepAlivePeriod(TimeSpan.FromSeconds(o.KeepAliveSeconds))
            .WithTimeout(TimeSpan.FromSeconds(10))
            .WithProtocolVersion(o.ProtocolVersion == 5 ? MqttProtocolVersion.V500 : MqttProtocolVersion.V311);
        builder = o.WebSocketPath is { } path
            ? builder.WithWebSocketServer(w => w.WithUri($"{(o.UseTls ? "wss" : "ws")}://{o.Host}:{o.Port}{path}"))
            : builder.WithTcpServer(o.Host, o.Port);
        if (o.ProtocolVersion == 5)
        {
            // MQTT 5: clean start off and a session expiry keep the session; the receive maximum bounds in-flight messages.
            builder = builder.WithCleanStart(o.CleanSession).WithSessionExpiryInterval(o.CleanSession ? 0 : o.SessionExpirySeconds).WithReceiveMaximum((ushort)o.ReceiveMaximum);
        }
        else
        {
            builder = builder.WithCleanSession(o.CleanSession);
        }

        if (o.Username is not null)
        {
            builder = builder.WithCredentials(o.Username, o.Password ?? string.Empty);
        }

        if (o.WillTopic is not null)
        {
            builder = builder.WithWillTopic(o.WillTopic).WithWillPayload(Encoding.UTF8.GetBytes(o.WillPayload))
                .WithWillQualityOfServiceLevel((MqttQualityOfServiceLevel)o.WillQos).WithWillRetain(o.WillRetain);
        }

        if (o.UseTls)
        {
            X509Certificate2 ca = X509CertificateLoader.LoadCertificateFromFile(o.CaFile!);
            builder = builder.WithTlsOptions(t =>
            {
                t.UseTls().WithTargetHost(o.Host).WithTrustChain([ca]);
                t.WithCertificateValidationHandler(e => ValidateServer(e.Certificate, ca, e.SslPolicyErrors, o.TlsInsecure));
                if (o.CertFile is not null)
                {
                    // A PEM pair whose key SslStream can use on every platform: round-trip it through PKCS#12.
                    using X509Certificate2 pem = X509Certificate2.CreateFromPemFile(o.CertFile, o.KeyFile);
                    t.WithClientCertificates([X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null)]);
                }
            });
        }

        return builder.Build();
    }

    /// <summary>The broker's certificate must chain to the configured CA (and name the host unless insecure).</summary>
    private static bool ValidateServer(X509Certificate? certificate, X509Certificate2 ca, System.Net.Security.SslPolicyErrors errors, bool insecure)
    {
        if (certificate is null)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var server = new X509Certificate2(certificate);
        bool chained = chain.Build(server);
        bool nameOk = insecure || (errors & System.Net.Security.SslPolicyErrors.RemoteCertificateNameMismatch) == 0;
        return chained && nameOk;
    }

    /// <summary>Connects, and reconnects after every loss with back-off until disposed.</summary>
    private async Task LoopAsync(CancellationToken stop)
    {
        TimeSpan delay = _options.ReconnectDelay;
        while (!stop.IsCancellationRequested)
        {
            if (!_client.IsConnected)
            {
                if (_session.FlapDelay > TimeSpan.Zero)
                {
                    // The last session ended soon after it began: most often another client took it over.
                    await WaitAsync(_session.FlapDelay, stop).ConfigureAwait(false);
                    if (stop.IsCancellationRequested)
                    {
                        break;
                    }
                }

                try
                {
                    MqttClientConnectResult result = await _client.ConnectAsync(_clientOptions, stop).ConfigureAwait(false);
                    if (result.ResultCode != MqttClientConnectResultCode.Success)
                    {
                        _session.Refused(Counters, result.ResultCode.ToString());
                        await WaitAsync(delay, stop).ConfigureAwait(false);
                        delay = Backoff.Next(delay, _options.ReconnectDelayMax);
                    }
                    else
                    {
                        delay = _options.ReconnectDelay;
                        await OnConnectedAsync(stop).ConfigureAwait(false);
                    }
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    break;
                }
                catch (MQTTnet.Adapter.MqttConnectingFailedException e) when (e.InnerException is null)
                {
                    // The broker answered with a CONNACK that refuses us (bad credentials, client id not allowed…).
                    _session.Refused(Counters, e.Message);
                    await WaitAsync(delay, stop).ConfigureAwait(false);
                    delay = Backoff.Next(delay, _options.ReconnectDelayMax);
                }
                catch (Exception e) when (e is MQTTnet.Exceptions.MqttCommunicationException or MQTTnet.Adapter.MqttConnectingFailedException or OperationCanceledException or System.Net.Sockets.SocketException or IOException or InvalidOperationException or System.Security.Authentication.AuthenticationException)
                {
                    _session.Unreachable(e.GetBaseException().Message, delay);
                    await WaitAsync(delay, stop).ConfigureAwait(false);
                    delay = Backoff.Next(delay, _options.ReconnectDelayMax);
                }

                continue;
            }

            await WaitAsync(Timeout.InfiniteTimeSpan, stop).ConfigureAwait(false);
        }
    }

    private async Task WaitAsync(TimeSpan delay, CancellationToken stop)
    {
        try
        {
            await _wake.WaitAsync(delay, stop).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task OnConnectedAsync(CancellationToken stop)
    {
        _subscriptionProblem = null;
        KeyValuePair<string, int>[] subscriptions;
        lock (_subscriptionsLock)
        {
            subscriptions = [.. _subscriptions];
        }

        SetConnected(true, "connected");
        await SubscribeAsync(subscriptions, stop).ConfigureAwait(false);
        _session.Began(Counters);
    }

    private async Task SubscribeAsync(KeyValuePair<string, int>[] subscriptions, CancellationToken stop)
    {
        if (subscriptions.Length == 0)
        {
            return;
        }

        MqttClientSubscribeOptionsBuilder builder = new MqttClientFactory().CreateSubscribeOptionsBuilder();
        foreach ((string pattern, int qos) in subscriptions)
        {
            builder = builder.WithTopicFilter(pattern, (MqttQualityOfServiceLevel)qos);
        }

        try
        {
            MqttClientSubscribeResult result = await _client.SubscribeAsync(builder.Build(), stop).ConfigureAwait(false);
            foreach (MqttClientSubscribeResultItem item in result.Items)
            {
                if ((int)item.ResultCode >= 0x80)
                {
                    _subscriptionProblem = $"the broker refused the subscription to '{item.TopicFilter.Topic}' (SUBACK 0x{(int)item.ResultCode:x2}: not authorised, or a filter it does not accept)";
                    _session.SubscribeFailed(item.TopicFilter.Topic, $"SUBACK 0x{(int)item.ResultCode:x2}");
                }
            }
        }
        catch (Exception e) when (e is MQTTnet.Exceptions.MqttCommunicationException or OperationCanceledException or InvalidOperationException)
        {
            // The connection dropped while subscribing: the next session subscribes again.
            _session.SubscribeFailed(string.Join(", ", subscriptions.Select(s => s.Key)), e.GetBaseException().Message);
        }
    }

    private async Task OnReceived(MqttApplicationMessageReceivedEventArgs e)
    {
        MqttApplicationMessage message = e.ApplicationMessage;
        ReadOnlySequence<byte> payload = message.Payload;
        int length = (int)payload.Length, qos = (int)message.QualityOfServiceLevel;
        if (!_intake.Admit(qos, length))
        {
            return;
        }

        // At the limit a QoS 1/2 message waits here, unacknowledged, until the consumer takes one.
        while (qos > 0 && _intake.IsFull && !_stop.IsCancellationRequested)
        {
            _intake.Pause();
            try
            {
                await _space.WaitAsync(TimeSpan.FromMilliseconds(100), _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }

        byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(1, length));
        payload.CopyTo(buffer);
        _intake.Enqueue(message.Topic, buffer, length, qos, message.Retain);
    }

    private async Task PublishAsync(MqttApplicationMessage message)
    {
        try
        {
            await _client.PublishAsync(message, _stop.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is MQTTnet.Exceptions.MqttCommunicationException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            Interlocked.Increment(ref Counters._publishFailures);
        }
    }

    private Task OnDisconnected(MqttClientDisconnectedEventArgs e)
    {
        if (!_disposed)
        {
            _session.Lost(Counters);
        }

        SetConnected(false, e.Exception?.GetBaseException().Message ?? e.Reason.ToString());
        if (!_disposed)
        {
            _wake.Release();
        }

        return Task.CompletedTask;
    }

    private void SetConnected(bool connected, string reason) => _session.SetConnected(connected, reason, _disposed, this, ConnectionChanged);
}

/// <summary>Chooses the MQTT client (<see cref="MqttOptions.Client"/>): libmosquitto where it loads, else MQTTnet.</summary>
public static class MqttConnections
{
    /// <summary>Creates the connection <paramref name="options"/> asks for.</summary>
    /// <param name="options">The options; <see cref="MqttOptions.Client"/> is auto, libmosquitto or mqttnet.</param>
    /// <param name="logger">Where connection events are logged, or null.</param>
    /// <returns>The connection (not yet connected).</returns>
    /// <exception cref="ArgumentException">An option is out of range, or libmosquitto is asked for a WebSocket address.</exception>
    /// <exception cref="MqttException">libmosquitto is asked for and does not load.</exception>
    public static IMqttConnection Create(MqttOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        return Resolve(options) == "libmosquitto" ? new MosquittoConnection(options, logger) : CreateMqttNet(options, logger);
    }

    // A method of its own, so a daemon on libmosquitto never loads MQTTnet's assembly.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static MqttNetConnection CreateMqttNet(MqttOptions options, ILogger? logger) => new(options, logger);

    /// <summary>The client <see cref="Create"/> picks: <c>libmosquitto</c> or <c>mqttnet</c>.</summary>
    /// <param name="options">The options.</param>
    /// <returns>The client's name.</returns>
    /// <exception cref="ArgumentException">libmosquitto is asked for a WebSocket address, or the client name is unknown.</exception>
    public static string Resolve(MqttOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.Client switch
        {
            "mqttnet" => "mqttnet",
            "libmosquitto" when options.WebSocketPath is not null => throw new ArgumentException("mqtt.client: libmosquitto's client has no WebSockets; use mqtt.client mqttnet (or auto) for a ws:// or wss:// address."),
            "libmosquitto" => "libmosquitto",
            "auto" => options.WebSocketPath is null && LibMosquittoLoads() ? "libmosquitto" : "mqttnet",
            var other => throw new ArgumentException($"mqtt.client: '{other}' is not auto, libmosquitto or mqttnet."),
        };
    }

    // Loaded and kept: auto then uses it anyway, and unloading a library that pulls in OpenSSL is not safe.
    private static bool LibMosquittoLoads() => System.Runtime.InteropServices.NativeLibrary.TryLoad("libmosquitto.so.1", out _);
}
