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

    /// <summary>Runs <paramref name="args"/> and returns the exit code and what it wrote to standard error.</summary>
    public static (int Code, string Error) Fails(params string[] args)
    {
        var error = new StringWriter();
        TextWriter original = Console.Error;
        Console.SetError(error);
        try
        {
            return (Program.Main(args), error.ToString());
        }
        finally
        {
            Console.SetError(original);
        }
    }
}
