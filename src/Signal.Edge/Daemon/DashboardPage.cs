namespace Signal.Edge.Daemon;

/// <summary>The live dashboard: one self-contained page (no external script, font or CDN), fed by <c>/api/events</c>.</summary>
internal static class DashboardPage
{
    /// <summary>The page's bytes (UTF-8), embedded in the assembly.</summary>
    public static readonly byte[] Html = Load();

    private static byte[] Load()
    {
        using Stream stream = typeof(DashboardPage).Assembly.GetManifestResourceStream("Signal.Edge.dashboard.html")
            ?? throw new InvalidOperationException("the dashboard page is missing from this build.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
