// matmul_simdgroup.metal: register-blocked f32 matmul on simdgroup_float8x8 (Apple7+ and
// Mac2 GPUs, MSL 2.3+).
//
// C (M x N) = A (M x K) * B (K x N), all row-major; same buffer order as matmul.metal.
// Launched with dispatchThreadgroups: over ceil(N/MM_SIMD_TILE_N) x ceil(M/MM_SIMD_TILE_M)
// groups of MM_SIMD_GROUPS * 32 threads (native/matmul_geometry.h).
//
// Each threadgroup computes an MM_SIMD_TILE_M x MM_SIMD_TILE_N block of C. Its simdgroups
// sit in a MMS_SG_ROWS x MMS_SG_COLS grid over that block; each holds MMS_FRAG_M x
// MMS_FRAG_N 8x8 accumulators in registers (register blocking: every A fragment it loads
// is used MMS_FRAG_N times, every B fragment MMS_FRAG_M times). Per step along K, all
// threads stage an MM_SIMD_TILE_K-deep slice of A and B in threadgroup memory, writing 0
// past the matrix edges, so the 8x8 loads never read outside A or B and the padding adds
// nothing to the sums. Stores: an accumulator wholly inside C goes straight to device
// memory; an edge one goes through a per-simdgroup threadgroup scratch tile, from which
// each lane copies only the elements inside C.
//
// MSL rules the CPU emulation cannot check, kept here by construction: every
// threadgroup_barrier is reached by all threads (the K loop's trip count is the same for
// the whole group; there is no early return), every simdgroup operation and
// simdgroup_barrier is reached by all 32 lanes of its simdgroup (the store branches depend
// only on the simdgroup index and the accumulator's position), and the threadgroup memory
// stays under 32 KiB (static_assert below).

#include <metal_stdlib>
#include "matmul_geometry.h"
using namespace metal;

// The whole file is one library with matmul.metal: where the Metal compiler has no
// simdgroup matrices (the standard library declares them under this macro), leave this
// kernel out instead of failing the library, so the other kernels still build. The bridge
// then finds no matmul_simdgroup function and reports the method unsupported.
#if defined(__HAVE_SIMDGROUP_MATRIX__)

#define MMS_SG_COLS 2
#define MMS_SG_ROWS (MM_SIMD_GROUPS / MMS_SG_COLS)
#define MMS_FRAG_M (MM_SIMD_TILE_M / (MMS_SG_ROWS * 8))
#define MMS_FRAG_N (MM_SIMD_TILE_N / (MMS_SG_COLS * 8))
#define MMS_THREADS (MM_SIMD_GROUPS * 32)
#define MMS_TG_FLOATS \
    (MM_SIMD_TILE_M * MM_SIMD_TILE_K + MM_SIMD_TILE_K * MM_SIMD_TILE_N + MM_SIMD_GROUPS * 64)

static_assert(MM_SIMD_GROUPS % MMS_SG_COLS == 0, "simdgroups must fill a 2-column grid");
static_assert(MM_SIMD_TILE_M % (MMS_SG_ROWS * 8) == 0, "MM_SIMD_TILE_M must split into 8-row fragments");
static_assert(MM_SIMD_TILE_N % (MMS_SG_COLS * 8) == 0, "MM_SIMD_TILE_N must split into 8-column fragments");
static_assert(MM_SIMD_TILE_K % 8 == 0, "MM_SIMD_TILE_K must be a multiple of 8");
static_assert(MMS_TG_FLOATS * 4 <= 32768, "threadgroup memory is limited to 32 KiB");

kernel void matmul_simdgroup(
    device const float* A [[buffer(0)]],
    device const float* B [[buffer(1)]],
    device float* C [[buffer(2)]],
    constant uint& M [[buffer(3)]],
    constant uint& K [[buffer(4)]],
    constant uint& N [[buffer(5)]],
    uint tid [[thread_index_in_threadgroup]],
    uint sgid [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]],
    uint2 tgid [[threadgroup_position_in_grid]])
{
    threadgroup float tileA[MM_SIMD_TILE_M * MM_SIMD_TILE_K]; // row-major, MM_SIMD_TILE_K wide
    threadgroup float tileB[MM_SIMD_TILE_K * MM_SIMD_TILE_N]; // row-major, MM_SIMD_TILE_N wide
    threadgroup float scratch[MM_SIMD_GROUPS * 64];           // one 8x8 tile per simdgroup

    const uint rowBase = tgid.y * MM_SIMD_TILE_M;
    const uint colBase = tgid.x * MM_SIMD_TILE_N;
    const uint sgRow = (sgid / MMS_SG_COLS) * (MMS_FRAG_M * 8);
    const uint sgCol = (sgid % MMS_SG_COLS) * (MMS_FRAG_N * 8);

    simdgroup_float8x8 acc[MMS_FRAG_M][MMS_FRAG_N];
    for (uint i = 0; i < MMS_FRAG_M; ++i) {
        for (uint j = 0; j < MMS_FRAG_N; ++j) {
            acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
        }
    }

    for (uint k0 = 0; k0 < K; k0 += MM_SIMD_TILE_K) {
        for (uint e = tid; e < MM_SIMD_TILE_M * MM_SIMD_TILE_K; e += MMS_THREADS) {
            const uint row = rowBase + e / MM_SIMD_TILE_K;
            const uint col = k0 + e % MM_SIMD_TILE_K;
            tileA[e] = (row < M && col < K) ? A[row * K + col] : 0.0f;
        }
        for (uint e = tid; e < MM_SIMD_TILE_K * MM_SIMD_TILE_N; e += MMS_THREADS) {
            const uint row = k0 + e / MM_SIMD_TILE_N;
            const uint col = colBase + e % MM_SIMD_TILE_N;
            tileB[e] = (row < K && col < N) ? B[row * N + col] : 0.0f;
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);

        for (uint kk = 0; kk < MM_SIMD_TILE_K; kk += 8) {
            simdgroup_float8x8 a[MMS_FRAG_M];
            simdgroup_float8x8 b[MMS_FRAG_N];
            for (uint i = 0; i < MMS_FRAG_M; ++i) {
                simdgroup_load(a[i], tileA + (sgRow + i * 8) * MM_SIMD_TILE_K + kk, MM_SIMD_TILE_K);
            }
            for (uint j = 0; j < MMS_FRAG_N; ++j) {
                simdgroup_load(b[j], tileB + kk * MM_SIMD_TILE_N + sgCol + j * 8, MM_SIMD_TILE_N);
            }
            for (uint i = 0; i < MMS_FRAG_M; ++i) {
                for (uint j = 0; j < MMS_FRAG_N; ++j) {
                    simdgroup_multiply_accumulate(acc[i][j], a[i], b[j], acc[i][j]);
                }
            }
        }
        // Nobody overwrites the tiles while a simdgroup may still be reading them.
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }

    const uint mine = sgid * 64; // this simdgroup's scratch tile
    for (uint i = 0; i < MMS_FRAG_M; ++i) {
        for (uint j = 0; j < MMS_FRAG_N; ++j) {
            const uint row0 = rowBase + sgRow + i * 8;
            const uint col0 = colBase + sgCol + j * 8;
            if (row0 >= M || col0 >= N) {
                continue; // wholly outside C
            }
            if (row0 + 8 <= M && col0 + 8 <= N) {
                simdgroup_store(acc[i][j], C + row0 * N + col0, N);
            } else {
                simdgroup_store(acc[i][j], scratch + mine, 8);
                simdgroup_barrier(mem_flags::mem_threadgroup);
                for (uint e = lane; e < 64; e += 32) {
                    const uint row = row0 + e / 8;
                    const uint col = col0 + e % 8;
                    if (row < M && col < N) {
                        C[row * N + col] = scratch[mine + e];
                    }
                }
                // The next edge tile reuses the scratch: every lane must be done reading.
                simdgroup_barrier(mem_flags::mem_threadgroup);
            }
        }
    }
}

#endif // __HAVE_SIMDGROUP_MATRIX__

#undef MMS_SG_COLS
#undef MMS_SG_ROWS
#undef MMS_FRAG_M
#undef MMS_FRAG_N
#undef MMS_THREADS
#undef MMS_TG_FLOATS
