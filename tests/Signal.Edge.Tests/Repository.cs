namespace Signal.Edge.Tests;

/// <summary>The checkout the tests run from (the folder holding Signal.sln above the test binaries).</summary>
internal static class Repository
{
    public static string Root { get; } = Find();

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    private static string Find()
    {
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(d.FullName, "Signal.sln")))
            {
                return d.FullName;
            }
        }

        throw new DirectoryNotFoundException("no Signal.sln above the test binaries");
    }
}
