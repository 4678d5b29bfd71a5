using ILGPU;

namespace Signal.Models.Accelerators.Device;

/// <summary>Scalar arguments of <see cref="DeviceTrainingKernels.Gemm"/>: C (M × N, row stride Ldc) = A·B (+ C).</summary>
internal struct GemmArguments
{
    /// <summary>Rows of A and C.</summary>
    public int M;

    /// <summary>Columns of B and C.</summary>
    public int N;

    /// <summary>Columns of A, rows of B.</summary>
    public int K;

    /// <summary>A(m, k) = a[m · As + k · Ak].</summary>
    public int As;

    /// <summary>See <see cref="As"/>.</summary>
    public int Ak;

    /// <summary>B(k, n) = b[k · Bk + n · Bn].</summary>
    public int Bk;

    /// <summary>See <see cref="Bk"/>.</summary>
    public int Bn;

    /// <summary>Row stride of C.</summary>
    public int Ldc;

    /// <summary>1: C += A·B; 0: C = A·B.</summary>
    public int Accumulate;
}

/// <summary>
/// The accelerator's training kernels (ILGPU): one strided matrix product for every product of forward and
/// back-propagation through time (transposes are strides), and element-wise kernels for the cells' gates forward and
/// backward, mean pooling and the head's rows. Sequences of a batch advance together, one time step per launch; the
/// weight gradients are one product each over all steps at the end.
/// </summary>
internal static class DeviceTrainingKernels
{
    /// <summary>Rows and columns of C per thread group of <see cref="Gemm"/>.</summary>
    public const int Tile = 64;

    /// <summary>Threads per group of <see cref="Gemm"/> (16 × 16, 4 × 4 each).</summary>
    public const int GroupSize = 256;

    private const int Depth = 16;
    private const int StrideA = Tile + 1;

    /// <summary>C = A·B (+ C) with any strides: 64 × 64 tiles through shared memory, 4 × 4 per thread.</summary>
    public static void Gemm(GemmArguments p, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c)
    {
        ArrayView<float> sa = SharedMemory.Allocate<float>(Depth * StrideA);
        ArrayView<float> sb = SharedMemory.Allocate<float>(Depth * Tile);
        int tid = Group.IdxX;
        int tx = tid % 16;
        int ty = tid / 16;
        int m0 = Grid.IdxY * Tile;
        int n0 = Grid.IdxX * Tile;
        float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        float c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        for (int k0 = 0; k0 < p.K; k0 += Depth)
        {
            for (int i = 0; i < 4; i++)
            {
                int e = tid + (i * GroupSize);
                int kk = e % Depth;
                int mm = e / Depth;
                int m = m0 + mm, k = k0 + kk;
                sa[(kk * StrideA) + mm] = m < p.M && k < p.K ? a[((long)m * p.As) + ((long)k * p.Ak)] : 0;
            }

            for (int i = 0; i < 4; i++)
            {
                int e = tid + (i * GroupSize);
                int nn = e % Tile;
                int kk = e / Tile;
                int n = n0 + nn, k = k0 + kk;
                sb[(kk * Tile) + nn] = n < p.N && k < p.K ? b[((long)k * p.Bk) + ((long)n * p.Bn)] : 0;
            }

            Group.Barrier();
            for (int kk = 0; kk < Depth; kk++)
            {
                int ra = (kk * StrideA) + (ty * 4);
                int rb = (kk * Tile) + tx;
                float b0 = sb[rb], b1 = sb[rb + 16], b2 = sb[rb + 32], b3 = sb[rb + 48];
                float a0 = sa[ra], a1 = sa[ra + 1], a2 = sa[ra + 2], a3 = sa[ra + 3];
                c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
                c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
                c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
                c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
            }

            Group.Barrier();
        }

        int row = m0 + (ty * 4), col = n0 + tx;
        Put(p, c, row, col, c00, c01, c02, c03);
        Put(p, c, row + 1, col, c10, c11, c12, c13);
        Put(p, c, row + 2, col, c20, c21, c22, c23);
        Put(p, c, row + 3, col, c30, c31, c32, c33);
    }

    private static void Put(GemmArguments p, ArrayView<float> c, int row, int col, float v0, float v1, float v2, float v3)
    {
        if (row >= p.M)
        {
            return;
        }

        long o = (long)row * p.Ldc;
        Put1(p, c, o, col, v0);
        Put1(p, c, o, col + 16, v1);
        Put1(p, c, o, col + 32, v2);
        Put1(p, c, o, col + 48, v3);
    }

    private static void Put1(GemmArguments p, ArrayView<float> c, long o, int col, float v)
    {
        if (col < p.N)
        {
            c[o + col] = p.Accumulate != 0 ? c[o + col] + v : v;
        }
    }

    /// <summary>
    /// LSTM step t for every sequence and unit: pre-activations gx (this step's input product, all steps stored) + gh
    /// (the hidden product) + both biases → i, f, g, o, then c and h. Keeps i, f, g, o, c, tanh c per unit for the
    /// backward pass and writes h into block t + 1 of the outputs (block 0 holds the zero initial state).
    /// </summary>
    public static void LstmForward(Index1D index, int batch, int hidden, int t, ArrayView<float> gx, ArrayView<float> gh, ArrayView<float> bih, ArrayView<float> bhh, ArrayView<float> cache, ArrayView<float> outputs)
    {
        int b = index / hidden, j = index - (b * hidden), h4 = 4 * hidden;
        long row = ((long)t * batch) + b;
        float gi = gx[(row * h4) + j] + bih[j] + gh[((long)b * h4) + j] + bhh[j];
        float gf = gx[(row * h4) + hidden + j] + bih[hidden + j] + gh[((long)b * h4) + hidden + j] + bhh[hidden + j];
        float gg = gx[(row * h4) + (2 * hidden) + j] + bih[(2 * hidden) + j] + gh[((long)b * h4) + (2 * hidden) + j] + bhh[(2 * hidden) + j];
        float go = gx[(row * h4) + (3 * hidden) + j] + bih[(3 * hidden) + j] + gh[((long)b * h4) + (3 * hidden) + j] + bhh[(3 * hidden) + j];
        float i = DeviceKernels.Sigmoid(gi), f = DeviceKernels.Sigmoid(gf), g = DeviceKernels.Tanh(gg), o = DeviceKernels.Sigmoid(go);
        float cPrev = t == 0 ? 0 : cache[((row - batch) * 6 * hidden) + (4 * hidden) + j];
        float c = (f * cPrev) + (i * g);
        float tc = DeviceKernels.Tanh(c);
        long k = row * 6 * hidden;
        cache[k + j] = i;
        cache[k + hidden + j] = f;
        cache[k + (2 * hidden) + j] = g;
        cache[k + (3 * hidden) + j] = o;
        cache[k + (4 * hidden) + j] = c;
        cache[k + (5 * hidden) + j] = tc;
        outputs[((row + batch) * hidden) + j] = o * tc;
    }

    /// <summary>GRU step t: r, z, n (reset applied to the hidden product, PyTorch's convention); keeps r, z, n, hn.</summary>
    public static void GruForward(Index1D index, int batch, int hidden, int t, ArrayView<float> gx, ArrayView<float> gh, ArrayView<float> bih, ArrayView<float> bhh, ArrayView<float> cache, ArrayView<float> outputs)
    {
        int b = index / hidden, j = index - (b * hidden), h3 = 3 * hidden;
        long row = ((long)t * batch) + b;
        long x = row * h3, hh = (long)b * h3;
        float r = DeviceKernels.Sigmoid(gx[x + j] + bih[j] + gh[hh + j] + bhh[j]);
        float z = DeviceKernels.Sigmoid(gx[x + hidden + j] + bih[hidden + j] + gh[hh + hidden + j] + bhh[hidden + j]);
        float hn = gh[hh + (2 * hidden) + j] + bhh[(2 * hidden) + j];
        float n = DeviceKernels.Tanh(gx[x + (2 * hidden) + j] + bih[(2 * hidden) + j] + (r * hn));
        float hPrev = outputs[(row * hidden) + j];
        long k = row * 4 * hidden;
        cache[k + j] = r;
        cache[k + hidden + j] = z;
        cache[k + (2 * hidden) + j] = n;
        cache[k + (3 * hidden) + j] = hn;
        outputs[((row + batch) * hidden) + j] = ((1 - z) * n) + (z * hPrev);
    }

    /// <summary>Plain RNN step t: tanh or ReLU of both products and biases.</summary>
    public static void RnnForward(Index1D index, int batch, int hidden, int t, int relu, ArrayView<float> gx, ArrayView<float> gh, ArrayView<float> bih, ArrayView<float> bhh, ArrayView<float> outputs)
    {
        int b = index / hidden, j = index - (b * hidden);
        long row = ((long)t * batch) + b;
        float a = gx[(row * hidden) + j] + bih[j] + gh[((long)b * hidden) + j] + bhh[j];
        outputs[((row + batch) * hidden) + j] = relu != 0 ? (a > 0 ? a : 0) : DeviceKernels.Tanh(a);
    }

    /// <summary>
    /// LSTM backward at step t: dh = the output's gradient + the one carried from t + 1; the gates' gradients (the
    /// same for the input and hidden products) and the cell's carried gradient, as the CPU trainer computes them.
    /// </summary>
    public static void LstmBackward(Index1D index, int batch, int hidden, int t, ArrayView<float> cache, ArrayView<float> dOutput, ArrayView<float> dhNext, ArrayView<float> dcNext, ArrayView<float> dGates)
    {
        int b = index / hidden, j = index - (b * hidden);
        long row = ((long)t * batch) + b;
        long k = row * 6 * hidden;
        float dh = dOutput[(row * hidden) + j] + dhNext[((long)b * hidden) + j];
        float i = cache[k + j], f = cache[k + hidden + j], g = cache[k + (2 * hidden) + j], o = cache[k + (3 * hidden) + j], tc = cache[k + (5 * hidden) + j];
        float cPrev = t == 0 ? 0 : cache[((row - batch) * 6 * hidden) + (4 * hidden) + j];
        float dc = dcNext[((long)b * hidden) + j] + (dh * o * (1 - (tc * tc)));
        long d = row * 4 * hidden;
        dGates[d + j] = dc * g * i * (1 - i);
        dGates[d + hidden + j] = dc * cPrev * f * (1 - f);
        dGates[d + (2 * hidden) + j] = dc * i * (1 - (g * g));
        dGates[d + (3 * hidden) + j] = dh * tc * o * (1 - o);
        dcNext[((long)b * hidden) + j] = dc * f;
    }

    /// <summary>GRU backward at step t: the input product's and the hidden product's gate gradients, and the direct part of dh_{t−1}.</summary>
    public static void GruBackward(Index1D index, int batch, int hidden, int t, ArrayView<float> cache, ArrayView<float> outputs, ArrayView<float> dOutput, ArrayView<float> dhNext, ArrayView<float> dInput, ArrayView<float> dHidden)
    {
        int b = index / hidden, j = index - (b * hidden);
        long row = ((long)t * batch) + b;
        long k = row * 4 * hidden;
        float dh = dOutput[(row * hidden) + j] + dhNext[((long)b * hidden) + j];
        float r = cache[k + j], z = cache[k + hidden + j], n = cache[k + (2 * hidden) + j], hn = cache[k + (3 * hidden) + j];
        float hPrev = outputs[(row * hidden) + j];
        float dn = dh * (1 - z);
        float dz = dh * (hPrev - n);
        float dan = dn * (1 - (n * n));
        float dar = dan * hn * r * (1 - r);
        float daz = dz * z * (1 - z);
        long d = row * 3 * hidden;
        dInput[d + j] = dar;
        dInput[d + hidden + j] = daz;
        dInput[d + (2 * hidden) + j] = dan;
        dHidden[d + j] = dar;
        dHidden[d + hidden + j] = daz;
        dHidden[d + (2 * hidden) + j] = dan * r;
        dhNext[((long)b * hidden) + j] = dh * z;
    }

    /// <summary>Plain RNN backward at step t.</summary>
    public static void RnnBackward(Index1D index, int batch, int hidden, int t, int relu, ArrayView<float> outputs, ArrayView<float> dOutput, ArrayView<float> dhNext, ArrayView<float> dGates)
    {
        int b = index / hidden, j = index - (b * hidden);
        long row = ((long)t * batch) + b;
        float dh = dOutput[(row * hidden) + j] + dhNext[((long)b * hidden) + j];
        float y = outputs[((row + batch) * hidden) + j];
        // Float constants throughout: an integer-typed (y > 0 ? 1 : 0) converted to float came out wrong on CUDA.
        float slope = relu != 0 ? (y > 0 ? 1f : 0f) : 1f - (y * y);
        dGates[(row * hidden) + j] = dh * slope;
    }

    /// <summary>Rows summed by one thread of <see cref="ColumnPartialSum"/>.</summary>
    public const int SumChunk = 256;

    /// <summary>
    /// First pass of the biases' gradients: partial[chunk, col] = Σ of src[row, col] over a chunk of
    /// <see cref="SumChunk"/> rows (one thread per chunk and column, so a long column is summed by many threads).
    /// </summary>
    public static void ColumnPartialSum(Index1D index, int rows, int columns, ArrayView<float> source, ArrayView<float> partial)
    {
        int chunk = index / columns, col = index - (chunk * columns);
        int end = Math.Min(rows, (chunk + 1) * SumChunk);
        float sum = 0;
        for (int r = chunk * SumChunk; r < end; r++)
        {
            sum += source[((long)r * columns) + col];
        }

        partial[index] = sum;
    }

    /// <summary>dst[col] += Σ over rows of src[row, col] (the second pass, over the partial sums).</summary>
    public static void ColumnSum(Index1D col, int rows, int columns, ArrayView<float> source, ArrayView<float> destination)
    {
        float sum = 0;
        for (int r = 0; r < rows; r++)
        {
            sum += source[((long)r * columns) + col];
        }

        destination[col] += sum;
    }

    /// <summary>
    /// Mean pooling forward for one sequence's feature (one thread each): z_t = [h_t, m_t] with
    /// m_t = m_{t−1} + a_t (h_t − m_{t−1}), a_t = 1 / min(t + 1, N).
    /// </summary>
    public static void PoolForward(Index1D index, int steps, int batch, int features, int poolingSteps, ArrayView<float> top, ArrayView<float> z)
    {
        int b = index / features, j = index - (b * features);
        float m = 0;
        for (int t = 0; t < steps; t++)
        {
            long row = ((long)t * batch) + b;
            float h = top[(row * features) + j];
            float count = t + 1;
            float a = 1f / (poolingSteps > 0 && count > poolingSteps ? poolingSteps : count);
            m += a * (h - m);
            z[(row * 2 * features) + j] = h;
            z[(row * 2 * features) + features + j] = m;
        }
    }

    /// <summary>
    /// Mean pooling backward: with G_t = g_t + (1 − a_{t+1}) G_{t+1} (the gradient reaching m_t), h_t receives a_t G_t
    /// (added to the top layer's output gradient).
    /// </summary>
    public static void PoolBackward(Index1D index, int steps, int batch, int features, int poolingSteps, ArrayView<float> dPool, ArrayView<float> dTop)
    {
        int b = index / features, j = index - (b * features);
        float carried = 0;
        for (int t = steps - 1; t >= 0; t--)
        {
            long row = ((long)t * batch) + b;
            if (t < steps - 1)
            {
                float next = t + 2;
                carried *= 1f - (1f / (poolingSteps > 0 && next > poolingSteps ? poolingSteps : next));
            }

            carried += dPool[(row * features) + j];
            float count = t + 1;
            dTop[(row * features) + j] += (1f / (poolingSteps > 0 && count > poolingSteps ? poolingSteps : count)) * carried;
        }
    }

    /// <summary>
    /// Adds consecutive rows of the head input's gradient back to the rows they came from: the first
    /// <paramref name="features"/> columns to the top layer's output gradient, the rest (mean pooling) to the pooled one.
    /// </summary>
    public static void ScatterAddRows(Index1D index, int width, int features, ArrayView<int> rows, ArrayView<float> source, ArrayView<float> dTop, ArrayView<float> dPool)
    {
        int r = index / width, k = index - (r * width);
        long row = rows[r];
        float v = source[index];
        if (k < features)
        {
            dTop[(row * features) + k] += v;
        }
        else
        {
            dPool[(row * features) + (k - features)] += v;
        }
    }
}
