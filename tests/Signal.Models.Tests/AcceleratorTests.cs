using Signal.Models.Accelerators;
using Signal.Models.Networks;
using Signal.Models.Training;

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
        AcceleratorCheckCase result = AcceleratorCheck.Compare(name, model, AcceleratorKind.IlgpuCpu, streams: 130, steps: 6); // 130 > one 128-row tile
        Assert.True(result.Passed, $"{name}: probabilities {result.ProbabilityError:E2}, forecasts {result.ForecastError:E2}, states {result.StateError:E2} (or the states never moved)");
    }
}

/// <summary>The GPU head kernel for few classes against the SIMD path's probabilities.</summary>
public class AcceleratorHeadTests
{
    [Fact]
    public void The_small_class_head_kernel_gives_the_SIMD_paths_probabilities()
    {
        // Large batches of few classes take a kernel of their own (one thread per stream); force it at a small batch.
        var architecture = new ModelArchitecture { InputSize = 6, Classes = 5, Pooling = "mean", Layers = [new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = 20 }] };
        RecurrentModel model = RecurrentModel.CreateRandom(architecture, seed: 8);
        const int streams = 40;
        using var cpu = new BatchStepper(model, streams, threads: 1);
        using var gpu = new Signal.Models.Accelerators.Device.AcceleratedStepper(model, streams, AcceleratorKind.IlgpuCpu) { SmallHeadMinimumRows = 1 };
        RecurrentState[] a = [.. Enumerable.Range(0, streams).Select(_ => model.CreateState())], b = [.. Enumerable.Range(0, streams).Select(_ => model.CreateState())];
        var random = new Random(2);
        float[] x = new float[streams * 6], p1 = new float[streams * 5], p2 = new float[streams * 5];
        double worst = 0;
        for (int t = 0; t < 5; t++)
        {
            for (int i = 0; i < x.Length; i++)
            {
                x[i] = (float)((random.NextDouble() * 2) - 1);
            }

            cpu.Step(a, x, p1);
            gpu.Step(b, x, p2);
            worst = Math.Max(worst, p1.Zip(p2, (u, v) => Math.Abs((double)u - v)).Max());
        }

        Assert.True(worst <= AcceleratorCheck.Tolerance, $"largest probability difference {worst:E2}");
        Assert.True(p1.Max() - p1.Min() > 0.01); // the probabilities differ between classes: a wrong head would show
    }
}

/// <summary>States stay resident on the device between batches of different streams when there is room.</summary>
public class AcceleratorResidencyTests
{
    [Fact]
    public void With_room_for_every_stream_states_stay_on_the_device_between_batches_of_different_streams()
    {
        // An engine steps its streams in batches smaller than the streams it holds: with the capacity at the stream
        // count each state goes up once; with the capacity at the batch size they are copied out and in again.
        var architecture = new ModelArchitecture { InputSize = 3, Classes = 2, Layers = [new LayerArchitecture { Kind = CellKind.Gru, HiddenSize = 8 }] };
        RecurrentModel model = RecurrentModel.CreateRandom(architecture, seed: 4);
        RecurrentState[] states = [.. Enumerable.Range(0, 40).Select(_ => model.CreateState())];
        long Uploads(int capacity)
        {
            using var gpu = new Signal.Models.Accelerators.Device.AcceleratedStepper(model, 20, AcceleratorKind.IlgpuCpu, capacity);
            float[] x = new float[20 * 3], p = new float[20 * 2];
            for (int round = 0; round < 3; round++)
            {
                gpu.Step(states.AsSpan(0, 20), x, p);
                gpu.Step(states.AsSpan(20, 20), x, p);
            }

            return gpu.Uploads;
        }

        Assert.Equal(40, Uploads(40));
        Assert.Equal(120, Uploads(20)); // every batch brings 20 states back in
    }
}

/// <summary>
/// The accelerator trainer on ILGPU's CPU accelerator against the CPU trainer (whose gradients the reference tests
/// check against PyTorch and finite differences): the loss, the counts and every gradient within 1e-5.
/// </summary>
public class AcceleratedTrainingTests
{
    public static TheoryData<int> Cases() => [.. Enumerable.Range(0, AcceleratorCheck.TrainingCases().Count)];

    [Theory]
    [MemberData(nameof(Cases))]
    public void Gradients_on_the_accelerator_equal_the_CPU_trainers_within_1e_5(int index)
    {
        (string cells, LossKind loss, bool pooling, double smoothing, bool weighted) = AcceleratorCheck.TrainingCases()[index];
        var result = AcceleratorCheck.CompareTraining(cells, loss, pooling, smoothing, weighted, AcceleratorKind.IlgpuCpu);
        Assert.True(result.LossError <= 1e-5, $"loss differs by {result.LossError:E2}");
        Assert.True(result.GradientError <= 1e-5, $"{result.WorstTensor}: largest gradient difference {result.GradientError:E2}");
        Assert.True(result.CountsAgree, "correct or counted steps differ");
        Assert.True(result.AllGradientsNonZero, "a tensor received no gradient, so the comparison compared nothing there");
    }

    [Fact]
    public void The_accelerator_trainer_refuses_what_it_does_not_train_by_name()
    {
        var architecture = new ModelArchitecture { InputSize = 2, Classes = 2, Layers = [new LayerArchitecture { HiddenSize = 4 }] };
        var dropout = Assert.Throws<NotSupportedException>(() => AcceleratorSelection.CreateLoss(architecture, AcceleratorKind.IlgpuCpu, new TrainerOptions { Dropout = 0.2 }));
        Assert.Contains("dropout", dropout.Message, StringComparison.Ordinal);
        var forecaster = new ModelArchitecture { InputSize = 2, Classes = 2, ForecastSize = 2, Layers = [new LayerArchitecture { HiddenSize = 4 }] };
        var head = Assert.Throws<NotSupportedException>(() => AcceleratorSelection.CreateLoss(forecaster, AcceleratorKind.IlgpuCpu, new TrainerOptions()));
        Assert.Contains("forecasting head", head.Message, StringComparison.Ordinal);
        Assert.Null(AcceleratorSelection.CreateLoss(architecture, AcceleratorKind.Cpu, new TrainerOptions()));
    }
}
