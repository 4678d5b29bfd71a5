using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Signal.Engine.Mqtt;

namespace Signal.Engine.Tests;

/// <summary>
/// The MQTTnet client's <c>ws://</c> and <c>wss://</c> addresses against a real mosquitto. Debian's mosquitto 2.0.11
/// will not open a WebSocket listener here, so a WebSocket front (Kestrel, MQTT's "mqtt" subprotocol, one binary
/// frame per read) relays each connection's bytes to mosquitto's TCP port unchanged, as a WebSocket gateway in front of
/// a broker does. The broker, the MQTT peer (mosquitto_pub/_sub) and the framing on the wire are not ours.
/// </summary>
public sealed class WebSocketTests
{
    /// <summary>A WebSocket → TCP relay to the broker; counts the connections it carried.</summary>
    private sealed class WebSocketFront : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private int _relayed;

        private WebSocketFront(WebApplication app) => _app = app;

        public int Port { get; private set; }

        public int Relayed => Volatile.Read(ref _relayed);

        public static async Task<WebSocketFront> StartAsync(int brokerPort, X509Certificate2? certificate = null)
        {
            WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0, l =>
            {
                if (certificate is not null)
                {
                    l.UseHttps(certificate);
                }
            }));
            WebApplication app = builder.Build();
            var front = new WebSocketFront(app);
            app.UseWebSockets();
            app.Map("/mqtt", (HttpContext context) => front.RelayAsync(context, brokerPort));
            await app.StartAsync();
            string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
            front.Port = new Uri(address).Port;
            return front;
        }

        private async Task RelayAsync(HttpContext context, int brokerPort)
        {
            if (!context.WebSockets.IsWebSocketRequest || !context.WebSockets.WebSocketRequestedProtocols.Contains("mqtt"))
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                return;
            }

            using WebSocket socket = await context.WebSockets.AcceptWebSocketAsync("mqtt");
            using var tcp = new TcpClient();
            await tcp.ConnectAsync(IPAddress.Loopback, brokerPort);
            NetworkStream broker = tcp.GetStream();
            Interlocked.Increment(ref _relayed);
            using var done = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
            Task up = Task.Run(async () =>
            {
                var buffer = new byte[16384];
                while (true)
                {
                    WebSocketReceiveResult read = await socket.ReceiveAsync(buffer, done.Token);
                    if (read.MessageType == WebSocketMessageType.Close)
                    {
                        return;
                    }

                    await broker.WriteAsync(buffer.AsMemory(0, read.Count), done.Token);
                }
            });
            Task down = Task.Run(async () =>
            {
                var buffer = new byte[16384];
                int n;
                while ((n = await broker.ReadAsync(buffer, done.Token)) > 0)
                {
                    await socket.SendAsync(buffer.AsMemory(0, n), WebSocketMessageType.Binary, endOfMessage: true, done.Token);
                }
            });
            await Task.WhenAny(up, down);
            await done.CancelAsync();
            try
            {
                await Task.WhenAll(up, down);
            }
            catch (Exception e) when (e is OperationCanceledException or WebSocketException or IOException)
            {
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task The_mqttnet_client_subscribes_and_publishes_over_websockets(bool tls)
    {
        using var broker = new MosquittoBroker();
        using var certificates = new TestCertificates();
        X509Certificate2? certificate = tls ? X509Certificate2.CreateFromPemFile(certificates.ServerCert, certificates.ServerKey) : null;
        await using WebSocketFront front = await WebSocketFront.StartAsync(broker.Port, certificate);
        string address = $"{(tls ? "wss" : "ws")}://127.0.0.1:{front.Port}/mqtt";
        MqttOptions Options(string id) => new MqttOptions { ClientId = id, KeepAliveSeconds = 5, Client = "auto", CaFile = tls ? certificates.Ca : null }.WithAddress(address);
        Assert.Equal("mqttnet", MqttConnections.Resolve(Options("check"))); // auto picks MQTTnet for a WebSocket address

        // Receive: QoS 1 messages from Debian's mosquitto_pub, over TCP to the broker, reach the WebSocket subscriber in order.
        await using IMqttConnection sub = MqttConnections.Create(Options("ws-sub"));
        sub.Subscribe("sensors/+/vib", 1);
        await sub.ConnectAsync(TimeSpan.FromSeconds(10));
        string file = Path.GetTempFileName();
        for (int i = 0; i < 5; i++)
        {
            File.WriteAllText(file, "m" + i);
            broker.PublishWithClient($"sensors/d{i % 2}/vib", file);
        }

        File.Delete(file);
        Assert.Equal(["sensors/d0/vib=m0", "sensors/d1/vib=m1", "sensors/d0/vib=m2", "sensors/d1/vib=m3", "sensors/d0/vib=m4"], await MqttConnectionTests.Drain(sub, 5, TimeSpan.FromSeconds(10)));

        // Publish: a WebSocket publisher's 200 QoS 1 messages reach a TCP subscriber (libmosquitto) complete and in order.
        await using IMqttConnection tcpSub = MqttConnections.Create(new MqttOptions { ClientId = "tcp-sub", KeepAliveSeconds = 5, Client = "libmosquitto" }.WithAddress(broker.Address));
        tcpSub.Subscribe("out/#", 1);
        await tcpSub.ConnectAsync(TimeSpan.FromSeconds(10));
        await Task.Delay(200);
        await using (IMqttConnection pub = MqttConnections.Create(Options("ws-pub")))
        {
            await pub.ConnectAsync(TimeSpan.FromSeconds(10));
            for (int i = 0; i < 200; i++)
            {
                Assert.True(pub.Publish("out/x", Encoding.UTF8.GetBytes(i.ToString(System.Globalization.CultureInfo.InvariantCulture)), qos: 1));
            }

            Assert.Equal(Enumerable.Range(0, 200).Select(i => "out/x=" + i), await MqttConnectionTests.Drain(tcpSub, 200, TimeSpan.FromSeconds(10)));
        }

        Assert.Equal(2, front.Relayed); // both WebSocket clients went through the front, none around it
        Assert.Contains("ws-sub", broker.Log(), StringComparison.Ordinal);
    }
}
