// Test-only kernel (never in shaders/): every thread reaches *a* barrier, but odd and even
// threads reach different ones. No deadlock in the emulation, yet MSL requires barriers in
// uniform control flow; the launcher must fail the run.
#include <metal_stdlib>
using namespace metal;

kernel void split_barrier(
    device float* C [[buffer(2)]],
    uint tid [[thread_index_in_threadgroup]])
{
    if (tid % 2 == 0) {
        threadgroup_barrier(mem_flags::mem_threadgroup);
    } else {
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    C[tid] = float(tid);
}
