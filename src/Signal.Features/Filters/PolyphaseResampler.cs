using System.Numerics.Tensors;

namespace Signal.Features.Filters;

/// <summary>
/// Streaming rational resampling by up/down with a polyphase FIR filter, giving exactly what
/// <c>scipy.signal.resample_poly(x, up, down)</c> gives (its default design: <c>firwin(2·10·max(up, down) + 1,
/// 1/max(up, down), window=('kaiser', 5.0))·up</c>, the output centred on the input): every output sample is emitted
/// as soon as the input it depends on has arrived, so a stream cut into any chunks gives the offline values. Only
/// the last outputs of a recording, which resample_poly computes from the zeros it pads after the end, wait for
/// <see cref="Flush"/>.
/// </summary>
/// <remarks>
/// The taps are ours (<see cref="DesignTaps"/>: a windowed sinc, checked against scipy's firwin to 1e-12):
/// NWaves's Kaiser window is single precision, and its taps differed from scipy's by 1e-9 relative. The polyphase
/// arithmetic is ours too: a stream of samples arriving in chunks needs state that NWaves's whole-signal resampler
/// does not keep. The history is kept in double precision, written twice so the taps of one output are one
/// contiguous vectorised dot product (<c>TensorPrimitives.Dot</c>);
/// no allocation per sample. Not thread-safe: one instance per stream.
/// </remarks>
public sealed class PolyphaseResampler
{
    private readonly double[][] _phases;   // _phases[p][i]: tap p + up·(K_p − 1 − i), reversed so a dot runs oldest → newest
    private readonly double[][] _history;  // per channel, 2·capacity: each sample at slot s and s + capacity
    private readonly int _capacity;
    private readonly int _preRemove;
    private long _inputs, _outputs, _flushTotal = -1;

    /// <summary>Creates a resampler from <paramref name="inputRate"/> to <paramref name="outputRate"/> samples per second.</summary>
    /// <param name="inputRate">The rate samples arrive at (whole Hz).</param>
    /// <param name="outputRate">The rate wanted (whole Hz).</param>
    /// <param name="channels">Interleaved channels.</param>
    /// <exception cref="ArgumentOutOfRangeException">A rate or the channel count is not positive, or the reduced ratio needs a filter of more than 20,001 taps.</exception>
    public PolyphaseResampler(int inputRate, int outputRate, int channels)
    {
        if (inputRate <= 0 || outputRate <= 0 || channels <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(inputRate), $"rates and channels must be positive (got {inputRate} Hz → {outputRate} Hz, {channels} channels).");
        }

        int g = Gcd(inputRate, outputRate);
        Up = outputRate / g;
        Down = inputRate / g;
        if (Math.Max(Up, Down) > 1000)
        {
            throw new ArgumentOutOfRangeException(nameof(inputRate), $"{inputRate} Hz → {outputRate} Hz is {Up}/{Down} in lowest terms; at most 1000 either way is supported (the filter would have {(20 * Math.Max(Up, Down)) + 1} taps).");
        }

        Channels = channels;
        InputRate = inputRate;
        OutputRate = outputRate;
        double[] taps = DesignTaps(Up, Down);
        int halfLength = (taps.Length - 1) / 2;

        // resample_poly: zeros before the taps put output samples at the centre; the first outputs it drops.
        int prePad = Down - (halfLength % Down);
        _preRemove = (halfLength + prePad) / Down;
        double[] padded = new double[prePad + taps.Length];
        taps.CopyTo(padded, prePad);
        _phases = new double[Up][];
        for (int p = 0; p < Up; p++)
        {
            int count = p < padded.Length ? ((padded.Length - 1 - p) / Up) + 1 : 0;
            _phases[p] = new double[count];
            for (int k = 0; k < count; k++)
            {
                _phases[p][count - 1 - k] = padded[p + (Up * k)];
            }
        }

        _capacity = Math.Max(1, _phases.Max(p => p.Length));
        _history = new double[channels][];
        for (int c = 0; c < channels; c++)
        {
            _history[c] = new double[2 * _capacity];
        }
    }

    /// <summary>The upsampling factor (output rate ÷ gcd).</summary>
    public int Up { get; }

    /// <summary>The downsampling factor (input rate ÷ gcd).</summary>
    public int Down { get; }

    /// <summary>Interleaved channels.</summary>
    public int Channels { get; }

    /// <summary>The rate samples arrive at.</summary>
    public int InputRate { get; }

    /// <summary>The rate samples leave at.</summary>
    public int OutputRate { get; }

    /// <summary>Input samples (per channel) taken since creation or <see cref="Reset"/>.</summary>
    public long InputSamples => _inputs;

    /// <summary>Output samples (per channel) emitted since creation or <see cref="Reset"/>.</summary>
    public long OutputSamples => _outputs;

    /// <summary>
    /// The taps <c>scipy.signal.resample_poly</c> designs by default for up/down: <c>firwin(2·10·max + 1, 1/max,
    /// window=('kaiser', 5.0))</c> scaled by <paramref name="up"/> (max = max(up, down)).
    /// </summary>
    /// <param name="up">Upsampling factor (lowest terms).</param>
    /// <param name="down">Downsampling factor (lowest terms).</param>
    /// <returns>2·10·max + 1 taps.</returns>
    public static double[] DesignTaps(int up, int down)
    {
        int max = Math.Max(up, down);
        int n = (2 * 10 * max) + 1;
        double cutoff = 1.0 / max; // of the Nyquist frequency
        double alpha = 0.5 * (n - 1);
        double[] h = new double[n];
        double sum = 0;
        for (int i = 0; i < n; i++)
        {
            double m = i - alpha;
            double x = cutoff * m;
            h[i] = cutoff * (x == 0 ? 1 : Math.Sin(Math.PI * x) / (Math.PI * x)) * Kaiser(i, n, 5.0);
            sum += h[i];
        }

        for (int i = 0; i < n; i++)
        {
            h[i] = h[i] / sum * up; // firwin scales to unit gain at 0 Hz; resample_poly multiplies by up
        }

        return h;
    }

    /// <summary>Output samples (per channel) that <paramref name="inputSamples"/> more input samples can produce at most.</summary>
    /// <param name="inputSamples">Input samples per channel.</param>
    /// <returns>An upper bound.</returns>
    public int MaxOutputFor(int inputSamples) => (int)((((long)inputSamples * Up) + Down - 1) / Down) + 1;

    /// <summary>
    /// Takes interleaved input samples and writes every output sample they complete. Stops early when
    /// <paramref name="output"/> has no room for the next output sample; call again with the rest.
    /// </summary>
    /// <param name="input">Whole interleaved samples.</param>
    /// <param name="output">Room for interleaved output samples.</param>
    /// <param name="consumed">Floats of <paramref name="input"/> taken.</param>
    /// <returns>Floats written to <paramref name="output"/>.</returns>
    /// <exception cref="ArgumentException">The input is not whole samples.</exception>
    public int Process(ReadOnlySpan<float> input, Span<float> output, out int consumed)
    {
        if (input.Length % Channels != 0)
        {
            throw new ArgumentException($"{input.Length} floats are not whole samples of {Channels} channels.", nameof(input));
        }

        int written = 0;
        consumed = 0;
        while (true)
        {
            // Outputs whose newest input has arrived.
            while (_inputs > 0 && NewestInputOf(_outputs) < _inputs)
            {
                if (written + Channels > output.Length)
                {
                    return written;
                }

                Emit(output.Slice(written, Channels));
                written += Channels;
            }

            if (consumed == input.Length)
            {
                return written;
            }

            Push(input.Slice(consumed, Channels));
            consumed += Channels;
        }
    }

    /// <summary>
    /// Ends the recording: writes the outputs that resample_poly computes from zeros after the end, up to its length
    /// ⌈input · up / down⌉. Then the stream is complete; <see cref="Reset"/> before using it again.
    /// </summary>
    /// <param name="output">Room for interleaved output samples.</param>
    /// <returns>Floats written.</returns>
    public int Flush(Span<float> output)
    {
        // Fixed at the first call: the zeros pushed below are not samples of the recording.
        _flushTotal = _flushTotal >= 0 ? _flushTotal : ((_inputs * Up) + Down - 1) / Down;
        long total = _flushTotal;
        Span<float> zeros = stackalloc float[Channels];
        zeros.Clear();
        int written = 0;
        while (_outputs < total)
        {
            while (_outputs < total && NewestInputOf(_outputs) < _inputs)
            {
                if (written + Channels > output.Length)
                {
                    return written;
                }

                Emit(output.Slice(written, Channels));
                written += Channels;
            }

            if (_outputs < total)
            {
                Push(zeros);
            }
        }

        return written;
    }

    /// <summary>Resamples a whole recording as <c>scipy.signal.resample_poly</c> does (zeros after the end).</summary>
    /// <param name="input">Interleaved samples.</param>
    /// <returns>⌈samples · up / down⌉ interleaved output samples.</returns>
    public float[] ResampleAll(ReadOnlySpan<float> input)
    {
        Reset();
        int samples = input.Length / Channels;
        var output = new float[(int)((((long)samples * Up) + Down - 1) / Down) * Channels];
        int written = Process(input, output, out _);
        written += Flush(output.AsSpan(written));
        return written == output.Length ? output : output[..written];
    }

    /// <summary>Writes the stream's state (counters and history) so <see cref="ReadState"/> continues it exactly.</summary>
    /// <param name="writer">Where to write.</param>
    public void WriteState(BinaryWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.Write(Up);
        writer.Write(Down);
        writer.Write(_inputs);
        writer.Write(_outputs);
        writer.Write(_flushTotal);
        foreach (double[] line in _history)
        {
            for (int i = 0; i < _capacity; i++)
            {
                writer.Write(line[i]);
            }
        }
    }

    /// <summary>Restores a state written by <see cref="WriteState"/> of a resampler with the same rates and channels.</summary>
    /// <param name="reader">Where to read.</param>
    /// <exception cref="FormatException">The state is for another ratio.</exception>
    public void ReadState(BinaryReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        int up = reader.ReadInt32(), down = reader.ReadInt32();
        if (up != Up || down != Down)
        {
            throw new FormatException($"the resampler state is for {up}/{down}; this resampler is {Up}/{Down}.");
        }

        _inputs = reader.ReadInt64();
        _outputs = reader.ReadInt64();
        _flushTotal = reader.ReadInt64();
        foreach (double[] line in _history)
        {
            for (int i = 0; i < _capacity; i++)
            {
                line[i] = reader.ReadDouble();
                line[i + _capacity] = line[i];
            }
        }
    }

    /// <summary>Forgets every sample (a stream that starts afresh).</summary>
    public void Reset()
    {
        foreach (double[] line in _history)
        {
            Array.Clear(line);
        }

        _inputs = 0;
        _outputs = 0;
        _flushTotal = -1;
    }

    /// <summary>The index of the newest input sample output <paramref name="m"/> depends on.</summary>
    private long NewestInputOf(long m) => (m + _preRemove) * Down / Up;

    private void Push(ReadOnlySpan<float> sample)
    {
        int slot = (int)(_inputs % _capacity);
        for (int c = 0; c < Channels; c++)
        {
            _history[c][slot] = sample[c];
            _history[c][slot + _capacity] = sample[c];
        }

        _inputs++;
    }

    private void Emit(Span<float> destination)
    {
        long t = (_outputs + _preRemove) * Down;
        int phase = (int)(t % Up);
        long newest = t / Up;
        double[] taps = _phases[phase];
        // The last taps.Length inputs up to 'newest', oldest first: contiguous in the twice-written line.
        int end = (int)(newest % _capacity) + _capacity + 1;
        for (int c = 0; c < Channels; c++)
        {
            destination[c] = (float)TensorPrimitives.Dot(taps, _history[c].AsSpan(end - taps.Length, taps.Length));
        }

        _outputs++;
    }

    /// <summary>The symmetric Kaiser window w[i] = I0(β·√(1 − (2i/(n−1) − 1)²)) / I0(β), as scipy's <c>windows.kaiser(n, β)</c>.</summary>
    private static double Kaiser(int i, int n, double beta)
    {
        double r = (2.0 * i / (n - 1)) - 1;
        return BesselI0(beta * Math.Sqrt(Math.Max(0, 1 - (r * r)))) / BesselI0(beta);
    }

    /// <summary>The modified Bessel function I0 by its power series Σ ((x/2)^k / k!)², to double precision.</summary>
    private static double BesselI0(double x)
    {
        double term = 1, sum = 1, quarter = x * x / 4;
        for (int k = 1; k < 200 && term > 1e-17 * sum; k++)
        {
            term *= quarter / ((double)k * k);
            sum += term;
        }

        return sum;
    }

    private static int Gcd(int a, int b)
    {
        while (b != 0)
        {
            (a, b) = (b, a % b);
        }

        return a;
    }
}
