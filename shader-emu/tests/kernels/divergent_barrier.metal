// Test-only kernel (never in shaders/): a threadgroup_barrier inside divergent control
// flow. Only half of the group reaches the barrier, so on a GPU the group hangs (or worse);
// the emulation's watchdog must turn this into a clear failure.
#include <metal_stdlib>
using namespace metal;

kernel void divergent_barrier(
    device float* C [[buffer(2)]],
    uint tid [[thread_index_in_threadgroup]])
{
    if (tid % 2 == 0) {
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    C[tid] = float(tid);
}
