using BenchmarkDotNet.Running;

namespace Signal.Benchmarks;

public static class Program
{
    public static void Main(string[] args)
    {
        if (args is ["profile"])
        {
            Profile.Run();
            return;
        }

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
    }
}
