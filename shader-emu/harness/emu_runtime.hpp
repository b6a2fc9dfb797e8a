// emu_runtime.hpp: the launcher that runs emulated Metal kernels on CPU threads.
//
// Included once, by the translation unit shader-emu generates (src/build.rs): that unit
// includes metal_stdlib, every .metal file, this header, then defines kKernels (the glue
// that binds each kernel's parameters, generated from its signature).
//
// Model (docs/SHADERS.md): threadgroups run one after another; the threads of one group are
// real OS threads started together, so threadgroup_barrier is a std::barrier over exactly
// them. `dispatchThreads:` trims the edge groups to the grid (Metal's non-uniform
// threadgroups); `dispatchThreadgroups:` launches only full groups. A watchdog ends the
// process with a diagnosis when a group stops making progress (a deadlocked barrier).
//
// Command line (driven by the Rust side, src/run.rs):
//   emu <kernel> <threads|threadgroups> <gx> <gy> <gz> <tx> <ty> <tz> <watchdog_ms> <binding>...
// where a binding is `<index>:f32:<count>` (a float buffer whose contents follow on stdin,
// in binding order, and are written back to stdout after the run) or `<index>:u32:<value>`.
// Exit codes: 0 ran, 2 usage, 3 watchdog (deadlock), 4 binding mismatch, 5 simdgroup
// operations not uniform, 6 threads of one group in different barriers.
#ifndef SHADER_EMU_RUNTIME_HPP
#define SHADER_EMU_RUNTIME_HPP

// The MSL address-space keywords end with the shaders: `thread` would break std::thread.
#undef kernel
#undef device
#undef thread
#undef constant
#undef threadgroup

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace shader_emu {

/// Metal's limit on buffer argument indices per stage.
inline constexpr unsigned kMaxBuffers = 31;

enum class Kind { None, F32, U32 };

struct Slot {
    Kind kind = Kind::None;
    std::vector<float> *floats = nullptr; // exactly `count` elements: ASan sees overreads
    std::uint32_t *scalar = nullptr;      // a 4-byte heap allocation of its own
};

struct Bindings {
    Slot slots[kMaxBuffers];
};

/// The built-in values a kernel can ask for with an attribute.
struct ThreadPos {
    uint3 thread_position_in_grid;
    uint3 thread_position_in_threadgroup;
    uint3 threadgroup_position_in_grid;
    uint3 threads_per_threadgroup;
    uint3 threadgroups_per_grid;
    uint3 threads_per_grid;
    uint thread_index_in_threadgroup;
    uint simdgroup_index_in_threadgroup;
    uint thread_index_in_simdgroup;
    uint threads_per_simdgroup;
    uint simdgroups_per_threadgroup;
};

/// A position attribute converted to the type the kernel declares (uint, uint2, uint3...).
template <class T> T pos(uint3 v) {
    if constexpr (std::is_arithmetic_v<T>) {
        return static_cast<T>(v.x);
    } else {
        using E = std::remove_cvref_t<decltype(T().x)>;
        if constexpr (sizeof(T) / sizeof(E) == 2) {
            return T(static_cast<E>(v.x), static_cast<E>(v.y));
        } else {
            return T(static_cast<E>(v.x), static_cast<E>(v.y), static_cast<E>(v.z));
        }
    }
}
template <class T> T pos(uint v) { return static_cast<T>(v); }

template <class T> using pointee_t =
    std::remove_cv_t<std::remove_pointer_t<std::remove_reference_t<T>>>;

/// Whether the binding at `index` can be passed as a parameter of type T; prints why not.
template <class T>
bool check_bind(const Bindings &b, unsigned index, const char *kernel, const char *param) {
    using E = pointee_t<T>;
    if (index >= kMaxBuffers || b.slots[index].kind == Kind::None) {
        std::fprintf(stderr,
                     "shader-emu: kernel %s declares %s [[buffer(%u)]], but nothing is bound at "
                     "index %u: the kernel and the bridge disagree on the buffer order\n",
                     kernel, param, index, index);
        return false;
    }
    const Slot &s = b.slots[index];
    const bool is_ptr = std::is_pointer_v<T>;
    const bool ok = (s.kind == Kind::F32 && std::is_same_v<E, float> && is_ptr) ||
                    (s.kind == Kind::U32 && std::is_same_v<E, uint> && std::is_reference_v<T>);
    if (!ok) {
        std::fprintf(stderr,
                     "shader-emu: kernel %s parameter %s [[buffer(%u)]] has a type that does not "
                     "match what is bound there (%s)\n",
                     kernel, param, index, s.kind == Kind::F32 ? "a float buffer" : "a uint32 value");
    }
    return ok;
}

template <class T> T bind(Bindings &b, unsigned index) {
    Slot &s = b.slots[index];
    if constexpr (std::is_pointer_v<T>) {
        return reinterpret_cast<T>(s.floats->data());
    } else {
        return *reinterpret_cast<std::remove_reference_t<T> *>(s.scalar);
    }
}

struct KernelEntry {
    const char *name;
    bool (*check)(const Bindings &);
    void (*run)(Bindings &, const ThreadPos &);
};

// Defined by the generated glue.
extern const KernelEntry kKernels[];
extern const unsigned kKernelCount;

// ---- threadgroup memory poisoning --------------------------------------------------------
#if defined(__ELF__)
extern "C" char __start_emu_tg[] __attribute__((weak));
extern "C" char __stop_emu_tg[] __attribute__((weak));
/// Sets every byte of every `threadgroup` variable to 0xFF (a NaN for floats), so that a
/// group reading a slot it did not write sees garbage instead of the previous group's data.
/// Not instrumented: the section also holds AddressSanitizer's redzones.
__attribute__((no_sanitize("address", "thread"))) inline void poison_threadgroup_memory() {
    if (__start_emu_tg == nullptr) return;
    for (volatile char *p = __start_emu_tg; p < __stop_emu_tg; ++p) *p = static_cast<char>(0xFF);
}
#else
inline void poison_threadgroup_memory() {}
#endif

// ---- launching ---------------------------------------------------------------------------
struct Launch {
    const KernelEntry *kernel;
    bool threads_mode; // dispatchThreads: (true) or dispatchThreadgroups: (false)
    unsigned grid[3];  // threads (dispatchThreads:) or threadgroups (dispatchThreadgroups:)
    unsigned group[3]; // threadsPerThreadgroup
    unsigned watchdog_ms;
};

inline unsigned div_up(unsigned a, unsigned b) { return (a + b - 1) / b; }

[[noreturn]] inline void watchdog_fail(const Launch &l, const unsigned gpos[3], Group &g) {
    std::fprintf(stderr,
                 "shader-emu: watchdog: threadgroup (%u, %u, %u) of kernel %s made no progress "
                 "for %u ms: of its %u threads, %u are waiting in threadgroup_barrier, %u in "
                 "simdgroup_barrier and %u have returned. A barrier must be reached by every "
                 "thread of its group (simdgroup): is it inside divergent control flow or after "
                 "an early return? (deadlock)\n",
                 gpos[0], gpos[1], gpos[2], l.kernel->name, l.watchdog_ms, g.size,
                 g.in_threadgroup_barrier.load(), g.in_simdgroup_barrier.load(), g.returned.load());
    std::fflush(stderr);
    std::_Exit(3); // the blocked threads can never be joined
}

/// Runs one threadgroup to completion; returns false when simdgroup operations diverged.
inline bool run_group(const Launch &l, Bindings &b, const unsigned gpos[3], const unsigned size[3]) {
    const unsigned count = size[0] * size[1] * size[2];
    poison_threadgroup_memory();
    Group g(count, l.kernel->name);
    std::mutex mu;
    std::condition_variable cv;
    unsigned done = 0;

    ThreadPos base{};
    base.threadgroup_position_in_grid = uint3(gpos[0], gpos[1], gpos[2]);
    base.threads_per_threadgroup = uint3(size[0], size[1], size[2]);
    base.threads_per_simdgroup = kSimdWidth;
    base.simdgroups_per_threadgroup = div_up(count, kSimdWidth);
    for (int d = 0; d < 3; ++d) {
        base.threadgroups_per_grid[d] = l.threads_mode ? div_up(l.grid[d], l.group[d]) : l.grid[d];
        base.threads_per_grid[d] = l.threads_mode ? l.grid[d] : l.grid[d] * l.group[d];
    }

    std::vector<std::thread> threads;
    threads.reserve(count);
    for (unsigned z = 0; z < size[2]; ++z)
        for (unsigned y = 0; y < size[1]; ++y)
            for (unsigned x = 0; x < size[0]; ++x) {
                ThreadPos p = base;
                p.thread_position_in_threadgroup = uint3(x, y, z);
                // Positions use the full group size, also in trimmed edge groups.
                p.thread_position_in_grid = uint3(gpos[0] * l.group[0] + x,
                                                  gpos[1] * l.group[1] + y,
                                                  gpos[2] * l.group[2] + z);
                p.thread_index_in_threadgroup = x + size[0] * (y + size[1] * z);
                p.simdgroup_index_in_threadgroup = p.thread_index_in_threadgroup / kSimdWidth;
                p.thread_index_in_simdgroup = p.thread_index_in_threadgroup % kSimdWidth;
                threads.emplace_back([&, p] {
                    ThreadState self;
                    self.group = &g;
                    self.index = p.thread_index_in_threadgroup;
                    current = &self;
                    l.kernel->run(b, p);
                    g.simd_ops[self.index] = self.simd_ops;
                    g.returned.fetch_add(1);
                    g.progress.fetch_add(1);
                    current = nullptr;
                    std::lock_guard<std::mutex> lock(mu);
                    ++done;
                    cv.notify_one();
                });
            }
    {
        std::unique_lock<std::mutex> lock(mu);
        auto last = g.progress.load();
        // Wait while the group makes progress; give up after watchdog_ms without any.
        while (done < count) {
            if (!cv.wait_for(lock, std::chrono::milliseconds(l.watchdog_ms), [&] { return done == count; })) {
                auto now = g.progress.load();
                if (now == last) watchdog_fail(l, gpos, g);
                last = now;
            }
        }
    }
    for (auto &t : threads) t.join();

    for (unsigned first = 0; first < count; first += kSimdWidth) {
        for (unsigned i = first; i < count && i < first + kSimdWidth; ++i) {
            if (g.simd_ops[i] != g.simd_ops[first]) {
                std::fprintf(stderr,
                             "shader-emu: kernel %s, threadgroup (%u, %u, %u), simdgroup %u: lane 0 "
                             "did %llu simdgroup-matrix operations but lane %u did %llu; they must "
                             "be reached by every lane of the simdgroup\n",
                             l.kernel->name, gpos[0], gpos[1], gpos[2], first / kSimdWidth,
                             static_cast<unsigned long long>(g.simd_ops[first]), i - first,
                             static_cast<unsigned long long>(g.simd_ops[i]));
                return false;
            }
        }
    }
    return true;
}

inline int launch(const Launch &l, Bindings &b) {
    unsigned groups[3];
    for (int d = 0; d < 3; ++d) groups[d] = l.threads_mode ? div_up(l.grid[d], l.group[d]) : l.grid[d];
    for (unsigned z = 0; z < groups[2]; ++z)
        for (unsigned y = 0; y < groups[1]; ++y)
            for (unsigned x = 0; x < groups[0]; ++x) {
                const unsigned gpos[3] = {x, y, z};
                unsigned size[3];
                for (int d = 0; d < 3; ++d) {
                    size[d] = l.group[d];
                    if (l.threads_mode) { // non-uniform threadgroups: trim the edge groups
                        unsigned left = l.grid[d] - gpos[d] * l.group[d];
                        if (left < size[d]) size[d] = left;
                    }
                }
                if (!run_group(l, b, gpos, size)) return 5;
            }
    return 0;
}

inline int usage(const char *why) {
    std::fprintf(stderr, "shader-emu: %s\nusage: emu <kernel> <threads|threadgroups> <gx> <gy> <gz> "
                         "<tx> <ty> <tz> <watchdog_ms> <index>:f32:<count>|<index>:u32:<value>...\n",
                 why);
    return 2;
}

inline bool parse_uint(const char *s, unsigned &out) {
    char *end = nullptr;
    unsigned long v = std::strtoul(s, &end, 10);
    if (end == s || *end != '\0' || v > 0xFFFFFFFFul) return false;
    out = static_cast<unsigned>(v);
    return true;
}

inline int main_impl(int argc, char **argv) {
    if (argc == 2 && std::strcmp(argv[1], "--list") == 0) {
        for (unsigned i = 0; i < kKernelCount; ++i) std::printf("%s\n", kKernels[i].name);
        return 0;
    }
    if (argc < 10) return usage("too few arguments");
    Launch l{};
    for (unsigned i = 0; i < kKernelCount; ++i)
        if (std::strcmp(kKernels[i].name, argv[1]) == 0) l.kernel = &kKernels[i];
    if (l.kernel == nullptr) return usage("no kernel of that name was compiled");
    if (std::strcmp(argv[2], "threads") == 0) l.threads_mode = true;
    else if (std::strcmp(argv[2], "threadgroups") == 0) l.threads_mode = false;
    else return usage("the dispatch mode is `threads` or `threadgroups`");
    for (int d = 0; d < 3; ++d)
        if (!parse_uint(argv[3 + d], l.grid[d]) || !parse_uint(argv[6 + d], l.group[d]) || l.group[d] == 0)
            return usage("bad grid or group size");
    if (!parse_uint(argv[9], l.watchdog_ms) || l.watchdog_ms == 0) return usage("bad watchdog_ms");

    Bindings b;
    std::vector<std::vector<float> *> order;
    for (int i = 10; i < argc; ++i) {
        unsigned index = 0, value = 0;
        char kind[4] = {0};
        std::string arg = argv[i];
        auto c1 = arg.find(':'), c2 = arg.rfind(':');
        if (c1 == std::string::npos || c2 == c1) return usage("bad binding");
        std::string is = arg.substr(0, c1), ks = arg.substr(c1 + 1, c2 - c1 - 1), vs = arg.substr(c2 + 1);
        if (!parse_uint(is.c_str(), index) || index >= kMaxBuffers || !parse_uint(vs.c_str(), value) ||
            ks.size() != 3)
            return usage("bad binding");
        std::memcpy(kind, ks.data(), 3);
        Slot &s = b.slots[index];
        if (s.kind != Kind::None) return usage("an index is bound twice");
        if (std::strcmp(kind, "f32") == 0) {
            s.kind = Kind::F32;
            s.floats = new std::vector<float>(value);
            order.push_back(s.floats);
        } else if (std::strcmp(kind, "u32") == 0) {
            s.kind = Kind::U32;
            s.scalar = new std::uint32_t(value);
        } else {
            return usage("a binding kind is f32 or u32");
        }
    }
    for (auto *v : order) {
        const size_t bytes = v->size() * sizeof(float);
        if (bytes != 0 && std::fread(v->data(), 1, bytes, stdin) != bytes) return usage("short input on stdin");
    }
    if (!l.kernel->check(b)) return 4;
    const int rc = launch(l, b);
    if (rc != 0) return rc;
    for (auto *v : order) std::fwrite(v->data(), sizeof(float), v->size(), stdout);
    std::fflush(stdout);
    for (auto &s : b.slots) {
        delete s.floats;
        delete s.scalar;
    }
    return 0;
}

} // namespace shader_emu

int main(int argc, char **argv) { return shader_emu::main_impl(argc, argv); }

#endif // SHADER_EMU_RUNTIME_HPP
