using System.Text;
using Signal.Engine.Mqtt;

namespace Signal.Engine.Tests;

public sealed class MqttConnectionTests
{
    /// <summary>Every test runs against both clients: Debian's libmosquitto and MQTTnet.</summary>
    public static TheoryData<string> Clients => ["libmosquitto", "mqttnet"];

    private static IMqttConnection Connect(MosquittoBroker broker, string id, string client, bool clean = false) =>
        MqttConnections.Create(new MqttOptions { ClientId = id, CleanSession = clean, KeepAliveSeconds = 5, Client = client }.WithAddress(broker.Address));

    private static int Queued(IMqttConnection connection) => connection switch
    {
        MosquittoConnection m => m.Queued,
        MqttNetConnection n => n.Queued,
        _ => throw new ArgumentException("unknown client"),
    };

    /// <summary>Reads until <paramref name="count"/> messages arrived or the timeout passed; each as topic=payload.</summary>
    internal static async Task<List<string>> Drain(IMqttConnection connection, int count, TimeSpan timeout)
    {
        var got = new List<string>();
        using var cancel = new CancellationTokenSource(timeout);
        while (got.Count < count && await connection.WaitToReadAsync(cancel.Token))
        {
            while (connection.TryRead(out MqttMessage m))
            {
                got.Add(m.Topic + "=" + Encoding.UTF8.GetString(m.Payload));
                m.Release();
            }
        }

        return got;
    }

    [Theory]
    [MemberData(nameof(Clients))]
    public async Task Messages_from_mosquitto_pub_arrive_in_order_through_a_wildcard_subscription(string client)
    {
        using var broker = new MosquittoBroker();
        await using IMqttConnection sub = Connect(broker, "sub-order-" + client, client);
        sub.Subscribe("sensors/+/vib", 1);
        await sub.ConnectAsync(TimeSpan.FromSeconds(10));
        string file = Path.GetTempFileName();
        for (int i = 0; i < 5; i++)
        {
            File.WriteAllText(file, "m" + i);
            broker.PublishWithClient($"sensors/d{i % 2}/vib", file);
        }

        File.WriteAllText(file, "not matched");
        broker.PublishWithClient("sensors/d0/temp", file);
        List<string> got = await Drain(sub, 5, TimeSpan.FromSeconds(10));
        Assert.Equal(["sensors/d0/vib=m0", "sensors/d1/vib=m1", "sensors/d0/vib=m2", "sensors/d1/vib=m3", "sensors/d0/vib=m4"], got);
        File.Delete(file);
    }

    [Theory]
    [MemberData(nameof(Clients))]
    public async Task A_persistent_session_keeps_qos1_messages_published_while_the_subscriber_was_away(string client)
    {
        using var broker = new MosquittoBroker();
        await using (IMqttConnection first = Connect(broker, "sub-persist-" + client, client))
        {
            first.Subscribe("t/#", 1);
            await first.ConnectAsync(TimeSpan.FromSeconds(10));
        }

        await using (IMqttConnection pub = Connect(broker, "pub-persist-" + client, client, clean: true))
        {
            await pub.ConnectAsync(TimeSpan.FromSeconds(10));
            for (int i = 0; i < 100; i++)
            {
                Assert.True(pub.Publish("t/x", Encoding.UTF8.GetBytes(i.ToString(System.Globalization.CultureInfo.InvariantCulture)), qos: 1));
            }

            await Task.Delay(500);
        }

        await using IMqttConnection again = Connect(broker, "sub-persist-" + client, client);
        await again.ConnectAsync(TimeSpan.FromSeconds(10));
        List<string> got = await Drain(again, 100, TimeSpan.FromSeconds(10));
        Assert.Equal(Enumerable.Range(0, 100).Select(i => "t/x=" + i), got);
    }

    [Theory]
    [MemberData(nameof(Clients))]
    public async Task A_full_consumer_pauses_intake_and_loses_no_qos1_message(string client)
    {
        using var broker = new MosquittoBroker();
        var options = new MqttOptions { ClientId = "sub-pause-" + client, KeepAliveSeconds = 5, ReceiveCapacity = 50, Client = client }.WithAddress(broker.Address);
        await using IMqttConnection sub = MqttConnections.Create(options);
        sub.Subscribe("p", 1);
        await sub.ConnectAsync(TimeSpan.FromSeconds(10));
        await using IMqttConnection pub = Connect(broker, "pub-pause-" + client, client, clean: true);
        await pub.ConnectAsync(TimeSpan.FromSeconds(10));
        for (int i = 0; i < 2000; i++)
        {
            pub.Publish("p", BitConverter.GetBytes(i), qos: 1);
        }

        // Nobody reads for a while: intake must pause near the capacity, with the rest left at the broker.
        await Task.Delay(1500);
        Assert.True(sub.IsPaused);
        Assert.True(Queued(sub) is >= 50 and <= 50 + 100 + 12, $"queued {Queued(sub)}, received {sub.Counters.Received}, qos0 dropped {sub.Counters.Qos0Dropped}, pauses {sub.Counters.Pauses}");
        var got = new List<int>();
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (got.Count < 2000 && await sub.WaitToReadAsync(cancel.Token))
        {
            while (sub.TryRead(out MqttMessage m))
            {
                got.Add(BitConverter.ToInt32(m.Payload));
                m.Release();
            }
        }

        Assert.Equal(Enumerable.Range(0, 2000), got);
        Assert.True(sub.Counters.Pauses >= 1);
        Assert.Equal(1, sub.Counters.Connects);
    }

    [Theory]
    [MemberData(nameof(Clients))]
    public async Task An_mqtt5_shared_subscription_splits_the_messages_between_its_members(string client)
    {
        using var broker = new MosquittoBroker();
        MqttOptions V5(string id) => new MqttOptions { ClientId = id, ProtocolVersion = 5, CleanSession = true, KeepAliveSeconds = 5, Client = client }.WithAddress(broker.Address);
        await using IMqttConnection first = MqttConnections.Create(V5("share-a-" + client));
        await using IMqttConnection second = MqttConnections.Create(V5("share-b-" + client));
        foreach (IMqttConnection member in new[] { first, second })
        {
            member.Subscribe("$share/engines/shared/#", 1);
            await member.ConnectAsync(TimeSpan.FromSeconds(10));
        }

        await Task.Delay(300); // both SUBACKs in
        await using (IMqttConnection pub = Connect(broker, "pub-share-" + client, "libmosquitto", clean: true))
        {
            await pub.ConnectAsync(TimeSpan.FromSeconds(10));
            for (int i = 0; i < 200; i++)
            {
                Assert.True(pub.Publish("shared/x", Encoding.UTF8.GetBytes(i.ToString(System.Globalization.CultureInfo.InvariantCulture)), qos: 1));
            }

            await Task.Delay(500);
        }

        // Every message reaches exactly one member, and both members get some.
        var got = new List<string>();
        int[] perMember = new int[2];
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (got.Count < 200 && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            IMqttConnection[] members = [first, second];
            for (int k = 0; k < 2; k++)
            {
                while (members[k].TryRead(out MqttMessage m))
                {
                    got.Add(Encoding.UTF8.GetString(m.Payload));
                    perMember[k]++;
                    m.Release();
                }
            }

            await Task.Delay(20);
        }

        Assert.Equal(Enumerable.Range(0, 200).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).Order(), got.Order());
        Assert.All(perMember, count => Assert.True(count > 0, $"members got {string.Join(" and ", perMember)}"));
    }

    [Fact]
    public void Bad_options_name_the_field()
    {
        var e = Assert.Throws<ArgumentException>(() => new MqttOptions { KeepAliveSeconds = 1 }.Validate());
        Assert.Contains("mqtt.keepAliveSeconds", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => new MqttOptions().WithAddress("http://x"));
        Assert.Contains("mqtt://", e.Message, StringComparison.Ordinal);
        MqttOptions tls = new MqttOptions().WithAddress("mqtts://user:secret@broker.local");
        Assert.Equal(("broker.local", 8883, true, "user", "secret"), (tls.Host, tls.Port, tls.UseTls, tls.Username, tls.Password));
        Assert.DoesNotContain("secret", tls.ToString(), StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => tls.Validate());
        Assert.Contains("mqtt.caFile", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => new MqttOptions { Client = "paho" }.Validate());
        Assert.Contains("mqtt.client", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_client_is_chosen_by_the_options_and_websocket_addresses_need_mqttnet()
    {
        MqttOptions ws = new MqttOptions().WithAddress("ws://broker.local:8080/mqtt");
        Assert.Equal(("broker.local", 8080, false, "/mqtt"), (ws.Host, ws.Port, ws.UseTls, ws.WebSocketPath));
        Assert.Equal("ws://broker.local:8080/mqtt", ws.ToString());
        MqttOptions wss = new MqttOptions().WithAddress("wss://broker.local/mqtt");
        Assert.Equal((443, true), (wss.Port, wss.UseTls));
        Assert.Null(new MqttOptions().WithAddress("mqtt://h").WebSocketPath);

        // auto takes libmosquitto where it loads (it does on this machine: Debian's libmosquitto1), MQTTnet for WebSockets.
        Assert.Equal("libmosquitto", MqttConnections.Resolve(new MqttOptions()));
        Assert.Equal("mqttnet", MqttConnections.Resolve(ws));
        Assert.Equal("mqttnet", MqttConnections.Resolve(new MqttOptions { Client = "mqttnet" }));
        ws.Client = "libmosquitto";
        Assert.Contains("WebSockets", Assert.Throws<ArgumentException>(() => MqttConnections.Resolve(ws)).Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Clients))]
    public async Task Mutual_tls_carries_messages_and_the_broker_refuses_a_client_without_a_certificate(string client)
    {
        using var certs = new TestCertificates();
        using var broker = new MosquittoBroker(new TlsFiles(certs.Ca, certs.ServerCert, certs.ServerKey, RequireClientCertificate: true));
        MqttOptions Tls(string id, bool withCertificate) => new MqttOptions
        {
            ClientId = id,
            CleanSession = true,
            KeepAliveSeconds = 5,
            CaFile = certs.Ca,
            CertFile = withCertificate ? certs.ClientCert : null,
            KeyFile = withCertificate ? certs.ClientKey : null,
            ReconnectDelayMax = TimeSpan.FromSeconds(1),
            Client = client,
        }.WithAddress($"mqtts://127.0.0.1:{broker.Port}");

        await using IMqttConnection sub = MqttConnections.Create(Tls("sub-tls-" + client, withCertificate: true));
        sub.Subscribe("tls/#", 1);
        await sub.ConnectAsync(TimeSpan.FromSeconds(10));
        string file = Path.GetTempFileName();
        File.WriteAllText(file, "over tls");
        broker.PublishWithClient("tls/a", file, 1, "--cafile", certs.Ca, "--cert", certs.ClientCert, "--key", certs.ClientKey);
        Assert.Equal(["tls/a=over tls"], await Drain(sub, 1, TimeSpan.FromSeconds(10)));
        File.Delete(file);

        // Without a client certificate the TLS handshake fails; the connection never gets a session and says so.
        await using IMqttConnection anonymous = MqttConnections.Create(Tls("no-cert-" + client, withCertificate: false));
        var e = await Assert.ThrowsAsync<MqttException>(() => anonymous.ConnectAsync(TimeSpan.FromSeconds(3)));
        Assert.Contains("no session", e.Message, StringComparison.Ordinal);
        Assert.False(anonymous.IsConnected);
    }

    [Theory]
    [MemberData(nameof(Clients))]
    public async Task Mqtt5_session_expiry_keeps_messages_for_a_subscriber_that_was_away(string client)
    {
        using var broker = new MosquittoBroker();
        MqttOptions V5(string id) => new MqttOptions { ClientId = id, ProtocolVersion = 5, SessionExpirySeconds = 300, KeepAliveSeconds = 5, ReceiveMaximum = 10, Client = client }.WithAddress(broker.Address);
        await using (IMqttConnection first = MqttConnections.Create(V5("sub-v5-" + client)))
        {
            first.Subscribe("v5/#", 1);
            await first.ConnectAsync(TimeSpan.FromSeconds(10));
        }

        // Published by Debian's client over MQTT 5 while the subscriber is away: its session (expiry 300 s) keeps them.
        string file = Path.GetTempFileName();
        for (int i = 0; i < 20; i++)
        {
            File.WriteAllText(file, "v" + i);
            broker.PublishWithClient("v5/x", file, 1, "-V", "mqttv5");
        }

        File.Delete(file);
        await using IMqttConnection again = MqttConnections.Create(V5("sub-v5-" + client));
        await again.ConnectAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(Enumerable.Range(0, 20).Select(i => "v5/x=v" + i), await Drain(again, 20, TimeSpan.FromSeconds(10)));

        // The broker saw an MQTT 5 client (protocol level 5) with our session expiry.
        Assert.Matches(@"New client connected from 127\.0\.0\.1:\d+ as sub-v5-" + client + @" \(p5, c0, k5\)", broker.Log());
    }
}
