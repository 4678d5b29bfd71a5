using System.Buffers;
using System.Diagnostics;
using System.Threading.Channels;

namespace Signal.Engine.Mqtt;

/// <summary>
/// The receive side both clients share: the queue of messages the consumer has not taken, and the intake limit
/// (<see cref="MqttOptions.ReceiveCapacity"/>). QoS 0 messages beyond 1.25 × the capacity are dropped and counted; at
/// the capacity the intake pauses (the client stops reading, so QoS 1/2 messages wait at the broker) and resumes once
/// the consumer has taken the queue down to half. One reader (the consumer); writes come from the client's network side.
/// </summary>
/// <param name="capacity">Messages queued at most before the intake pauses.</param>
/// <param name="counters">The connection's counters (received, bytes, pauses, QoS 0 drops).</param>
/// <param name="resumed">Called on the reader's thread when the intake resumes (the client wakes its network loop).</param>
/// <param name="roomAgain">Called on the reader's thread when the queue drops below the capacity (a writer waiting at the limit may go on).</param>
internal sealed class MqttIntake(int capacity, MqttCounters counters, Action? resumed = null, Action? roomAgain = null)
{
    private readonly Channel<MqttMessage> _queue = Channel.CreateUnbounded<MqttMessage>(new UnboundedChannelOptions { SingleReader = true });
    private volatile bool _paused;
    private int _queued;

    /// <summary>Messages received and not yet taken.</summary>
    public int Queued => Volatile.Read(ref _queued);

    /// <summary>Whether the intake is paused at the limit.</summary>
    public bool IsPaused => _paused;

    /// <summary>Whether the queue holds the capacity or more (a QoS 1/2 writer waits, unacknowledged).</summary>
    public bool IsFull => Volatile.Read(ref _queued) >= capacity;

    /// <summary>Counts a received message of <paramref name="length"/> bytes; false when it is QoS 0 and the queue is over 1.25 × the capacity (dropped, counted).</summary>
    public bool Admit(int qos, int length)
    {
        Interlocked.Increment(ref counters._received);
        Interlocked.Add(ref counters._receivedBytes, length);
        if (qos == 0 && Volatile.Read(ref _queued) >= capacity + (capacity / 4))
        {
            Interlocked.Increment(ref counters._qos0Dropped);
            return false;
        }

        return true;
    }

    /// <summary>Pauses the intake (counted once per pause).</summary>
    public void Pause()
    {
        if (!_paused)
        {
            _paused = true;
            Interlocked.Increment(ref counters._pauses);
        }
    }

    /// <summary>Queues an admitted message whose payload is in a buffer rented from <see cref="ArrayPool{T}.Shared"/>; pauses at the capacity.</summary>
    public void Enqueue(string topic, byte[] buffer, int length, int qos, bool retain)
    {
        int queued = Interlocked.Increment(ref _queued);
        _queue.Writer.TryWrite(new MqttMessage(topic, buffer, length, qos, retain, Stopwatch.GetTimestamp()));
        if (queued >= capacity)
        {
            Pause();
        }
    }

    /// <summary>Takes the next message, if any; resumes the intake once half the capacity is free.</summary>
    public bool TryRead(out MqttMessage message)
    {
        if (!_queue.Reader.TryRead(out message))
        {
            return false;
        }

        int left = Interlocked.Decrement(ref _queued);
        if (left == capacity - 1)
        {
            roomAgain?.Invoke();
        }

        if (_paused && left <= capacity / 2)
        {
            _paused = false;
            resumed?.Invoke();
        }

        return true;
    }

    /// <summary>Waits until a message can be read; false once the intake is closed and empty.</summary>
    public ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken) => _queue.Reader.WaitToReadAsync(cancellationToken);

    /// <summary>Closes the queue and returns every message not taken to the pool.</summary>
    public void Close()
    {
        _queue.Writer.TryComplete();
        while (_queue.Reader.TryRead(out MqttMessage m))
        {
            m.Release();
        }
    }
}
