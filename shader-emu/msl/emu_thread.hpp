// emu_thread.hpp: what one emulated GPU thread knows about its threadgroup and simdgroup,
// and the barriers it can wait in. Used by metal_stdlib; the launcher (harness/) fills it.
#ifndef SHADER_EMU_THREAD_HPP
#define SHADER_EMU_THREAD_HPP

#include <atomic>
#include <barrier>
#include <cstdint>
#include <memory>
#include <vector>

namespace shader_emu {

/// Threads per simdgroup on Apple GPUs (`threads_per_simdgroup`).
inline constexpr unsigned kSimdWidth = 32;

/// The state shared by the threads of the threadgroup that is running.
struct Group {
    explicit Group(unsigned threads)
        : size(threads), barrier(static_cast<std::ptrdiff_t>(threads)),
          simd_ops(threads, 0) {
        for (unsigned first = 0; first < threads; first += kSimdWidth) {
            unsigned lanes = threads - first < kSimdWidth ? threads - first : kSimdWidth;
            simd_barriers.push_back(std::make_unique<std::barrier<>>(lanes));
        }
    }
    unsigned size;
    std::barrier<> barrier;
    std::vector<std::unique_ptr<std::barrier<>>> simd_barriers;
    /// Threads now blocked in a threadgroup / simdgroup barrier, and threads that returned:
    /// what the watchdog reports when a group stops making progress.
    std::atomic<unsigned> in_threadgroup_barrier{0};
    std::atomic<unsigned> in_simdgroup_barrier{0};
    std::atomic<unsigned> returned{0};
    /// Bumped whenever a thread leaves a barrier or returns: the watchdog's sign of life.
    std::atomic<std::uint64_t> progress{0};
    /// Simdgroup-matrix operations each thread performed (lanes of one simdgroup must agree).
    std::vector<std::uint64_t> simd_ops;
};

/// One emulated GPU thread.
struct ThreadState {
    Group *group = nullptr;
    unsigned index = 0; // thread_index_in_threadgroup
    std::uint64_t simd_ops = 0;
};

inline thread_local ThreadState *current = nullptr;

inline unsigned lane_index() { return current->index % kSimdWidth; }

inline void threadgroup_barrier() {
    Group &g = *current->group;
    g.in_threadgroup_barrier.fetch_add(1);
    g.barrier.arrive_and_wait();
    g.in_threadgroup_barrier.fetch_sub(1);
    g.progress.fetch_add(1);
}

inline void simdgroup_barrier() {
    Group &g = *current->group;
    g.in_simdgroup_barrier.fetch_add(1);
    g.simd_barriers[current->index / kSimdWidth]->arrive_and_wait();
    g.in_simdgroup_barrier.fetch_sub(1);
    g.progress.fetch_add(1);
}

inline void note_simdgroup_op() { ++current->simd_ops; }

} // namespace shader_emu

#endif // SHADER_EMU_THREAD_HPP
