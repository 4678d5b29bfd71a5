using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Signal.Engine.Data;
using Signal.Features.Pipeline;
using Spectre.Console;

namespace Signal.Edge.Commands;

/// <summary><c>signal-edge features</c>: one row of named features per frame of a recording.</summary>
internal static class FeaturesCommand
{
    private const string DefaultFeatures = "rms,crest_factor,kurtosis,zcr,spectral_centroid,spectral_flatness,peak_frequency,mel:40,mfcc:13";

    public static Command Create()
    {
        var spec = new Option<FileInfo?>("--spec") { Description = "A feature spec (JSON). Without it the flags below build one." };
        var input = new Option<FileInfo?>("--input", "-i") { Description = "A recording: CSV (one column per channel, optional header), .npy or .npz. Without it a synthetic vibration signal with a bearing fault is used." };
        var key = new Option<string?>("--key") { Description = "The array of a .npz archive to read (default: the first; e.g. DE for CWRU files)." };
        var output = new Option<FileInfo>("--output", "-o") { Description = "The CSV to write.", DefaultValueFactory = _ => new FileInfo("features.csv") };
        var rate = new Option<double?>("--rate") { Description = "Sample rate in Hz (default 12000)." };
        var frame = new Option<int>("--frame") { Description = "Frame length in samples.", DefaultValueFactory = _ => 1024 };
        var hop = new Option<int>("--hop") { Description = "Hop between frames in samples.", DefaultValueFactory = _ => 512 };
        var window = new Option<string>("--window") { Description = "hann (periodic), hamming, blackman or rectangular.", DefaultValueFactory = _ => "hann" };
        var features = new Option<string>("--features") { Description = "Comma-separated features, e.g. rms,zcr,spectral_centroid,mel:40,mfcc:13.", DefaultValueFactory = _ => DefaultFeatures };
        var writeSpec = new Option<FileInfo?>("--write-spec") { Description = "Also save the spec built from the flags (JSON), to reuse with --spec." };
        var command = new Command("features", """
            Extracts features frame by frame and writes one CSV row per frame: frame index, start time in seconds,
            then one named column per feature (with a channel suffix when there are several channels).

            Examples:
              signal-edge features --input datasets/examples/vibration.csv --rate 12000 --features rms,spectral_centroid,mfcc:13 --output vibration-features.csv
              signal-edge features --input run.csv --rate 12000 --frame 1024 --hop 512 --features rms,zcr,spectral_centroid,mel:40,mfcc:13 --output run-features.csv
              signal-edge features --input "1797_Normal.npz" --key DE --spec spec.json --output normal.csv
              signal-edge features --output demo-features.csv   (no --input: a synthetic bearing-fault signal)
            """)
        {
            spec, input, key, output, rate, frame, hop, window, features, writeSpec,
        };
        command.SetAction(parse => CommandErrors.Run(() => Run(
            parse.GetValue(spec), parse.GetValue(input), parse.GetValue(key), parse.GetValue(output)!,
            parse.GetValue(rate), parse.GetValue(frame), parse.GetValue(hop), parse.GetValue(window)!,
            parse.GetValue(features)!, parse.GetValue(writeSpec)), CommandErrors.RecordingLayout));
        return command;
    }

    private static int Run(FileInfo? specFile, FileInfo? inputFile, string? key, FileInfo output, double? rate, int frame, int hop,
        string window, string featureList, FileInfo? writeSpec)
    {
        Recording recording = inputFile is null
            ? SyntheticVibration.Generate(rate ?? 12000)
            : Recording.Load(inputFile.FullName, key);
        FeatureSpec spec = specFile is not null
            ? FeatureSpec.FromJson(File.ReadAllText(specFile.FullName))
            : new FeatureSpec
            {
                SampleRate = rate ?? 12000,
                FrameLength = frame,
                Hop = hop,
                Window = window,
                Features = FeatureRequest.ParseList(featureList),
            };
        if (specFile is null)
        {
            spec = spec with
            {
                Channels = recording.Channels,
                ChannelNames = recording.Channels > 1 ? recording.ChannelNames : null,
            };
        }
        else if (spec.Channels != recording.Channels)
        {
            throw new InvalidDataException($"The spec expects {spec.Channels} channel(s) but '{recording.Source}' has {recording.Channels}.");
        }

        var pipeline = new FeaturePipeline(spec);
        if (writeSpec is not null)
        {
            File.WriteAllText(writeSpec.FullName, spec.ToJson());
        }

        var clock = Stopwatch.StartNew();
        float[] rows;
        try
        {
            rows = pipeline.ExtractAll(recording.Samples);
        }
        catch (NonFiniteSampleException e)
        {
            // ExtractAll takes the whole recording as one chunk, so the sample index is the recording's.
            throw new InvalidDataException(
                $"'{recording.Source}' {recording.Where(e.SampleIndex)}, channel '{recording.ChannelNames[e.Channel]}': {e.Value.ToString(CultureInfo.InvariantCulture)} is not a finite number " +
                "(set \"nonFinite\": \"hold\" in a --spec to repeat the previous sample instead).", e);
        }

        double seconds = clock.Elapsed.TotalSeconds;
        int count = rows.Length / pipeline.OutputLength;
        WriteCsv(output.FullName, pipeline, rows, spec);

        AnsiConsole.MarkupLineInterpolated($"[bold]Signal features[/]  {recording.Source}");
        AnsiConsole.MarkupLineInterpolated($"{recording.Length:N0} samples × {recording.Channels} channel(s) at {spec.SampleRate:G} Hz → {count:N0} frames of {spec.FrameLength} (hop {spec.Hop}, {spec.Window}) × {pipeline.OutputLength} features in {seconds * 1000:F1} ms");
        var table = new Table().Title("Feature summary over all frames").AddColumns("feature", "min", "mean", "max");
        foreach (int c in SummaryColumns(pipeline))
        {
            float min = float.MaxValue, max = float.MinValue;
            double sum = 0;
            for (int r = 0; r < count; r++)
            {
                float v = rows[(r * pipeline.OutputLength) + c];
                min = Math.Min(min, v);
                max = Math.Max(max, v);
                sum += v;
            }

            table.AddRow(pipeline.ColumnNames[c], Format(min), Format(count > 0 ? sum / count : 0), Format(max));
        }

        if (count > 0)
        {
            AnsiConsole.Write(table);
        }

        AnsiConsole.MarkupLineInterpolated($"Wrote [green]{output.FullName}[/] ({count:N0} rows).");
        return 0;
    }

    /// <summary>Every scalar feature, and the first column of each vector feature, to keep the table short.</summary>
    private static IEnumerable<int> SummaryColumns(FeaturePipeline pipeline)
    {
        for (int i = 0; i < pipeline.OutputLength; i++)
        {
            string name = pipeline.ColumnNames[i];
            int underscore = name.LastIndexOf('_');
            bool vectorTail = underscore > 0 && int.TryParse(name.AsSpan(underscore + 1), out int index) && index > 0;
            if (!vectorTail)
            {
                yield return i;
            }
        }
    }

    private static string Format(double v) => v.ToString("G5", CultureInfo.InvariantCulture);

    private static void WriteCsv(string path, FeaturePipeline pipeline, float[] rows, FeatureSpec spec)
    {
        using var writer = new StreamWriter(path, false, new UTF8Encoding(false), 1 << 16);
        writer.Write("frame,time_s");
        foreach (string name in pipeline.ColumnNames)
        {
            writer.Write(',');
            writer.Write(name);
        }

        writer.WriteLine();
        int count = rows.Length / pipeline.OutputLength;
        for (int r = 0; r < count; r++)
        {
            writer.Write(r.ToString(CultureInfo.InvariantCulture));
            writer.Write(',');
            writer.Write((r * spec.Hop / spec.SampleRate).ToString("R", CultureInfo.InvariantCulture));
            for (int c = 0; c < pipeline.OutputLength; c++)
            {
                writer.Write(',');
                writer.Write(rows[(r * pipeline.OutputLength) + c].ToString("R", CultureInfo.InvariantCulture));
            }

            writer.WriteLine();
        }
    }
}
