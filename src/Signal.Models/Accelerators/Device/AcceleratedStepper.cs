using ILGPU;
using ILGPU.Runtime;
using Signal.Models.Networks;

namespace Signal.Models.Accelerators.Device;

/// <summary>
/// The GPU backend of batched stepping (ILGPU): the model's weights are uploaded once, every stream's state lives on
/// the device in a slot of its own, and a step uploads only the inputs and the slot numbers, runs one fused launch
/// per layer (gates, cell and hidden update in the product's epilogue; layer norm and projection as launches of their
/// own), the heads, and downloads the probabilities and forecasts. Results equal <see cref="BatchStepper"/>'s within
/// 1e-5.
/// </summary>
/// <remarks>
/// <para>States stay <see cref="RecurrentState"/> objects: a state stepped here is marked as held on the device, and
/// reading it on the host (a checkpoint, <see cref="RecurrentState.AsSpan"/>) first copies the device's newer values
/// back; a state changed on the host (reset, restore) is uploaded again before its next step here. When every slot is
/// taken, the least recently stepped state is copied back to its host array and its slot reused.</para>
/// <para>Supports LSTM (with projection), GRU and RNN layers, layer norm, mean pooling, and both heads. Models with
/// causal convolutions or running input normalisation step on the CPU (<see cref="BatchStepper"/>). One thread at a
/// time.</para>
/// </remarks>
public sealed class AcceleratedStepper : IRecurrentStepper, IStateResidence
{
    /// <summary>Heads of up to this many classes use <see cref="DeviceKernels.HeadSmall"/>.</summary>
    private const int SmallHeadClasses = 16;

    /// <summary>
    /// <see cref="DeviceKernels.HeadSmall"/> runs when the batch has at least this many streams: one thread per stream
    /// walks its row serially, which a large batch hides and a small one does not (measured on an H200: +0.2 ms at 1,024
    /// streams of H=128, +1.9 ms at H=1,024). Settable for tests.
    /// </summary>
    internal int SmallHeadMinimumRows { get; set; } = 16_384;

    private readonly RecurrentModel _model;
    private readonly ILGPU.Runtime.Accelerator _accelerator;
    private readonly PackedLayer[] _layers;
    private readonly List<MemoryBuffer> _buffers = [];
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _state;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _slots;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _stagedSlots;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _staged;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _x;
    private readonly LayerBuffers[] _layerBuffers;
    private readonly MemoryBuffer1D<float, Stride1D.Dense>? _headInput;
    private readonly MemoryBuffer1D<float, Stride1D.Dense>? _logits;
    private readonly MemoryBuffer1D<float, Stride1D.Dense>? _probabilities;
    private readonly MemoryBuffer1D<float, Stride1D.Dense>? _forecasts;
    private readonly LinearBuffers? _headWeights;
    private readonly LinearBuffers? _forecastWeights;
    private readonly Action<KernelConfig, CellArguments, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _cell;
    private readonly Profile? _profile;

    private readonly Action<Index1D, int, int, float, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _layerNorm;
    private readonly Action<Index1D, int, int, int, int, ArrayView<float>, ArrayView<int>, ArrayView<float>> _scatter;
    private readonly Action<Index1D, int, ArrayView<float>, ArrayView<int>, ArrayView<float>> _loadStates;
    private readonly Action<Index1D, int, ArrayView<float>, ArrayView<int>, ArrayView<float>> _gatherStates;
    private readonly Action<Index1D, int, int, int, int, int, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>> _pool;
    private readonly Action<Index1D, int, int, int, ArrayView<int>, ArrayView<float>> _poolCount;
    private readonly Action<Index1D, int, ArrayView<float>, ArrayView<float>> _softmax;
    private readonly Action<Index1D, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _headSmall;
    private readonly MemoryBuffer1D<float, Stride1D.Dense>? _headRowMajor;
    private readonly RecurrentState?[] _owners;
    private readonly Stack<int> _free = new();
    private readonly int[] _slotsHost;
    private readonly int[] _stagedSlotsHost;
    private readonly float[] _stagedHost;
    private readonly int _slotSize;
    private readonly long[] _steppedAt;
    private readonly long[] _fetchedAt;
    private readonly RecurrentState?[] _lastBatch;
    private readonly List<RecurrentState> _dirty = [];
    private int _hand;

    /// <summary>States copied up to the device so far (new here, changed on the host, or back after an eviction).</summary>
    internal long Uploads { get; private set; }
    private int _lastRows;
    private long _step;
    private bool _slotsStale;
    private bool _disposed;

    /// <summary>Creates a stepper on the first device of <paramref name="kind"/>.</summary>
    /// <param name="model">The model (unidirectional; no convolutions or running normalisation).</param>
    /// <param name="maxBatch">Largest batch.</param>
    /// <param name="kind"><see cref="AcceleratorKind.Cuda"/>, <see cref="AcceleratorKind.OpenCL"/> or <see cref="AcceleratorKind.IlgpuCpu"/>.</param>
    /// <param name="capacity">States held on the device at once (default and minimum: <paramref name="maxBatch"/>).</param>
    /// <exception cref="NotSupportedException">The model has a part this backend does not step.</exception>
    /// <exception cref="AcceleratorUnavailableException">No device of that kind was found.</exception>
    public AcceleratedStepper(RecurrentModel model, int maxBatch, AcceleratorKind kind, int capacity = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        if (AcceleratorSelection.WhyNotSupported(model) is { } why)
        {
            throw AcceleratorSelection.Unsupported(kind, why);
        }

        _model = model;
        MaxBatch = maxBatch;
        Capacity = Math.Max(capacity, maxBatch);
        _accelerator = DeviceHost.Open(kind);
        Device = $"{AcceleratorKinds.Name(kind)} ({_accelerator.Name}, ILGPU)";
        try
        {
            (_layers, PackedLinear? head, PackedLinear? forecast) = DeviceModel.Pack(model);
            _slotSize = model.StateSize;
            ModelArchitecture a = model.Architecture;

            _state = Allocate<float>((long)Capacity * _slotSize);
            _state.MemSetToZero();
            _slots = Allocate<int>(maxBatch);
            _stagedSlots = Allocate<int>(maxBatch);
            _staged = Allocate<float>((long)maxBatch * _slotSize);
            _x = Allocate<float>((long)maxBatch * model.InputSize);
            _layerBuffers = new LayerBuffers[_layers.Length];
            for (int l = 0; l < _layers.Length; l++)
            {
                PackedLayer layer = _layers[l];
                _layerBuffers[l] = new LayerBuffers(
                    Upload(layer.Cell),
                    layer.Projection is null ? null : Upload(layer.Projection),
                    layer.Gamma is null ? null : Upload(layer.Gamma),
                    layer.Beta is null ? null : Upload(layer.Beta),
                    layer.Gamma is null ? null : Allocate<float>((long)maxBatch * layer.InputSize),
                    layer.Projection is null ? null : Allocate<float>((long)maxBatch * layer.Hidden),
                    Allocate<float>((long)maxBatch * layer.StateSize));
            }

            if (head is not null)
            {
                _headWeights = Upload(head);
                if (a.Classes <= SmallHeadClasses)
                {
                    _headRowMajor = Upload(model.Tensors[a.HeadPrefix + ".weight"].Data);
                }

                _logits = Allocate<float>((long)maxBatch * a.Classes);
                _probabilities = Allocate<float>((long)maxBatch * a.Classes);
                _headInput = a.MeanPooling ? Allocate<float>((long)maxBatch * a.HeadInputSize) : null;
            }

            if (forecast is not null)
            {
                _forecastWeights = Upload(forecast);
                _forecasts = Allocate<float>((long)maxBatch * a.ForecastSize);
            }

            _profile = Environment.GetEnvironmentVariable("SIGNAL_ACCELERATOR_PROFILE") == "1" ? new Profile() : null;
            _cell = _accelerator.LoadStreamKernel<CellArguments, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(
                DeviceKernels.Cell);
            _layerNorm = _accelerator.LoadAutoGroupedStreamKernel<Index1D, int, int, float, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(DeviceKernels.LayerNorm);
            _scatter = _accelerator.LoadAutoGroupedStreamKernel<Index1D, int, int, int, int, ArrayView<float>, ArrayView<int>, ArrayView<float>>(DeviceKernels.Scatter);
            _loadStates = _accelerator.LoadAutoGroupedStreamKernel<Index1D, int, ArrayView<float>, ArrayView<int>, ArrayView<float>>(DeviceKernels.LoadStates);
            _gatherStates = _accelerator.LoadAutoGroupedStreamKernel<Index1D, int, ArrayView<float>, ArrayView<int>, ArrayView<float>>(DeviceKernels.GatherStates);
            _pool = _accelerator.LoadAutoGroupedStreamKernel<Index1D, int, int, int, int, int, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>>(DeviceKernels.Pool);
            _poolCount = _accelerator.LoadAutoGroupedStreamKernel<Index1D, int, int, int, ArrayView<int>, ArrayView<float>>(DeviceKernels.PoolCount);
            _softmax = _accelerator.LoadAutoGroupedStreamKernel<Index1D, int, ArrayView<float>, ArrayView<float>>(DeviceKernels.Softmax);
            _headSmall = _accelerator.LoadAutoGroupedStreamKernel<Index1D, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(DeviceKernels.HeadSmall);

            _owners = new RecurrentState?[Capacity];
            for (int s = Capacity - 1; s >= 0; s--)
            {
                _free.Push(s);
            }

            _slotsHost = new int[maxBatch];
            _lastBatch = new RecurrentState?[maxBatch];
            _steppedAt = new long[Capacity];
            _fetchedAt = new long[Capacity];
            _stagedSlotsHost = new int[maxBatch];
            _stagedHost = new float[(long)maxBatch * _slotSize];
            _accelerator.Synchronize();
        }
        catch (AcceleratorException e)
        {
            // Out of device memory (states of `capacity` streams, scratch of `maxBatch`) or a kernel the driver refused:
            // what was allocated goes back, and the caller gets one clear error (auto falls back to the CPU on it).
            foreach (MemoryBuffer buffer in _buffers)
            {
                buffer.Dispose();
            }

            throw new AcceleratorUnavailableException(
                $"{Device}: {e.Message} (the stepper needs about {(((long)Capacity * model.StateSize) + ((long)maxBatch * (model.StateSize + model.InputSize))) * 4 / (1024 * 1024)} MB for {Capacity:N0} streams' states and batches of {maxBatch:N0}).", e);
        }
    }

    /// <inheritdoc />
    public int MaxBatch { get; }

    /// <summary>States held on the device at once.</summary>
    public int Capacity { get; }

    /// <inheritdoc />
    public string Device { get; }

    /// <inheritdoc />
    public void Step(ReadOnlySpan<RecurrentState> states, ReadOnlySpan<float> inputs, Span<float> probabilities, Span<float> forecasts = default)
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

        _profile?.Start();
        _model.CheckStepArguments(rows, inputs, probabilities, forecasts);

        // The usual step is the same streams in the same order as the last one: then only the span of references is
        // compared, and no state object is touched (with 64k streams each touch is a cache miss). Otherwise each state
        // is checked (architecture, no state twice) and given a slot; states new here are uploaded first.
        if (!SameAsLastBatch(states))
        {
            AssignSlots(states);
        }

        // States changed on the host since their last upload (new here, reset, restored) go up before the step.
        if (_dirty.Count > 0)
        {
            UploadChanged();
        }

        _profile?.Lap(_accelerator, 0);
        if (_slotsStale)
        {
            _slots.View.AsContiguous().SubView(0, rows).CopyFromCPU(_slotsHost.AsSpan(0, rows));
            _slotsStale = false;
        }

        _x.View.AsContiguous().SubView(0, (long)rows * _model.InputSize).CopyFromCPU(inputs[..(rows * _model.InputSize)]);
        _profile?.Lap(_accelerator, 1);
        ArrayView<float> x = _x.View;
        int ldx = _model.InputSize;
        for (int l = 0; l < _layers.Length; l++)
        {
            PackedLayer layer = _layers[l];
            LayerBuffers b = _layerBuffers[l];
            if (b.Normalized is not null)
            {
                _layerNorm(rows, layer.InputSize, ldx, _model.Architecture.LayerNormEpsilon, x, b.Gamma!.View, b.Beta!.View, b.Normalized.View);
                x = b.Normalized.View;
                ldx = layer.InputSize;
            }

            ArrayView<float> cellOutput = b.Hidden?.View ?? b.Output.View;
            int cellStride = b.Hidden is null ? layer.StateSize : layer.Hidden;
            Launch(b.Cell, rows, x, ldx, layer.InputSize, layer.StateSize, layer.HiddenOffset, layer.CellOffset, cellOutput, cellStride);
            if (b.Projection is not null)
            {
                Launch(b.Projection, rows, cellOutput, layer.Hidden, layer.Hidden, 0, 0, 0, b.Output.View, layer.StateSize);
            }

            // The new h enters the slots only after the layer's launch has read every stream's old h.
            _scatter(rows * layer.StateSize, layer.StateSize, layer.StateSize, _slotSize, layer.HiddenOffset, b.Output.View, _slots.View, _state.View);
            x = b.Output.View;
            ldx = layer.StateSize;
        }

        _profile?.Lap(_accelerator, 2);
        ModelArchitecture a = _model.Architecture;
        int features = a.FeatureSize;
        if (_headWeights is not null && (!probabilities.IsEmpty || a.MeanPooling))
        {
            ArrayView<float> headInput = x;
            int headStride = ldx;
            if (a.MeanPooling)
            {
                // The running mean and count advance every step, whether or not this step asks for the classes.
                _pool(rows * features, features, ldx, _slotSize, _model.PoolOffset, a.PoolingSteps, x, _slots.View, _state.View, _headInput!.View);
                _poolCount(rows, features, _slotSize, _model.PoolOffset, _slots.View, _state.View);
                headInput = _headInput.View;
                headStride = 2 * features;
            }

            if (!probabilities.IsEmpty && _headRowMajor is not null && rows >= SmallHeadMinimumRows)
            {
                _headSmall(rows, a.Classes, a.HeadInputSize, headStride, headInput, _headRowMajor.View, _headWeights.Bias.View, _logits!.View, _probabilities!.View);
            }
            else if (!probabilities.IsEmpty)
            {
                Launch(_headWeights, rows, headInput, headStride, a.HeadInputSize, 0, 0, 0, _logits!.View, a.Classes);
                _softmax(rows, a.Classes, _logits.View, _probabilities!.View);
            }
        }

        if (_forecastWeights is not null && !forecasts.IsEmpty)
        {
            Launch(_forecastWeights, rows, x, ldx, features, 0, 0, 0, _forecasts!.View, a.ForecastSize);
        }

        _profile?.Lap(_accelerator, 3);
        if (!probabilities.IsEmpty)
        {
            _probabilities!.View.AsContiguous().SubView(0, (long)rows * a.Classes).CopyToCPU(probabilities[..(rows * a.Classes)]);
        }

        if (!forecasts.IsEmpty)
        {
            _forecasts!.View.AsContiguous().SubView(0, (long)rows * a.ForecastSize).CopyToCPU(forecasts[..(rows * a.ForecastSize)]);
        }

        _accelerator.Synchronize();
        _profile?.Lap(_accelerator, 4);

        // The device's copies of these slots are now newer than the host's (per slot, not per state object).
        _step++;
        for (int r = 0; r < rows; r++)
        {
            _steppedAt[_slotsHost[r]] = _step;
        }

        _profile?.Lap(_accelerator, 5);
    }

    private bool SameAsLastBatch(ReadOnlySpan<RecurrentState> states)
    {
        if (states.Length != _lastRows)
        {
            return false;
        }

        ReadOnlySpan<RecurrentState?> last = _lastBatch.AsSpan(0, _lastRows);
        for (int r = 0; r < states.Length; r++)
        {
            if (!ReferenceEquals(states[r], last[r]))
            {
                return false;
            }
        }

        return true;
    }

    private void AssignSlots(ReadOnlySpan<RecurrentState> states)
    {
        int rows = states.Length;
        _lastRows = 0; // until this batch is known good
        long token = _model.CheckBatchStates(states);
        for (int r = 0; r < rows; r++)
        {
            RecurrentState state = states[r];
            if (!IsResident(state))
            {
                state.Residence?.Fetch(state);
                (state.Residence as AcceleratedStepper)?.Forget(state);
                int slot = TakeSlot(token);
                _owners[slot] = state;
                _steppedAt[slot] = _fetchedAt[slot] = _step;
                state.Residence = this;
                state.Slot = slot;
                state.HostChanged = false;
                ((IStateResidence)this).HostChanged(state, discardDevice: true);
            }

            _slotsHost[r] = state.Slot;
            _lastBatch[r] = state;
        }

        Array.Clear(_lastBatch, rows, _lastBatch.Length - rows);
        _lastRows = rows;
        _slotsStale = true;
    }

    private void UploadChanged()
    {
        int staged = 0;
        foreach (RecurrentState state in _dirty)
        {
            if (!IsResident(state) || !state.HostChanged)
            {
                continue;
            }

            if (staged == MaxBatch)
            {
                Upload(staged);
                staged = 0;
            }

            state.HostValues.CopyTo(_stagedHost.AsSpan(staged * _slotSize, _slotSize));
            _stagedSlotsHost[staged++] = state.Slot;
            state.HostChanged = false;
            Uploads++;
        }

        Upload(staged);
        _dirty.Clear();

        void Upload(int n)
        {
            if (n == 0)
            {
                return;
            }

            _stagedSlots.View.AsContiguous().SubView(0, n).CopyFromCPU(_stagedSlotsHost.AsSpan(0, n));
            _staged.View.AsContiguous().SubView(0, (long)n * _slotSize).CopyFromCPU(_stagedHost.AsSpan(0, n * _slotSize));
            _loadStates(n * _slotSize, _slotSize, _staged.View, _stagedSlots.View, _state.View);
        }
    }

    private bool IsResident(RecurrentState state) =>
        ReferenceEquals(state.Residence, this) && state.Slot >= 0 && ReferenceEquals(_owners[state.Slot], state);

    /// <inheritdoc />
    public void Synchronize()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var pending = new List<int>();
        for (int slot = 0; slot < Capacity; slot++)
        {
            if (_owners[slot] is not null && _steppedAt[slot] > _fetchedAt[slot])
            {
                pending.Add(slot);
            }
        }

        for (int start = 0; start < pending.Count; start += MaxBatch)
        {
            int n = Math.Min(MaxBatch, pending.Count - start);
            for (int i = 0; i < n; i++)
            {
                _stagedSlotsHost[i] = pending[start + i];
            }

            _stagedSlots.View.AsContiguous().SubView(0, n).CopyFromCPU(_stagedSlotsHost.AsSpan(0, n));
            _gatherStates(n * _slotSize, _slotSize, _state.View, _stagedSlots.View, _staged.View);
            _staged.View.AsContiguous().SubView(0, (long)n * _slotSize).CopyToCPU(_stagedHost.AsSpan(0, n * _slotSize));
            for (int i = 0; i < n; i++)
            {
                int slot = pending[start + i];
                _stagedHost.AsSpan(i * _slotSize, _slotSize).CopyTo(_owners[slot]!.HostValues);
                _fetchedAt[slot] = _steppedAt[slot];
            }
        }
    }

    /// <summary>
    /// Copies the states held here back to the host and frees the device's memory. When the device has failed, the
    /// states are still released to the host (with the copy last fetched there) and the memory freed; then an
    /// <see cref="AcceleratorUnavailableException"/> says how many states could not be copied back.
    /// </summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        AcceleratorException? failure = null;
        try
        {
            Synchronize();
        }
        catch (AcceleratorException e)
        {
            failure = e;
        }

        int lost = 0;
        for (int slot = 0; slot < Capacity; slot++)
        {
            if (_owners[slot] is { } owner && ReferenceEquals(owner.Residence, this))
            {
                lost += _steppedAt[slot] > _fetchedAt[slot] ? 1 : 0;
                owner.Residence = null;
                owner.Slot = -1;
            }
        }

        _disposed = true;
        _profile?.Report(Device);
        foreach (MemoryBuffer buffer in _buffers)
        {
            buffer.Dispose();
        }

        if (failure is not null)
        {
            throw new AcceleratorUnavailableException(
                $"{Device}: the states of {lost} stream(s) could not be copied back from the device ({failure.Message}); they keep the copy last fetched to the host.", failure);
        }
    }

    void IStateResidence.Fetch(RecurrentState state)
    {
        if (_disposed || !IsResident(state) || _steppedAt[state.Slot] <= _fetchedAt[state.Slot])
        {
            return;
        }

        _state.View.AsContiguous().SubView((long)state.Slot * _slotSize, _slotSize).CopyToCPU(state.HostValues.AsSpan());
        _fetchedAt[state.Slot] = _steppedAt[state.Slot];
    }

    void IStateResidence.HostChanged(RecurrentState state, bool discardDevice)
    {
        if (_disposed || !IsResident(state))
        {
            return;
        }

        if (discardDevice)
        {
            _fetchedAt[state.Slot] = _steppedAt[state.Slot];
        }

        if (!state.HostChanged)
        {
            state.HostChanged = true;
            _dirty.Add(state);
        }
    }

    private void Forget(RecurrentState state)
    {
        if (state.Slot >= 0 && ReferenceEquals(_owners[state.Slot], state))
        {
            _owners[state.Slot] = null;
            _free.Push(state.Slot);
        }

        state.Residence = null;
        state.Slot = -1;
        _lastRows = 0; // the last batch may have held it
    }

    private int TakeSlot(long token)
    {
        if (_free.Count > 0)
        {
            return _free.Pop();
        }

        // Every slot is taken: the clock hand passes over states of this batch and takes the next one back to the host.
        for (int i = 0; i < 2 * Capacity; i++)
        {
            int slot = _hand;
            _hand = (_hand + 1) % Capacity;
            RecurrentState? owner = _owners[slot];
            if (owner is null)
            {
                return slot;
            }

            if (owner.BatchToken != token)
            {
                ((IStateResidence)this).Fetch(owner);
                owner.Residence = null;
                owner.Slot = -1;
                owner.HostChanged = false;
                _owners[slot] = null;
                return slot;
            }
        }

        throw new InvalidOperationException("no device slot is free (more streams in one batch than the stepper's capacity).");
    }

    private void Launch(LinearBuffers w, int rows, ArrayView<float> x, int ldx, int inputSize, int hiddenSize, int hiddenOffset, int cellOffset, ArrayView<float> output, int outputStride)
    {
        var p = new CellArguments
        {
            Rows = rows,
            InputSize = inputSize,
            InputStride = ldx,
            SlotSize = _slotSize,
            HiddenOffset = hiddenOffset,
            HiddenSize = hiddenSize,
            CellOffset = cellOffset,
            Depth = w.Packed.Depth,
            Width = w.Packed.Width,
            Units = w.Packed.Units,
            Kind = w.Packed.Kind,
            OutputStride = outputStride,
        };
        var grid = new Index2D(w.Packed.Width / DeviceKernels.TileN, (rows + DeviceKernels.TileM - 1) / DeviceKernels.TileM);
        _cell(new KernelConfig(grid, new Index2D(DeviceKernels.GroupSize, 1)), p, x, _slots.View, _state.View, w.Weights.View, w.Bias.View, output);
    }

    private MemoryBuffer1D<T, Stride1D.Dense> Allocate<T>(long length)
        where T : unmanaged
    {
        MemoryBuffer1D<T, Stride1D.Dense> buffer = _accelerator.Allocate1D<T>(Math.Max(1, length));
        _buffers.Add(buffer);
        return buffer;
    }

    private MemoryBuffer1D<float, Stride1D.Dense> Upload(float[] values)
    {
        MemoryBuffer1D<float, Stride1D.Dense> buffer = Allocate<float>(values.Length);
        buffer.View.CopyFromCPU(values);
        return buffer;
    }

    private LinearBuffers Upload(PackedLinear packed) => new(packed, Upload(packed.Weights), Upload(packed.Bias));

    /// <summary>
    /// Time per phase of a step, for tuning (SIGNAL_ACCELERATOR_PROFILE=1; each phase then waits for the device, which
    /// itself costs a little). Written to standard error when the stepper is disposed.
    /// </summary>
    private sealed class Profile
    {
        private static readonly string[] s_phases = ["host: checks and slots", "upload: slots, inputs", "layers", "heads", "download", "host: marks"];
        private readonly double[] _seconds = new double[s_phases.Length];
        private long _mark;
        private int _steps;

        public void Start() => _mark = System.Diagnostics.Stopwatch.GetTimestamp();

        public void Lap(ILGPU.Runtime.Accelerator accelerator, int phase)
        {
            accelerator.Synchronize();
            long now = System.Diagnostics.Stopwatch.GetTimestamp();
            _seconds[phase] += System.Diagnostics.Stopwatch.GetElapsedTime(_mark, now).TotalSeconds;
            _mark = now;
            _steps += phase == s_phases.Length - 1 ? 1 : 0;
        }

        public void Report(string device)
        {
            if (_steps == 0)
            {
                return;
            }

            Console.Error.WriteLine($"profile of {_steps} steps on {device}: " +
                string.Join(", ", s_phases.Select((name, i) => $"{name} {_seconds[i] / _steps * 1e6:F0} µs")));
        }
    }

    private sealed record LinearBuffers(PackedLinear Packed, MemoryBuffer1D<float, Stride1D.Dense> Weights, MemoryBuffer1D<float, Stride1D.Dense> Bias);

    private sealed record LayerBuffers(
        LinearBuffers Cell,
        LinearBuffers? Projection,
        MemoryBuffer1D<float, Stride1D.Dense>? Gamma,
        MemoryBuffer1D<float, Stride1D.Dense>? Beta,
        MemoryBuffer1D<float, Stride1D.Dense>? Normalized,
        MemoryBuffer1D<float, Stride1D.Dense>? Hidden,
        MemoryBuffer1D<float, Stride1D.Dense> Output);
}
