using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Signal.Engine.Storage;

/// <summary>
/// The on-disk spool of batches the database could not take: append-only segment files in one folder, one lane for
/// alerts and one for bulk data, replayed oldest first (alerts before bulk data). Each record carries a CRC-32C; a
/// corrupt or truncated record makes the rest of its segment unreadable, so that segment is renamed <c>*.corrupt</c>,
/// counted and skipped, and the other segments replay. When the spool is full the oldest bulk segments are deleted
/// (their points counted as dropped); alerts are never dropped by this policy.
/// </summary>
/// <remarks>
/// Record layout, little-endian: magic <c>SGSR</c> (u32), flags (u16, bit 0 alert lane), reserved (u16), points (i32),
/// payload bytes (i32), CRC-32C of what follows (u32); then the end offset of every point (i32 each) and the line
/// protocol. A consumed segment is deleted; a partly replayed one replays from its start after a restart, which is
/// harmless because writes are idempotent (same series and timestamp overwrite). Not thread-safe: one owner.
/// </remarks>
internal sealed partial class DiskSpool : IDisposable
{
    private const uint Magic = 0x52534753; // "SGSR"
    private const int HeaderLength = 20;
    private readonly string _folder;
    private readonly long _maxBytes;
    private readonly long _segmentBytes;
    private readonly SpoolSync _sync;
    private readonly ILogger _logger;
    private readonly Lane[] _lanes;
    private long _lastSync;
    private bool _warnedFull;

    public DiskSpool(string folder, long maxBytes, SpoolSync sync, ILogger? logger = null)
    {
        _folder = folder;
        _maxBytes = maxBytes;
        _segmentBytes = Math.Clamp(maxBytes / 8, 1 << 16, 16 << 20);
        _sync = sync;
        _logger = logger ?? NullLogger.Instance;
        Directory.CreateDirectory(folder);
        _lanes = [new Lane("alert"), new Lane("bulk")];
        foreach (Lane lane in _lanes)
        {
            foreach (string path in Directory.GetFiles(folder, lane.Name + "-*.seg").Order(StringComparer.Ordinal))
            {
                long sequence = long.Parse(Path.GetFileNameWithoutExtension(path).AsSpan(lane.Name.Length + 1), CultureInfo.InvariantCulture);
                var segment = new Segment(path, new FileInfo(path).Length, CountPoints(path));
                lane.Segments.Add(segment);
                lane.NextSequence = Math.Max(lane.NextSequence, sequence + 1);
            }
        }

        if (Points > 0)
        {
            LogFound(_logger, Points, Bytes, folder);
        }
    }

    /// <summary>Points waiting in the spool.</summary>
    public long Points => _lanes.Sum(l => l.Segments.Sum(s => s.Points)) - _lanes.Sum(l => l.ReadPoints);

    /// <summary>Bytes the spool's segments take.</summary>
    public long Bytes => _lanes.Sum(l => l.Segments.Sum(s => s.Bytes));

    /// <summary>Segments found corrupt and skipped.</summary>
    public int CorruptSegments { get; private set; }

    /// <summary>Points lost in corrupt segments (as far as their records could be counted).</summary>
    public long CorruptPoints { get; private set; }

    public bool IsEmpty => Points <= 0;

    /// <summary>Appends a batch; when full, first deletes the oldest bulk segments.</summary>
    /// <param name="batch">The batch (left to the caller).</param>
    /// <param name="dropped">Points dropped by the full policy (old bulk segments, or this batch).</param>
    /// <returns>False when this batch itself was dropped (bulk data, and nothing older to make room).</returns>
    public bool Append(LineBatch batch, out long dropped)
    {
        dropped = 0;
        long record = HeaderLength + (4L * batch.Count) + batch.Length;
        Lane bulk = _lanes[1];
        while (Bytes + record > _maxBytes && bulk.Segments.Count > 0)
        {
            Segment oldest = bulk.Segments[0];
            if (oldest == bulk.Current)
            {
                bulk.CloseWriter();
            }

            long lost = oldest.Points - (bulk.ReadSegment == oldest ? bulk.ReadPoints : 0);
            dropped += lost;
            bulk.Forget(oldest);
            File.Delete(oldest.Path);
            LogDroppedOldest(_logger, lost, oldest.Path);
        }

        if (Bytes + record > _maxBytes)
        {
            if (!batch.Priority)
            {
                dropped += batch.Count;
                return false;
            }

            if (!_warnedFull)
            {
                _warnedFull = true;
                LogAlertsOverLimit(_logger, _maxBytes);
            }
        }

        Lane lane = _lanes[batch.Priority ? 0 : 1];
        if (lane.Writer is null || lane.Current!.Bytes >= _segmentBytes)
        {
            lane.CloseWriter();
            string path = Path.Combine(_folder, string.Create(CultureInfo.InvariantCulture, $"{lane.Name}-{lane.NextSequence:D12}.seg"));
            lane.NextSequence++;
            lane.Current = new Segment(path, 0, 0);
            lane.Segments.Add(lane.Current);
            lane.Writer = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, 1 << 16);
        }

        byte[] header = new byte[HeaderLength + (4 * batch.Count)];
        BinaryPrimitives.WriteUInt32LittleEndian(header, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(4), (ushort)(batch.Priority ? 1 : 0));
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), batch.Count);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(12), batch.Length);
        for (int i = 0; i < batch.Count; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(HeaderLength + (4 * i)), batch.Ends[i]);
        }

        uint crc = Crc(Crc(0, header.AsSpan(HeaderLength)), batch.Bytes);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(16), crc);
        lane.Writer.Write(header);
        lane.Writer.Write(batch.Bytes);
        long now = Environment.TickCount64;
        if (_sync == SpoolSync.Always || (_sync == SpoolSync.Periodic && now - _lastSync >= 1000))
        {
            lane.Writer.Flush(flushToDisk: true);
            _lastSync = now;
        }
        else
        {
            lane.Writer.Flush(flushToDisk: false);
        }

        lane.Current!.Bytes += record;
        lane.Current.Points += batch.Count;
        return true;
    }

    /// <summary>Reads the oldest record (alerts first) without consuming it; corrupt segments are skipped and counted.</summary>
    /// <param name="batch">The record as a batch (the caller disposes it).</param>
    /// <returns>False when the spool is empty.</returns>
    public bool TryPeek(out LineBatch? batch)
    {
        foreach (Lane lane in _lanes)
        {
            while (lane.Segments.Count > 0)
            {
                Segment segment = lane.Segments[0];
                if (lane.ReadSegment != segment)
                {
                    (lane.ReadSegment, lane.ReadOffset, lane.ReadPoints) = (segment, 0, 0);
                }

                if (lane.ReadOffset >= segment.Bytes)
                {
                    if (segment == lane.Current)
                    {
                        break; // all read; the writer may still add to it
                    }

                    lane.Forget(segment);
                    File.Delete(segment.Path);
                    continue;
                }

                string? problem = TryRead(segment.Path, lane.ReadOffset, out batch, out long length);
                if (problem is null)
                {
                    lane.PeekLength = length;
                    return true;
                }

                CorruptSegments++;
                long lost = segment.Points - lane.ReadPoints;
                CorruptPoints += Math.Max(0, lost);
                if (segment == lane.Current)
                {
                    lane.CloseWriter();
                }

                lane.Forget(segment);
                File.Move(segment.Path, Path.ChangeExtension(segment.Path, ".corrupt"), overwrite: true);
                LogCorrupt(_logger, segment.Path, lane.ReadOffset, problem);
            }
        }

        batch = null;
        return false;
    }

    /// <summary>Consumes the record last returned by <see cref="TryPeek"/>.</summary>
    /// <param name="points">Its points.</param>
    public void Commit(int points)
    {
        foreach (Lane lane in _lanes)
        {
            if (lane.PeekLength > 0)
            {
                lane.ReadOffset += lane.PeekLength;
                lane.ReadPoints += points;
                lane.PeekLength = 0;
                if (lane.ReadSegment is { } segment && lane.ReadOffset >= segment.Bytes)
                {
                    // Fully replayed: gone from disk and from the gauges now, so a restart does not replay it again
                    // (the segment being written is closed; the next append starts a new one).
                    if (segment == lane.Current)
                    {
                        lane.CloseWriter();
                    }

                    lane.Forget(segment);
                    File.Delete(segment.Path);
                }

                return;
            }
        }
    }

    public void Dispose()
    {
        foreach (Lane lane in _lanes)
        {
            lane.Writer?.Flush(flushToDisk: true);
            lane.CloseWriter();
        }
    }

    private static string? TryRead(string path, long offset, out LineBatch? batch, out long length)
    {
        batch = null;
        length = 0;
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        if (offset + HeaderLength > file.Length)
        {
            return "truncated record header";
        }

        file.Position = offset;
        Span<byte> header = stackalloc byte[HeaderLength];
        file.ReadExactly(header);
        int count = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
        int bytes = BinaryPrimitives.ReadInt32LittleEndian(header[12..]);
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != Magic || count < 1 || bytes < 1)
        {
            return "bad record header";
        }

        length = HeaderLength + (4L * count) + bytes;
        if (offset + length > file.Length)
        {
            return "truncated record";
        }

        byte[] body = ArrayPool<byte>.Shared.Rent((int)(length - HeaderLength));
        try
        {
            Span<byte> span = body.AsSpan(0, (int)(length - HeaderLength));
            file.ReadExactly(span);
            if (Crc(0, span) != BinaryPrimitives.ReadUInt32LittleEndian(header[16..]))
            {
                return "checksum mismatch";
            }

            int[] ends = new int[count];
            for (int i = 0; i < count; i++)
            {
                ends[i] = BinaryPrimitives.ReadInt32LittleEndian(span[(4 * i)..]);
                if (ends[i] <= (i == 0 ? 0 : ends[i - 1]) || ends[i] > bytes)
                {
                    return "bad point offsets";
                }
            }

            batch = new LineBatch(bytes, (BinaryPrimitives.ReadUInt16LittleEndian(header[4..]) & 1) != 0);
            batch.Append(span[(4 * count)..], ends);
            return null;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(body);
        }
    }

    private static long CountPoints(string path)
    {
        long points = 0;
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        Span<byte> header = stackalloc byte[HeaderLength];
        while (file.Position + HeaderLength <= file.Length)
        {
            file.ReadExactly(header);
            int count = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
            int bytes = BinaryPrimitives.ReadInt32LittleEndian(header[12..]);
            if (BinaryPrimitives.ReadUInt32LittleEndian(header) != Magic || count < 1 || bytes < 1)
            {
                break;
            }

            points += count;
            file.Position += (4L * count) + bytes;
        }

        return points;
    }

    /// <summary>CRC-32C through <see cref="BitOperations.Crc32C(uint, ulong)"/> (hardware instruction where there is one).</summary>
    private static uint Crc(uint crc, ReadOnlySpan<byte> data)
    {
        while (data.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }

        foreach (byte b in data)
        {
            crc = BitOperations.Crc32C(crc, b);
        }

        return crc;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "spool: {Points} points ({Bytes} bytes) from an earlier run in {Folder}; replaying them first")]
    private static partial void LogFound(ILogger logger, long points, long bytes, string folder);

    [LoggerMessage(Level = LogLevel.Warning, Message = "spool full: dropped {Points} points of the oldest bulk segment {Path}")]
    private static partial void LogDroppedOldest(ILogger logger, long points, string path);

    [LoggerMessage(Level = LogLevel.Warning, Message = "spool full ({Limit} bytes) and only alerts left: alerts are kept beyond the limit")]
    private static partial void LogAlertsOverLimit(ILogger logger, long limit);

    [LoggerMessage(Level = LogLevel.Error, Message = "spool: segment {Path} is corrupt at byte {Offset} ({Problem}); skipped, renamed *.corrupt")]
    private static partial void LogCorrupt(ILogger logger, string path, long offset, string problem);

    private sealed class Segment(string path, long bytes, long points)
    {
        public string Path { get; } = path;

        public long Bytes { get; set; } = bytes;

        public long Points { get; set; } = points;
    }

    private sealed class Lane(string name)
    {
        public string Name { get; } = name;

        public List<Segment> Segments { get; } = [];

        public long NextSequence { get; set; } = 1;

        public Segment? Current { get; set; }

        public FileStream? Writer { get; set; }

        public Segment? ReadSegment { get; set; }

        public long ReadOffset { get; set; }

        public long ReadPoints { get; set; }

        public long PeekLength { get; set; }

        public void CloseWriter()
        {
            Writer?.Dispose();
            Writer = null;
            Current = null;
        }

        public void Forget(Segment segment)
        {
            Segments.Remove(segment);
            if (ReadSegment == segment)
            {
                (ReadSegment, ReadOffset, ReadPoints, PeekLength) = (null, 0, 0, 0);
            }
        }
    }
}
