using System.Runtime.Intrinsics;
using Xunit.Abstractions;

namespace Signal.Features.Tests;

public sealed class InstructionSetTests(ITestOutputHelper output)
{
    [Fact]
    public void Reports_the_instruction_sets_this_run_uses()
    {
        // .ci/run repeats the suite with DOTNET_EnableAVX512=0 / EnableAVX2=0 / EnableHWIntrinsic=0; this line shows which one ran.
        string line = $"Vector512={Vector512.IsHardwareAccelerated} Vector256={Vector256.IsHardwareAccelerated} " +
            $"Vector128={Vector128.IsHardwareAccelerated} fft={Fft.RealFft.Path}";
        output.WriteLine(line);
        Console.WriteLine("[instruction sets] " + line);
        Assert.Equal(Vector256.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx2.IsSupported ? "Vector256"
            : Vector128.IsHardwareAccelerated ? "Vector128" : "scalar", Fft.RealFft.Path);
    }
}
