using Xunit;

namespace Signal.Edge.Tests;

/// <summary>Runs the command line in-process and captures what it prints.</summary>
internal static class Cli
{
    /// <summary>Runs <paramref name="args"/>, asserts exit code 0 and returns standard output.</summary>
    public static string Output(params string[] args)
    {
        var output = new StringWriter();
        TextWriter original = Console.Out;
        Console.SetOut(output);
        try
        {
            Assert.Equal(0, Program.Main(args));
        }
        finally
        {
            Console.SetOut(original);
        }

        return output.ToString();
    }
}
