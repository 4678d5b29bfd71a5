namespace Signal.Models.Accelerators;

/// <summary>An accelerator was asked for and none of that kind could be opened; the message says what was looked for.</summary>
public sealed class AcceleratorUnavailableException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public AcceleratorUnavailableException()
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">What was looked for and what to do.</param>
    public AcceleratorUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">What was looked for and what to do.</param>
    /// <param name="inner">The cause.</param>
    public AcceleratorUnavailableException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
