using System.Globalization;

namespace Signal.Engine.Data;

/// <summary>A bearing fault a <see cref="VibrationSource"/> can switch on.</summary>
/// <param name="Name">The label (<c>inner</c>, <c>outer</c>, <c>ball</c>).</param>
/// <param name="ImpactsPerShaftTurn">Impact rate as a multiple of the shaft speed (CWRU's 6205 bearing: 5.415, 3.585, 4.714).</param>
public sealed record BearingFault(string Name, double ImpactsPerShaftTurn)
{
    /// <summary>The faults known by name.</summary>
    public static IReadOnlyList<BearingFault> Known { get; } = [new("inner", 5.415), new("outer", 3.585), new("ball", 4.714)];
}

/// <summary>One entry of a fault schedule: a fault on from <see cref="Start"/> to <see cref="End"/> on some streams.</summary>
/// <param name="Fault">The fault.</param>
/// <param name="Start">When it switches on, from the start of the run.</param>
/// <param name="End">When it switches off.</param>
/// <param name="Streams">The stream indices it applies to (null: all).</param>
public sealed record FaultWindow(BearingFault Fault, TimeSpan Start, TimeSpan End, IReadOnlySet<int>? Streams)
{
    /// <summary>
    /// Parses <c>kind@start-end[:streams]</c> entries separated by commas, times in seconds, streams as indices and
    /// ranges (<c>outer@10-20:0-4;7</c>).
    /// </summary>
    /// <param name="schedule">The schedule text.</param>
    /// <returns>The windows.</returns>
    /// <exception cref="FormatException">An entry does not parse; the message quotes it.</exception>
    public static IReadOnlyList<FaultWindow> ParseSchedule(string schedule)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        var windows = new List<FaultWindow>();
        foreach (string entry in schedule.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string[] head = entry.Split('@', 2);
            BearingFault? fault = BearingFault.Known.FirstOrDefault(f => f.Name == head[0]);
            string[] rest = head.Length == 2 ? head[1].Split(':', 2) : [];
            string[] span = rest.Length > 0 ? rest[0].Split('-', 2) : [];
            if (fault is null || span.Length != 2
                || !double.TryParse(span[0], NumberStyles.Float, CultureInfo.InvariantCulture, out double start)
                || !double.TryParse(span[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double end) || end <= start || start < 0)
            {
                throw new FormatException($"faults: '{entry}' is not kind@start-end[:streams] with kind one of {string.Join(", ", BearingFault.Known.Select(f => f.Name))} and 0 ≤ start < end seconds.");
            }

            HashSet<int>? streams = null;
            if (rest.Length == 2)
            {
                streams = [];
                foreach (string part in rest[1].Split(';', StringSplitOptions.RemoveEmptyEntries))
                {
                    string[] range = part.Split('-', 2);
                    if (!int.TryParse(range[0], CultureInfo.InvariantCulture, out int a) || a < 0
                        || (range.Length == 2 && (!int.TryParse(range[1], CultureInfo.InvariantCulture, out int b) || b < a)))
                    {
                        throw new FormatException($"faults: '{part}' in '{entry}' is not a stream index or range like 0-4.");
                    }

                    int last = range.Length == 2 ? int.Parse(range[1], CultureInfo.InvariantCulture) : a;
                    for (int i = a; i <= last; i++)
                    {
                        streams.Add(i);
                    }
                }
            }

            windows.Add(new FaultWindow(fault, TimeSpan.FromSeconds(start), TimeSpan.FromSeconds(end), streams));
        }

        return windows;
    }
}

/// <summary>
/// An endless, streaming bearing-vibration signal (the shape of <see cref="SyntheticVibration"/>): shaft harmonics,
/// broadband noise, and, while a fault is on, impacts ringing a 3 kHz resonance at the fault's rate.
/// Deterministic for a seed; continuous across chunks. Not thread-safe.
/// </summary>
public sealed class VibrationSource
{
    private readonly Random _rng;
    private readonly double _rate, _shaftHz, _phase;
    private long _sample;

    /// <summary>Creates a source.</summary>
    /// <param name="sampleRate">Samples per second.</param>
    /// <param name="seed">Noise seed (and a small per-stream speed and phase variation).</param>
    public VibrationSource(double sampleRate, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(sampleRate, 0);
        _rng = new Random(seed);
        _rate = sampleRate;
        _shaftHz = 29.95 * (1 + (0.01 * (_rng.NextDouble() - 0.5)));
        _phase = _rng.NextDouble() * 2 * Math.PI;
    }

    /// <summary>Samples produced so far.</summary>
    public long Position => _sample;

    /// <summary>Writes the next samples.</summary>
    /// <param name="destination">Receives one sample per element.</param>
    /// <param name="fault">The fault switched on for these samples, or null.</param>
    public void Next(Span<float> destination, BearingFault? fault)
    {
        for (int i = 0; i < destination.Length; i++, _sample++)
        {
            double t = _sample / _rate;
            double v = (0.1 * Math.Sin((2 * Math.PI * _shaftHz * t) + _phase)) + (0.04 * Math.Sin((4 * Math.PI * _shaftHz * t) + 0.5))
                + (0.03 * Math.Sqrt(-2 * Math.Log(1 - _rng.NextDouble())) * Math.Cos(2 * Math.PI * _rng.NextDouble()));
            if (fault is not null)
            {
                double period = 1 / (fault.ImpactsPerShaftTurn * _shaftHz);
                double since = t % period;
                v += 0.5 * Math.Exp(-800 * since) * Math.Sin(2 * Math.PI * 3000 * since);
            }

            destination[i] = (float)v;
        }
    }
}
