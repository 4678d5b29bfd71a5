using System.Buffers;

namespace Signal.Engine.Storage;

/// <summary>
/// A batch of line-protocol points in one pooled buffer, with the end offset of every point so a batch can be split
/// exactly (string fields may hold newlines). Not thread-safe.
/// </summary>
internal sealed class LineBatch : IBufferWriter<byte>, IDisposable
{
    private byte[] _buffer;
    private int[] _ends;

    public LineBatch(int capacityBytes = 4096, bool priority = false)
    {
        _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(256, capacityBytes));
        _ends = ArrayPool<int>.Shared.Rent(64);
        Priority = priority;
    }

    /// <summary>Alerts: kept by the spool's full policy, replayed first.</summary>
    public bool Priority { get; }

    public int Count { get; private set; }

    public int Length { get; private set; }

    /// <summary>Stopwatch ticks when the first point went in.</summary>
    public long Started { get; private set; }

    public ReadOnlySpan<byte> Bytes => _buffer.AsSpan(0, Length);

    public ReadOnlyMemory<byte> Memory => _buffer.AsMemory(0, Length);

    public ReadOnlySpan<int> Ends => _ends.AsSpan(0, Count);

    /// <summary>The bytes of point <paramref name="index"/>, newline included.</summary>
    public ReadOnlySpan<byte> Point(int index) => _buffer.AsSpan(index == 0 ? 0 : _ends[index - 1], _ends[index] - (index == 0 ? 0 : _ends[index - 1]));

    /// <summary>Marks the bytes written since the last call as one point.</summary>
    public void EndPoint()
    {
        if (Count == 0)
        {
            Started = System.Diagnostics.Stopwatch.GetTimestamp();
        }

        if (Count == _ends.Length)
        {
            int[] bigger = ArrayPool<int>.Shared.Rent(_ends.Length * 2);
            _ends.AsSpan(0, Count).CopyTo(bigger);
            ArrayPool<int>.Shared.Return(_ends);
            _ends = bigger;
        }

        _ends[Count++] = Length;
    }

    /// <summary>Drops bytes written after the last complete point (a point that failed half-way).</summary>
    public void Rollback() => Length = Count == 0 ? 0 : _ends[Count - 1];

    /// <summary>A new batch holding points <paramref name="start"/> to <paramref name="start"/> + <paramref name="count"/> - 1.</summary>
    public LineBatch Slice(int start, int count)
    {
        int from = start == 0 ? 0 : _ends[start - 1];
        int to = _ends[start + count - 1];
        var part = new LineBatch(to - from, Priority);
        part.Append(_buffer.AsSpan(from, to - from), _ends.AsSpan(start, count), from);
        return part;
    }

    /// <summary>Appends whole points: their bytes and end offsets (relative to <paramref name="origin"/>).</summary>
    public void Append(ReadOnlySpan<byte> bytes, ReadOnlySpan<int> ends, int origin = 0)
    {
        int start = Length;
        bytes.CopyTo(GetSpan(bytes.Length));
        Advance(bytes.Length);
        foreach (int end in ends)
        {
            Length = start + end - origin;
            EndPoint();
        }

        Length = start + bytes.Length;
    }

    public void Advance(int count) => Length += count;

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsMemory(Length);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsSpan(Length);
    }

    public void Dispose()
    {
        ArrayPool<byte>.Shared.Return(_buffer);
        ArrayPool<int>.Shared.Return(_ends);
        _buffer = [];
        _ends = [];
    }

    private void Ensure(int sizeHint)
    {
        int need = Length + Math.Max(sizeHint, 1);
        if (need > _buffer.Length)
        {
            byte[] bigger = ArrayPool<byte>.Shared.Rent(Math.Max(need, _buffer.Length * 2));
            _buffer.AsSpan(0, Length).CopyTo(bigger);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = bigger;
        }
    }
}
