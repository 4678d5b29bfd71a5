using Signal.Models.Accelerators;
using Signal.Models.Networks;

namespace Signal.Models.Tests;

/// <summary>
/// The ILGPU backend run on ILGPU's CPU accelerator (the GPU kernels, executed on the CPU) against the SIMD path,
/// which the reference tests check against PyTorch.
/// </summary>
public class AcceleratorTests
{
    public static TheoryData<int> Cases() => [.. Enumerable.Range(0, AcceleratorCheck.Models().Count)];

    [Theory]
    [MemberData(nameof(Cases))]
    public void The_accelerator_backend_steps_as_the_SIMD_path_within_1e_5(int index)
    {
        (string name, ModelArchitecture architecture) = AcceleratorCheck.Models()[index];
        RecurrentModel model = RecurrentModel.CreateRandom(architecture, seed: 40 + index);
        AcceleratorCheckCase result = AcceleratorCheck.Compare(name, model, AcceleratorKind.IlgpuCpu, streams: 150, steps: 8);
        Assert.True(result.Passed, $"{name}: probabilities {result.ProbabilityError:E2}, forecasts {result.ForecastError:E2}, states {result.StateError:E2}");
        // The outputs were compared, not skipped: a forecasting or classifying model has something to differ in.
        Assert.True(model.ClassCount > 0 || model.ForecastSize > 0);
    }
}
