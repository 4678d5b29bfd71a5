using System.Diagnostics.CodeAnalysis;

namespace Signal.Models;

/// <summary>Keeps throwing off the hot paths so the callers stay small enough to inline.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void Argument(string paramName, string message) =>
        throw new ArgumentException(message, paramName);

    [DoesNotReturn]
    public static void InvalidOperation(string message) =>
        throw new InvalidOperationException(message);
}
