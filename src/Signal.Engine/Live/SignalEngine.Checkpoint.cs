using System.Text;
using Signal.Models.Networks;

namespace Signal.Engine.Live;

/// <summary>What <see cref="SignalEngine.RestoreCheckpoint"/> did.</summary>
/// <param name="Streams">Streams in the checkpoint.</param>
/// <param name="Restored">Streams whose recurrent state was restored.</param>
/// <param name="Reset">Streams taken in but started afresh, because the model's architecture or features changed.</param>
/// <param name="Compatible">Whether the checkpoint was written for this engine's architecture and features (true or false
/// whether or not it held any stream).</param>
public sealed record CheckpointResult(int Streams, int Restored, int Reset, bool Compatible);

/// <content>Checkpoints: every stream's state to a file and back, across restarts and model reloads.</content>
public sealed partial class SignalEngine
{
    private const uint CheckpointMagic = 0x4B434753; // "SGCK" little-endian
    private const ushort CheckpointVersion = 1;

    /// <summary>
    /// Steps every waiting frame, then writes every stream's state: id, sequence and timing, the feature extractor's
    /// buffered samples and filter memory, the recurrent state, the anomaly smoother and every alert's state.
    /// </summary>
    /// <param name="destination">Where to write (the caller owns it; nothing is written after an exception).</param>
    /// <returns>The number of streams written.</returns>
    /// <remarks>
    /// Format (little-endian): "SGCK", version (u16), the architecture fingerprint (u64), the feature signature
    /// (string), the stream count (i32), then one length-prefixed record per stream, so a reader can skip what it
    /// cannot use. Restoring into an engine of the same model continues every stream exactly where it was.
    /// </remarks>
    public int WriteCheckpoint(Stream destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            while (_ready.Count > 0)
            {
                RunBatch();
            }

            // On a GPU the newest states are in device memory: copy them back in a few large transfers, not one by one.
            _stepper.Synchronize();
            using var writer = new BinaryWriter(destination, Encoding.UTF8, leaveOpen: true);
            writer.Write(CheckpointMagic);
            writer.Write(CheckpointVersion);
            writer.Write(_model.Network.Fingerprint);
            writer.Write(FeatureSignature(_model));
            writer.Write(_streams.Count);
            using var record = new MemoryStream();
            using var body = new BinaryWriter(record, Encoding.UTF8, leaveOpen: true);
            foreach (StreamState s in _streams.Values)
            {
                record.SetLength(0);
                WriteStream(body, s);
                body.Flush();
                writer.Write(s.Id);
                writer.Write((int)record.Length);
                writer.Write(record.GetBuffer(), 0, (int)record.Length);
            }

            return _streams.Count;
        }
    }

    /// <summary>
    /// Takes in the streams of a checkpoint written by <see cref="WriteCheckpoint"/>, replacing streams of the same id.
    /// When the checkpoint's architecture and features match this engine's model, each stream continues where it was;
    /// otherwise its id, sequence number and alert states are kept and its signal state starts afresh (counted as a
    /// <c>model_changed</c> reset).
    /// </summary>
    /// <param name="source">The checkpoint.</param>
    /// <returns>How many streams were restored or reset.</returns>
    /// <exception cref="FormatException">The data is not a checkpoint, or is damaged; the engine is unchanged.</exception>
    public CheckpointResult RestoreCheckpoint(Stream source)
    {
        ArgumentNullException.ThrowIfNull(source);
        using var reader = new BinaryReader(source, Encoding.UTF8, leaveOpen: true);
        var loaded = new List<StreamState>();
        bool compatible;
        try
        {
            if (reader.ReadUInt32() != CheckpointMagic)
            {
                throw new FormatException("not a Signal checkpoint (missing 'SGCK' header).");
            }

            ushort version = reader.ReadUInt16();
            if (version != CheckpointVersion)
            {
                throw new FormatException($"checkpoint version {version} is not supported (expected {CheckpointVersion}).");
            }

            ulong fingerprint = reader.ReadUInt64();
            string features = reader.ReadString();
            compatible = fingerprint == _model.Network.Fingerprint && features == FeatureSignature(_model);
            int count = reader.ReadInt32();
            if (count < 0)
            {
                throw new FormatException($"the checkpoint says it holds {count} streams.");
            }

            for (int i = 0; i < count; i++)
            {
                string id = reader.ReadString();
                int length = reader.ReadInt32();
                byte[] bytes = length < 0 ? [] : reader.ReadBytes(length);
                if (length < 0 || bytes.Length != length)
                {
                    throw new FormatException($"the checkpoint is truncated in stream '{id}'.");
                }

                var stream = new StreamState(id, _model, _workspace, _rules.Count);
                using var part = new BinaryReader(new MemoryStream(bytes, writable: false));
                try
                {
                    ReadStream(part, stream, compatible);
                }
                catch (Exception e) when (e is EndOfStreamException or FormatException)
                {
                    throw new FormatException($"the checkpoint's stream '{id}' is damaged: {e.Message}", e);
                }

                loaded.Add(stream);
            }
        }
        catch (EndOfStreamException e)
        {
            throw new FormatException("the checkpoint is truncated.", e);
        }

        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            long now = _scheduler.Now.UtcTicks;
            foreach (StreamState s in loaded)
            {
                if (_streams.TryGetValue(s.Id, out StreamState? old))
                {
                    while (old.PendingCount > 0)
                    {
                        RunBatch();
                    }
                }

                s.LastSeenTicks = now;
                s.Restored = true;
                _streams[s.Id] = s;
                if (!compatible)
                {
                    Counters.Reset("model_changed");
                }
            }
        }

        return new CheckpointResult(loaded.Count, compatible ? loaded.Count : 0, compatible ? 0 : loaded.Count, compatible);
    }

    /// <summary>What must match for a stream's feature state to carry over: the spec without its normalisation.</summary>
    private static string FeatureSignature(EngineModel model) =>
        model.Pipeline is { } p ? (p.Spec with { Normalization = null }).ToJson() : $"raw:{model.Channels}x{model.SamplesPerStep}";

    private void WriteStream(BinaryWriter w, StreamState s)
    {
        w.Write(s.LastSequence.HasValue);
        w.Write(s.LastSequence ?? 0);
        w.Write(_rules.Count);
        for (int r = 0; r < _rules.Count; r++)
        {
            w.Write(_rules[r].Name);
            s.Trackers[r].Write(w);
        }

        w.Write(s.HasTime);
        w.Write(s.OriginNs);
        w.Write(s.Rate);
        w.Write(s.Samples);
        w.Write(s.Steps);
        w.Write(s.SmoothedScore);
        w.Write(s.WarmupCount);
        w.Write(s.WarmupMean);
        w.Write(s.WarmupM2);
        w.Write(s.OwnThreshold);
        w.Write(s.WindowCount);
        for (int i = 0; i < s.WindowCount; i++)
        {
            w.Write(s.ScoreWindow![(s.WindowNext - s.WindowCount + i + s.ScoreWindow.Length) % s.ScoreWindow.Length]);
        }
        w.Write(s.LastForecast?.Length ?? -1);
        foreach (float v in s.LastForecast ?? [])
        {
            w.Write(v);
        }

        w.Write(s.RawFill);
        foreach (float v in s.Raw ?? [])
        {
            w.Write(v);
        }

        byte[] state = s.State.ToBytes();
        w.Write(state.Length);
        w.Write(state);
        s.Extractor?.WriteState(w);
    }

    private void ReadStream(BinaryReader r, StreamState s, bool compatible)
    {
        bool hasSequence = r.ReadBoolean();
        long sequence = r.ReadInt64();
        s.LastSequence = hasSequence ? sequence : null;
        int rules = r.ReadInt32();
        for (int i = 0; i < rules; i++)
        {
            string name = r.ReadString();
            AlertTracker tracker = AlertTracker.Read(r);
            int index = IndexOfRule(name);
            if (index >= 0)
            {
                s.Trackers[index] = tracker;
            }
        }

        if (!compatible)
        {
            // The signal state cannot carry over to another architecture or feature layout: it starts afresh.
            return;
        }

        (bool hasTime, long origin, double rate, long samples, long steps, double smoothed) = (r.ReadBoolean(), r.ReadInt64(), r.ReadDouble(), r.ReadInt64(), r.ReadInt64(), r.ReadDouble());
        (s.WarmupCount, s.WarmupMean, s.WarmupM2, s.OwnThreshold) = (r.ReadInt64(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble());
        int window = r.ReadInt32();
        if (window < 0 || window > 100_000)
        {
            throw new FormatException($"a score window of {window} values.");
        }

        float[] scores = new float[window];
        for (int i = 0; i < window; i++)
        {
            scores[i] = r.ReadSingle();
        }

        if (_options.AnomalyWindow > 0)
        {
            // Keep the newest scores that fit this engine's window.
            s.ScoreWindow = new float[_options.AnomalyWindow];
            int keep = Math.Min(window, _options.AnomalyWindow);
            scores.AsSpan(window - keep).CopyTo(s.ScoreWindow);
            (s.WindowCount, s.WindowNext) = (keep, keep % _options.AnomalyWindow);
        }
        int forecast = r.ReadInt32();
        if (forecast > _input)
        {
            throw new FormatException($"a forecast of {forecast} values; the model takes {_input} inputs.");
        }

        float[]? last = forecast < 0 ? null : new float[forecast];
        for (int i = 0; i < forecast; i++)
        {
            last![i] = r.ReadSingle();
        }

        int rawFill = r.ReadInt32();
        (s.HasTime, s.OriginNs, s.Rate, s.Samples, s.Steps, s.SmoothedScore) = (hasTime, origin, rate, samples, steps, smoothed);
        s.LastForecast = last is not null && last.Length == _input && _model.HasForecast ? last : null;
        if (s.Raw is { } raw)
        {
            if (rawFill < 0 || rawFill > _model.SamplesPerStep)
            {
                throw new FormatException($"raw fill {rawFill} is out of range.");
            }

            s.RawFill = rawFill;
            for (int i = 0; i < raw.Length; i++)
            {
                raw[i] = r.ReadSingle();
            }
        }

        byte[] state = r.ReadBytes(r.ReadInt32());
        RecurrentState.FromBytes(_model.Network, state).CopyTo(s.State);
        s.Extractor?.ReadState(r);
    }

    private int IndexOfRule(string name)
    {
        for (int r = 0; r < _rules.Count; r++)
        {
            if (_rules[r].Name == name)
            {
                return r;
            }
        }

        return -1;
    }
}
