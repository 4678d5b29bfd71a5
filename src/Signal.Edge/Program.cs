using System.CommandLine;
using Signal.Edge.Commands;
using Spectre.Console;

namespace Signal.Edge;

/// <summary>The <c>signal-edge</c> command line.</summary>
public static class Program
{
    /// <summary>Runs the command line.</summary>
    /// <param name="args">The arguments.</param>
    /// <returns>The exit code: 0 on success, 1 on a usage or input error.</returns>
    public static int Main(string[] args)
    {
        // Into a file or a pipe: no colour codes or cursor movement, and lines as long as they are, so output greps and
        // diffs cleanly (Spectre otherwise decides from TERM alone). Not for the daemon, which writes through its
        // logger only: loading Spectre there would cost it about 1 MB of resident memory.
        if (Console.IsOutputRedirected && args is not ["run", ..])
        {
            PlainConsole();
        }

        var root = new RootCommand("Signal: real-time sensor signal classification. Run a command with --help for its options.");
        root.Subcommands.Add(FeaturesCommand.Create());
        root.Subcommands.Add(ModelCommands.CreateImport());
        root.Subcommands.Add(ModelCommands.CreateInfer());
        root.Subcommands.Add(ModelCommands.CreateBench());
        root.Subcommands.Add(TrainCommand.CreateTrain());
        root.Subcommands.Add(TrainCommand.CreateEval());
        root.Subcommands.Add(LiveCommands.CreateRun());
        root.Subcommands.Add(LiveCommands.CreateSimulate());
        root.Subcommands.Add(Demo.DemoCommand.Create());
        root.Subcommands.Add(InfoCommand.Create());
        root.Subcommands.Add(SelfTestCommand.Create());
        root.Subcommands.Add(ReplayCommand.Create());
        root.Subcommands.Add(DetectCommand.Create());
        root.Subcommands.Add(Demo.DemoModel.Create());
        return root.Parse(args).Invoke();
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void PlainConsole()
    {
        AnsiConsole.Console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(Console.Out),
        });
        AnsiConsole.Profile.Width = 240;
    }
}
