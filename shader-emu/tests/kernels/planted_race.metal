// Test-only kernel (never in shaders/): matmul_tiled without the barrier at the end of each
// K step, so a fast thread overwrites a tile slot that a slow one may still be reading.
// `cargo xtask shader-check` shows that ThreadSanitizer reports this as a data race.
#include <metal_stdlib>
#include "matmul_geometry.h"
using namespace metal;

kernel void planted_race(
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
        tileA[tid.y][tid.x] = (row < M && aCol < K) ? A[row * K + aCol] : 0.0f;
        tileB[tid.y][tid.x] = (bRow < K && col < N) ? B[bRow * N + col] : 0.0f;
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (uint i = 0; i < MM_TILED_TILE; ++i) {
            sum = fma(tileA[tid.y][i], tileB[i][tid.x], sum);
        }
        // (the second threadgroup_barrier is missing here)
    }
    if (row < M && col < N) {
        C[row * N + col] = sum;
    }
}
