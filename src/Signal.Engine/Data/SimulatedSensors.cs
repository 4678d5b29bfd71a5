using System.Diagnostics;
using System.Threading.Channels;
using Signal.Engine.Mqtt;
using Signal.Engine.Payloads;

namespace Signal.Engine.Data;

/// <summary>
/// Simulated vibration sensors behind the <see cref="IMqttConnection"/> seam: the messages a broker would deliver
/// (binary payloads with sequence numbers, timestamps and rate, on <c>{prefix}/sim{i}/vib</c>), produced in real time
/// in-process, so the daemon runs unchanged without a broker (the demo). Published results are counted and dropped.
/// </summary>
/// <remarks>Thread-safe as <see cref="IMqttConnection"/> requires: one reader, any publishers.</remarks>
public sealed class SimulatedSensors : IMqttConnection
{
    private readonly int _sensors, _chunk, _seed;
    private readonly double _rate;
    private readonly string _prefix;
    private readonly Func<int, TimeSpan, BearingFault?> _fault;
    private readonly Channel<MqttMessage> _messages = Channel.CreateBounded<MqttMessage>(new BoundedChannelOptions(10_000) { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });
    private readonly CancellationTokenSource _stop = new();
    private readonly string?[] _current;
    private Task? _producer;
    private int _disposed;

    /// <summary>Creates the sensors (nothing is produced before <see cref="ConnectAsync"/>).</summary>
    /// <param name="sensors">How many sensors.</param>
    /// <param name="rate">Sample rate in Hz.</param>
    /// <param name="chunk">Samples per message.</param>
    /// <param name="fault">The fault of sensor i at time t since the start, or null for a healthy bearing.</param>
    /// <param name="prefix">Topic prefix.</param>
    /// <param name="seed">Noise seed (sensor i uses seed + i).</param>
    public SimulatedSensors(int sensors, double rate, int chunk, Func<int, TimeSpan, BearingFault?> fault, string prefix = "sensors", int seed = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sensors, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunk, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(rate, 0);
        _sensors = sensors;
        _rate = rate;
        _chunk = chunk;
        _fault = fault ?? throw new ArgumentNullException(nameof(fault));
        _prefix = prefix;
        _seed = seed;
        _current = new string?[sensors];
    }

    /// <summary>
    /// A schedule that keeps changing: sensor i runs healthy, then has the fault <c>i mod 3</c> (inner, outer, ball)
    /// for <paramref name="faultLength"/> in every <paramref name="period"/>, staggered so faults come and go across the
    /// sensors; the last sensor of several stays healthy as a reference.
    /// </summary>
    public static Func<int, TimeSpan, BearingFault?> Rotating(int sensors, TimeSpan period, TimeSpan faultLength) => (i, t) =>
    {
        if (sensors > 1 && i == sensors - 1)
        {
            return null;
        }

        double start = (period.TotalSeconds * 0.2) + (i * period.TotalSeconds / Math.Max(1, sensors - 1) / 2);
        double phase = (t.TotalSeconds - start) % period.TotalSeconds;
        return t.TotalSeconds >= start && phase < faultLength.TotalSeconds ? BearingFault.Known[i % BearingFault.Known.Count] : null;
    };

    /// <summary>The fault each sensor has now (null: healthy); for displays.</summary>
    public IReadOnlyList<string?> CurrentFaults => _current;

    /// <summary>The topic of sensor <paramref name="i"/>.</summary>
    public string Topic(int i) => $"{_prefix}/sim{i}/vib";

    /// <inheritdoc/>
    public bool IsConnected { get; private set; }

    /// <inheritdoc/>
    public bool IsPaused => false;

    /// <inheritdoc/>
    public MqttCounters Counters { get; } = new();

    /// <inheritdoc/>
    public event EventHandler<MqttConnectionEventArgs>? ConnectionChanged;

    /// <summary>Starts producing messages in real time.</summary>
    /// <param name="timeout">Not used: there is nothing to reach.</param>
    /// <param name="cancellationToken">Not used.</param>
    /// <returns>A completed task.</returns>
    public Task ConnectAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        if (_producer is null)
        {
            _producer = Task.Run(ProduceAsync, CancellationToken.None);
            IsConnected = true;
            Interlocked.Increment(ref Counters._connects);
            ConnectionChanged?.Invoke(this, new MqttConnectionEventArgs(true, "simulated sensors started"));
        }

        return Task.CompletedTask;
    }

    /// <summary>Accepted and ignored: every simulated topic is delivered.</summary>
    /// <param name="pattern">The filter.</param>
    /// <param name="qos">The QoS.</param>
    public void Subscribe(string pattern, int qos)
    {
    }

    /// <summary>Nothing to stop: the simulation is not a broker.</summary>
    /// <param name="pattern">Ignored.</param>
    public void Unsubscribe(string pattern)
    {
    }

    /// <summary>Counts the message as published and drops it.</summary>
    /// <param name="topic">The topic.</param>
    /// <param name="payload">The payload.</param>
    /// <param name="qos">The QoS.</param>
    /// <param name="retain">The retain flag.</param>
    /// <returns>True.</returns>
    public bool Publish(string topic, ReadOnlySpan<byte> payload, int qos = 0, bool retain = false)
    {
        Interlocked.Increment(ref Counters._published);
        return true;
    }

    /// <inheritdoc/>
    public bool TryRead(out MqttMessage message) => _messages.Reader.TryRead(out message);

    /// <inheritdoc/>
    public ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default) => _messages.Reader.WaitToReadAsync(cancellationToken);

    /// <summary>Stops producing and releases what was not read; later calls do nothing.</summary>
    /// <returns>A task that completes when the producer has stopped.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        if (_producer is not null)
        {
            await _producer.ConfigureAwait(false);
        }

        _messages.Writer.TryComplete();
        while (_messages.Reader.TryRead(out MqttMessage m))
        {
            m.Release();
        }

        IsConnected = false;
        _stop.Dispose();
    }

    private async Task ProduceAsync()
    {
        VibrationSource[] sources = [.. Enumerable.Range(0, _sensors).Select(i => new VibrationSource(_rate, _seed + i))];
        string[] topics = [.. Enumerable.Range(0, _sensors).Select(Topic)];
        var samples = new float[_chunk];
        var payload = new byte[BinaryPayload.HeaderLength + (4 * _chunk)];
        long startNs = (DateTimeOffset.UtcNow.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100;
        var clock = Stopwatch.StartNew();
        CancellationToken stop = _stop.Token;
        try
        {
            for (ulong n = 0; !stop.IsCancellationRequested; n++)
            {
                TimeSpan due = TimeSpan.FromSeconds((double)n * _chunk / _rate);
                if (due > clock.Elapsed)
                {
                    await Task.Delay(due - clock.Elapsed, stop).ConfigureAwait(false);
                }

                for (int s = 0; s < _sensors; s++)
                {
                    BearingFault? fault = _fault(s, due);
                    _current[s] = fault?.Name;
                    sources[s].Next(samples, fault);
                    long ts = startNs + (long)Math.Round((double)n * _chunk * 1e9 / _rate);
                    int length = BinaryPayload.Write(payload, n, ts, _rate, 1, samples);
                    MqttMessage message = MqttMessage.Copy(topics[s], payload.AsSpan(0, length), qos: 1);
                    await _messages.Writer.WriteAsync(message, stop).ConfigureAwait(false);
                    Interlocked.Increment(ref Counters._received);
                    Interlocked.Add(ref Counters._receivedBytes, length);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
