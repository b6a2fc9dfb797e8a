// matmul.metal: the custom f32 matrix-multiplication kernels.
//
// C (M x N) = A (M x K) * B (K x N), all row-major. Buffer order, shared with
// native/metal_matmul.m: A = 0, B = 1, C = 2, M = 3, K = 4, N = 5.
// Dispatch geometry lives in native/matmul_geometry.h.

#include <metal_stdlib>
#include "matmul_geometry.h"
using namespace metal;

// One thread per element of C. Launched with dispatchThreads: over an (N, M) grid.
kernel void matmul_simple(
    device const float* A [[buffer(0)]],
    device const float* B [[buffer(1)]],
    device float* C [[buffer(2)]],
    constant uint& M [[buffer(3)]],
    constant uint& K [[buffer(4)]],
    constant uint& N [[buffer(5)]],
    uint2 gid [[thread_position_in_grid]])
{
    const uint row = gid.y;
    const uint col = gid.x;
    if (row >= M || col >= N) {
        return;
    }
    float sum = 0.0f;
    for (uint i = 0; i < K; ++i) {
        sum = fma(A[row * K + i], B[i * N + col], sum);
    }
    C[row * N + col] = sum;
}

// TILE x TILE tiles of A and B staged in threadgroup memory. Launched with
// dispatchThreadgroups: over ceil(N/TILE) x ceil(M/TILE) full groups: every thread of
// every group exists, so every tile slot is written (with 0 past the edges) before the
// barrier, and only the store is guarded.
kernel void matmul_tiled(
    device const float* A [[buffer(0)]],
    device const float* B [[buffer(1)]],
    device float* C [[buffer(2)]],
    constant uint& M [[buffer(3)]],
    constant uint& K [[buffer(4)]],
    constant uint& N [[buffer(5)]],
    uint2 tid [[thread_position_in_threadgroup]],
    uint2 tgid [[threadgroup_position_in_grid]])
{
    threadgroup float tileA[MM_TILED_TILE][MM_TILED_TILE];
    threadgroup float tileB[MM_TILED_TILE][MM_TILED_TILE];

    const uint row = tgid.y * MM_TILED_TILE + tid.y;
    const uint col = tgid.x * MM_TILED_TILE + tid.x;
    float sum = 0.0f;

    const uint tiles = (K + MM_TILED_TILE - 1) / MM_TILED_TILE;
    for (uint t = 0; t < tiles; ++t) {
        const uint aCol = t * MM_TILED_TILE + tid.x;
        const uint bRow = t * MM_TILED_TILE + tid.y;
        tileA[tid.y][tid.x] = (row < M && aCol < K) ? A[row * K + aCol] : 0.0f;
        tileB[tid.y][tid.x] = (bRow < K && col < N) ? B[bRow * N + col] : 0.0f;

        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (uint i = 0; i < MM_TILED_TILE; ++i) {
            sum = fma(tileA[tid.y][i], tileB[i][tid.x], sum);
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }

    if (row < M && col < N) {
        C[row * N + col] = sum;
    }
}
