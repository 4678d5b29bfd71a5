using System.Text.Json;
using Signal.Engine.Data;
using Xunit;

namespace Signal.Engine.Tests;

/// <summary>The recording readers against files written by numpy (tests/reference/recordings_reference.py).</summary>
public sealed class RecordingReaderTests
{
    private static string File(string name) => Path.Combine(AppContext.BaseDirectory, "golden", "recordings", name);

    private static double[][] Multi()
    {
        using var doc = JsonDocument.Parse(System.IO.File.ReadAllText(File("expected.json")));
        return [.. doc.RootElement.GetProperty("multi").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetDouble()).ToArray())];
    }

    private static void AssertInterleaved(Recording recording, double[][] expected, int[] columns)
    {
        Assert.Equal(columns.Length, recording.Channels);
        Assert.Equal(expected.Length, recording.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            for (int c = 0; c < columns.Length; c++)
            {
                Assert.Equal((float)expected[i][columns[c]], recording.Samples[(i * columns.Length) + c]);
            }
        }
    }

    [Theory]
    [InlineData("c_f4_2d.npy")]
    [InlineData("fortran_f8_2d.npy")]
    [InlineData("with_header.csv")]
    public void Multichannel_recordings_are_interleaved_by_channel(string name)
    {
        Recording recording = Recording.Load(File(name));
        AssertInterleaved(recording, Multi(), [0, 1, 2]);
        if (name.EndsWith(".csv", StringComparison.Ordinal))
        {
            Assert.Equal(["x", "y", "z"], recording.ChannelNames);
        }
    }

    [Fact]
    public void Integer_and_big_endian_arrays_convert_to_float()
    {
        using var doc = JsonDocument.Parse(System.IO.File.ReadAllText(File("expected.json")));
        float[] ints = [.. doc.RootElement.GetProperty("i2").EnumerateArray().Select(v => (float)v.GetInt32())];
        Assert.Equal(ints, Recording.Load(File("i2_1d.npy")).Samples);
        AssertInterleaved(Recording.Load(File("big_endian_f8_1d.npy")), Multi(), [1]);
    }

    [Fact]
    public void Npz_arrays_are_chosen_by_key_or_the_first_is_taken()
    {
        AssertInterleaved(Recording.Load(File("cwru_like.npz")), Multi(), [0]);
        AssertInterleaved(Recording.Load(File("cwru_like.npz"), "FE"), Multi(), [1]);
        var ex = Assert.Throws<InvalidDataException>(() => Recording.Load(File("cwru_like.npz"), "BA"));
        Assert.Contains("DE, FE", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bad_csv_row_is_named_by_line_and_column()
    {
        string path = Path.Combine(Path.GetTempPath(), $"signal-bad-{Guid.NewGuid():N}.csv");
        System.IO.File.WriteAllText(path, "a,b\n1,2\n3,oops\n");
        try
        {
            var ex = Assert.Throws<InvalidDataException>(() => Recording.Load(path));
            Assert.Contains("line 3, column 2", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            System.IO.File.Delete(path);
        }
    }

    [Fact]
    public void A_file_that_is_not_npy_is_refused_clearly()
    {
        string fake = Path.Combine(Path.GetTempPath(), $"signal-fake-{Guid.NewGuid():N}.npy");
        System.IO.File.WriteAllText(fake, "not numpy");
        try
        {
            Assert.Contains("not a .npy", Assert.Throws<InvalidDataException>(() => Recording.Load(fake)).Message, StringComparison.Ordinal);
        }
        finally
        {
            System.IO.File.Delete(fake);
        }
    }
}
