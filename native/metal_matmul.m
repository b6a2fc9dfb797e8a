// metal_matmul.m: the Objective-C bridge between the Rust crate and Metal.
//
// Compiled only for macOS targets (metal-matmul-sys/build.rs), with -fobjc-arc and a
// deployment target of macOS 11: every API used here exists on macOS 11 (Metal and MPS
// calls back to 10.13/10.15); GPU families newer than the SDK are probed by raw value.
// Every exported function wraps its body in @autoreleasepool: a command-line process
// has no run loop that would drain autoreleased Metal objects.
//
// State lives in a MetalContext (no globals). Its lock guards everything mutable in it:
// the pipelines (replaced by metal_compile_shaders), the buffer pool and its counters,
// and an injected fault. Encoding and waiting happen outside the lock, so many threads
// may run metal_matmul on one context at once: MTLDevice and MTLCommandQueue are
// thread-safe, each call makes its own command buffer and its own MPS kernel object
// (MPS kernels are not safe to encode from several threads at once).

#import <Foundation/Foundation.h>
#import <Metal/Metal.h>
#import <MetalPerformanceShaders/MetalPerformanceShaders.h>
#include <string.h>
#include <unistd.h>

#include "matmul_geometry.h"
#include "metal_matmul.h"

// Buffer indices, shared with every kernel's [[buffer(N)]] attributes (shaders/*.metal).
// One declaration per line: the shader tests parse these lines.
static const NSUInteger kBufferA = 0;
static const NSUInteger kBufferB = 1;
static const NSUInteger kBufferC = 2;
static const NSUInteger kBufferM = 3;
static const NSUInteger kBufferK = 4;
static const NSUInteger kBufferN = 5;

// What the pool keeps by default: enough for A, B and C of a 4096^3 product.
static const uint64_t kDefaultPoolLimit = 256ull << 20;

// GPU family raw values (MTLGPUFamily). Apple8 (1008), Apple9 (1009) and Metal3 (5001)
// are newer than the macOS 12 SDK this builds against; raw values also avoid the
// deprecation of Mac1 in later SDKs. supportsFamily: answers NO for a value the running
// OS does not know.
static const NSInteger kFamilyApple7 = 1007;
static const NSInteger kFamilyMac2 = 2002;
static const NSInteger kFamilyMetal3 = 5001;

struct MetalContext {
    id<MTLDevice> device;
    id<MTLCommandQueue> queue;
    NSLock *lock;
    // Guarded by lock.
    id<MTLComputePipelineState> simple;
    id<MTLComputePipelineState> tiled;
    id<MTLComputePipelineState> simdgroup; // nil when the source has no matmul_simdgroup
    NSMutableArray<id<MTLBuffer>> *pool;   // idle buffers, oldest first
    uint64_t pool_bytes;
    uint64_t pool_limit;
    uint64_t pool_hits;
    uint64_t pool_misses;
    uint64_t zero_copy_wraps;
    int32_t injected_fault;
    // Immutable after metal_init.
    BOOL supports_mps;
    BOOL supports_simdgroup;
    BOOL unified_memory;
    size_t page_size;
};

// ---- helpers -----------------------------------------------------------------------

static int32_t fail(int32_t code, char *err, size_t err_len, NSString *detail) {
    if (err != NULL && err_len > 0) {
        NSString *text = detail != nil
            ? [NSString stringWithFormat:@"%s: %@", metal_error_string(code), detail]
            : [NSString stringWithUTF8String:metal_error_string(code)];
        const char *utf8 = [text UTF8String];
        strncpy(err, utf8 != NULL ? utf8 : "", err_len - 1);
        err[err_len - 1] = '\0';
    }
    return code;
}

static void copy_string(char *dst, size_t len, NSString *src) {
    const char *utf8 = src != nil ? [src UTF8String] : NULL;
    strncpy(dst, utf8 != NULL ? utf8 : "", len - 1);
    dst[len - 1] = '\0';
}

static BOOL supports(id<MTLDevice> device, NSInteger family) {
    return [device supportsFamily:(MTLGPUFamily)family];
}

typedef struct {
    NSInteger value;
    const char *name;
} Family;

// The first family of `list` (newest first) that the device supports, or NULL.
static const char *first_supported(id<MTLDevice> device, const Family *list, size_t count) {
    for (size_t i = 0; i < count; i++) {
        if (supports(device, list[i].value)) {
            return list[i].name;
        }
    }
    return NULL;
}

static void describe_families(id<MTLDevice> device, MetalDeviceInfo *info) {
    static const Family apple[] = {
        {1009, "Apple9"}, {1008, "Apple8"}, {1007, "Apple7"}, {1006, "Apple6"}, {1005, "Apple5"},
        {1004, "Apple4"}, {1003, "Apple3"}, {1002, "Apple2"}, {1001, "Apple1"},
    };
    static const Family mac[] = {{2002, "Mac2"}, {2001, "Mac1"}};
    static const Family metal[] = {{kFamilyMetal3, "Metal3"}};
    const char *a = first_supported(device, apple, sizeof apple / sizeof apple[0]);
    const char *m = first_supported(device, mac, sizeof mac / sizeof mac[0]);
    const char *g = first_supported(device, metal, sizeof metal / sizeof metal[0]);
    const char *highest = a != NULL ? a : (m != NULL ? m : "Unknown");
    snprintf(info->gpu_family, sizeof info->gpu_family, "%s", highest);
    NSMutableArray<NSString *> *all = [NSMutableArray array];
    const char *names[] = {a, m, g};
    for (size_t i = 0; i < 3; i++) {
        if (names[i] != NULL) {
            [all addObject:[NSString stringWithUTF8String:names[i]]];
        }
    }
    copy_string(info->gpu_families, sizeof info->gpu_families, [all componentsJoinedByString:@" "]);
}

static void fill_info(MetalContext *ctx, MetalDeviceInfo *info) {
    id<MTLDevice> device = ctx->device;
    memset(info, 0, sizeof *info);
    copy_string(info->device_name, sizeof info->device_name, [device name]);
    describe_families(device, info);
    uint64_t total = [device recommendedMaxWorkingSetSize];
    uint64_t used = [device currentAllocatedSize];
    info->memory_total = total;
    info->current_allocated = used;
    info->memory_free = used < total ? total - used : 0;
    info->max_threadgroup_memory = [device maxThreadgroupMemoryLength];
    info->max_buffer_length = [device maxBufferLength];
    info->max_threads_per_group = (int32_t)[device maxThreadsPerThreadgroup].width;
    info->is_unified_memory = [device hasUnifiedMemory] ? 1 : 0;
    info->is_low_power = [device isLowPower] ? 1 : 0;
    info->is_removable = [device isRemovable] ? 1 : 0;
    info->supports_mps = ctx->supports_mps ? 1 : 0;
    info->supports_simdgroup_matrix = ctx->supports_simdgroup ? 1 : 0;
    info->supports_metal3 = supports(device, kFamilyMetal3) ? 1 : 0;
}

// A pipeline for `function`, or nil (with *error set by Metal) when it does not build;
// nil without an error when the function is missing from the library.
static id<MTLComputePipelineState> make_pipeline(id<MTLDevice> device, id<MTLFunction> function,
                                                 NSError **error) {
    if (function == nil) {
        return nil;
    }
    return [device newComputePipelineStateWithFunction:function error:error];
}

// ---- buffer pool (every function here takes the lock itself) ------------------------

// Releases idle buffers, oldest first, until at most `keep` bytes remain. Lock held.
static uint64_t pool_trim_locked(MetalContext *ctx, uint64_t keep) {
    uint64_t released = 0;
    while (ctx->pool_bytes > keep && [ctx->pool count] > 0) {
        uint64_t len = [[ctx->pool objectAtIndex:0] length];
        [ctx->pool removeObjectAtIndex:0];
        ctx->pool_bytes -= len;
        released += len;
    }
    return released;
}

// A shared-storage buffer of at least `length` bytes: the smallest idle one that is no
// more than twice as long, else a new one (nil when Metal cannot allocate it).
static id<MTLBuffer> pool_take(MetalContext *ctx, size_t length) {
    id<MTLBuffer> found = nil;
    [ctx->lock lock];
    NSUInteger best = NSNotFound;
    NSUInteger best_len = NSUIntegerMax;
    for (NSUInteger i = 0; i < [ctx->pool count]; i++) {
        NSUInteger len = [[ctx->pool objectAtIndex:i] length];
        if (len >= length && len / 2 <= length && len < best_len) {
            best = i;
            best_len = len;
        }
    }
    if (best != NSNotFound) {
        found = [ctx->pool objectAtIndex:best];
        [ctx->pool removeObjectAtIndex:best];
        ctx->pool_bytes -= best_len;
        ctx->pool_hits++;
    } else {
        ctx->pool_misses++;
    }
    [ctx->lock unlock];
    if (found != nil) {
        return found;
    }
    return [ctx->device newBufferWithLength:length options:MTLResourceStorageModeShared];
}

// Returns a buffer from pool_take to the pool, evicting the oldest idle buffers to stay
// within the limit; a buffer longer than the limit is released.
static void pool_give(MetalContext *ctx, id<MTLBuffer> buffer) {
    if (buffer == nil) {
        return;
    }
    uint64_t len = [buffer length];
    [ctx->lock lock];
    if (len <= ctx->pool_limit) {
        pool_trim_locked(ctx, ctx->pool_limit - len);
        [ctx->pool addObject:buffer];
        ctx->pool_bytes += len;
    }
    [ctx->lock unlock];
}

// An operand's buffer: the caller's memory wrapped without a copy when the device has
// unified memory and the pointer and length are page-aligned (newBufferWithBytesNoCopy:
// requires both), else a pooled buffer (filled from `src` when `src` is not NULL).
// *wrapped says which; a wrapped buffer must not go back to the pool.
static id<MTLBuffer> operand_buffer(MetalContext *ctx, const void *src, void *dst, size_t length,
                                    BOOL *wrapped) {
    void *memory = src != NULL ? (void *)src : dst;
    *wrapped = NO;
    if (ctx->unified_memory && ((uintptr_t)memory % ctx->page_size) == 0 &&
        (length % ctx->page_size) == 0) {
        // The GPU reads A and B through these and writes C; the caller's slices outlive
        // the call, and the buffers are dropped before metal_matmul returns.
        id<MTLBuffer> buffer = [ctx->device newBufferWithBytesNoCopy:memory
                                                              length:length
                                                             options:MTLResourceStorageModeShared
                                                         deallocator:nil];
        if (buffer != nil) {
            *wrapped = YES;
            [ctx->lock lock];
            ctx->zero_copy_wraps++;
            [ctx->lock unlock];
            return buffer;
        }
    }
    id<MTLBuffer> buffer = pool_take(ctx, length);
    if (buffer != nil && src != NULL) {
        memcpy([buffer contents], src, length);
    }
    return buffer;
}

// ---- request checks ----------------------------------------------------------------

// Byte sizes of A, B and C, or METAL_ERROR_INVALID_DIMENSIONS.
static int32_t byte_sizes(uint32_t m, uint32_t k, uint32_t n, size_t sizes[3], char *err,
                          size_t err_len) {
    if (m == 0 || k == 0 || n == 0) {
        // Metal rejects zero-length buffers; the safe API answers these itself.
        return fail(METAL_ERROR_INVALID_DIMENSIONS, err, err_len,
                    [NSString stringWithFormat:@"%ux%ux%u has a zero dimension", m, k, n]);
    }
    const uint64_t dims[3][2] = {{m, k}, {k, n}, {m, n}};
    for (int i = 0; i < 3; i++) {
        size_t elements = 0;
        if (__builtin_mul_overflow((size_t)dims[i][0], (size_t)dims[i][1], &elements) ||
            __builtin_mul_overflow(elements, sizeof(float), &sizes[i])) {
            return fail(METAL_ERROR_INVALID_DIMENSIONS, err, err_len,
                        [NSString stringWithFormat:@"%ux%ux%u: a matrix's byte size overflows", m, k, n]);
        }
    }
    return METAL_SUCCESS;
}

// METAL_ERROR_OUT_OF_MEMORY when a buffer is over maxBufferLength or the three together
// are over what the device has free. With `drop_pool`, idle pooled buffers are released
// first when that makes the request fit; without it they only count as free.
static int32_t check_fits(MetalContext *ctx, const size_t sizes[3], BOOL drop_pool, char *err,
                          size_t err_len) {
    const uint64_t max_buffer = [ctx->device maxBufferLength];
    for (int i = 0; i < 3; i++) {
        if (sizes[i] > max_buffer) {
            return fail(METAL_ERROR_OUT_OF_MEMORY, err, err_len,
                        [NSString stringWithFormat:@"a %zu-byte matrix is over the device's largest buffer, %llu bytes",
                                                   sizes[i], (unsigned long long)max_buffer]);
        }
    }
    uint64_t need = 0;
    if (__builtin_add_overflow((uint64_t)sizes[0], (uint64_t)sizes[1], &need) ||
        __builtin_add_overflow(need, (uint64_t)sizes[2], &need)) {
        return fail(METAL_ERROR_OUT_OF_MEMORY, err, err_len, @"the matrices' total size overflows");
    }
    const uint64_t total = [ctx->device recommendedMaxWorkingSetSize];
    uint64_t used = [ctx->device currentAllocatedSize];
    uint64_t free_bytes = used < total ? total - used : 0;
    if (need <= free_bytes) {
        return METAL_SUCCESS;
    }
    [ctx->lock lock];
    uint64_t idle = ctx->pool_bytes;
    if (drop_pool && need <= free_bytes + idle) {
        pool_trim_locked(ctx, 0);
    }
    [ctx->lock unlock];
    if (need <= free_bytes + idle) {
        return METAL_SUCCESS;
    }
    return fail(METAL_ERROR_OUT_OF_MEMORY, err, err_len,
                [NSString stringWithFormat:@"A, B and C need %llu bytes; the device has %llu free "
                                           @"(recommended working set %llu, allocated %llu, pooled %llu)",
                                           (unsigned long long)need,
                                           (unsigned long long)(free_bytes + idle),
                                           (unsigned long long)total, (unsigned long long)used,
                                           (unsigned long long)idle]);
}

// ---- command buffers ---------------------------------------------------------------

static int32_t status_error(id<MTLCommandBuffer> cb, char *err, size_t err_len) {
    NSError *error = [cb error];
    NSString *detail = error != nil
        ? [NSString stringWithFormat:@"%@ (%@ %ld)", [error localizedDescription], [error domain], (long)[error code]]
        : [NSString stringWithFormat:@"the command buffer ended with status %ld", (long)[cb status]];
    if (error != nil && [[error domain] isEqualToString:MTLCommandBufferErrorDomain]) {
        if ([error code] == MTLCommandBufferErrorTimeout) {
            return fail(METAL_ERROR_KERNEL_TIMEOUT, err, err_len, detail);
        }
        if ([error code] == MTLCommandBufferErrorOutOfMemory) {
            return fail(METAL_ERROR_OUT_OF_MEMORY, err, err_len, detail);
        }
    }
    return fail(METAL_ERROR_GPU_FAULT, err, err_len, detail);
}

// Encodes one of the custom kernels with the dispatch geometry of matmul_geometry.h.
static void encode_kernel(id<MTLComputeCommandEncoder> enc, id<MTLComputePipelineState> pipeline,
                          int32_t method, id<MTLBuffer> a, id<MTLBuffer> b, id<MTLBuffer> c,
                          uint32_t m, uint32_t k, uint32_t n) {
    [enc setComputePipelineState:pipeline];
    [enc setBuffer:a offset:0 atIndex:kBufferA];
    [enc setBuffer:b offset:0 atIndex:kBufferB];
    [enc setBuffer:c offset:0 atIndex:kBufferC];
    // The kernels declare `constant uint&`: pass exactly 32-bit values.
    [enc setBytes:&m length:sizeof(uint32_t) atIndex:kBufferM];
    [enc setBytes:&k length:sizeof(uint32_t) atIndex:kBufferK];
    [enc setBytes:&n length:sizeof(uint32_t) atIndex:kBufferN];
    if (method == METAL_METHOD_SIMPLE) {
        // One thread per element of C; non-uniform threadgroups trim the edges.
        [enc dispatchThreads:MTLSizeMake(n, m, 1)
            threadsPerThreadgroup:MTLSizeMake(MM_SIMPLE_TG_X, MM_SIMPLE_TG_Y, 1)];
    } else if (method == METAL_METHOD_TILED) {
        // Full groups over a rounded-up grid, so every tile slot is loaded at the edges.
        const NSUInteger groups_x = (n + MM_TILED_TILE - 1) / MM_TILED_TILE;
        const NSUInteger groups_y = (m + MM_TILED_TILE - 1) / MM_TILED_TILE;
        [enc dispatchThreadgroups:MTLSizeMake(groups_x, groups_y, 1)
            threadsPerThreadgroup:MTLSizeMake(MM_TILED_TILE, MM_TILED_TILE, 1)];
    } else {
        // A 1-D group of MM_SIMD_GROUPS simdgroups per MM_SIMD_TILE_M x MM_SIMD_TILE_N block.
        const NSUInteger groups_x = (n + MM_SIMD_TILE_N - 1) / MM_SIMD_TILE_N;
        const NSUInteger groups_y = (m + MM_SIMD_TILE_M - 1) / MM_SIMD_TILE_M;
        [enc dispatchThreadgroups:MTLSizeMake(groups_x, groups_y, 1)
            threadsPerThreadgroup:MTLSizeMake(MM_SIMD_GROUPS * 32, 1, 1)];
    }
}

// Encodes MPSMatrixMultiplication (C = 1.0 * A * B + 0.0 * C) over the three buffers.
static void encode_mps(id<MTLCommandBuffer> cb, id<MTLDevice> device, id<MTLBuffer> a,
                       id<MTLBuffer> b, id<MTLBuffer> c, uint32_t m, uint32_t k, uint32_t n) {
    MPSMatrixDescriptor *desc_a = [MPSMatrixDescriptor matrixDescriptorWithRows:m
                                                                        columns:k
                                                                       rowBytes:(NSUInteger)k * sizeof(float)
                                                                       dataType:MPSDataTypeFloat32];
    MPSMatrixDescriptor *desc_b = [MPSMatrixDescriptor matrixDescriptorWithRows:k
                                                                        columns:n
                                                                       rowBytes:(NSUInteger)n * sizeof(float)
                                                                       dataType:MPSDataTypeFloat32];
    MPSMatrixDescriptor *desc_c = [MPSMatrixDescriptor matrixDescriptorWithRows:m
                                                                        columns:n
                                                                       rowBytes:(NSUInteger)n * sizeof(float)
                                                                       dataType:MPSDataTypeFloat32];
    MPSMatrix *mat_a = [[MPSMatrix alloc] initWithBuffer:a descriptor:desc_a];
    MPSMatrix *mat_b = [[MPSMatrix alloc] initWithBuffer:b descriptor:desc_b];
    MPSMatrix *mat_c = [[MPSMatrix alloc] initWithBuffer:c descriptor:desc_c];
    // One kernel object per call: MPS kernels must not be encoded from two threads at once.
    MPSMatrixMultiplication *gemm = [[MPSMatrixMultiplication alloc] initWithDevice:device
                                                                      transposeLeft:NO
                                                                     transposeRight:NO
                                                                         resultRows:m
                                                                      resultColumns:n
                                                                    interiorColumns:k
                                                                              alpha:1.0
                                                                               beta:0.0];
    [gemm encodeToCommandBuffer:cb leftMatrix:mat_a rightMatrix:mat_b resultMatrix:mat_c];
}

// The pipeline that runs `method`, or an error (UNSUPPORTED, INVALID_ARGUMENT). For MPS
// it answers METAL_SUCCESS with *pipeline nil.
static int32_t pipeline_for(MetalContext *ctx, int32_t method, id<MTLComputePipelineState> *pipeline,
                            char *err, size_t err_len) {
    *pipeline = nil;
    switch (method) {
        case METAL_METHOD_SIMPLE:
        case METAL_METHOD_TILED:
        case METAL_METHOD_SIMDGROUP:
            break;
        case METAL_METHOD_MPS:
            if (!ctx->supports_mps) {
                return fail(METAL_ERROR_UNSUPPORTED, err, err_len,
                            @"Metal Performance Shaders does not support this device (MPSSupportsMTLDevice)");
            }
            return METAL_SUCCESS;
        default:
            return fail(METAL_ERROR_INVALID_ARGUMENT, err, err_len,
                        [NSString stringWithFormat:@"unknown method %d", method]);
    }
    if (method == METAL_METHOD_SIMDGROUP && !ctx->supports_simdgroup) {
        return fail(METAL_ERROR_UNSUPPORTED, err, err_len,
                    @"the simdgroup kernel needs simdgroup matrix operations (GPU family Apple7+ or Mac2)");
    }
    [ctx->lock lock];
    id<MTLComputePipelineState> chosen =
        method == METAL_METHOD_SIMPLE ? ctx->simple : (method == METAL_METHOD_TILED ? ctx->tiled : ctx->simdgroup);
    [ctx->lock unlock];
    if (chosen == nil) {
        return fail(METAL_ERROR_UNSUPPORTED, err, err_len,
                    @"the shader source has no matmul_simdgroup kernel");
    }
    const NSUInteger threads = method == METAL_METHOD_SIMPLE ? MM_SIMPLE_TG_X * MM_SIMPLE_TG_Y
                             : method == METAL_METHOD_TILED  ? MM_TILED_TILE * MM_TILED_TILE
                                                             : MM_SIMD_GROUPS * 32;
    if ([chosen maxTotalThreadsPerThreadgroup] < threads) {
        return fail(METAL_ERROR_UNSUPPORTED, err, err_len,
                    [NSString stringWithFormat:@"the pipeline allows %lu threads per threadgroup; the kernel needs %lu",
                                               (unsigned long)[chosen maxTotalThreadsPerThreadgroup],
                                               (unsigned long)threads]);
    }
    *pipeline = chosen;
    return METAL_SUCCESS;
}

// Runs one command buffer over prepared buffers; fills *gpu_seconds on success.
static int32_t execute(MetalContext *ctx, int32_t method, id<MTLComputePipelineState> pipeline,
                       id<MTLBuffer> a, id<MTLBuffer> b, id<MTLBuffer> c, uint32_t m, uint32_t k,
                       uint32_t n, double *gpu_seconds, char *err, size_t err_len) {
    id<MTLCommandBuffer> cb = [ctx->queue commandBuffer];
    if (cb == nil) {
        return fail(METAL_ERROR_GPU_FAULT, err, err_len, @"the command queue gave no command buffer");
    }
    if (method == METAL_METHOD_MPS) {
        encode_mps(cb, ctx->device, a, b, c, m, k, n);
    } else {
        id<MTLComputeCommandEncoder> enc = [cb computeCommandEncoder];
        if (enc == nil) {
            return fail(METAL_ERROR_GPU_FAULT, err, err_len, @"the command buffer gave no compute encoder");
        }
        encode_kernel(enc, pipeline, method, a, b, c, m, k, n);
        [enc endEncoding];
    }
    [cb commit];
    [cb waitUntilCompleted];
    if ([cb status] != MTLCommandBufferStatusCompleted) {
        return status_error(cb, err, err_len);
    }
    [ctx->lock lock];
    const int32_t injected = ctx->injected_fault;
    ctx->injected_fault = METAL_SUCCESS;
    [ctx->lock unlock];
    if (injected != METAL_SUCCESS) {
        return fail(injected, err, err_len, @"injected by metal_inject_fault (the command buffer itself completed)");
    }
    const CFTimeInterval start = [cb GPUStartTime];
    const CFTimeInterval end = [cb GPUEndTime];
    *gpu_seconds = end > start ? end - start : 0.0;
    return METAL_SUCCESS;
}

// ---- exported API ------------------------------------------------------------------

int32_t metal_is_available(void) {
    @autoreleasepool {
        id<MTLDevice> device = MTLCreateSystemDefaultDevice();
        return device != nil ? 1 : 0;
    }
}

int32_t metal_compile_shaders(MetalContext *ctx, const char *shader_source, char *err, size_t err_len) {
    @autoreleasepool {
        if (ctx == NULL || shader_source == NULL) {
            return fail(METAL_ERROR_INVALID_ARGUMENT, err, err_len, @"null context or shader source");
        }
        NSError *error = nil;
        NSString *source = [NSString stringWithUTF8String:shader_source];
        if (source == nil) {
            return fail(METAL_ERROR_SHADER_COMPILE, err, err_len, @"the shader source is not UTF-8");
        }
        id<MTLLibrary> library = [ctx->device newLibraryWithSource:source options:nil error:&error];
        if (library == nil) {
            // For MTLLibraryErrorCompileFailure the description holds the compiler's log.
            NSString *log = error != nil ? [error localizedDescription] : @"no compiler log";
            return fail(METAL_ERROR_SHADER_COMPILE, err, err_len, log);
        }
        id<MTLComputePipelineState> simple =
            make_pipeline(ctx->device, [library newFunctionWithName:@"matmul_simple"], &error);
        if (simple == nil) {
            return fail(METAL_ERROR_SHADER_COMPILE, err, err_len,
                        error != nil ? [error localizedDescription] : @"the source has no matmul_simple kernel");
        }
        id<MTLComputePipelineState> tiled =
            make_pipeline(ctx->device, [library newFunctionWithName:@"matmul_tiled"], &error);
        if (tiled == nil) {
            return fail(METAL_ERROR_SHADER_COMPILE, err, err_len,
                        error != nil ? [error localizedDescription] : @"the source has no matmul_tiled kernel");
        }
        // Optional: a source without matmul_simdgroup leaves that method unsupported, and
        // a device without simdgroup matrix operations never builds it.
        id<MTLComputePipelineState> simdgroup = nil;
        if (ctx->supports_simdgroup) {
            id<MTLFunction> function = [library newFunctionWithName:@"matmul_simdgroup"];
            if (function != nil) {
                simdgroup = make_pipeline(ctx->device, function, &error);
                if (simdgroup == nil) {
                    return fail(METAL_ERROR_SHADER_COMPILE, err, err_len,
                                error != nil ? [error localizedDescription] : @"the matmul_simdgroup pipeline did not build");
                }
            }
        }
        [ctx->lock lock];
        ctx->simple = simple;
        ctx->tiled = tiled;
        ctx->simdgroup = simdgroup;
        [ctx->lock unlock];
        return METAL_SUCCESS;
    }
}

int32_t metal_init(MetalContext **out, const char *shader_source, MetalDeviceInfo *info,
                   char *err, size_t err_len) {
    @autoreleasepool {
        if (out == NULL || info == NULL) {
            return fail(METAL_ERROR_INVALID_ARGUMENT, err, err_len, @"null output pointer");
        }
        *out = NULL;
        id<MTLDevice> device = MTLCreateSystemDefaultDevice();
        if (device == nil) {
            return fail(METAL_ERROR_NO_DEVICE, err, err_len, @"MTLCreateSystemDefaultDevice returned nil");
        }
        id<MTLCommandQueue> queue = [device newCommandQueue];
        if (queue == nil) {
            return fail(METAL_ERROR_NO_DEVICE, err, err_len, @"the device gave no command queue");
        }
        MetalContext *ctx = calloc(1, sizeof *ctx);
        if (ctx == NULL) {
            return fail(METAL_ERROR_OUT_OF_MEMORY, err, err_len, @"allocating the context");
        }
        ctx->device = device;
        ctx->queue = queue;
        ctx->lock = [[NSLock alloc] init];
        ctx->pool = [[NSMutableArray alloc] init];
        ctx->pool_limit = kDefaultPoolLimit;
        ctx->injected_fault = METAL_SUCCESS;
        ctx->supports_mps = MPSSupportsMTLDevice(device) ? YES : NO;
        ctx->supports_simdgroup = supports(device, kFamilyApple7) || supports(device, kFamilyMac2);
        ctx->unified_memory = [device hasUnifiedMemory];
        const int page = getpagesize();
        ctx->page_size = page > 0 ? (size_t)page : 16384;
        int32_t rc = metal_compile_shaders(ctx, shader_source, err, err_len);
        if (rc != METAL_SUCCESS) {
            metal_cleanup(ctx);
            return rc;
        }
        fill_info(ctx, info);
        *out = ctx;
        return METAL_SUCCESS;
    }
}

int32_t metal_device_info(MetalContext *ctx, MetalDeviceInfo *info) {
    @autoreleasepool {
        if (ctx == NULL || info == NULL) {
            return METAL_ERROR_INVALID_ARGUMENT;
        }
        fill_info(ctx, info);
        return METAL_SUCCESS;
    }
}

int32_t metal_method_supported(MetalContext *ctx, int32_t method) {
    @autoreleasepool {
        if (ctx == NULL) {
            return 0;
        }
        id<MTLComputePipelineState> pipeline = nil;
        return pipeline_for(ctx, method, &pipeline, NULL, 0) == METAL_SUCCESS ? 1 : 0;
    }
}

int32_t metal_check_request(MetalContext *ctx, uint32_t m, uint32_t k, uint32_t n, char *err,
                            size_t err_len) {
    @autoreleasepool {
        if (ctx == NULL) {
            return fail(METAL_ERROR_INVALID_ARGUMENT, err, err_len, @"null context");
        }
        size_t sizes[3];
        int32_t rc = byte_sizes(m, k, n, sizes, err, err_len);
        return rc != METAL_SUCCESS ? rc : check_fits(ctx, sizes, NO, err, err_len);
    }
}

int32_t metal_matmul(MetalContext *ctx, const float *a, const float *b, float *c,
                     uint32_t m, uint32_t k, uint32_t n, int32_t method,
                     MetalMatmulStats *stats, char *err, size_t err_len) {
    @autoreleasepool {
        if (ctx == NULL || a == NULL || b == NULL || c == NULL) {
            return fail(METAL_ERROR_INVALID_ARGUMENT, err, err_len, @"null pointer");
        }
        id<MTLComputePipelineState> pipeline = nil;
        int32_t rc = pipeline_for(ctx, method, &pipeline, err, err_len);
        if (rc != METAL_SUCCESS) {
            return rc;
        }
        size_t sizes[3];
        rc = byte_sizes(m, k, n, sizes, err, err_len);
        if (rc != METAL_SUCCESS) {
            return rc;
        }
        rc = check_fits(ctx, sizes, YES, err, err_len);
        if (rc != METAL_SUCCESS) {
            return rc;
        }

        BOOL wrapped_a = NO, wrapped_b = NO, wrapped_c = NO;
        id<MTLBuffer> buf_a = operand_buffer(ctx, a, NULL, sizes[0], &wrapped_a);
        id<MTLBuffer> buf_b = buf_a != nil ? operand_buffer(ctx, b, NULL, sizes[1], &wrapped_b) : nil;
        id<MTLBuffer> buf_c = buf_b != nil ? operand_buffer(ctx, NULL, c, sizes[2], &wrapped_c) : nil;
        double gpu_seconds = 0.0;
        if (buf_a == nil || buf_b == nil || buf_c == nil) {
            rc = fail(METAL_ERROR_OUT_OF_MEMORY, err, err_len,
                      [NSString stringWithFormat:@"Metal could not allocate a buffer (A %zu, B %zu, C %zu bytes)",
                                                 sizes[0], sizes[1], sizes[2]]);
        } else {
            rc = execute(ctx, method, pipeline, buf_a, buf_b, buf_c, m, k, n, &gpu_seconds, err, err_len);
        }
        if (rc == METAL_SUCCESS && !wrapped_c) {
            memcpy(c, [buf_c contents], sizes[2]);
        }
        // Success or not, every pooled buffer goes back: a fault leaves the context usable.
        if (!wrapped_a) {
            pool_give(ctx, buf_a);
        }
        if (!wrapped_b) {
            pool_give(ctx, buf_b);
        }
        if (!wrapped_c) {
            pool_give(ctx, buf_c);
        }
        if (rc == METAL_SUCCESS && stats != NULL) {
            stats->gpu_seconds = gpu_seconds;
            stats->zero_copy_inputs = wrapped_a && wrapped_b ? 1 : 0;
            stats->zero_copy_output = wrapped_c ? 1 : 0;
        }
        return rc;
    }
}

void metal_set_pool_limit(MetalContext *ctx, uint64_t bytes) {
    @autoreleasepool {
        if (ctx == NULL) {
            return;
        }
        [ctx->lock lock];
        ctx->pool_limit = bytes;
        pool_trim_locked(ctx, bytes);
        [ctx->lock unlock];
    }
}

uint64_t metal_pool_drain(MetalContext *ctx) {
    @autoreleasepool {
        if (ctx == NULL) {
            return 0;
        }
        [ctx->lock lock];
        uint64_t released = pool_trim_locked(ctx, 0);
        [ctx->lock unlock];
        return released;
    }
}

int32_t metal_pool_stats(MetalContext *ctx, MetalPoolStats *stats) {
    @autoreleasepool {
        if (ctx == NULL || stats == NULL) {
            return METAL_ERROR_INVALID_ARGUMENT;
        }
        [ctx->lock lock];
        stats->cached_bytes = ctx->pool_bytes;
        stats->cached_buffers = [ctx->pool count];
        stats->limit_bytes = ctx->pool_limit;
        stats->hits = ctx->pool_hits;
        stats->misses = ctx->pool_misses;
        stats->zero_copy_wraps = ctx->zero_copy_wraps;
        [ctx->lock unlock];
        return METAL_SUCCESS;
    }
}

#ifdef METAL_MATMUL_FAULT_INJECTION
int32_t metal_inject_fault(MetalContext *ctx, int32_t code) {
    if (ctx == NULL || (code != METAL_ERROR_KERNEL_TIMEOUT && code != METAL_ERROR_GPU_FAULT)) {
        return METAL_ERROR_INVALID_ARGUMENT;
    }
    [ctx->lock lock];
    ctx->injected_fault = code;
    [ctx->lock unlock];
    return METAL_SUCCESS;
}
#endif

void metal_cleanup(MetalContext *ctx) {
    @autoreleasepool {
        if (ctx == NULL) {
            return;
        }
        // Dropping the strong references under ARC releases the Metal objects; the pool's
        // buffers go with its array.
        [ctx->lock lock];
        pool_trim_locked(ctx, 0);
        ctx->pool = nil;
        ctx->simple = nil;
        ctx->tiled = nil;
        ctx->simdgroup = nil;
        [ctx->lock unlock];
        ctx->queue = nil;
        ctx->device = nil;
        ctx->lock = nil;
        free(ctx);
    }
}

const char *metal_error_string(int32_t code) {
    switch (code) {
        case METAL_SUCCESS: return "Success";
        case METAL_ERROR_NO_DEVICE: return "No Metal device found";
        case METAL_ERROR_SHADER_COMPILE: return "Shader compilation failed";
        case METAL_ERROR_OUT_OF_MEMORY: return "Out of GPU memory";
        case METAL_ERROR_INVALID_DIMENSIONS: return "Invalid matrix dimensions";
        case METAL_ERROR_KERNEL_TIMEOUT: return "Kernel execution timeout";
        case METAL_ERROR_GPU_FAULT: return "GPU fault during kernel execution";
        case METAL_ERROR_INVALID_ARGUMENT: return "Invalid argument";
        case METAL_ERROR_UNSUPPORTED: return "Method not supported on this device";
        default: return "Unknown error";
    }
}
