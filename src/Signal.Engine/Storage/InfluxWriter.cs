using System.Globalization;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Signal.Engine.Storage;

/// <summary>What an <see cref="InfluxWriter"/> did with the points it took; every member is safe to read from any thread.</summary>
public sealed class InfluxCounters
{
    internal long _accepted, _written, _requests, _retries, _deadLettered, _spooled, _replayed, _dropped, _skipped, _waits;

    /// <summary>Points taken by <see cref="InfluxWriter.Write"/>.</summary>
    public long Accepted => Interlocked.Read(ref _accepted);

    /// <summary>Points the database accepted (replayed ones included).</summary>
    public long Written => Interlocked.Read(ref _written);

    /// <summary>Successful write requests.</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Requests retried after a network error, 429 or 5xx.</summary>
    public long Retries => Interlocked.Read(ref _retries);

    /// <summary>Points the database refused on their own (a 400 for that point), written to the dead-letter file.</summary>
    public long DeadLettered => Interlocked.Read(ref _deadLettered);

    /// <summary>Points put in the disk spool.</summary>
    public long Spooled => Interlocked.Read(ref _spooled);

    /// <summary>Points written from the spool.</summary>
    public long Replayed => Interlocked.Read(ref _replayed);

    /// <summary>Points dropped by policy (spool full, or no spool while the database is away and memory is full).</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Times <see cref="InfluxWriter.Write"/> waited for room because memory was full and no spool is configured.</summary>
    public long Waits => Interlocked.Read(ref _waits);

    /// <summary>Points with no storable field (every float NaN or infinite), not written.</summary>
    public long Skipped => Interlocked.Read(ref _skipped);
}

/// <summary>
/// Writes points to InfluxDB (1.x <c>/write</c>, or 2.x/3.x <c>/api/v2/write</c>) in batches, without losing any:
/// batches are sealed by count and by time; failed requests are retried with exponential back-off and jitter
/// (honouring <c>Retry-After</c>); a batch the database keeps refusing goes to a bounded disk spool that is replayed in
/// order when the database returns and on the next start; a 400 splits the batch until the bad points are isolated in
/// the dead-letter file with the server's reason. Hand-written: the InfluxDB client packages are not on our feed.
/// </summary>
/// <remarks>
/// <see cref="Write"/> is safe to call from any thread. Memory holds at most <see cref="InfluxOptions.MaxQueuedBatches"/>
/// sealed batches plus the two open ones; beyond that batches go to the spool, or, without a spool, <see cref="Write"/>
/// waits for room (backpressure rather than loss). A process crash loses only the open batches (at most <see cref="InfluxOptions.FlushInterval"/> of points) and
/// the queued ones. Points have a fixed series and timestamp, so a batch sent twice (a retry after a lost response, a
/// replay after a crash) overwrites itself rather than duplicating.
/// </remarks>
public sealed partial class InfluxWriter : IAsyncDisposable
{
    private readonly InfluxOptions _options;
    private readonly ILogger _logger;
    private readonly HttpClient _http;
    private readonly Uri _writeUri;
    private readonly Lock _lock = new();
    private readonly Lock _spoolLock = new();
    private readonly Lock _deadLetterLock = new();
    private readonly Channel<LineBatch> _queue;
    private readonly DiskSpool? _spool;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _sender;
    private readonly Task _flusher;
    private readonly MemoryStream _body = new();
    private LineBatch _bulk;
    private LineBatch _alerts;
    private long _sealed;
    private bool _databaseReady;
    private bool _disposed;
    private volatile string? _lastProblem;

    /// <summary>Validates the options, opens the spool (replaying what an earlier run left) and starts sending.</summary>
    /// <param name="options">Where and how to write.</param>
    /// <param name="logger">Where problems are logged, or null.</param>
    /// <param name="handler">An HTTP handler for tests, or null for a pooled <see cref="SocketsHttpHandler"/>.</param>
    public InfluxWriter(InfluxOptions options, ILogger? logger = null, HttpMessageHandler? handler = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _logger = logger ?? NullLogger.Instance;
        _http = new HttpClient(handler ?? Handler(options), disposeHandler: true)
        {
            Timeout = options.RequestTimeout,
        };
        string root = options.Url.GetLeftPart(UriPartial.Authority);
        _writeUri = options.EffectiveApiVersion == 1
            ? new Uri($"{root}/write?db={Uri.EscapeDataString(options.EffectiveDatabase)}{(options.RetentionPolicy is null ? "" : "&rp=" + Uri.EscapeDataString(options.RetentionPolicy))}&precision={LineProtocol.Name(options.Precision)}")
            : new Uri($"{root}/api/v2/write?org={Uri.EscapeDataString(options.Org!)}&bucket={Uri.EscapeDataString(options.Bucket ?? options.PathName)}&precision={LineProtocol.Name(options.Precision)}");
        if (options.EffectiveApiVersion == 2)
        {
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Token", options.Token);
        }
        else if (options.Username is not null)
        {
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{options.Username}:{options.Password}")));
        }

        _databaseReady = options.Url.IsFile || options.EffectiveApiVersion == 2 || !options.CreateDatabase;
        _queue = Channel.CreateBounded<LineBatch>(new BoundedChannelOptions(options.MaxQueuedBatches) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        _spool = options.SpoolFolder is null ? null : new DiskSpool(options.SpoolFolder, options.SpoolMaxBytes, options.SpoolSync, _logger);
        _bulk = NewBatch(false);
        _alerts = NewBatch(true);
        _sender = Task.Run(SendLoop);
        _flusher = Task.Run(FlushLoop);
    }

    private static SocketsHttpHandler Handler(InfluxOptions options) =>
        PrivateCa.Trusting(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5), AutomaticDecompression = DecompressionMethods.All }, options.CaFile);

    /// <summary>What happened to the points so far.</summary>
    public InfluxCounters Counters { get; } = new();

    /// <summary>Why the last write to the target failed, or null while writes succeed (for health checks).</summary>
    public string? Problem => _lastProblem;

    /// <summary>True while the target takes writes, or a spool with room holds what it does not.</summary>
    public bool IsWritable
    {
        get
        {
            if (_lastProblem is null)
            {
                return true;
            }

            lock (_spoolLock)
            {
                return _spool is { } spool && spool.Bytes < _options.SpoolMaxBytes;
            }
        }
    }

    /// <summary>Points waiting in the disk spool.</summary>
    public long SpoolPoints
    {
        get
        {
            lock (_spoolLock)
            {
                return _spool?.Points ?? 0;
            }
        }
    }

    /// <summary>Bytes the disk spool holds on disk.</summary>
    public long SpoolBytes
    {
        get
        {
            lock (_spoolLock)
            {
                return _spool?.Bytes ?? 0;
            }
        }
    }

    /// <summary>Spool segments found corrupt and skipped (their points are lost and logged).</summary>
    public int CorruptSegments
    {
        get
        {
            lock (_spoolLock)
            {
                return _spool?.CorruptSegments ?? 0;
            }
        }
    }

    /// <summary>Adds one point to the open batch (alerts have their own batch, kept by the spool's full policy).</summary>
    /// <param name="measurement">The measurement.</param>
    /// <param name="tags">Tags (empty values are left out).</param>
    /// <param name="fields">Fields (non-finite floats are left out).</param>
    /// <param name="timestampNs">Unix nanoseconds.</param>
    /// <param name="alert">True for alert points.</param>
    /// <exception cref="ArgumentException">A name or tag value cannot be written (empty, or holds a newline); nothing of the point is kept.</exception>
    /// <exception cref="ObjectDisposedException">The writer is disposed.</exception>
    public void Write(string measurement, ReadOnlySpan<Tag> tags, ReadOnlySpan<Field> fields, long timestampNs, bool alert = false)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            LineBatch batch = alert ? _alerts : _bulk;
            try
            {
                if (!LineProtocol.Write(batch, measurement, tags, fields, timestampNs, _options.Precision))
                {
                    Interlocked.Increment(ref Counters._skipped);
                    return;
                }
            }
            catch
            {
                batch.Rollback();
                throw;
            }

            batch.EndPoint();
            Interlocked.Increment(ref Counters._accepted);
            if (batch.Count >= _options.BatchSize)
            {
                Seal(alert);
            }
        }
    }

    /// <summary>Seals the open batches and waits until every point taken so far is written, dead-lettered, spooled or dropped.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>A task that completes when they are.</returns>
    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            Seal(alert: false);
            Seal(alert: true);
        }

        while (Handled() < Interlocked.Read(ref _sealed))
        {
            await Task.Delay(5, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Seals the open batches and gives the database <see cref="InfluxOptions.ShutdownTimeout"/> to take what is queued;
    /// what is left goes to the spool (logged with its size) for the next start.
    /// </summary>
    /// <returns>A task that completes when the writer has stopped.</returns>
    public async ValueTask DisposeAsync()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true; // from here a full queue spills (or drops, counted) instead of waiting
            Seal(alert: false);
            Seal(alert: true);
            _bulk.Dispose();
            _alerts.Dispose();
        }

        _queue.Writer.TryComplete();
        await _flusher.ConfigureAwait(false);
        if (!await Finished(_sender, _options.ShutdownTimeout).ConfigureAwait(false))
        {
            await _stop.CancelAsync().ConfigureAwait(false);
            await _sender.ConfigureAwait(false);
        }

        while (_queue.Reader.TryRead(out LineBatch? left))
        {
            Spill(left);
        }

        lock (_spoolLock)
        {
            if (_spool is { } spool)
            {
                if (spool.Points > 0)
                {
                    LogLeftInSpool(_logger, spool.Points, _options.SpoolFolder!);
                }

                spool.Dispose();
            }
        }

        _http.Dispose();
        _stop.Dispose();
    }

    private static async Task<bool> Finished(Task task, TimeSpan timeout)
    {
        try
        {
            await task.WaitAsync(timeout).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private long Handled() => Counters.Written - Counters.Replayed + Counters.DeadLettered + Counters.Spooled + Counters.Dropped;

    private LineBatch NewBatch(bool alert) => new(alert ? 4096 : Math.Min(_options.BatchSize * 160, 8 << 20), alert);

    /// <summary>Under <see cref="_lock"/>: hands the open batch to the sender and opens a new one.</summary>
    private void Seal(bool alert)
    {
        LineBatch batch = alert ? _alerts : _bulk;
        if (batch.Count == 0)
        {
            return;
        }

        if (alert)
        {
            _alerts = NewBatch(true);
        }
        else
        {
            _bulk = NewBatch(false);
        }

        Interlocked.Add(ref _sealed, batch.Count);
        if (_queue.Writer.TryWrite(batch))
        {
            return;
        }

        if (_spool is null && !_disposed)
        {
            // No spool: wait for room. The caller (the engine) slows down, and with it the MQTT intake, so the broker
            // keeps what comes meanwhile; nothing is dropped.
            Interlocked.Increment(ref Counters._waits);
            _queue.Writer.WriteAsync(batch).AsTask().GetAwaiter().GetResult();
            return;
        }

        Spill(batch); // memory is full: the sender is behind, so this batch waits on disk (or, at shutdown, is counted as dropped)
    }

    /// <summary>Puts a batch in the spool (or drops it, counted, without one) and releases it.</summary>
    private void Spill(LineBatch batch)
    {
        lock (_spoolLock)
        {
            if (_spool is null)
            {
                Interlocked.Add(ref Counters._dropped, batch.Count);
                LogDropped(_logger, batch.Count, "no spool is configured and the database is not keeping up");
            }
            else
            {
                bool kept = _spool.Append(batch, out long dropped);
                Interlocked.Add(ref Counters._dropped, dropped);
                if (kept)
                {
                    Interlocked.Add(ref Counters._spooled, batch.Count);
                }
                else
                {
                    LogDropped(_logger, batch.Count, "the spool is full");
                }
            }
        }

        batch.Dispose();
    }

    private async Task FlushLoop()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromTicks(Math.Max(TimeSpan.TicksPerMillisecond, _options.FlushInterval.Ticks / 4)));
        long age = (long)(_options.FlushInterval.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                lock (_lock)
                {
                    if (_disposed)
                    {
                        return;
                    }

                    long now = System.Diagnostics.Stopwatch.GetTimestamp();
                    if (_bulk.Count > 0 && now - _bulk.Started >= age)
                    {
                        Seal(alert: false);
                    }

                    if (_alerts.Count > 0 && now - _alerts.Started >= age)
                    {
                        Seal(alert: true);
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task SendLoop()
    {
        CancellationToken stop = _stop.Token;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                LineBatch? head = null;
                lock (_spoolLock)
                {
                    _spool?.TryPeek(out head);
                }

                if (head is not null)
                {
                    // Replay in order: what is queued in memory is newer, so it joins the spool behind.
                    while (_queue.Reader.TryRead(out LineBatch? newer))
                    {
                        Spill(newer);
                    }

                    using (head)
                    {
                        if (!await SendWithRetry(head, DateTime.MaxValue, spillWhileWaiting: true, stop).ConfigureAwait(false))
                        {
                            return; // stopping; the record stays in the spool
                        }

                        Interlocked.Add(ref Counters._replayed, head.Count);
                        lock (_spoolLock)
                        {
                            _spool!.Commit(head.Count);
                        }
                    }

                    continue;
                }

                if (!_queue.Reader.TryRead(out LineBatch? batch))
                {
                    if (!await _queue.Reader.WaitToReadAsync(stop).ConfigureAwait(false))
                    {
                        return; // completed and drained
                    }

                    continue;
                }

                DateTime deadline = _spool is null ? DateTime.MaxValue : DateTime.UtcNow + _options.RetryBeforeSpool;
                if (await SendWithRetry(batch, deadline, spillWhileWaiting: false, stop).ConfigureAwait(false))
                {
                    batch.Dispose();
                }
                else
                {
                    Spill(batch);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    /// <summary>Sends until the batch is handled (written or dead-lettered), the deadline passes, or stop.</summary>
    /// <param name="batch">The batch.</param>
    /// <param name="deadline">When to give up (the caller spools the batch).</param>
    /// <param name="stop">Stops at once.</param>
    /// <param name="spillWhileWaiting">While the database is away, move newer batches from memory to the spool (replay mode).</param>
    private async Task<bool> SendWithRetry(LineBatch batch, DateTime deadline, bool spillWhileWaiting, CancellationToken stop)
    {
        TimeSpan delay = _options.RetryDelay;
        while (true)
        {
            TimeSpan? retryAfter;
            try
            {
                retryAfter = await SendOnce(batch, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return false;
            }

            if (retryAfter is null)
            {
                _lastProblem = null;
                return true;
            }

            TimeSpan wait = retryAfter.Value > TimeSpan.Zero ? retryAfter.Value : delay;
            if (DateTime.UtcNow + wait > deadline)
            {
                return false;
            }

            Interlocked.Increment(ref Counters._retries);
            while (spillWhileWaiting && _queue.Reader.TryRead(out LineBatch? newer))
            {
                Spill(newer);
            }

            try
            {
                await Task.Delay(wait, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return false;
            }

            delay = Backoff.Next(delay, _options.RetryDelayMax);
        }
    }

    /// <summary>One request (or, after a 400, the halves of the batch): null when handled, else the wait before a retry (zero: back-off).</summary>
    private async Task<TimeSpan?> SendOnce(LineBatch batch, CancellationToken stop)
    {
        if (!_databaseReady && !await CreateDatabase(stop).ConfigureAwait(false))
        {
            return TimeSpan.Zero;
        }

        if (_options.Url.IsFile)
        {
            try
            {
                await using var file = new FileStream(_options.Url.LocalPath, FileMode.Append, FileAccess.Write, FileShare.Read);
                await file.WriteAsync(batch.Memory, stop).ConfigureAwait(false);
                Interlocked.Add(ref Counters._written, batch.Count);
                Interlocked.Increment(ref Counters._requests);
                return null;
            }
            catch (IOException e)
            {
                ReportProblem(e.Message);
                return TimeSpan.Zero;
            }
        }

        HttpResponseMessage response;
        try
        {
            using HttpContent content = Body(batch);
            response = await _http.PostAsync(_writeUri, content, stop).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !stop.IsCancellationRequested)
        {
            ReportProblem(e is TaskCanceledException ? $"no answer within {_options.RequestTimeout.TotalSeconds:0.#} s" : e.Message);
            return TimeSpan.Zero;
        }

        using (response)
        {
            if (response.IsSuccessStatusCode)
            {
                Interlocked.Add(ref Counters._written, batch.Count);
                Interlocked.Increment(ref Counters._requests);
                return null;
            }

            string reason = await Reason(response, stop).ConfigureAwait(false);
            int status = (int)response.StatusCode;
            if (status is 400 or 413 or 422)
            {
                if (batch.Count == 1)
                {
                    DeadLetter(batch, status, reason);
                    return null;
                }

                // Split to isolate the bad points. InfluxDB wrote the good points of a partial write already; sending
                // them again overwrites them with the same values.
                int half = batch.Count / 2;
                using LineBatch first = batch.Slice(0, half), second = batch.Slice(half, batch.Count - half);
                return await SendOnce(first, stop).ConfigureAwait(false) ?? await SendOnce(second, stop).ConfigureAwait(false);
            }

            if (status == 404 && _options.EffectiveApiVersion == 1 && _options.CreateDatabase)
            {
                _databaseReady = false; // "database not found": create it and retry
            }

            ReportProblem($"HTTP {status}: {reason}");
            return response.Headers.RetryAfter is { } after
                ? after.Delta ?? (after.Date is { } date ? date - DateTimeOffset.UtcNow : TimeSpan.Zero)
                : TimeSpan.Zero;
        }
    }

    private HttpContent Body(LineBatch batch)
    {
        HttpContent content;
        if (_options.Gzip)
        {
            _body.SetLength(0);
            using (var gzip = new GZipStream(_body, CompressionLevel.Fastest, leaveOpen: true))
            {
                gzip.Write(batch.Bytes);
            }

            content = new ByteArrayContent(_body.GetBuffer(), 0, (int)_body.Length);
            content.Headers.ContentEncoding.Add("gzip");
        }
        else
        {
            content = new ReadOnlyMemoryContent(batch.Memory);
        }

        content.Headers.ContentType = new MediaTypeHeaderValue("text/plain") { CharSet = "utf-8" };
        return content;
    }

    private async Task<bool> CreateDatabase(CancellationToken stop)
    {
        string root = _options.Url.GetLeftPart(UriPartial.Authority);
        string query = $"CREATE DATABASE \"{_options.EffectiveDatabase.Replace("\"", "\\\"", StringComparison.Ordinal)}\"";
        try
        {
            using var content = new FormUrlEncodedContent([new("q", query)]);
            using HttpResponseMessage response = await _http.PostAsync(new Uri(root + "/query"), content, stop).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                ReportProblem($"CREATE DATABASE: HTTP {(int)response.StatusCode}: {await Reason(response, stop).ConfigureAwait(false)}");
                return false;
            }

            _databaseReady = true;
            return true;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !stop.IsCancellationRequested)
        {
            ReportProblem(e.Message);
            return false;
        }
    }

    private static async Task<string> Reason(HttpResponseMessage response, CancellationToken stop)
    {
        string body = await response.Content.ReadAsStringAsync(stop).ConfigureAwait(false);
        try
        {
            using var json = System.Text.Json.JsonDocument.Parse(body);
            if (json.RootElement.TryGetProperty("error", out var error) || json.RootElement.TryGetProperty("message", out error))
            {
                return error.GetString() ?? body;
            }
        }
        catch (System.Text.Json.JsonException)
        {
        }

        return body.Length > 500 ? body[..500] : body;
    }

    private void DeadLetter(LineBatch point, int status, string reason)
    {
        Interlocked.Increment(ref Counters._deadLettered);
        string line = Encoding.UTF8.GetString(point.Bytes).TrimEnd('\n');
        LogDeadLetter(_logger, status, reason, line);
        if (_options.EffectiveDeadLetterFile is not { } path)
        {
            return;
        }

        lock (_deadLetterLock)
        {
            File.AppendAllText(path, string.Create(CultureInfo.InvariantCulture, $"# {DateTime.UtcNow:O} HTTP {status}: {reason.ReplaceLineEndings(" ")}\n{line}\n"));
        }
    }

    private void ReportProblem(string problem)
    {
        if (problem != _lastProblem)
        {
            _lastProblem = problem;
            LogProblem(_logger, _options, problem);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "influx {Target}: {Problem} (retrying with back-off; batches go to the spool meanwhile)")]
    private static partial void LogProblem(ILogger logger, InfluxOptions target, string problem);

    [LoggerMessage(Level = LogLevel.Error, Message = "influx: the server refused a point (HTTP {Status}: {Reason}); dead-lettered: {Line}")]
    private static partial void LogDeadLetter(ILogger logger, int status, string reason, string line);

    [LoggerMessage(Level = LogLevel.Error, Message = "influx: dropped {Points} points: {Why}")]
    private static partial void LogDropped(ILogger logger, int points, string why);

    [LoggerMessage(Level = LogLevel.Warning, Message = "influx: {Points} points left in the spool {Folder}; they are written on the next start")]
    private static partial void LogLeftInSpool(ILogger logger, long points, string folder);
}
