using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Xunit;

namespace Signal.Edge.Tests;

/// <summary>A <c>signal-edge</c> child process (the daemon as users run it), with its output captured.</summary>
internal sealed partial class EdgeProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    public EdgeProcess(IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "signal-edge.dll"));
        foreach (string a in args)
        {
            start.ArgumentList.Add(a);
        }

        foreach ((string key, string value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        _process = Process.Start(start)!;
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public int Id => _process.Id;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public static int FreePort() => Signal.Engine.LocalServer.FreePort();

    /// <summary>Polls <paramref name="condition"/> until it holds; fails with the process output when it never does.</summary>
    public async Task WaitUntil(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (_process.HasExited)
            {
                Assert.Fail($"signal-edge exited with {_process.ExitCode} while waiting for {what}:\n{Output}");
            }

            try
            {
                if (await condition())
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
                // One slow answer (the client's timeout) while the machine is busy; the deadline above still holds.
            }

            await Task.Delay(100);
        }

        Assert.Fail($"timed out after {timeout.TotalSeconds} s waiting for {what}:\n{Output}");
    }

    /// <summary>Waits for the process to end by itself.</summary>
    public bool WaitForExit(TimeSpan timeout)
    {
        bool exited = _process.WaitForExit(timeout);
        if (exited)
        {
            _process.WaitForExit(); // flushes the redirected output
        }

        return exited;
    }

    public int ExitCode => _process.ExitCode;

    /// <summary>Sends SIGHUP (what <c>systemctl reload</c> sends).</summary>
    public void HangUp() => Assert.Equal(0, Kill(_process.Id, 1));

    /// <summary>Sends SIGKILL (a crash, an OOM kill, a power cut of the process) and waits for the process to end.</summary>
    public void Kill()
    {
        Assert.Equal(0, Kill(_process.Id, 9));
        _process.WaitForExit();
    }

    /// <summary>Sends SIGTERM (what systemd sends) and waits for the exit code.</summary>
    public int Terminate(TimeSpan timeout)
    {
        Assert.Equal(0, Kill(_process.Id, 15));
        Assert.True(_process.WaitForExit(timeout), $"signal-edge did not stop within {timeout.TotalSeconds} s of SIGTERM:\n{Output}");
        _process.WaitForExit();

        // A crash while stopping (a signal's exit code, 128 + n) fails here with what the daemon printed.
        Assert.True(_process.ExitCode < 128, $"signal-edge ended with exit code {_process.ExitCode} after SIGTERM:\n{Output}");
        return _process.ExitCode;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }

        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int signal);
}
