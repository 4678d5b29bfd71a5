using Signal.Engine.Anomaly;
using Signal.Engine.Data;

namespace Signal.Engine.Tests;

public sealed class StreamingDetectorTests
{
    private static readonly DateTime s_start = new(2026, 1, 5, 0, 0, 0, DateTimeKind.Utc);

    /// <summary>Five-minute readings: a daily cycle (peak at noon) plus noise, optionally changed by <paramref name="change"/>.</summary>
    private static double[] Daily(int rows, int seed, Func<int, double, double>? change = null)
    {
        var rng = new Random(seed);
        var values = new double[rows];
        for (int i = 0; i < rows; i++)
        {
            double hour = i * 5 / 60.0 % 24;
            double v = 50 + (20 * Math.Sin(2 * Math.PI * (hour - 6) / 24)) + (2 * ((rng.NextDouble() * 2) - 1));
            values[i] = change is null ? v : change(i, v);
        }

        return values;
    }

    private static (List<int> Flags, double[] Scores) Run(double[] values, int warmup = 750, double scale = 1) => Run(values, out _, warmup, scale);

    private static (List<int> Flags, double[] Scores) Run(double[] values, out StreamingAnomalyDetector detector, int warmup = 750, double scale = 1)
    {
        detector = new StreamingAnomalyDetector(new AnomalyDetectorOptions { WarmupRows = warmup });
        var flags = new List<int>();
        var scores = new double[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            AnomalyVerdict v = detector.Step((s_start.AddMinutes(5 * i) - DateTime.UnixEpoch).TotalSeconds, values[i] * scale);
            scores[i] = v.Score;
            if (v.Flag)
            {
                flags.Add(i);
            }
        }

        return (flags, scores);
    }

    [Fact]
    public void A_normal_daily_cycle_raises_nothing_in_two_weeks()
    {
        (List<int> flags, _) = Run(Daily(14 * 288, seed: 1));
        Assert.Empty(flags);
    }

    [Fact]
    public void A_spike_is_flagged_once_at_its_onset()
    {
        double[] values = Daily(10 * 288, seed: 2, (i, v) => i is >= 2000 and < 2004 ? v + 60 : v);
        (List<int> flags, double[] scores) = Run(values);
        Assert.Equal([2000], flags);
        Assert.True(scores[2000] >= AnomalyDetectorOptions.DefaultThreshold && scores[1990] < 0.3, $"scores {scores[1990]:0.00} before, {scores[2000]:0.00} at the spike");
    }

    [Fact]
    public void A_missing_daily_peak_is_flagged_and_a_normal_peak_is_not()
    {
        // Day 6's afternoon stays at the night-time level: the values are ordinary, only the time of day makes them wrong.
        double[] values = Daily(9 * 288, seed: 3, (i, v) => i / 288 == 6 && i % 288 is >= 130 and < 200 ? 30 + (v - 50) * 0.05 : v);
        (List<int> flags, _) = Run(values, out StreamingAnomalyDetector detector);
        Assert.True(detector.IsSeasonal); // the warm-up (2.6 days) showed the daily cycle
        Assert.NotEmpty(flags);
        Assert.All(flags, f => Assert.True(f is >= (6 * 288) + 130 and < (6 * 288) + 230, $"row {f} flagged outside the missing peak"));
    }

    [Fact]
    public void A_persistent_new_level_becomes_normal()
    {
        double[] values = Daily(14 * 288, seed: 4, (i, v) => i >= 1500 ? v + 30 : v);
        (List<int> flags, double[] scores) = Run(values);
        Assert.Contains(flags, f => f is >= 1500 and < 1520);
        Assert.All(flags, f => Assert.True(f < 1500 + (3 * 288), $"row {f}: the new level is still an anomaly days later"));
        Assert.True(scores[^1] < 0.2, $"score {scores[^1]:0.00} at the end");
    }

    [Fact]
    public void Scores_do_not_depend_on_the_streams_units()
    {
        double[] values = Daily(6 * 288, seed: 5, (i, v) => i is >= 1200 and < 1210 ? v - 40 : v);
        (List<int> flags, double[] scores) = Run(values);
        (List<int> scaledFlags, double[] scaledScores) = Run(values, scale: 1000);
        Assert.Equal(flags, scaledFlags);
        Assert.NotEmpty(flags);
        // Equal up to rounding: a rounding difference can move a score across one of the 2,000 past scores it is ranked among.
        for (int i = 0; i < scores.Length; i++)
        {
            Assert.True(Math.Abs(scores[i] - scaledScores[i]) < 0.01, $"row {i}: {scores[i]} in the original units, {scaledScores[i]} × 1000");
        }
    }

    [Fact]
    public void A_row_is_scored_from_the_rows_before_it_only()
    {
        double[] values = Daily(5 * 288, seed: 6, (i, v) => i is >= 1000 and < 1003 ? v * 3 : v);
        (List<int> flags, double[] scores) = Run(values);
        (List<int> prefixFlags, double[] prefixScores) = Run(values[..1001]);
        Assert.Equal(scores[..1001], prefixScores);
        Assert.Equal(flags.Where(f => f <= 1000), prefixFlags);
        Assert.Contains(1000, prefixFlags);
    }

    [Fact]
    public void A_detector_holds_about_a_third_of_a_megabyte_and_steps_without_allocating()
    {
        // 6 likelihood histories of 4,000 scores twice in single precision (192,000 B), the pattern history twice (65,536 B),
        // two deques of 4,097 row numbers (65,552 B), plus small arrays.
        var options = new AnomalyDetectorOptions();
        new StreamingAnomalyDetector(options).Step(0, 1); // the thread's shared scratch of the pattern search
        long before = GC.GetAllocatedBytesForCurrentThread();
        var detector = new StreamingAnomalyDetector(options);
        long held = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.InRange(held, 320_000, 340_000);
        for (int i = 0; i < 3000; i++)
        {
            detector.Step(i * 60, Math.Sin(i / 30.0));
        }

        before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 3000; i < 5000; i++)
        {
            detector.Step(i * 60, Math.Sin(i / 30.0));
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void Evidence_names_the_detectors_and_settings_are_checked()
    {
        var detector = new StreamingAnomalyDetector(new AnomalyDetectorOptions { WarmupRows = 100 }, "forecast");
        Assert.Equal(["value", "difference", "seasonal", "change", "pattern", "extreme", "forecast"], detector.Names);
        Assert.Throws<ArgumentException>(() => detector.Step(0, 1));
        for (int i = 0; i < 300; i++)
        {
            detector.Step(i * 60, Math.Sin(i / 10.0), [i == 299 ? 50 : 1]);
        }

        Assert.StartsWith("forecast", detector.DescribeEvidence(), StringComparison.Ordinal);
        Assert.Contains("must be at least 16", Assert.Throws<ArgumentException>(() => new AnomalyDetectorOptions { WarmupRows = 3 }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("threshold", Assert.Throws<ArgumentException>(() => new AnomalyDetectorOptions { Threshold = 1.5 }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("engine.anomalyLikelihoodWarmup: 5 is below 16", Assert.Throws<ArgumentException>(() => new Live.EngineOptions { AnomalyLikelihoodWarmup = 5 }.Validate()).Message, StringComparison.Ordinal);
    }
}

public sealed class TimeSeriesCsvTests
{
    private static string Write(params string[] lines)
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("signal-ts-").FullName, "series.csv");
        File.WriteAllLines(path, lines);
        return path;
    }

    [Fact]
    public void A_clock_that_steps_back_is_read_in_file_order_by_default_and_counted()
    {
        string path = Write("timestamp,value", "2026-01-01 00:10:00,1", "2026-01-01 00:15:00,2", "2026-01-01 00:05:00,3", "2026-01-01 00:20:00,4");
        TimeSeriesCsv series = TimeSeriesCsv.Read(path);
        Assert.Equal([1f, 2, 3, 4], series.Values);
        Assert.Equal(1, series.Irregularities.StepsBack);
        Assert.Contains("1 row(s) step back in time (read in file order", series.Irregularities.Describe(path, RowOrder.File), StringComparison.Ordinal);
        TimeSeriesCsv sorted = TimeSeriesCsv.Read(path, RowOrder.Time);
        Assert.Equal([3f, 1, 2, 4], sorted.Values);
        Assert.Equal("2026-01-01 00:05:00", sorted.Stamps[0]);
        InvalidDataException refused = Assert.Throws<InvalidDataException>(() => TimeSeriesCsv.Read(path, RowOrder.Reject));
        Assert.Contains("line 4: timestamp 2026-01-01 00:05:00 is earlier than the row before", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_values_are_interpolated_and_duplicates_and_gaps_counted()
    {
        string path = Write("timestamp,a,b", "2026-01-01 00:00:00,,10", "2026-01-01 00:01:00,2,nan", "2026-01-01 00:01:00,NA,30",
            "2026-01-01 00:02:00,6,40", "2026-01-01 00:10:00,8,null");
        TimeSeriesCsv series = TimeSeriesCsv.Read(path);
        Assert.Equal([2f, 10, 2, 20, 4, 30, 6, 40, 8, 40], series.Values);
        Assert.Equal(new TimeSeriesIrregularities(0, 1, 1, 4), series.Irregularities);
        Assert.Equal(["a", "b"], series.Names);
    }

    [Fact]
    public void Bad_cells_and_orders_are_refused_by_name()
    {
        Assert.Contains("line 2, column 'value': 'x1' is not a finite number",
            Assert.Throws<InvalidDataException>(() => TimeSeriesCsv.Read(Write("timestamp,value", "2026-01-01 00:00:00,x1", "2026-01-01 00:01:00,1"))).Message, StringComparison.Ordinal);
        Assert.Contains("column 'value': no value in any row",
            Assert.Throws<InvalidDataException>(() => TimeSeriesCsv.Read(Write("timestamp,value", "2026-01-01 00:00:00,", "2026-01-01 00:01:00,nan"))).Message, StringComparison.Ordinal);
        Assert.Contains("--order must be file, time or reject", Assert.Throws<ArgumentException>(() => TimeSeriesCsv.ParseOrder("random")).Message, StringComparison.Ordinal);
        Assert.Equal(RowOrder.Time, TimeSeriesCsv.ParseOrder("time"));
    }
}
