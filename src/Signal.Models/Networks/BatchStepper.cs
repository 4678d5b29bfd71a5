using Signal.Models.Accelerators;

namespace Signal.Models.Networks;

/// <summary>
/// Advances many streams by one input each in one batched step: gathers each stream's input and state
/// into matrices, runs one matrix product per layer (the SIMD kernels' batched path), and scatters the
/// new states and the outputs back. Results equal stepping each stream alone with
/// <see cref="RecurrentModel.Step"/>. Allocates nothing per step.
/// </summary>
/// <remarks>
/// Large batches are split in row ranges over <see cref="Threads"/> threads (each runs the whole network
/// on its streams, so a step has one fork and one join); batches whose work is below
/// <see cref="ParallelMinimumMultiplyAdds"/> stay on the calling thread, where the hand-off would cost more
/// than it saves. One stepper is used by one thread at a time; create one per scheduler.
/// </remarks>
public sealed class BatchStepper : IRecurrentStepper
{
    private readonly RecurrentModel _model;
    private readonly RecurrentModel.Workspace[] _workspaces;
    private readonly RecurrentState[] _states;
    private readonly Worker[] _workers;
    private readonly Action<int> _body;
    private unsafe float* _inputs;
    private unsafe float* _probabilities;
    private unsafe float* _forecasts;
    private int _rows;
    private int _chunks;
    private bool _hasProbabilities;
    private bool _hasForecasts;
    private Exception? _workerError;
    private bool _disposed;

    /// <summary>Creates a stepper for up to <paramref name="maxBatch"/> streams per step.</summary>
    /// <param name="model">The model (unidirectional).</param>
    /// <param name="maxBatch">Largest batch.</param>
    /// <param name="threads">Threads to use for large batches; default all processors.</param>
    public BatchStepper(RecurrentModel model, int maxBatch, int threads = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(threads);
        model.EnsureStreamable();
        _model = model;
        MaxBatch = maxBatch;
        Threads = Math.Max(1, Math.Min(threads == 0 ? Environment.ProcessorCount : threads, maxBatch));
        _states = new RecurrentState[maxBatch];
        _workspaces = new RecurrentModel.Workspace[Threads];
        for (int t = 0; t < Threads; t++)
        {
            _workspaces[t] = new RecurrentModel.Workspace(model, t == 0 ? maxBatch : ((maxBatch + Threads - 1) / Threads) + 1);
        }

        _body = RunChunk;
        _workers = new Worker[Threads - 1];
        for (int t = 0; t < _workers.Length; t++)
        {
            _workers[t] = new Worker(t + 1, _body);
        }
    }

    /// <summary>The largest batch.</summary>
    public int MaxBatch { get; }

    /// <summary>Threads a large batch is split over.</summary>
    public int Threads { get; }

    /// <inheritdoc />
    public string Device => $"cpu ({Kernels.Kernels.Default} SIMD, {Threads} thread{(Threads == 1 ? string.Empty : "s")})";

    /// <summary>
    /// Batches with fewer multiply-adds than this (streams × <see cref="RecurrentModel.MultiplyAddsPerStep"/>)
    /// run on the calling thread. Default 1,000,000 (about 20 µs of work on one core).
    /// </summary>
    public long ParallelMinimumMultiplyAdds { get; set; } = 1_000_000;

    /// <summary>
    /// Steps <paramref name="states"/>.Length streams, each at most once, by one input each.
    /// </summary>
    /// <param name="states">The streams' states, 1 to <see cref="MaxBatch"/>, no state twice.</param>
    /// <param name="inputs">One input row per stream, stream-major (states.Length × input size).</param>
    /// <param name="probabilities">One row of class probabilities per stream, or empty.</param>
    /// <param name="forecasts">One forecast row per stream, or empty.</param>
    /// <exception cref="ArgumentException">A state appears twice, belongs to another model, or an input is not finite; no state is changed.</exception>
    public unsafe void Step(ReadOnlySpan<RecurrentState> states, ReadOnlySpan<float> inputs, Span<float> probabilities, Span<float> forecasts = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int rows = states.Length;
        if (rows == 0)
        {
            return;
        }

        if (rows > MaxBatch)
        {
            throw new ArgumentException($"{rows} streams exceed this stepper's batch of {MaxBatch}.", nameof(states));
        }

        _model.CheckStepArguments(rows, inputs, probabilities, forecasts);
        _model.CheckBatchStates(states);

        int chunks = rows * _model.MultiplyAddsPerStep >= ParallelMinimumMultiplyAdds ? Threads : 1;
        if (chunks == 1)
        {
            _model.StepRows(states, inputs, probabilities, forecasts, _workspaces[0]);
            return;
        }

        states.CopyTo(_states);
        fixed (float* x = inputs)
        fixed (float* p = probabilities)
        fixed (float* f = forecasts)
        {
            _inputs = x;
            _probabilities = p;
            _forecasts = f;
            _hasProbabilities = !probabilities.IsEmpty;
            _hasForecasts = !forecasts.IsEmpty;
            _rows = rows;
            _chunks = chunks;
            _workerError = null;
            for (int t = 1; t < chunks; t++)
            {
                _workers[t - 1].Start();
            }

            Exception? local = null;
            try
            {
                RunChunk(0);
            }
            catch (Exception e)
            {
                local = e;
            }

            for (int t = 1; t < chunks; t++)
            {
                _workers[t - 1].WaitDone();
            }

            _inputs = null;
            _probabilities = null;
            _forecasts = null;
            Array.Clear(_states, 0, rows);
            if ((local ?? _workerError) is { } error)
            {
                throw new InvalidOperationException("a batched step failed: " + error.Message, error);
            }
        }
    }

    /// <inheritdoc />
    public void Synchronize()
    {
        // The states live on the host: nothing to bring back.
    }

    /// <summary>Stops the worker threads.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (Worker worker in _workers)
        {
            worker.Dispose();
        }
    }

    private unsafe void RunChunk(int chunk)
    {
        try
        {
            int start = (int)((long)_rows * chunk / _chunks);
            int end = (int)((long)_rows * (chunk + 1) / _chunks);
            int n = end - start;
            int inputSize = _model.InputSize;
            int classes = _model.ClassCount;
            int forecast = _model.ForecastSize;
            var inputs = new ReadOnlySpan<float>(_inputs + ((long)start * inputSize), n * inputSize);
            Span<float> probabilities = _hasProbabilities ? new Span<float>(_probabilities + ((long)start * classes), n * classes) : default;
            Span<float> forecasts = _hasForecasts ? new Span<float>(_forecasts + ((long)start * forecast), n * forecast) : default;
            _model.StepRows(_states.AsSpan(start, n), inputs, probabilities, forecasts, _workspaces[chunk]);
        }
        catch (Exception e) when (chunk != 0)
        {
            _workerError = e;
        }
    }

    /// <summary>
    /// A parked thread that runs one chunk each time it is started. Hand-offs spin briefly, then sleep on a
    /// monitor: a step's chunks take tens of microseconds or more, so the spin usually catches the hand-off,
    /// and an idle engine does not burn a core. Nothing is allocated after construction.
    /// </summary>
    private sealed class Worker : IDisposable
    {
        private const int SpinIterations = 4000;
        private readonly object _gate = new();
        private readonly Thread _thread;
        private readonly int _chunk;
        private readonly Action<int> _body;
        private bool _started;
        private bool _done = true;
        private volatile bool _stop;

        public Worker(int chunk, Action<int> body)
        {
            _chunk = chunk;
            _body = body;
            _thread = new Thread(Loop) { IsBackground = true, Name = $"signal-step-{chunk}" };
            _thread.Start();
        }

        public void Start()
        {
            Volatile.Write(ref _done, false);
            lock (_gate)
            {
                _started = true;
                Monitor.PulseAll(_gate);
            }
        }

        public void WaitDone() => Await(ref _done);

        public void Dispose()
        {
            _stop = true;
            Start();
            _thread.Join();
        }

        private void Await(ref bool flag)
        {
            for (int i = 0; i < SpinIterations && !Volatile.Read(ref flag); i++)
            {
                Thread.SpinWait(8);
            }

            if (Volatile.Read(ref flag))
            {
                return;
            }

            lock (_gate)
            {
                while (!Volatile.Read(ref flag))
                {
                    Monitor.Wait(_gate);
                }
            }
        }

        private void Loop()
        {
            while (true)
            {
                Await(ref _started);
                Volatile.Write(ref _started, false);
                if (_stop)
                {
                    return;
                }

                _body(_chunk);
                lock (_gate)
                {
                    _done = true;
                    Monitor.PulseAll(_gate);
                }
            }
        }
    }
}
