using System.Text;
using Signal.Engine.Mqtt;

namespace Signal.Engine.Tests;

public sealed class MqttConnectionTests
{
    private static MosquittoConnection Connect(MosquittoBroker broker, string id, bool clean = false) =>
        new(new MqttOptions { ClientId = id, CleanSession = clean, KeepAliveSeconds = 5 }.WithAddress(broker.Address));

    private static async Task<List<string>> Drain(MosquittoConnection connection, int count, TimeSpan timeout)
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

    [Fact]
    public async Task Messages_from_mosquitto_pub_arrive_in_order_through_a_wildcard_subscription()
    {
        using var broker = new MosquittoBroker();
        await using MosquittoConnection sub = Connect(broker, "sub-order");
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

    [Fact]
    public async Task A_persistent_session_keeps_qos1_messages_published_while_the_subscriber_was_away()
    {
        using var broker = new MosquittoBroker();
        await using (MosquittoConnection first = Connect(broker, "sub-persist"))
        {
            first.Subscribe("t/#", 1);
            await first.ConnectAsync(TimeSpan.FromSeconds(10));
        }

        await using (MosquittoConnection pub = Connect(broker, "pub-persist", clean: true))
        {
            await pub.ConnectAsync(TimeSpan.FromSeconds(10));
            for (int i = 0; i < 100; i++)
            {
                Assert.True(pub.Publish("t/x", Encoding.UTF8.GetBytes(i.ToString(System.Globalization.CultureInfo.InvariantCulture)), qos: 1));
            }

            await Task.Delay(500);
        }

        await using MosquittoConnection again = Connect(broker, "sub-persist");
        await again.ConnectAsync(TimeSpan.FromSeconds(10));
        List<string> got = await Drain(again, 100, TimeSpan.FromSeconds(10));
        Assert.Equal(Enumerable.Range(0, 100).Select(i => "t/x=" + i), got);
    }

    [Fact]
    public async Task A_full_consumer_pauses_intake_and_loses_no_qos1_message()
    {
        using var broker = new MosquittoBroker();
        var options = new MqttOptions { ClientId = "sub-pause", KeepAliveSeconds = 5, ReceiveCapacity = 50 }.WithAddress(broker.Address);
        await using var sub = new MosquittoConnection(options);
        sub.Subscribe("p", 1);
        await sub.ConnectAsync(TimeSpan.FromSeconds(10));
        await using MosquittoConnection pub = Connect(broker, "pub-pause", clean: true);
        await pub.ConnectAsync(TimeSpan.FromSeconds(10));
        for (int i = 0; i < 2000; i++)
        {
            pub.Publish("p", BitConverter.GetBytes(i), qos: 1);
        }

        // Nobody reads for a while: intake must pause near the capacity, with the rest left at the broker.
        await Task.Delay(1500);
        Assert.True(sub.IsPaused);
        Assert.InRange(sub.Queued, 50, 50 + 100 + 12);
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
    }
}
