using System.Text.Json;
using Signal.Engine.Live;
using Signal.Engine.Mqtt;

namespace Signal.Engine.Tests;

/// <summary>The engine behind a real, private mosquitto broker.</summary>
public sealed class BrokerEngineTests
{
    private static MosquittoConnection Connection(MosquittoBroker broker, string id, bool clean = false, int capacity = 10_000) =>
        new(new MqttOptions { ClientId = id, CleanSession = clean, KeepAliveSeconds = 5, ReceiveCapacity = capacity, ReconnectDelay = TimeSpan.FromMilliseconds(200), ReconnectDelayMax = TimeSpan.FromSeconds(1) }.WithAddress(broker.Address));

    /// <summary>The engine's clients under test: Debian's libmosquitto and MQTTnet.</summary>
    public static TheoryData<string> Clients => ["libmosquitto", "mqttnet"];

    /// <summary>The engine's own connection (the client under test): persistent session, subscribed to the engine's topic filter at QoS 1.</summary>
    private static async Task<IMqttConnection> ConnectEngine(MosquittoBroker broker, SignalEngine engine, string id, int capacity = 10_000, string client = "libmosquitto")
    {
        IMqttConnection connection = MqttConnections.Create(new MqttOptions { ClientId = id, KeepAliveSeconds = 5, ReceiveCapacity = capacity, ReconnectDelay = TimeSpan.FromMilliseconds(200), ReconnectDelayMax = TimeSpan.FromSeconds(1), Client = client }.WithAddress(broker.Address));
        connection.Subscribe(engine.TopicFilter, 1);
        await connection.ConnectAsync(TimeSpan.FromSeconds(10));
        return connection;
    }

    private static async Task WaitFor(Func<bool> done, TimeSpan timeout, Func<string> what)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!done())
        {
            if (clock.Elapsed > timeout)
            {
                Assert.Fail("timed out waiting: " + what());
            }

            await Task.Delay(20);
        }
    }

    [Theory]
    [MemberData(nameof(Clients))]
    public async Task Signals_published_by_mosquitto_pub_classify_exactly_as_offline_and_results_are_published(string client)
    {
        using var broker = new MosquittoBroker();
        EngineModel model = TestModels.WithFeatures();
        using var engine = new SignalEngine(model);
        var got = new List<Classification>();
        engine.Classifications.Subscribe(got.Add);
        await using IMqttConnection connection = await ConnectEngine(broker, engine, "engine-a-" + client, client: client);
        await using var publisher = new ResultPublisher(engine, connection, new PublishOptions { Mode = PublishMode.Every });
        await using MosquittoConnection watcher = Connection(broker, "watcher", clean: true);
        watcher.Subscribe("signal/class/#", 1);
        await watcher.ConnectAsync(TimeSpan.FromSeconds(10));
        using var stop = new CancellationTokenSource();
        Task loop = EngineRunner.RunAsync(engine, connection, stop.Token);

        float[] signal = TestModels.Signal(1200, 3, 21);
        List<byte[]> messages = TestModels.Messages(signal, 3, 1000, seed: 5);
        string file = Path.GetTempFileName();
        foreach (byte[] m in messages)
        {
            await File.WriteAllBytesAsync(file, m);
            broker.PublishWithClient("sensors/pump7/vib", file, qos: 1);
        }

        File.Delete(file);
        List<float[]> offline = TestModels.Offline(model, signal);
        await WaitFor(() => Volatile.Read(ref got).Count >= offline.Count && watcher.Queued >= offline.Count, TimeSpan.FromSeconds(20), () => $"{got.Count}/{offline.Count} steps, {watcher.Queued} published");
        await stop.CancelAsync();
        await loop;
        Assert.Equal(offline, got.Select(c => c.Probabilities));
        var published = new List<JsonElement>();
        while (watcher.TryRead(out MqttMessage m))
        {
            Assert.Equal("signal/class/pump7/vib", m.Topic);
            published.Add(JsonDocument.Parse(m.Payload.ToArray()).RootElement.Clone());
            m.Release();
        }

        Assert.Equal(offline.Count, published.Count);
        for (int t = 0; t < offline.Count; t++)
        {
            JsonElement json = published[t];
            int best = Array.IndexOf(offline[t], offline[t].Max());
            Assert.Equal(TestModels.Labels[best], json.GetProperty("label").GetString());
            Assert.Equal(t, json.GetProperty("step").GetInt64());
            Assert.Equal(offline[t][1], json.GetProperty("probabilities").GetProperty("inner").GetSingle());
        }
    }

    [Theory]
    [MemberData(nameof(Clients))]
    public async Task A_broker_restart_mid_stream_loses_and_duplicates_nothing_and_the_engine_reconnects_by_itself(string client)
    {
        using var broker = new MosquittoBroker();
        EngineModel model = TestModels.WithFeatures();
        using var engine = new SignalEngine(model);
        var got = new List<Classification>();
        engine.Classifications.Subscribe(got.Add);
        await using IMqttConnection connection = await ConnectEngine(broker, engine, "engine-restart-" + client, client: client);
        using var stop = new CancellationTokenSource();
        Task loop = EngineRunner.RunAsync(engine, connection, stop.Token);

        await using MosquittoConnection sensor = Connection(broker, "sensor-restart");
        await sensor.ConnectAsync(TimeSpan.FromSeconds(10));
        float[] signal = TestModels.Signal(6000, 3, 33);
        List<byte[]> messages = TestModels.Messages(signal, 3, 1000, seed: 9);
        for (int i = 0; i < messages.Count; i++)
        {
            if (i == messages.Count / 3)
            {
                broker.Stop();
                await Task.Delay(700);
                broker.Start();
            }

            // The sensor side is not under test: it publishes only while connected, so every message reaches the broker.
            await WaitFor(() => sensor.IsConnected, TimeSpan.FromSeconds(10), () => "the sensor did not reconnect");
            Assert.True(sensor.Publish("sensors/line1/motor", messages[i], qos: 1), $"message {i} was refused");
            await Task.Delay(3);
        }

        List<float[]> offline = TestModels.Offline(model, signal);
        await WaitFor(() => Volatile.Read(ref got).Count >= offline.Count, TimeSpan.FromSeconds(30), () => $"{got.Count}/{offline.Count} steps; sensor connects {sensor.Counters.Connects} published {sensor.Counters.Published} failures {sensor.Counters.PublishFailures}; engine received {connection.Counters.Received}; resets {string.Join(",", engine.Counters.Resets)}, duplicates {engine.Counters.Duplicates}, connects {connection.Counters.Connects}\n{broker.Log()}");
        await Task.Delay(200);
        await stop.CancelAsync();
        await loop;
        Assert.Empty(engine.Counters.Resets);          // no sequence or time gap: nothing lost
        Assert.Equal(offline, got.Select(c => c.Probabilities)); // nothing stepped twice, nothing reordered
        Assert.Equal(messages.Count, engine.Counters.Messages - engine.Counters.Duplicates);
        Assert.True(connection.Counters.Connects >= 2, "the engine did not reconnect");
        Assert.True(connection.Counters.ConnectionsLost >= 1);
    }

    [Fact]
    public async Task A_thousand_concurrent_streams_are_each_classified_in_order()
    {
        using var broker = new MosquittoBroker();
        EngineModel model = TestModels.WithFeatures(channels: 1);
        using var engine = new SignalEngine(model, new EngineOptions { MaxBatch = 128 });
        var steps = new Dictionary<string, List<long>>();
        engine.Classifications.Subscribe(c =>
        {
            if (!steps.TryGetValue(c.Stream, out List<long>? list))
            {
                steps[c.Stream] = list = [];
            }

            list.Add(c.Step);
        });
        await using IMqttConnection connection = await ConnectEngine(broker, engine, "engine-1000", capacity: 500);
        using var stop = new CancellationTokenSource();
        Task loop = EngineRunner.RunAsync(engine, connection, stop.Token);
        await using MosquittoConnection sensors = Connection(broker, "sensors-1000", clean: true);
        await sensors.ConnectAsync(TimeSpan.FromSeconds(10));

        // 4 messages of 48 samples per stream, round robin: 192 samples = 5 frames of 64 with hop 32.
        for (int m = 0; m < 4; m++)
        {
            for (int s = 0; s < 1000; s++)
            {
                float[] chunk = TestModels.Signal(48, 1, (s * 4) + m);
                sensors.Publish($"sensors/s{s}/vib", TestModels.Binary((ulong)m, 1_700_000_000_000_000_000 + (m * 48_000_000L), 1000, 1, chunk), qos: 1);
            }
        }

        await WaitFor(() => engine.Counters.Steps >= 5000, TimeSpan.FromSeconds(30), () => $"{engine.Counters.Steps} steps, {engine.StreamCount} streams");
        await stop.CancelAsync();
        await loop;
        Assert.Equal(1000, engine.StreamCount);
        Assert.Equal(1000, steps.Count);
        Assert.All(steps.Values, s => Assert.Equal([0L, 1, 2, 3, 4], s));
        Assert.True(engine.Counters.Batches < 5000 / 4, $"{engine.Counters.Batches} batches for 5000 steps: batching across streams is not happening");
    }
}
