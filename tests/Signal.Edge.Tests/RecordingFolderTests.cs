using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Signal.Engine.Data;
using Signal.Features.Pipeline;
using Signal.Models.Networks;
using Signal.Models.Training;
using Xunit;

namespace Signal.Edge.Tests;

/// <summary>Folders of NumPy recordings in CWRU's layout: reading, splitting, decimation, and train/eval with features.</summary>
[Collection("console")]
public sealed class RecordingFolderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("signal-npz-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Writes a CWRU-style .npz: one float64 array of shape (n, 1) named <paramref name="key"/>.</summary>
    private static void WriteNpz(string path, string key, double[] values)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string header = $"{{'descr': '<f8', 'fortran_order': False, 'shape': ({values.Length}, 1), }}";
        header = header.PadRight(((10 + header.Length + 1 + 63) / 64 * 64) - 10 - 1) + "\n";
        using var npy = new MemoryStream();
        npy.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        npy.Write(BitConverter.GetBytes((ushort)header.Length));
        npy.Write(Encoding.ASCII.GetBytes(header));
        foreach (double v in values)
        {
            npy.Write(BitConverter.GetBytes(v));
        }

        using ZipArchive zip = ZipFile.Open(path, ZipArchiveMode.Create);
        using Stream entry = zip.CreateEntry(key + ".npy").Open();
        entry.Write(npy.ToArray());
    }

    private static double[] Tone(double hz, double rate, int n, int seed, double noise = 0.3)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(i => Math.Sin(2 * Math.PI * hz * i / rate) + (noise * ((random.NextDouble() * 2) - 1)))];
    }

    /// <summary>Two loads (100 and 200); Low and High tones at both, 12 kHz; a Normal baseline at 48 kHz at load 100 only.</summary>
    private string WriteSet()
    {
        string root = Path.Combine(_dir, "Data");
        int seed = 0;
        foreach (string load in new[] { "100", "200" })
        {
            for (int i = 0; i < 3; i++)
            {
                WriteNpz(Path.Combine(root, $"{load} RPM", $"{load}_Low_{i}_DE12.npz"), "DE", Tone(300 + (50 * i), 12000, 24000, seed++));
                WriteNpz(Path.Combine(root, $"{load} RPM", $"{load}_High_{i}_DE12.npz"), "DE", Tone(2500 + (100 * i), 12000, 24000, seed++));
            }
        }

        WriteNpz(Path.Combine(root, "100 RPM", "100_Normal.npz"), "DE", Tone(4000, 48000, 4 * 24000, seed, noise: 1));
        return root;
    }

    [Fact]
    public void A_cwru_style_folder_is_split_by_file_pattern_and_a_one_sided_class_by_disjoint_time_ranges()
    {
        string root = WriteSet();
        LabeledDataSet set = LabeledDataSet.Load(root, 1, new RecordingSetOptions { TestPattern = "^200_" });
        Assert.Equal("npz", set.Format);
        Assert.True(set.IsRecordings);
        Assert.Equal(12000, set.SampleRate);
        Assert.Equal(["High", "Low", "Normal"], set.ClassNames);
        Assert.Equal(7, set.Train.Count);
        Assert.Equal(7, set.Test.Count);
        Assert.All(set.Train.Concat(set.Test).Where(s => s.Label != 2), s => Assert.Equal(24000, s.Steps));

        // The 48 kHz baseline is decimated to 12 kHz (24,000 samples), then its last quarter is the test part.
        LabeledSequence head = Assert.Single(set.Train, s => s.Label == 2);
        LabeledSequence tail = Assert.Single(set.Test, s => s.Label == 2);
        Assert.Equal(18000, head.Steps);
        Assert.Equal(6000, tail.Steps);

        // Without a test pattern: a seeded 20 % of each class's recordings (here one of six), the same for a seed.
        LabeledDataSet seeded = LabeledDataSet.Load(root, 5);
        Assert.Equal(2, seeded.Test.Count(s => s.Label != 2));
        Assert.Equal(seeded.Test.Select(s => s.Values[0]), LabeledDataSet.Load(root, 5).Test.Select(s => s.Values[0]));
    }

    [Fact]
    public void Decimation_keeps_the_band_below_the_new_nyquist_frequency_and_removes_what_would_alias()
    {
        string root = Path.Combine(_dir, "Rates");
        WriteNpz(Path.Combine(root, "1_Pass_DE48.npz"), "DE", Tone(1000, 48000, 48000, 1, noise: 0));
        WriteNpz(Path.Combine(root, "1_Stop_DE48.npz"), "DE", Tone(10000, 48000, 48000, 2, noise: 0));
        WriteNpz(Path.Combine(root, "1_Rate_DE12.npz"), "DE", Tone(1000, 12000, 12000, 3, noise: 0));
        LabeledDataSet set = LabeledDataSet.Load(root, 1, new RecordingSetOptions { TestPattern = "^9" });
        Assert.Equal(12000, set.SampleRate);
        static double Rms(LabeledSequence s) => Math.Sqrt(s.Values.Skip(2000).Average(v => (double)v * v));
        LabeledSequence pass = set.Train.Single(s => set.ClassNames[s.Label] == "Pass");
        LabeledSequence stop = set.Train.Single(s => set.ClassNames[s.Label] == "Stop");
        Assert.Equal(9000, pass.Steps); // no recording matches the test pattern: each keeps its first three quarters for training
        Assert.InRange(Rms(pass), 0.69, 0.72); // a unit sine keeps its 1/√2
        Assert.True(Rms(stop) < 0.01, $"a 10 kHz tone would alias to 2 kHz; it kept RMS {Rms(stop)}");
        int crossings = Enumerable.Range(2001, 6000).Count(i => pass.Values[i - 1] < 0 && pass.Values[i] >= 0);
        Assert.InRange(crossings, 499, 501); // 1 kHz over 0.5 s at 12 kHz
    }

    [Fact]
    public void A_file_name_the_label_pattern_does_not_match_is_named_in_the_error()
    {
        WriteNpz(Path.Combine(_dir, "Odd", "123.npz"), "DE", [1, 2, 3]);
        var e = Assert.Throws<InvalidDataException>(() => LabeledDataSet.Load(Path.Combine(_dir, "Odd")));
        Assert.Contains("123.npz", e.Message, StringComparison.Ordinal);
        Assert.Contains("label pattern", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Training_on_recordings_runs_the_feature_pipeline_stores_its_spec_and_eval_streams_the_same_inputs()
    {
        string root = WriteSet();
        string model = Path.Combine(_dir, "tones.sigm");
        Assert.Equal(0, Program.Main(["train", "--data", root, "--test-pattern", "^200_", "--out", model, "--hidden", "16", "--epochs", "15",
            "--features", "rms,spectral_centroid,mel:16", "--frame", "512", "--segment", "8"]));
        RecurrentModel loaded = RecurrentModel.Load(model);
        FeatureSpec spec = FeatureSequences.SpecOf(loaded.Metadata)!;
        Assert.Equal(12000, spec.SampleRate);
        Assert.Equal(512, spec.FrameLength);
        Assert.Equal(256, spec.Hop);
        Assert.Equal(18, loaded.InputSize);
        Assert.NotNull(spec.Normalization);
        Assert.Equal(18, spec.Normalization!.Mean.Count);
        Assert.Equal(8, FeatureSequences.SegmentOf(loaded.Metadata));

        using var doc = JsonDocument.Parse(Cli.Output("eval", "--model", model, "--data", root, "--json"));
        double accuracy = doc.RootElement.GetProperty("accuracy").GetDouble();
        Assert.True(accuracy >= 0.95, $"test accuracy {accuracy}");

        // Test segments are disjoint: 6 recordings × ⌊(93 frames) / 8⌋ + the baseline's tail (22 frames → 2).
        Assert.Equal((6 * 11) + 2, doc.RootElement.GetProperty("sequences").GetInt32());
        using var provenance = JsonDocument.Parse(loaded.Metadata["signal.provenance"]);
        Assert.Equal(accuracy, double.Parse(provenance.RootElement.GetProperty("testAccuracy").GetString()!, CultureInfo.InvariantCulture), 9);
        Assert.Equal("^200_", provenance.RootElement.GetProperty("testPattern").GetString());
    }
}
