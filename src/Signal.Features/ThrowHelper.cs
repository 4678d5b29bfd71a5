using System.Diagnostics.CodeAnalysis;

namespace Signal.Features;

/// <summary>Keeps throwing off the hot paths so the callers stay small enough to inline.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void ArgumentTooShort(string paramName, int required, int actual) =>
        throw new ArgumentException($"'{paramName}' holds {actual} elements; at least {required} are required.", paramName);

    [DoesNotReturn]
    public static void ArgumentLength(string paramName, int expected, int actual) =>
        throw new ArgumentException($"'{paramName}' holds {actual} elements; exactly {expected} are required.", paramName);

    [DoesNotReturn]
    public static void Argument(string paramName, string message) =>
        throw new ArgumentException(message, paramName);

    [DoesNotReturn]
    public static void OutOfRange(string paramName, object? value, string message) =>
        throw new ArgumentOutOfRangeException(paramName, value, message);
}
