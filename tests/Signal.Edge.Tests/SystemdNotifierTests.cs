using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Signal.Edge.Daemon;
using Xunit;

namespace Signal.Edge.Tests;

/// <summary>The sd_notify client against a real Unix datagram socket.</summary>
public sealed class SystemdNotifierTests
{
    [Fact]
    public void A_listener_that_stops_reading_makes_notifications_fail_within_the_patience_not_hang()
    {
        string folder = Directory.CreateTempSubdirectory("signal-notify-").FullName;
        try
        {
            string path = Path.Combine(folder, "notify.sock");
            using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            socket.Bind(new UnixDomainSocketEndPoint(path));
            using var notifier = new SystemdNotifier(path, "900000", null);
            Assert.True(notifier.Enabled);
            Assert.Equal(TimeSpan.FromSeconds(0.9), notifier.WatchdogInterval);

            // Nobody reads: the kernel's queue (net.unix.max_dgram_qlen, 10 by default) fills, and then a send finds no room.
            int sent = 0;
            var clock = Stopwatch.StartNew();
            while (notifier.Notify("WATCHDOG=1") && sent < 10_000)
            {
                sent++;
            }

            Assert.InRange(sent, 1, 9_999);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"filling the queue took {clock.Elapsed}");
            clock.Restart();
            Assert.False(notifier.Notify("STOPPING=1"));
            Assert.InRange(clock.Elapsed, SystemdNotifier.SendPatience * 0.9, SystemdNotifier.SendPatience + TimeSpan.FromSeconds(5));

            // The reader catches up: what was queued arrives in order, and the next notification goes through.
            var buffer = new byte[256];
            socket.ReceiveTimeout = 5000;
            Assert.Equal("WATCHDOG=1", Encoding.UTF8.GetString(buffer, 0, socket.Receive(buffer)));
            Assert.True(notifier.Notify("STOPPING=1"));
            var heard = new List<string>();
            for (int i = 0; i < sent; i++)
            {
                heard.Add(Encoding.UTF8.GetString(buffer, 0, socket.Receive(buffer)));
            }

            Assert.Equal("STOPPING=1", heard[^1]);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void Without_a_socket_nothing_is_sent_and_no_watchdog_is_set()
    {
        using var notifier = new SystemdNotifier(null, "900000", null);
        Assert.False(notifier.Enabled);
        Assert.False(notifier.Notify("READY=1"));
    }

    [Fact]
    public void A_watchdog_meant_for_another_process_is_not_ours()
    {
        using var notifier = new SystemdNotifier("/nonexistent/notify.sock", "900000", "1");
        Assert.Null(notifier.WatchdogInterval);
        Assert.False(notifier.Notify("READY=1")); // the socket does not exist: the send fails, it does not throw
    }
}
