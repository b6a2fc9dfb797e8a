// Test-only kernel (never in shaders/): matmul_tiled with the loads of A unguarded, so edge
// threads read past the end of A. `cargo xtask shader-check` shows that AddressSanitizer
// reports this as a heap-buffer-overflow.
#include <metal_stdlib>
#include "matmul_geometry.h"
using namespace metal;

kernel void planted_overflow(
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
    for (uint t = 0; t < (K + MM_TILED_TILE - 1) / MM_TILED_TILE; ++t) {
        const uint aCol = t * MM_TILED_TILE + tid.x;
        const uint bRow = t * MM_TILED_TILE + tid.y;
        tileA[tid.y][tid.x] = A[row * K + aCol]; // no bounds check
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
