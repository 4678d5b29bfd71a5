using System.IO.Compression;
using System.Text;
using Signal.Engine.Data;

namespace Signal.Engine.Tests;

/// <summary>Crafted and damaged files are refused with a message that names the file and what is wrong.</summary>
public sealed class BadFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("signal-badfiles-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A .npy file with the given header dictionary and <paramref name="data"/> bytes after it.</summary>
    private string Npy(string name, string header, int data = 16)
    {
        string text = header.PadRight(118) + "\n";
        var bytes = new List<byte> { 0x93 };
        bytes.AddRange("NUMPY"u8.ToArray());
        bytes.AddRange([1, 0, (byte)(text.Length & 0xFF), (byte)(text.Length >> 8)]);
        bytes.AddRange(Encoding.Latin1.GetBytes(text));
        bytes.AddRange(new byte[data]);
        string path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, [.. bytes]);
        return path;
    }

    [Theory]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (10000000000000,), }", "refused")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }", "refused")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (-5,), }", "'-5' is not a non-negative whole number")]
    [InlineData("{'descr': '|O', 'fortran_order': False, 'shape': (4,), }", "dtype '|O'")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (1000,), }", "ends after 16 of 4,000 data bytes")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }", "1-D (samples) or 2-D")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, }", "without 'shape'")]
    public void A_crafted_npy_header_is_refused_naming_the_file_and_the_problem(string header, string expected)
    {
        string path = Npy("crafted.npy", header);
        var e = Assert.Throws<InvalidDataException>(() => Recording.Load(path, null));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_truncated_npz_is_refused_naming_the_file()
    {
        string good = Path.Combine(_dir, "good.npz");
        using (ZipArchive zip = ZipFile.Open(good, ZipArchiveMode.Create))
        {
            using Stream s = zip.CreateEntry("DE.npy").Open();
            s.Write(File.ReadAllBytes(Npy("de.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4000,), }", 16_000)));
        }

        Assert.Equal(4000, Recording.Load(good, "DE").Length);
        byte[] whole = File.ReadAllBytes(good);
        string cut = Path.Combine(_dir, "cut.npz");
        File.WriteAllBytes(cut, whole[..(whole.Length / 2)]);
        var e = Assert.Throws<InvalidDataException>(() => Recording.Load(cut, "DE"));
        Assert.Contains(cut, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_csv_line_longer_than_the_limit_is_refused_by_line_without_reading_it_whole()
    {
        string path = Path.Combine(_dir, "long.csv");
        using (var w = new StreamWriter(path))
        {
            w.WriteLine("x,y");
            w.WriteLine("1,2");
            w.Write(new string('1', TextLines.MaxLineChars + 10));
            w.WriteLine(",2");
        }

        var e = Assert.Throws<InvalidDataException>(() => CsvRecordingReader.Read(path));
        Assert.Contains($"'{path}' line 3 is longer than", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bounded_lines_equal_dotnets_readlines_across_buffer_boundaries_and_line_ends()
    {
        string path = Path.Combine(_dir, "lines.txt");
        var random = new Random(5);
        var text = new StringBuilder();
        for (int i = 0; i < 3000; i++)
        {
            text.Append(new string((char)('a' + (i % 26)), i % 97 == 0 ? 70_000 : random.Next(0, 300)));
            text.Append(random.Next(3) == 0 ? "\r\n" : "\n");
        }

        text.Append("last line without an end");
        File.WriteAllText(path, text.ToString());
        List<(int Number, string Text)> ours = [.. TextLines.Read(path)];
        string[] reference = File.ReadAllLines(path);
        Assert.Equal(reference, ours.Select(l => l.Text));
        Assert.Equal(Enumerable.Range(1, reference.Length), ours.Select(l => l.Number));
        Assert.Throws<InvalidDataException>(() => TextLines.Read(path, maxChars: 69_999).Count());
    }

    [Fact]
    public void Csv_reads_nan_and_inf_as_numpy_writes_them_and_remembers_each_samples_line()
    {
        string path = Path.Combine(_dir, "special.csv");
        File.WriteAllText(path, "a,b\n1,2\n# comment\n\ninf,-inf\nnan,+Infinity\n3,4e-1\n");
        Recording r = CsvRecordingReader.Read(path);
        Assert.Equal([1f, 2f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, float.PositiveInfinity, 3f, 0.4f], r.Samples);
        Assert.Equal("line 5", r.Where(1));
        Assert.Equal("line 7", r.Where(3));
        var e = Assert.Throws<InvalidDataException>(() => CsvRecordingReader.Read(WriteText("bad.csv", "a,b\n1,2\n3,infinite\n")));
        Assert.Contains("line 3, column 2: 'infinite' is not a number", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_data_set_path_that_does_not_exist_is_refused_never_its_parent_folder()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "1797 RPM"));
        File.WriteAllBytes(Path.Combine(_dir, "1797 RPM", "x.npy"), []);
        string typo = Path.Combine(_dir, "1797 RP");
        var e = Assert.Throws<DirectoryNotFoundException>(() => LabeledDataSet.Load(typo));
        Assert.Contains($"'{typo}' does not exist", e.Message, StringComparison.Ordinal);
        Assert.Contains("did you mean", e.Message, StringComparison.Ordinal);
        Assert.Contains("1797 RPM", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<DirectoryNotFoundException>(() => LabeledDataSet.Load("/nonexistent-signal-data"));
        Assert.Contains("'/nonexistent-signal-data' does not exist", e.Message, StringComparison.Ordinal);
    }

    private string WriteText(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }
}
