namespace Signal.Features.Windows;

/// <summary>The window functions a frame can be tapered with before its FFT.</summary>
public enum WindowKind
{
    /// <summary>No taper: every weight is 1 (scipy's <c>boxcar</c>).</summary>
    Rectangular,

    /// <summary>Hann: <c>0.5 - 0.5·cos(2πn/D)</c>.</summary>
    Hann,

    /// <summary>Hamming: <c>0.54 - 0.46·cos(2πn/D)</c>.</summary>
    Hamming,

    /// <summary>Blackman: <c>0.42 - 0.5·cos(2πn/D) + 0.08·cos(4πn/D)</c>.</summary>
    Blackman,
}
