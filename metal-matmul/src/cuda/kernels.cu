// The CUDA backend's own kernels, compiled at run time by NVRTC for the device's
// architecture (metal-matmul/src/cuda/compile.rs). Row-major C (m×n) = A (m×k) · B (k×n);
// every kernel guards its edges, so any m, k, n ≥ 1 is correct. Indices are 64-bit
// where a product of two dimensions can pass 2^31.

typedef unsigned long long u64;

// One thread per element of C; 16×16 blocks, x along the columns of C.
extern "C" __global__ void matmul_simple(const float* __restrict__ a,
                                         const float* __restrict__ b,
                                         float* __restrict__ c,
                                         int m, int k, int n) {
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    int row = blockIdx.y * blockDim.y + threadIdx.y;
    if (row >= m || col >= n) return;
    const float* ar = a + (u64)row * k;
    float acc = 0.0f;
    for (int p = 0; p < k; ++p) acc = fmaf(ar[p], b[(u64)p * n + col], acc);
    c[(u64)row * n + col] = acc;
}

#define TILE 32

// 32×32 tiles of A and B staged in shared memory, one element of C per thread
// (blocks of 32×32 threads). Elements past an edge load as zero and are never stored.
extern "C" __global__ void matmul_tiled(const float* __restrict__ a,
                                        const float* __restrict__ b,
                                        float* __restrict__ c,
                                        int m, int k, int n) {
    __shared__ float as[TILE][TILE + 1];
    __shared__ float bs[TILE][TILE + 1];
    int tx = threadIdx.x, ty = threadIdx.y;
    int row = blockIdx.y * TILE + ty;
    int col = blockIdx.x * TILE + tx;
    float acc = 0.0f;
    for (int p0 = 0; p0 < k; p0 += TILE) {
        int ac = p0 + tx, br = p0 + ty;
        as[ty][tx] = (row < m && ac < k) ? a[(u64)row * k + ac] : 0.0f;
        bs[ty][tx] = (br < k && col < n) ? b[(u64)br * n + col] : 0.0f;
        __syncthreads();
#pragma unroll
        for (int p = 0; p < TILE; ++p) acc = fmaf(as[ty][p], bs[p][tx], acc);
        __syncthreads();
    }
    if (row < m && col < n) c[(u64)row * n + col] = acc;
}

// Register-blocked: a 128×128 tile of C per block of 256 threads (16×16), each thread
// 8×8 outputs in registers, K in steps of 8. A's tile is stored transposed (k-major) so
// that both operands are read from shared memory as float4. Each thread owns rows
// ty*4+{0..3} and 64+ty*4+{0..3}, and the same pattern of columns with tx: a warp's
// float4 reads of B cover 256 contiguous bytes (no bank conflicts). Global loads are
// float4 where the row width allows and scalar, guarded, at edges (any shape). At most
// 128 registers a thread (__launch_bounds__(256, 2)) lets two blocks share an SM. The
// next tile is fetched into registers while the current one is multiplied, with two
// shared-memory buffers.
#define BM 128
#define BN 128
#define BK 8

extern "C" __global__ void __launch_bounds__(256, 2)
matmul_register_blocked(const float* __restrict__ a,
                        const float* __restrict__ b,
                        float* __restrict__ c,
                        int m, int k, int n) {
    __shared__ __align__(16) float as[2][BK][BM];
    __shared__ __align__(16) float bs[2][BK][BN];
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;

    // Loading: A's 128×8 tile is 1024 floats, 4 per thread: thread t loads row t/2,
    // columns (t%2)*4 .. +3. B's 8×128 tile likewise: row t/32, columns (t%32)*4 .. +3.
    const int a_row = tid / 2, a_col = (tid % 2) * 4;
    const int b_row = tid / 32, b_col = (tid % 32) * 4;
    float ra[4], rb[4];

    // Rows of k (A) or n (B) floats keep 16-byte alignment when k (n) is a multiple of
    // 4 (every device buffer and row block starts 16-byte aligned): then four floats
    // inside the matrix are one float4 load; edges and other widths load one by one.
    const bool a_vec = (k & 3) == 0, b_vec = (n & 3) == 0;
    auto load = [&](int p0) {
        int gr = row0 + a_row, ac = p0 + a_col;
        if (a_vec && gr < m && ac + 3 < k) {
            float4 v = *reinterpret_cast<const float4*>(&a[(u64)gr * k + ac]);
            ra[0] = v.x; ra[1] = v.y; ra[2] = v.z; ra[3] = v.w;
        } else {
#pragma unroll
            for (int i = 0; i < 4; ++i)
                ra[i] = (gr < m && ac + i < k) ? a[(u64)gr * k + ac + i] : 0.0f;
        }
        int br = p0 + b_row, bc = col0 + b_col;
        if (b_vec && br < k && bc + 3 < n) {
            float4 v = *reinterpret_cast<const float4*>(&b[(u64)br * n + bc]);
            rb[0] = v.x; rb[1] = v.y; rb[2] = v.z; rb[3] = v.w;
        } else {
#pragma unroll
            for (int i = 0; i < 4; ++i)
                rb[i] = (br < k && bc + i < n) ? b[(u64)br * n + bc + i] : 0.0f;
        }
    };
    auto store = [&](int buf) {
#pragma unroll
        for (int i = 0; i < 4; ++i) as[buf][a_col + i][a_row] = ra[i];
        *reinterpret_cast<float4*>(&bs[buf][b_row][b_col]) =
            make_float4(rb[0], rb[1], rb[2], rb[3]);
    };

    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;

    load(0);
    store(0);
    __syncthreads();
    int buf = 0;
    for (int p0 = 0; p0 < k; p0 += BK) {
        const bool more = p0 + BK < k;
        if (more) load(p0 + BK);
#pragma unroll
        for (int p = 0; p < BK; ++p) {
            float4 a0 = *reinterpret_cast<const float4*>(&as[buf][p][ty * 4]);
            float4 a1 = *reinterpret_cast<const float4*>(&as[buf][p][64 + ty * 4]);
            float4 b0 = *reinterpret_cast<const float4*>(&bs[buf][p][tx * 4]);
            float4 b1 = *reinterpret_cast<const float4*>(&bs[buf][p][64 + tx * 4]);
            float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
            float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int i = 0; i < 8; ++i)
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
        if (more) {
            // The other buffer was last read before the previous barrier.
            store(buf ^ 1);
            __syncthreads();
            buf ^= 1;
        }
    }

#pragma unroll
    for (int i = 0; i < 8; ++i) {
        int r = row0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + (i - 4));
        if (r >= m) continue;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            int cc = col0 + (j < 4 ? tx * 4 + j : 64 + tx * 4 + (j - 4));
            if (cc < n) c[(u64)r * n + cc] = acc[i][j];
        }
    }
}
