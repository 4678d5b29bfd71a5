using System.Globalization;

namespace Signal.Engine.Storage;

/// <summary>When the spool forces its writes to disk.</summary>
public enum SpoolSync
{
    /// <summary>After every batch written to the spool (nothing spooled is lost in a power cut). Default.</summary>
    Always,

    /// <summary>At most once a second (a power cut may lose the last second of spooled batches).</summary>
    Periodic,

    /// <summary>Never: the operating system decides (a process crash loses nothing, a power cut may).</summary>
    Never,
}

/// <summary>Where and how <see cref="InfluxWriter"/> writes. Validate with <see cref="Validate"/>; errors name the field.</summary>
public sealed class InfluxOptions
{
    /// <summary>
    /// The server, e.g. <c>http://127.0.0.1:8086</c>. A path is read as the database (1.x) or bucket (2.x):
    /// <c>http://127.0.0.1:8086/signal</c>. https is supported. A <c>file:///path/points.lp</c> URL appends the line
    /// protocol to that file instead (for demos and for loading later with <c>influx -import</c> or <c>influx write</c>).
    /// </summary>
    public Uri Url { get; set; } = new("http://127.0.0.1:8086");

    /// <summary>API: 1 (<c>/write?db=</c>) or 2 (<c>/api/v2/write?org=&amp;bucket=</c>, also InfluxDB 3). Default 1, or 2 when a token is set.</summary>
    public int ApiVersion { get; set; }

    /// <summary>1.x database. Default: the URL's path, else <c>signal</c>.</summary>
    public string? Database { get; set; }

    /// <summary>1.x retention policy, or null for the database's default.</summary>
    public string? RetentionPolicy { get; set; }

    /// <summary>1.x user name, or null.</summary>
    public string? Username { get; set; }

    /// <summary>1.x password, or null. Never logged.</summary>
    public string? Password { get; set; }

    /// <summary>2.x organisation.</summary>
    public string? Org { get; set; }

    /// <summary>2.x bucket. Default: the URL's path.</summary>
    public string? Bucket { get; set; }

    /// <summary>2.x API token (sent as <c>Authorization: Token …</c>). Never logged.</summary>
    public string? Token { get; set; }

    /// <summary>Timestamp precision on the wire. Default nanoseconds.</summary>
    public WritePrecision Precision { get; set; } = WritePrecision.Nanoseconds;

    /// <summary>1.x: send <c>CREATE DATABASE</c> (idempotent) before the first write. Default true.</summary>
    public bool CreateDatabase { get; set; } = true;

    /// <summary>Points per request. Default 5,000.</summary>
    public int BatchSize { get; set; } = 5_000;

    /// <summary>A partial batch is sent after this long. Default 1 s.</summary>
    public TimeSpan FlushInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Sealed batches held in memory for the sender. Default 8. With the batch size this bounds memory: beyond it
    /// batches go to the spool (or, without a spool, are dropped and counted).
    /// </summary>
    public int MaxQueuedBatches { get; set; } = 8;

    /// <summary>Compress request bodies with gzip. Default true.</summary>
    public bool Gzip { get; set; } = true;

    /// <summary>Timeout of one request. Default 10 s.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>First retry delay; doubles with ±20 % jitter up to <see cref="RetryDelayMax"/>; a <c>Retry-After</c> header wins. Default 0.5 s.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(0.5);

    /// <summary>Longest retry delay. Default 30 s.</summary>
    public TimeSpan RetryDelayMax { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a batch from memory is retried before it goes to the spool. Default 5 s.</summary>
    public TimeSpan RetryBeforeSpool { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The spool folder for batches the database could not take, or null for none. Replayed in order, also on the next start.</summary>
    public string? SpoolFolder { get; set; }

    /// <summary>Most bytes the spool may hold. Default 1 GiB. When full, the oldest bulk data goes first; alerts are kept.</summary>
    public long SpoolMaxBytes { get; set; } = 1L << 30;

    /// <summary>When spool writes are forced to disk. Default <see cref="SpoolSync.Always"/>.</summary>
    public SpoolSync SpoolSync { get; set; } = SpoolSync.Always;

    /// <summary>
    /// File that receives points the server refused (a 400 for that point alone), each after a <c># reason</c> comment
    /// line; the file stays valid line protocol. Default: <c>dead-letter.lp</c> in the spool folder, else none (logged only).
    /// </summary>
    public string? DeadLetterFile { get; set; }

    /// <summary>
    /// A PEM file with the certificate authority that signed the server's certificate (a private CA), trusted for
    /// https in place of the system's roots. Null (the default): the system's roots.
    /// </summary>
    public string? CaFile { get; set; }

    /// <summary>How long disposing waits for the database before it spools what is left. Default 10 s.</summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(10);

    internal int EffectiveApiVersion => ApiVersion != 0 ? ApiVersion : Token is null ? 1 : 2;

    internal string PathName => Url.AbsolutePath.Trim('/');

    internal string EffectiveDatabase => Database ?? (PathName.Length > 0 ? PathName : "signal");

    internal string? EffectiveDeadLetterFile => DeadLetterFile ?? (SpoolFolder is null ? null : Path.Combine(SpoolFolder, "dead-letter.lp"));

    /// <summary>Parses <c>http(s)://[user:password@]host:port[/database]</c> into <see cref="Url"/> and the credentials.</summary>
    /// <param name="address">The address.</param>
    /// <returns>These options.</returns>
    /// <exception cref="ArgumentException">It is not an http or https URL.</exception>
    public InfluxOptions WithAddress(string address)
    {
        if (!Uri.TryCreate(address, UriKind.Absolute, out Uri? uri) || uri.Scheme is not ("http" or "https" or "file"))
        {
            throw new ArgumentException($"influx: '{address}' is not http://host:port/database, https://… or file:///path.lp.");
        }

        if (uri.UserInfo.Length > 0)
        {
            string[] parts = uri.UserInfo.Split(':', 2);
            Username = Uri.UnescapeDataString(parts[0]);
            Password = parts.Length > 1 ? Uri.UnescapeDataString(parts[1]) : null;
        }

        Url = new UriBuilder(uri) { UserName = string.Empty, Password = string.Empty }.Uri;
        return this;
    }

    /// <summary>Checks every field.</summary>
    /// <exception cref="ArgumentException">A field is out of range; the message names it.</exception>
    public void Validate()
    {
        static void Fail(string field, string why) => throw new ArgumentException($"influx.{field}: {why}");
        if (Url is null || Url.Scheme is not ("http" or "https" or "file"))
        {
            Fail("url", $"'{Url}' is not an http, https or file URL.");
        }

        if (ApiVersion is not (0 or 1 or 2))
        {
            Fail("apiVersion", $"{ApiVersion} is not 1 or 2.");
        }

        if (!Url!.IsFile && EffectiveApiVersion == 2 && (string.IsNullOrEmpty(Org) || string.IsNullOrEmpty(Bucket ?? (PathName.Length > 0 ? PathName : null))))
        {
            Fail(string.IsNullOrEmpty(Org) ? "org" : "bucket", "the 2.x API needs an organisation and a bucket.");
        }

        if (BatchSize is < 1 or > 1_000_000)
        {
            Fail("batchSize", string.Create(CultureInfo.InvariantCulture, $"{BatchSize} is outside 1-1,000,000."));
        }

        if (FlushInterval <= TimeSpan.Zero)
        {
            Fail("flushInterval", "must be positive.");
        }

        if (MaxQueuedBatches < 1)
        {
            Fail("maxQueuedBatches", "is below 1.");
        }

        if (RequestTimeout <= TimeSpan.Zero || RetryDelay <= TimeSpan.Zero || RetryDelayMax < RetryDelay)
        {
            Fail(RequestTimeout <= TimeSpan.Zero ? "requestTimeout" : RetryDelay <= TimeSpan.Zero ? "retryDelay" : "retryDelayMax", "must be positive (and retryDelayMax ≥ retryDelay).");
        }

        if (SpoolMaxBytes < 1 << 20)
        {
            Fail("spoolMaxBytes", "is below 1 MiB.");
        }

        if (CaFile is not null && Url!.Scheme != "https")
        {
            Fail("caFile", $"is only for https, and the url is '{Url}'.");
        }

        if (CaFile is not null && !File.Exists(CaFile))
        {
            Fail("caFile", $"'{CaFile}' does not exist.");
        }
    }

    /// <summary>The server and target, without credentials.</summary>
    /// <returns>For example <c>http://127.0.0.1:8086 db=signal</c>.</returns>
    public override string ToString() => Url.IsFile ? Url.LocalPath : EffectiveApiVersion == 1
        ? $"{Url.GetLeftPart(UriPartial.Authority)} db={EffectiveDatabase}"
        : $"{Url.GetLeftPart(UriPartial.Authority)} org={Org} bucket={Bucket ?? PathName}";
}
