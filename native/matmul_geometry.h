/*
 * matmul_geometry.h: the one place that says how each kernel is dispatched.
 *
 * Read by three consumers, so they cannot drift apart:
 *   - the Metal shaders (every .metal file in shaders/ includes it; the sys crate's
 *     build.rs inlines it into the source the bridge compiles at run time),
 *   - the Objective-C bridge (native/metal_matmul.m) when it encodes a dispatch,
 *   - the CPU emulation harness that runs the kernels in tests.
 *
 * Plain #defines only: valid C, Objective-C, C++ and Metal Shading Language.
 */
#ifndef MATMUL_GEOMETRY_H
#define MATMUL_GEOMETRY_H

/* matmul_simple: one thread per element of C, dispatchThreads: over an (n, m) grid
 * (Metal's non-uniform threadgroups trim the edge groups). */
#define MM_SIMPLE_TG_X 16
#define MM_SIMPLE_TG_Y 16

/* matmul_tiled: TILE x TILE threads per group, each group computes a TILE x TILE block
 * of C; dispatchThreadgroups: over ceil(n/TILE) x ceil(m/TILE) full groups, so every
 * tile slot is loaded even at the edges. */
#define MM_TILED_TILE 16

/* matmul_simdgroup: MM_SIMD_GROUPS simdgroups of 32 threads per threadgroup (a 1-D
 * group of MM_SIMD_GROUPS * 32 threads); each threadgroup computes an
 * MM_SIMD_TILE_M x MM_SIMD_TILE_N block of C with simdgroup_float8x8 accumulators
 * (the simdgroups in a 2-column grid, each holding a (TILE_M / (GROUPS/2)) x (TILE_N / 2)
 * block of 8x8 accumulators: 4 x 4 of them with the numbers below), staging
 * MM_SIMD_TILE_K-deep slices of A and B in threadgroup memory;
 * dispatchThreadgroups: over ceil(n/MM_SIMD_TILE_N) x ceil(m/MM_SIMD_TILE_M) groups. */
#define MM_SIMD_GROUPS 4
#define MM_SIMD_TILE_M 64
#define MM_SIMD_TILE_N 64
#define MM_SIMD_TILE_K 16

#endif /* MATMUL_GEOMETRY_H */
