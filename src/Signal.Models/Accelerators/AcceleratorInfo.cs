namespace Signal.Models.Accelerators;

/// <summary>One device ILGPU found (or why a kind found none), as <c>signal-edge info</c> lists it.</summary>
/// <param name="Kind">cuda, opencl or ilgpu-cpu.</param>
/// <param name="Name">The device's name.</param>
/// <param name="MemoryBytes">Its memory.</param>
/// <param name="Detail">Compute capability, multiprocessors, driver.</param>
/// <param name="Error">Why the kind could not be enumerated, or null.</param>
public sealed record AcceleratorInfo(string Kind, string Name, long MemoryBytes, string Detail, string? Error);
