// emu_thread.hpp: what one emulated GPU thread knows about its threadgroup and simdgroup,
// and the barriers it can wait in. Used by metal_stdlib; the launcher (harness/) fills it.
#ifndef SHADER_EMU_THREAD_HPP
#define SHADER_EMU_THREAD_HPP

#include <atomic>
#include <barrier>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

namespace shader_emu {

/// Threads per simdgroup on Apple GPUs (`threads_per_simdgroup`).
inline constexpr unsigned kSimdWidth = 32;

struct Group;

/// Runs once per barrier phase, after every participant arrived: they must all have come
/// from the same barrier call (the same source line). Threads that reach *different*
/// barriers (one in each branch of an `if`) do not deadlock here, but MSL requires a
/// barrier to be reached in uniform control flow, so the run fails.
struct SameSite {
    Group *group;
    unsigned first, count; // the participants: thread indices [first, first + count)
    const char *what;
    void operator()() noexcept;
};

/// The state shared by the threads of the threadgroup that is running.
struct Group {
    Group(unsigned threads, const char *kernel_name)
        : size(threads), kernel(kernel_name),
          barrier(static_cast<std::ptrdiff_t>(threads), SameSite{this, 0, threads, "threadgroup_barrier"}),
          simd_ops(threads, 0), sites(threads, 0) {
        for (unsigned first = 0; first < threads; first += kSimdWidth) {
            unsigned lanes = threads - first < kSimdWidth ? threads - first : kSimdWidth;
            simd_barriers.push_back(std::make_unique<std::barrier<SameSite>>(
                lanes, SameSite{this, first, lanes, "simdgroup_barrier"}));
        }
    }
    unsigned size;
    const char *kernel;
    std::barrier<SameSite> barrier;
    std::vector<std::unique_ptr<std::barrier<SameSite>>> simd_barriers;
    /// Threads now blocked in a threadgroup / simdgroup barrier, and threads that returned:
    /// what the watchdog reports when a group stops making progress.
    std::atomic<unsigned> in_threadgroup_barrier{0};
    std::atomic<unsigned> in_simdgroup_barrier{0};
    std::atomic<unsigned> returned{0};
    /// Bumped whenever a thread leaves a barrier or returns: the watchdog's sign of life.
    std::atomic<std::uint64_t> progress{0};
    /// Simdgroup-matrix operations each thread performed (lanes of one simdgroup must agree).
    std::vector<std::uint64_t> simd_ops;
    /// The source line of the barrier each thread is waiting in.
    std::vector<unsigned> sites;
};

inline void SameSite::operator()() noexcept {
    for (unsigned i = first + 1; i < first + count; ++i) {
        if (group->sites[i] != group->sites[first]) {
            std::fprintf(stderr,
                         "shader-emu: kernel %s: in one %s phase, thread %u waits in the barrier at "
                         "line %u and thread %u in the one at line %u: a barrier must be reached by "
                         "every thread in uniform control flow (divergent barriers)\n",
                         group->kernel, what, first, group->sites[first], i, group->sites[i]);
            std::fflush(stderr);
            std::_Exit(6);
        }
    }
}

/// One emulated GPU thread.
struct ThreadState {
    Group *group = nullptr;
    unsigned index = 0; // thread_index_in_threadgroup
    std::uint64_t simd_ops = 0;
};

inline thread_local ThreadState *current = nullptr;

inline unsigned lane_index() { return current->index % kSimdWidth; }

inline void threadgroup_barrier(unsigned line) {
    Group &g = *current->group;
    g.sites[current->index] = line;
    g.in_threadgroup_barrier.fetch_add(1);
    g.barrier.arrive_and_wait();
    g.in_threadgroup_barrier.fetch_sub(1);
    g.progress.fetch_add(1);
}

inline void simdgroup_barrier(unsigned line) {
    Group &g = *current->group;
    g.sites[current->index] = line;
    g.in_simdgroup_barrier.fetch_add(1);
    g.simd_barriers[current->index / kSimdWidth]->arrive_and_wait();
    g.in_simdgroup_barrier.fetch_sub(1);
    g.progress.fetch_add(1);
}

inline void note_simdgroup_op() { ++current->simd_ops; }

} // namespace shader_emu

#endif // SHADER_EMU_THREAD_HPP
