// metal_matmul.m: the Objective-C bridge between the Rust crate and Metal.
//
// Compiled only for macOS targets (metal-matmul-sys/build.rs), with -fobjc-arc.
// Every exported function wraps its body in @autoreleasepool: a command-line process
// has no run loop that would drain autoreleased Metal objects.
//
// State lives in a MetalContext (no globals). Its compiled pipelines are immutable after
// metal_init; the mutable parts are guarded by the context's lock, so many threads may
// call metal_matmul on one context at once (MTLDevice and MTLCommandQueue are themselves
// thread-safe; each call makes its own command buffer).

#import <Foundation/Foundation.h>
#import <Metal/Metal.h>
#import <MetalPerformanceShaders/MetalPerformanceShaders.h>
#include <string.h>

#include "matmul_geometry.h"
#include "metal_matmul.h"

// Buffer indices of every matmul kernel's parameters (the kernels' [[buffer(n)]]); the
// shader-emu static check compares these, one per line in this form, with the shaders.
static const NSUInteger kBufferA = 0;
static const NSUInteger kBufferB = 1;
static const NSUInteger kBufferC = 2;
static const NSUInteger kBufferM = 3;
static const NSUInteger kBufferK = 4;
static const NSUInteger kBufferN = 5;

struct MetalContext {
    id<MTLDevice> device;
    id<MTLCommandQueue> queue;
    id<MTLComputePipelineState> simple;
    id<MTLComputePipelineState> tiled;
    NSLock *lock;
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

static NSString *highest_family(id<MTLDevice> device) {
    // Newest first; the raw values cover families newer than the SDK this builds with
    // (Apple8 = 1008, Apple9 = 1009, Metal3 = 5001 in later SDKs).
    static const struct { NSInteger value; const char *name; } families[] = {
        {1009, "Apple9"}, {1008, "Apple8"}, {1007, "Apple7"}, {1006, "Apple6"},
        {1005, "Apple5"}, {1004, "Apple4"}, {1003, "Apple3"}, {1002, "Apple2"},
        {1001, "Apple1"}, {2002, "Mac2"},   {2001, "Mac1"},
    };
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        if ([device supportsFamily:(MTLGPUFamily)families[i].value]) {
            return [NSString stringWithUTF8String:families[i].name];
        }
    }
    return @"Unknown";
}

static void fill_info(id<MTLDevice> device, MetalDeviceInfo *info) {
    memset(info, 0, sizeof *info);
    copy_string(info->device_name, sizeof info->device_name, [device name]);
    copy_string(info->gpu_family, sizeof info->gpu_family, highest_family(device));
    uint64_t total = [device recommendedMaxWorkingSetSize];
    uint64_t used = [device currentAllocatedSize];
    info->memory_total = total;
    info->current_allocated = used;
    info->memory_free = used < total ? total - used : 0;
    info->max_threadgroup_memory = [device maxThreadgroupMemoryLength];
    info->max_threads_per_group = (int32_t)[device maxThreadsPerThreadgroup].width;
    info->is_unified_memory = [device hasUnifiedMemory] ? 1 : 0;
    info->is_low_power = [device isLowPower] ? 1 : 0;
    info->is_removable = [device isRemovable] ? 1 : 0;
    info->supports_mps = MPSSupportsMTLDevice(device) ? 1 : 0;
    info->supports_simdgroup_matrix =
        ([device supportsFamily:MTLGPUFamilyApple7] || [device supportsFamily:MTLGPUFamilyMac2]) ? 1 : 0;
}

static id<MTLComputePipelineState> make_pipeline(id<MTLDevice> device, id<MTLLibrary> library,
                                                 NSString *name, NSError **error) {
    id<MTLFunction> function = [library newFunctionWithName:name];
    if (function == nil) {
        return nil;
    }
    return [device newComputePipelineStateWithFunction:function error:error];
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
            return fail(METAL_ERROR_SHADER_COMPILE, err, err_len, [error localizedDescription]);
        }
        id<MTLComputePipelineState> simple = make_pipeline(ctx->device, library, @"matmul_simple", &error);
        id<MTLComputePipelineState> tiled = make_pipeline(ctx->device, library, @"matmul_tiled", &error);
        if (simple == nil || tiled == nil) {
            NSString *detail = error != nil ? [error localizedDescription] : @"a kernel function is missing";
            return fail(METAL_ERROR_SHADER_COMPILE, err, err_len, detail);
        }
        [ctx->lock lock];
        ctx->simple = simple;
        ctx->tiled = tiled;
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
        int32_t rc = metal_compile_shaders(ctx, shader_source, err, err_len);
        if (rc != METAL_SUCCESS) {
            metal_cleanup(ctx);
            return rc;
        }
        fill_info(device, info);
        *out = ctx;
        return METAL_SUCCESS;
    }
}

int32_t metal_device_info(MetalContext *ctx, MetalDeviceInfo *info) {
    @autoreleasepool {
        if (ctx == NULL || info == NULL) {
            return METAL_ERROR_INVALID_ARGUMENT;
        }
        fill_info(ctx->device, info);
        return METAL_SUCCESS;
    }
}

static int32_t status_error(id<MTLCommandBuffer> cb, char *err, size_t err_len) {
    NSError *error = [cb error];
    NSString *detail = error != nil ? [error localizedDescription] : @"command buffer did not complete";
    if (error != nil && [[error domain] isEqualToString:MTLCommandBufferErrorDomain] &&
        [error code] == MTLCommandBufferErrorTimeout) {
        return fail(METAL_ERROR_KERNEL_TIMEOUT, err, err_len, detail);
    }
    if (error != nil && [[error domain] isEqualToString:MTLCommandBufferErrorDomain] &&
        [error code] == MTLCommandBufferErrorOutOfMemory) {
        return fail(METAL_ERROR_OUT_OF_MEMORY, err, err_len, detail);
    }
    return fail(METAL_ERROR_GPU_FAULT, err, err_len, detail);
}

int32_t metal_matmul(MetalContext *ctx, const float *a, const float *b, float *c,
                     uint32_t m, uint32_t k, uint32_t n, int32_t method,
                     MetalMatmulStats *stats, char *err, size_t err_len) {
    @autoreleasepool {
        NSDate *start = [NSDate date];
        if (ctx == NULL || a == NULL || b == NULL || c == NULL) {
            return fail(METAL_ERROR_INVALID_ARGUMENT, err, err_len, @"null pointer");
        }
        if (m == 0 || k == 0 || n == 0) {
            // Metal rejects zero-length buffers; the safe API answers these itself.
            return fail(METAL_ERROR_INVALID_DIMENSIONS, err, err_len, @"a dimension is zero");
        }
        id<MTLComputePipelineState> pipeline = nil;
        if (method == METAL_METHOD_SIMPLE) {
            pipeline = ctx->simple;
        } else if (method == METAL_METHOD_TILED) {
            pipeline = ctx->tiled;
        } else if (method == METAL_METHOD_MPS || method == METAL_METHOD_SIMDGROUP) {
            return fail(METAL_ERROR_UNSUPPORTED, err, err_len, @"this method is not built into the bridge yet");
        } else {
            return fail(METAL_ERROR_INVALID_ARGUMENT, err, err_len, @"unknown method");
        }

        const size_t size_a = (size_t)m * k * sizeof(float);
        const size_t size_b = (size_t)k * n * sizeof(float);
        const size_t size_c = (size_t)m * n * sizeof(float);
        id<MTLBuffer> buf_a = [ctx->device newBufferWithBytes:a length:size_a options:MTLResourceStorageModeShared];
        id<MTLBuffer> buf_b = [ctx->device newBufferWithBytes:b length:size_b options:MTLResourceStorageModeShared];
        id<MTLBuffer> buf_c = [ctx->device newBufferWithLength:size_c options:MTLResourceStorageModeShared];
        if (buf_a == nil || buf_b == nil || buf_c == nil) {
            return fail(METAL_ERROR_OUT_OF_MEMORY, err, err_len, @"buffer allocation failed");
        }

        id<MTLCommandBuffer> cb = [ctx->queue commandBuffer];
        id<MTLComputeCommandEncoder> enc = [cb computeCommandEncoder];
        [enc setComputePipelineState:pipeline];
        [enc setBuffer:buf_a offset:0 atIndex:kBufferA];
        [enc setBuffer:buf_b offset:0 atIndex:kBufferB];
        [enc setBuffer:buf_c offset:0 atIndex:kBufferC];
        // The kernels declare `constant uint&`: pass exactly 32-bit values.
        [enc setBytes:&m length:sizeof(uint32_t) atIndex:kBufferM];
        [enc setBytes:&k length:sizeof(uint32_t) atIndex:kBufferK];
        [enc setBytes:&n length:sizeof(uint32_t) atIndex:kBufferN];
        if (method == METAL_METHOD_SIMPLE) {
            [enc dispatchThreads:MTLSizeMake(n, m, 1)
                threadsPerThreadgroup:MTLSizeMake(MM_SIMPLE_TG_X, MM_SIMPLE_TG_Y, 1)];
        } else {
            const NSUInteger groups_x = (n + MM_TILED_TILE - 1) / MM_TILED_TILE;
            const NSUInteger groups_y = (m + MM_TILED_TILE - 1) / MM_TILED_TILE;
            [enc dispatchThreadgroups:MTLSizeMake(groups_x, groups_y, 1)
                threadsPerThreadgroup:MTLSizeMake(MM_TILED_TILE, MM_TILED_TILE, 1)];
        }
        [enc endEncoding];
        [cb commit];
        [cb waitUntilCompleted];
        if ([cb status] != MTLCommandBufferStatusCompleted) {
            return status_error(cb, err, err_len);
        }
        memcpy(c, [buf_c contents], size_c);
        if (stats != NULL) {
            stats->gpu_seconds = [cb GPUEndTime] - [cb GPUStartTime];
            stats->total_seconds = -[start timeIntervalSinceNow];
            stats->method = method;
            stats->zero_copy_inputs = 0;
        }
        return METAL_SUCCESS;
    }
}

void metal_set_pool_limit(MetalContext *ctx, uint64_t bytes) {
    (void)ctx;
    (void)bytes;
}

uint64_t metal_pool_drain(MetalContext *ctx) {
    (void)ctx;
    return 0;
}

void metal_cleanup(MetalContext *ctx) {
    @autoreleasepool {
        if (ctx == NULL) {
            return;
        }
        // Dropping the strong references under ARC releases the Metal objects.
        ctx->simple = nil;
        ctx->tiled = nil;
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
