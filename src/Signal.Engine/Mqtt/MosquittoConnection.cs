using System.Buffers;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Signal.Engine.Mqtt;

/// <summary>
/// <see cref="IMqttConnection"/> over Eclipse libmosquitto 2.0, driven by our own network thread.
/// </summary>
/// <remarks>
/// <para><b>Threads.</b> One dedicated thread runs the network loop: <c>poll</c> on the broker socket and an eventfd,
/// then <c>mosquitto_loop_read</c>/<c>_write</c>/<c>_misc</c>. libmosquitto's callbacks run on it. The receive callback
/// only copies the message into a rented buffer and queues it, so it never blocks the loop. Publishes from other
/// threads are queued by libmosquitto (<c>mosquitto_threaded_set</c>) and the eventfd wakes the loop to write them.</para>
/// <para><b>Backpressure.</b> When the consumer holds <see cref="MqttOptions.ReceiveCapacity"/> unread messages, the loop
/// stops reading the socket (TCP flow control then stops the broker, which keeps further messages in the
/// session) but keeps writing and sending keep-alive pings. Every quarter keep-alive it reads once, so the ping's
/// answer is seen and the connection stays up; messages read then go to a reserve above the capacity (QoS 1/2 are
/// kept whatever happens, which the broker's in-flight window bounds; QoS 0 beyond a quarter of the capacity is
/// dropped and counted). Intake resumes when the consumer has drained to half the capacity.</para>
/// <para><b>Acknowledgement and crashes.</b> libmosquitto 2.0 queues the PUBACK of a QoS 1 message just before it
/// calls our receive callback, and this loop writes it on its next pass; a QoS 2 message is delivered after
/// PUBREC. So once a QoS 1/2 message is in our queue the broker considers it delivered: a crash of the process
/// loses what the queue holds (at most the capacity plus the reserve), while a lost connection loses nothing
/// (unacknowledged messages are redelivered, possibly twice, which the engine removes by sequence number).</para>
/// <para><b>Lifetime.</b> Dispose stops the loop thread and joins it before the libmosquitto handle and the GC handle
/// the callbacks use are released, so no callback ever reaches a disposed object.</para>
/// </remarks>
public sealed partial class MosquittoConnection : IMqttConnection, IDisposable
{
    private const short PollIn = 0x001, PollOut = 0x004;
    private const int ReadBurst = 64;
    private static int s_libraryInitialised;

    private readonly MqttOptions _options;
    private readonly ILogger _logger;
    private readonly MqttSession _session;
    private readonly MosquittoHandle _handle;
    private readonly GCHandle _self;
    private readonly Lock _subscriptionsLock = new();
    private readonly Dictionary<string, int> _subscriptions = new(StringComparer.Ordinal);
    private readonly Dictionary<int, string> _pendingSubscriptions = [];
    private volatile string? _subscriptionProblem;
    private readonly int _wake;
    private Thread? _thread;
    private volatile bool _stopping;
    private readonly MqttIntake _intake;
    private bool _socketOpen;

    /// <summary>A session that ends sooner than this after it began makes the next reconnect wait (back-off).</summary>
    private bool _disposed;

    /// <summary>Creates the connection (nothing is sent until <see cref="ConnectAsync"/>).</summary>
    /// <param name="options">Broker and session settings; validated here.</param>
    /// <param name="logger">Where connection events are logged, or null.</param>
    /// <exception cref="MqttException">libmosquitto is missing, or refused an option.</exception>
    public unsafe MosquittoConnection(MqttOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _logger = logger ?? NullLogger.Instance;
        _session = new MqttSession(options, _logger, string.Empty);
        _intake = new MqttIntake(options.ReceiveCapacity, Counters, resumed: Wake);
        EnsureLibrary();
        _self = GCHandle.Alloc(this);
        nint raw = LibMosquitto.New(options.ClientId, options.CleanSession, GCHandle.ToIntPtr(_self));
        if (raw == 0)
        {
            _self.Free();
            throw new MqttException("mqtt: libmosquitto could not create a client (out of memory or an invalid client id).");
        }

        _handle = new MosquittoHandle(raw);
        _wake = LibMosquitto.EventFd(0, 0x800 /* EFD_NONBLOCK */);
        Check(LibMosquitto.ThreadedSet(_handle, true), "threaded_set");
        Check(LibMosquitto.IntOption(_handle, LibMosquitto.OptionProtocolVersion, options.ProtocolVersion), "protocolVersion");
        Check(LibMosquitto.IntOption(_handle, LibMosquitto.OptionTcpNoDelay, 1), "tcp_nodelay");
        if (options.ProtocolVersion == 5)
        {
            Check(LibMosquitto.IntOption(_handle, LibMosquitto.OptionReceiveMaximum, options.ReceiveMaximum), "receiveMaximum");
        }

        if (options.Username is not null)
        {
            Check(LibMosquitto.UsernamePasswordSet(_handle, options.Username, options.Password), "username");
        }

        if (options.UseTls)
        {
            Check(LibMosquitto.TlsSet(_handle, options.CaFile, null, options.CertFile, options.KeyFile, 0), "tls");
            Check(LibMosquitto.TlsInsecureSet(_handle, options.TlsInsecure), "tlsInsecure");
        }

        if (options.WillTopic is not null)
        {
            byte[] will = Encoding.UTF8.GetBytes(options.WillPayload);
            fixed (byte* p = will)
            {
                Check(LibMosquitto.WillSet(_handle, options.WillTopic, will.Length, p, options.WillQos, options.WillRetain), "willTopic");
            }
        }

        LibMosquitto.ConnectCallbackSet(_handle, &OnConnect);
        LibMosquitto.DisconnectCallbackSet(_handle, &OnDisconnect);
        LibMosquitto.MessageCallbackSet(_handle, &OnMessage);
        LibMosquitto.SubscribeCallbackSet(_handle, &OnSubscribe);
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

    /// <summary>The version of the loaded libmosquitto, e.g. <c>2.0.11</c>.</summary>
    /// <exception cref="MqttException">libmosquitto is missing.</exception>
    public static string LibraryVersion
    {
        get
        {
            EnsureLibrary();
            LibMosquitto.LibVersion(out int major, out int minor, out int revision);
            return $"{major}.{minor}.{revision}";
        }
    }

    /// <inheritdoc/>
    public async Task ConnectAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_thread is null)
        {
            _thread = new Thread(Loop) { IsBackground = true, Name = "mqtt " + _options.ClientId };
            _thread.Start();
        }

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
            lock (_subscriptionsLock)
            {
                // Under the lock, so the SUBACK (on the network thread) finds the id even when it comes at once.
                Check(LibMosquitto.Subscribe(_handle, out int mid, pattern, qos), "subscribe " + pattern);
                _pendingSubscriptions[mid] = pattern;
            }

            Wake();
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
            Check(LibMosquitto.Unsubscribe(_handle, out _, pattern), "unsubscribe " + pattern);
            Wake();
        }
    }

    /// <inheritdoc/>
    public unsafe bool Publish(string topic, ReadOnlySpan<byte> payload, int qos = 0, bool retain = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)qos, 2u, nameof(qos));
        // While disconnected libmosquitto may queue a QoS 1 message, but a message handed over while it reconnects
        // was measured to go missing now and then; refusing it here lets the caller keep and retry it.
        if (_disposed || !_session.Connected)
        {
            Interlocked.Increment(ref Counters._publishFailures);
            return false;
        }

        int topicBytes = Encoding.UTF8.GetByteCount(topic);
        Span<byte> topicZ = topicBytes < 512 ? stackalloc byte[topicBytes + 1] : new byte[topicBytes + 1];
        Encoding.UTF8.GetBytes(topic, topicZ);
        topicZ[topicBytes] = 0;
        int rc;
        fixed (byte* t = topicZ)
        fixed (byte* p = payload)
        {
            rc = LibMosquitto.Publish(_handle, out _, t, payload.Length, p, qos, retain);
        }

        if (rc == LibMosquitto.Success)
        {
            Interlocked.Increment(ref Counters._published);
            Wake();
            return true;
        }

        Interlocked.Increment(ref Counters._publishFailures);
        return false;
    }

    /// <inheritdoc/>
    public bool TryRead(out MqttMessage message) => _intake.TryRead(out message);

    /// <inheritdoc/>
    public ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default) => _intake.WaitToReadAsync(cancellationToken);

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await Task.Run(Dispose).ConfigureAwait(false);
    }

    /// <summary>Disconnects cleanly (no last will), stops and joins the network thread, then frees libmosquitto's client.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _stopping = true;
        Wake();
        _thread?.Join();
        _intake.Close();

        _handle.Dispose();
        _self.Free();
        LibMosquitto.Close(_wake);
    }

    private static void EnsureLibrary()
    {
        if (Volatile.Read(ref s_libraryInitialised) == 1)
        {
            return;
        }

        try
        {
            _ = LibMosquitto.LibInit();
            Volatile.Write(ref s_libraryInitialised, 1);
        }
        catch (DllNotFoundException e)
        {
            throw new MqttException(
                "mqtt: libmosquitto.so.1 was not found. Install Eclipse libmosquitto: 'sudo apt-get install libmosquitto1' " +
                "(Debian, Ubuntu, Raspberry Pi OS; the package exists for amd64 and arm64).", e);
        }
    }

    private static void Check(int rc, string what)
    {
        if (rc != LibMosquitto.Success)
        {
            throw new MqttException($"mqtt: {what} failed: {LibMosquitto.ErrorText(rc)}.");
        }
    }

    private unsafe void Wake()
    {
        ulong one = 1;
        LibMosquitto.Write(_wake, &one, 8);
    }

    private unsafe void Loop()
    {
        TimeSpan delay = _options.ReconnectDelay;
        bool everOpened = false;
        long lastPausedRead = 0;
        long quarterKeepAlive = Stopwatch.Frequency * _options.KeepAliveSeconds / 4;
        var descriptors = stackalloc LibMosquitto.PollDescriptor[2];
        while (!_stopping)
        {
            if (!_socketOpen)
            {
                if (_session.FlapDelay > TimeSpan.Zero)
                {
                    // The last session ended soon after it began: most often another client took the session over
                    // (the same client id), and reconnecting at once would take it back, round and round.
                    SleepOrWake(_session.FlapDelay, descriptors);
                    if (_stopping)
                    {
                        break;
                    }
                }

                int rc = OpenSocket(everOpened);
                if (rc != LibMosquitto.Success)
                {
                    _session.Unreachable(LibMosquitto.ErrorText(rc), delay);
                    SleepOrWake(delay, descriptors);
                    delay = Backoff.Next(delay, _options.ReconnectDelayMax);
                    continue;
                }

                everOpened = true;
                _socketOpen = true;
                delay = _options.ReconnectDelay;
            }

            long now = Stopwatch.GetTimestamp();
            bool read = !_intake.IsPaused || now - lastPausedRead >= quarterKeepAlive;
            descriptors[0] = new LibMosquitto.PollDescriptor { Descriptor = LibMosquitto.Socket(_handle), Events = (short)((read ? PollIn : 0) | (LibMosquitto.WantWrite(_handle) ? PollOut : 0)) };
            descriptors[1] = new LibMosquitto.PollDescriptor { Descriptor = _wake, Events = PollIn };
            LibMosquitto.Poll(descriptors, 2, 100);
            if ((descriptors[1].ReturnedEvents & PollIn) != 0)
            {
                ulong drained;
                LibMosquitto.Read(_wake, &drained, 8);
            }

            int result = LibMosquitto.Success;
            if (read && descriptors[0].ReturnedEvents != 0 && (descriptors[0].ReturnedEvents & ~PollOut) != 0)
            {
                if (_intake.IsPaused)
                {
                    // Paused: one packet per quarter keep-alive, so PINGRESP and the like still get through.
                    result = LibMosquitto.LoopRead(_handle, 1);
                    lastPausedRead = now;
                }
                else
                {
                    // libmosquitto reads one packet per call; keep reading while whole messages come (a call on a drained
                    // socket is one read() that returns EAGAIN), which saves a poll and a misc pass per message under load.
                    for (int burst = 0; burst < ReadBurst && result == LibMosquitto.Success && !_intake.IsPaused; burst++)
                    {
                        long before = Interlocked.Read(ref Counters._received);
                        result = LibMosquitto.LoopRead(_handle, 1);
                        if (Interlocked.Read(ref Counters._received) == before)
                        {
                            break;
                        }
                    }

                    if (_intake.IsPaused)
                    {
                        lastPausedRead = now;
                    }
                }
            }

            if (result == LibMosquitto.Success && LibMosquitto.WantWrite(_handle))
            {
                result = LibMosquitto.LoopWrite(_handle, 1);
            }

            if (result == LibMosquitto.Success)
            {
                result = LibMosquitto.LoopMisc(_handle);
            }

            if (result != LibMosquitto.Success)
            {
                LostSocket(result);
            }
        }

        if (_socketOpen)
        {
            // A clean DISCONNECT: the broker keeps the session (clean session off) and does not publish the will.
            LibMosquitto.Disconnect(_handle);
            for (int i = 0; i < 10 && LibMosquitto.WantWrite(_handle); i++)
            {
                LibMosquitto.LoopWrite(_handle, 1);
            }

            SetConnected(false, "disconnected by the engine");
        }
    }

    private int OpenSocket(bool reconnect)
    {
        if (reconnect)
        {
            return LibMosquitto.Reconnect(_handle);
        }

        if (_options.ProtocolVersion != 5)
        {
            return LibMosquitto.Connect(_handle, _options.Host, _options.Port, _options.KeepAliveSeconds);
        }

        nint properties = 0;
        try
        {
            LibMosquitto.PropertyAddInt32(ref properties, LibMosquitto.PropertySessionExpiryInterval, _options.CleanSession ? 0 : _options.SessionExpirySeconds);
            return LibMosquitto.ConnectV5(_handle, _options.Host, _options.Port, _options.KeepAliveSeconds, null, properties);
        }
        finally
        {
            LibMosquitto.PropertyFreeAll(ref properties);
        }
    }

    private unsafe void SleepOrWake(TimeSpan delay, LibMosquitto.PollDescriptor* descriptors)
    {
        descriptors[0] = new LibMosquitto.PollDescriptor { Descriptor = _wake, Events = PollIn };
        if (LibMosquitto.Poll(descriptors, 1, (int)delay.TotalMilliseconds) > 0)
        {
            ulong drained;
            LibMosquitto.Read(_wake, &drained, 8);
        }
    }

    private void LostSocket(int rc)
    {
        if (!_socketOpen)
        {
            return;
        }

        _socketOpen = false;
        _session.Lost(Counters);
        SetConnected(false, LibMosquitto.ErrorText(rc));
    }

    private void SetConnected(bool connected, string reason) => _session.SetConnected(connected, reason, _stopping, this, ConnectionChanged);

    private void HandleConnect(int code)
    {
        if (code != 0)
        {
            _session.Refused(Counters, LibMosquitto.ConnackText(code));
            return;
        }

        KeyValuePair<string, int>[] subscriptions;
        lock (_subscriptionsLock)
        {
            subscriptions = [.. _subscriptions];
        }

        _subscriptionProblem = null;
        lock (_subscriptionsLock)
        {
            _pendingSubscriptions.Clear(); // SUBACKs of an earlier session never come
        }

        foreach ((string pattern, int qos) in subscriptions)
        {
            int rc = LibMosquitto.Subscribe(_handle, out int mid, pattern, qos);
            if (rc != LibMosquitto.Success)
            {
                _subscriptionProblem = $"subscribing to '{pattern}' failed: {LibMosquitto.ErrorText(rc)}";
                _session.SubscribeFailed(pattern, LibMosquitto.ErrorText(rc));
            }
            else
            {
                lock (_subscriptionsLock)
                {
                    _pendingSubscriptions[mid] = pattern;
                }
            }
        }

        SetConnected(true, "connected");
        _session.Began(Counters);
    }

    private unsafe void HandleMessage(LibMosquitto.Message* message)
    {
        int length = message->PayloadLength;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(1, length));
        new ReadOnlySpan<byte>(message->Payload, length).CopyTo(buffer);
        string topic = Marshal.PtrToStringUTF8((nint)message->Topic) ?? string.Empty;
        if (!_intake.Admit(message->Qos, length))
        {
            ArrayPool<byte>.Shared.Return(buffer);
            return;
        }

        _intake.Enqueue(topic, buffer, length, message->Qos, message->Retain != 0);
    }

    private unsafe void HandleSubscribe(int mid, int count, int* granted)
    {
        string? pattern;
        lock (_subscriptionsLock)
        {
            _pendingSubscriptions.Remove(mid, out pattern);
        }

        for (int i = 0; i < count; i++)
        {
            // 0x80 (MQTT 3.1.1) and every MQTT 5 reason code from 0x80 up are refusals.
            if (granted[i] >= 0x80)
            {
                _subscriptionProblem = $"the broker refused the subscription to '{pattern ?? "?"}' (SUBACK 0x{granted[i]:x2}: not authorised, or a filter it does not accept)";
                _session.SubscribeFailed(pattern ?? "?", $"SUBACK 0x{granted[i]:x2}");
            }
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static unsafe void OnSubscribe(nint mosq, nint userData, int mid, int count, int* granted)
    {
        try
        {
            From(userData)?.HandleSubscribe(mid, count, granted);
        }
        catch (Exception e)
        {
            Trace.TraceError("mqtt subscribe callback: " + e);
        }
    }

    private static MosquittoConnection? From(nint userData) => userData == 0 ? null : GCHandle.FromIntPtr(userData).Target as MosquittoConnection;

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnConnect(nint mosq, nint userData, int code)
    {
        try
        {
            From(userData)?.HandleConnect(code);
        }
        catch (Exception e)
        {
            Trace.TraceError("mqtt connect callback: " + e);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnDisconnect(nint mosq, nint userData, int code)
    {
        try
        {
            MosquittoConnection? self = From(userData);
            if (self is not null && !self._stopping)
            {
                self.LostSocket(code == 0 ? LibMosquitto.ErrorConnectionLost : code);
            }
        }
        catch (Exception e)
        {
            Trace.TraceError("mqtt disconnect callback: " + e);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static unsafe void OnMessage(nint mosq, nint userData, LibMosquitto.Message* message)
    {
        try
        {
            From(userData)?.HandleMessage(message);
        }
        catch (Exception e)
        {
            Trace.TraceError("mqtt message callback: " + e);
        }
    }
}
