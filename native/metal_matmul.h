/*
 * metal_matmul.h: the C interface of the Objective-C Metal bridge.
 *
 * Pure C on purpose: fixed-width integers, status codes as plain int32_t constants
 * (never a C enum, whose unknown values would be undefined behaviour in Rust), no Apple
 * imports. bindgen reads this header on any host; only metal_matmul.m needs macOS.
 *
 * Matrices are row-major f32: C (m x n) = A (m x k) * B (k x n).
 *
 * Threading: every function may be called from any thread. A MetalContext serialises
 * its own mutable state (pipelines, buffer pool) internally, so one context may be
 * shared by many threads calling metal_matmul at once.
 */
#ifndef METAL_MATMUL_H
#define METAL_MATMUL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes (plan section 4.2, extended) --------------------------------- */
#define METAL_SUCCESS 0
#define METAL_ERROR_NO_DEVICE (-1)
#define METAL_ERROR_SHADER_COMPILE (-2)
#define METAL_ERROR_OUT_OF_MEMORY (-3)
#define METAL_ERROR_INVALID_DIMENSIONS (-4)
#define METAL_ERROR_KERNEL_TIMEOUT (-5)
/* A command buffer completed with an error status other than a timeout. */
#define METAL_ERROR_GPU_FAULT (-6)
/* A null pointer or an unknown method was passed. */
#define METAL_ERROR_INVALID_ARGUMENT (-7)
/* The requested method is not supported by this device (e.g. MPS). */
#define METAL_ERROR_UNSUPPORTED (-8)

/* ---- methods: which kernel computes the product ---------------------------------- */
/* The bridge never chooses: the caller (the safe Rust API) resolves "auto". */
#define METAL_METHOD_SIMPLE 1
#define METAL_METHOD_TILED 2
#define METAL_METHOD_MPS 3
#define METAL_METHOD_SIMDGROUP 4

/* Size of the error-message buffers the caller should pass. */
#define METAL_ERROR_MESSAGE_LEN 1024

/* An opaque handle owning a device, a command queue, the compiled pipelines and a
 * buffer pool. Created by metal_init, released by metal_cleanup. */
typedef struct MetalContext MetalContext;

/* Facts about the device a context runs on. Strings are NUL-terminated UTF-8. */
typedef struct MetalDeviceInfo {
    /* The device's name, e.g. "Apple M2". */
    char device_name[256];
    /* The highest GPU family the device supports: the highest Apple family (Apple1 ..
     * Apple9) if any, else the highest Mac family (Mac1, Mac2), else "Unknown". */
    char gpu_family[64];
    /* The highest family of each kind the device supports, space-separated, e.g.
     * "Apple8 Mac2 Metal3" (Metal3 is listed when the device supports Metal 3). Families
     * newer than the build's SDK are probed by their raw values. */
    char gpu_families[128];
    /* The device's recommended working-set size in bytes (its usable memory). */
    uint64_t memory_total;
    /* memory_total minus what the device has currently allocated, in bytes. */
    uint64_t memory_free;
    /* Bytes the device has allocated at the time of the query. */
    uint64_t current_allocated;
    /* Maximum threadgroup memory in bytes. */
    uint64_t max_threadgroup_memory;
    /* The largest single buffer the device can allocate, in bytes. */
    uint64_t max_buffer_length;
    /* Maximum threads per threadgroup (the width of maxThreadsPerThreadgroup). */
    int32_t max_threads_per_group;
    /* 1 when CPU and GPU share memory (Apple silicon), else 0. */
    int32_t is_unified_memory;
    /* 1 for a low-power (integrated) GPU, else 0. */
    int32_t is_low_power;
    /* 1 for a removable (external) GPU, else 0. */
    int32_t is_removable;
    /* 1 when Metal Performance Shaders supports this device, else 0. */
    int32_t supports_mps;
    /* 1 when the device supports simdgroup matrix operations (Apple7+ or Mac2), else 0. */
    int32_t supports_simdgroup_matrix;
    /* 1 when the device supports the Metal 3 family, else 0. */
    int32_t supports_metal3;
} MetalDeviceInfo;

/* What one multiplication did and how long the GPU took. Only what the Rust side reads:
 * the caller times the whole call and knows the method it asked for. */
typedef struct MetalMatmulStats {
    /* Seconds the GPU spent executing the command buffer (GPUEndTime - GPUStartTime). */
    double gpu_seconds;
    /* 1 when A and B were wrapped without copying (newBufferWithBytesNoCopy), else 0.
     * That happens on unified memory when a pointer and its byte length are both
     * multiples of the page size (getpagesize(): 16 KiB on Apple silicon). */
    int32_t zero_copy_inputs;
    /* 1 when C was wrapped without copying (the GPU wrote the caller's memory), else 0. */
    int32_t zero_copy_output;
} MetalMatmulStats;

/* The state of a context's buffer pool. */
typedef struct MetalPoolStats {
    /* Bytes held by cached (idle) buffers. */
    uint64_t cached_bytes;
    /* Number of cached buffers. */
    uint64_t cached_buffers;
    /* The most bytes the pool keeps (metal_set_pool_limit). */
    uint64_t limit_bytes;
    /* Buffer requests served from the pool. */
    uint64_t hits;
    /* Buffer requests that allocated a new buffer. */
    uint64_t misses;
    /* Operands wrapped without copying (never pooled). */
    uint64_t zero_copy_wraps;
} MetalPoolStats;

/* 1 when the system has a Metal device, else 0. */
int32_t metal_is_available(void);

/* Creates a context on the system default device, compiles shader_source (the Metal
 * Shading Language text of the kernels, NUL-terminated; the Rust sys crate embeds it
 * at build time) into pipelines and fills *info. On failure returns a METAL_ERROR_*
 * code, leaves *out NULL and writes a message into err (if err is not NULL and
 * err_len > 0); a compilation failure's message carries the compiler's log. */
int32_t metal_init(MetalContext **out, const char *shader_source, MetalDeviceInfo *info,
                   char *err, size_t err_len);

/* (Re)compiles shader_source into the context's pipelines, replacing them only when
 * every kernel compiled. metal_init already calls it. */
int32_t metal_compile_shaders(MetalContext *ctx, const char *shader_source, char *err,
                              size_t err_len);

/* Refreshes *info (memory figures change as buffers are allocated). */
int32_t metal_device_info(MetalContext *ctx, MetalDeviceInfo *info);

/* C = A * B with the given METAL_METHOD_*. a holds m*k floats, b k*n, c m*n. All of
 * m, k, n must be at least 1 (the safe API answers zero-sized products itself). stats
 * may be NULL.
 *
 * Before allocating anything the request is checked as metal_check_request does
 * (METAL_ERROR_INVALID_DIMENSIONS, METAL_ERROR_OUT_OF_MEMORY). A method the device
 * cannot run answers METAL_ERROR_UNSUPPORTED. A command buffer that completes with an
 * error answers METAL_ERROR_KERNEL_TIMEOUT (MTLCommandBufferErrorTimeout, e.g. the GPU
 * watchdog), METAL_ERROR_OUT_OF_MEMORY (MTLCommandBufferErrorOutOfMemory) or
 * METAL_ERROR_GPU_FAULT (any other error); the context stays usable afterwards. */
int32_t metal_matmul(MetalContext *ctx, const float *a, const float *b, float *c,
                     uint32_t m, uint32_t k, uint32_t n, int32_t method,
                     MetalMatmulStats *stats, char *err, size_t err_len);

/* Whether the context can run a METAL_METHOD_* now: 1 or 0. SIMPLE and TILED always;
 * MPS where MPSSupportsMTLDevice; SIMDGROUP where the device supports simdgroup matrix
 * operations and the shader source has a matmul_simdgroup kernel. */
int32_t metal_method_supported(MetalContext *ctx, int32_t method);

/* Checks, without allocating, that a product of this shape can run: METAL_SUCCESS,
 * METAL_ERROR_INVALID_DIMENSIONS (a zero dimension, or byte sizes that overflow), or
 * METAL_ERROR_OUT_OF_MEMORY (a buffer over the device's maxBufferLength, or A, B and C
 * together over recommendedMaxWorkingSetSize minus currentAllocatedSize, counting the
 * pool's idle buffers as free since metal_matmul drops them to make room). */
int32_t metal_check_request(MetalContext *ctx, uint32_t m, uint32_t k, uint32_t n, char *err,
                            size_t err_len);

/* Sets the most bytes the context's buffer pool keeps cached (default 256 MiB; 0
 * disables pooling). Cached buffers beyond the new limit are released, oldest first. */
void metal_set_pool_limit(MetalContext *ctx, uint64_t bytes);

/* Releases every buffer the pool caches; returns how many bytes were released. */
uint64_t metal_pool_drain(MetalContext *ctx);

/* Fills *stats with the pool's state. */
int32_t metal_pool_stats(MetalContext *ctx, MetalPoolStats *stats);

#ifdef METAL_MATMUL_FAULT_INJECTION
/* Fault injection for tests of the recovery path, compiled only with
 * METAL_MATMUL_FAULT_INJECTION defined (the sys crate's `fault-injection` feature): the
 * next metal_matmul on this context runs its command buffer, then reports `code`
 * (METAL_ERROR_KERNEL_TIMEOUT or METAL_ERROR_GPU_FAULT) as though the command buffer had
 * completed with that error, releasing everything as a real fault does. Other codes are
 * refused with METAL_ERROR_INVALID_ARGUMENT. */
int32_t metal_inject_fault(MetalContext *ctx, int32_t code);
#endif

/* Releases the context and everything it owns. NULL is accepted. */
void metal_cleanup(MetalContext *ctx);

/* A static, human-readable description of a status code; unknown codes included. */
const char *metal_error_string(int32_t code);

#ifdef __cplusplus
}
#endif

#endif /* METAL_MATMUL_H */
