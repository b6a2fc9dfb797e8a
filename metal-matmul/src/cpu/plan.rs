//! Which kernel a product runs and how it is split between threads: one pure function,
//! [`plan`], from the shape, the threads granted and the CPU's features to a [`Plan`].
//! `cpu::exec` carries a plan out; the kernels are in `cpu::kernels`.
//!
//! Every threshold here was set by side-by-side measurement; docs/PERFORMANCE.md, "How
//! the CPU backend gets there", has the figures and the machines behind each one.

use super::features::CpuFeatures;
use super::kernels::blocked::{MR_AVX2, MR_AVX512};
use super::kernels::{Isa, Kernel, few_rows, gemv, narrow, small};
use super::tasks::Join;
use crate::Shape;

/// What to run for one product: a one-thread kernel and the split that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The kernel every block of the split runs.
    pub kernel: Kernel,
    /// How the product is cut between threads.
    pub split: Split,
}

/// How a product is cut into one-thread kernel calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Split {
    /// The whole product on the calling thread.
    One,
    /// Independent blocks of `rows` rows of C (the last may be shorter), claimed by
    /// `threads` threads as `join` says.
    Rows {
        /// Threads that claim blocks.
        threads: usize,
        /// Rows of C per block.
        rows: usize,
        /// Which threads compute: the caller with workers, or workers alone.
        join: Join,
    },
    /// A one-row C in blocks of `cols` columns, claimed by `threads` threads, the
    /// caller among them.
    Columns {
        /// Threads that claim blocks.
        threads: usize,
        /// Columns of C per block.
        cols: usize,
        /// How the caller's helpers are woken.
        join: Join,
    },
    /// The inner dimension in ranges of `depth` steps (the last may be shorter), each
    /// a product into a scratch C of its own, summed into C at the end; the caller
    /// claims ranges too.
    Inner {
        /// Threads that claim ranges.
        threads: usize,
        /// Steps of the inner dimension per range.
        depth: usize,
        /// How the caller's helpers are woken.
        join: Join,
    },
    /// The blocked kernel's loops on `threads` threads sharing one packed B, in
    /// `chunks` chunks of C's rows (whole micro-panels, as even as they can be) claimed
    /// as threads free up (`blocked::shared`), the caller among them, with every
    /// worker woken ([`Join::CallerFirstArrivals`]).
    Shared {
        /// Threads that claim chunks.
        threads: usize,
        /// Chunks of rows of C.
        chunks: usize,
    },
    /// faer's own parallel split, on `threads` threads.
    Faer {
        /// Threads faer runs on.
        threads: usize,
    },
}

/// A GEMM gets one thread per this many floating-point operations, up to the workers,
/// on an x86-64 CPU with AVX2+FMA, AVX-512 ones included (128³ on two threads measured
/// ahead on Zen 3 and Zen 4).
const MIN_FLOPS_PER_THREAD_X86: f64 = 2.0e6;

/// The same on every other CPU (aarch64, x86-64 without AVX2): the value measured
/// before the x86 one, kept where the lower one was not measured.
const MIN_FLOPS_PER_THREAD: f64 = 4.0e6;

/// A vector shape (memory-bound) gets one thread per this many elements of its matrix.
const MIN_ELEMENTS_PER_THREAD: f64 = 65_536.0;

/// Below this many floating-point operations the calling thread works on a row split.
const CALLER_JOINS_MAX_FLOPS: f64 = 1.0e8;

/// From this many floating-point operations a GEMM on which the caller works wakes
/// every worker ([`Join::CallerFirstArrivals`]); below it, only those it needs (128³
/// lost a third of its median call to the extra wake-up). docs/PERFORMANCE.md,
/// "Waking every worker".
const WAKE_ALL_MIN_FLOPS: f64 = 1.0e7;

/// The same for the vector shapes, in elements of the matrix (4 MiB of floats).
const WAKE_ALL_MIN_ELEMENTS: f64 = (1 << 20) as f64;

/// The longest inner dimension a short-k row split takes (512³ on two threads is
/// faster through faer's own split).
const SPLIT_MAX_K: usize = 511;

/// The fewest rows of C per thread a short-k row split takes.
const SPLIT_MIN_ROWS: usize = 60;

/// The most row blocks per thread of a row split.
const SPLIT_BLOCKS_PER_THREAD: usize = 4;

/// The fewest rows of a block of a short-k row split (when the product has them).
const SPLIT_MIN_BLOCK_ROWS: usize = 256;

/// The fewest rows of C per thread a long-k row split gives faer.
const SPLIT_TALL_MIN_ROWS: usize = 1024;

/// The fewest rows of C per thread a long-k row split gives the AVX-512 blocked kernel.
const SPLIT_BLOCKED_MIN_ROWS: usize = 64;

/// The most rows of C per chunk of a shared-B split (a quarter of the AVX2 kernel's MC
/// of 120, for a shorter wait on the last chunk). Measured on Zen 3:
/// docs/PERFORMANCE.md, "The shared-B split".
const SHARED_MAX_ROWS: usize = 30;

/// The fewest chunks per thread of a shared-B split, so that the threads even out.
const SHARED_CHUNKS_PER_THREAD: usize = 32;

/// The smallest L2 on which a product of few rows a thread takes faer's own split
/// instead of the shared-B split: 1 MiB (Zen 4 under an AVX2 limit, measured ahead;
/// Zen 3's 512 KiB keeps the shared B). docs/PERFORMANCE.md, "faer's split on a large L2".
const FAER_SPLIT_MIN_L2: usize = 1 << 20;

/// The smallest L2 that keeps the shared-B split again: 2 MiB (an Intel Xeon under an
/// AVX2 limit, where the shared B was 8 points ahead at 512³). Same section.
const FAER_SPLIT_MAX_L2: usize = 2 << 20;

/// The most rows of C a thread for which faer's split is taken on such an L2 (768 rows
/// on two threads measured ahead, 896 and more level).
const FAER_SPLIT_MAX_ROWS: usize = 384;

/// The most floats of B the small kernel takes in AVX2 (16 KiB: half of an L1 data
/// cache; measured on Zen 3).
const SMALL_MAX_B_AVX2: usize = 4096;

/// The most floats of B the small kernel takes in AVX-512 (64 KiB: B streams from L2;
/// measured on Zen 4).
const SMALL_MAX_B_AVX512: usize = 16384;

/// The fewest rows of C the narrow kernel takes.
const NARROW_MIN_ROWS: usize = 512;

/// Matrix × vector row blocks per thread.
const MV_TASKS_PER_THREAD: usize = 64;

/// The fewest elements of A in a matrix × vector row block.
const MV_MIN_TASK_ELEMENTS: usize = 16_384;

/// The fewest columns of C per thread of a vector × matrix column split when the
/// inner dimension is long enough to split instead (8 KiB of each row of B a thread).
const VM_MIN_COLS_PER_THREAD: usize = 2048;

/// Vector × matrix ranges of the inner dimension per thread.
const VM_TASKS_PER_THREAD: usize = 4;

/// Few-rows ranges of the inner dimension per thread.
const FEW_ROWS_TASKS_PER_THREAD: usize = 4;

/// The fewest steps of the inner dimension in a few-rows range.
const FEW_ROWS_MIN_DEPTH: usize = 256;

/// Rows of B per pass of the few-rows kernel; its ranges are whole passes.
const FEW_ROWS_PASS: usize = 8;

/// The threads a product of `shape` is worth, at most `workers`: GEMMs counted in
/// floating-point operations, the vector shapes (memory-bound) in elements streamed.
pub(crate) fn threads_for(shape: Shape, workers: usize, features: &CpuFeatures) -> usize {
    let by_work = if is_vector_shape(shape) {
        shape.flops() / 2.0 / MIN_ELEMENTS_PER_THREAD
    } else if Isa::best(features).is_some() {
        shape.flops() / MIN_FLOPS_PER_THREAD_X86
    } else {
        shape.flops() / MIN_FLOPS_PER_THREAD
    };
    // Saturating float-to-int cast; at least 1.
    (by_work.floor().max(1.0) as usize).min(workers.max(1))
}

/// The plan for a non-degenerate product of `shape` on `threads` threads (granted,
/// at least 1) of a CPU with `features`. Pure: the same arguments give the same plan.
pub(crate) fn plan(shape: Shape, threads: usize, features: &CpuFeatures) -> Plan {
    let threads = threads.max(1);
    let (m, k, n) = (shape.m, shape.k, shape.n);
    if n == 1 {
        return Plan {
            kernel: Kernel::MatVec {
                avx2: features.avx2_fma,
                prefetch: streams_from_memory(shape, features),
            },
            split: if threads > 1 && m >= 2 * gemv::ROWS {
                let rows = m
                    .div_ceil(threads * MV_TASKS_PER_THREAD)
                    .max(MV_MIN_TASK_ELEMENTS.div_ceil(k.max(1)))
                    .next_multiple_of(gemv::ROWS);
                rows_split(threads, rows, caller_join(shape))
            } else {
                Split::One
            },
        };
    }
    if m == 1 {
        let split = if threads == 1 {
            Split::One
        } else if n < threads * VM_MIN_COLS_PER_THREAD
            && k >= threads * VM_TASKS_PER_THREAD * 4 * gemv::ROWS
        {
            let depth = k
                .div_ceil(threads * VM_TASKS_PER_THREAD)
                .next_multiple_of(gemv::ROWS);
            Split::Inner {
                threads,
                depth,
                join: caller_join(shape),
            }
        } else {
            let cols = n.div_ceil(threads).next_multiple_of(16);
            Split::Columns {
                threads,
                cols,
                join: caller_join(shape),
            }
        };
        return Plan {
            kernel: Kernel::VecMat {
                avx2: features.avx2_fma,
                prefetch: streams_from_memory(shape, features),
            },
            split,
        };
    }
    if let Some(isa) = few_rows_isa(shape, threads, features) {
        let tasks = if threads > 1 {
            (threads * FEW_ROWS_TASKS_PER_THREAD)
                .min(k / FEW_ROWS_MIN_DEPTH)
                .max(1)
        } else {
            1
        };
        let depth = k.div_ceil(tasks).next_multiple_of(FEW_ROWS_PASS);
        return Plan {
            kernel: Kernel::FewRows(isa),
            split: Split::Inner {
                threads,
                depth,
                join: caller_join(shape),
            },
        };
    }
    if threads == 1 {
        return Plan {
            kernel: one_thread_kernel(shape, features),
            split: Split::One,
        };
    }
    if let Some(plan) = shared(shape, threads, features) {
        return plan;
    }
    let blocks_per_thread =
        if let Some(per_thread) = narrow_blocks_per_thread(shape, threads, features) {
            Some(per_thread)
        } else if k <= SPLIT_MAX_K && m >= threads * SPLIT_MIN_ROWS {
            Some((m / (threads * SPLIT_MIN_BLOCK_ROWS)).clamp(1, SPLIT_BLOCKS_PER_THREAD))
        } else if split_tall(shape, threads, features) {
            Some(1)
        } else {
            None
        };
    match blocks_per_thread {
        Some(per_thread) => row_blocks(shape, threads, per_thread, features),
        None => Plan {
            kernel: faer(features),
            split: Split::Faer { threads },
        },
    }
}

/// Whether the AVX2 vector kernels prefetch for the vector shape `shape`: where its
/// matrix is at least the last-level cache, so that it comes from DRAM call after call.
/// A matrix that fits there is read 4–30% faster without the prefetches' extra
/// instructions (Zen 4, docs/PERFORMANCE.md, "Software prefetch in the vector kernels").
fn streams_from_memory(shape: Shape, features: &CpuFeatures) -> bool {
    let floats = if shape.n == 1 {
        shape.m.saturating_mul(shape.k)
    } else {
        shape.k.saturating_mul(shape.n)
    };
    features.avx2_fma && floats.saturating_mul(4) >= features.llc_bytes
}

/// The shared-B split of the AVX2 blocked kernel, for a product with a long inner
/// dimension (k > [`SPLIT_MAX_K`]) that the kernel takes whole: chunks of at most
/// [`SHARED_MAX_ROWS`] rows (give or take a micro-panel), at least
/// [`SHARED_CHUNKS_PER_THREAD`] per thread, a whole number per thread (17 chunks on
/// two threads keep one thread a chunk longer). It replaced one row block per thread
/// and faer's split there on Zen 3 (2048³ on two threads: paired 84–85% of OpenBLAS
/// before, 93–95% after); AVX-512 machines, where it was not measured, keep their row
/// blocks. Chunks a quarter of the size they first had (MC) were 0.2–4% faster from
/// 512³ to 4096³ on two threads. On an L2 of at least [`FAER_SPLIT_MIN_L2`] and under
/// [`FAER_SPLIT_MAX_L2`] (Zen 4's 1 MiB), a product of at most [`FAER_SPLIT_MAX_ROWS`]
/// rows a thread goes to faer's split instead (`None` here): the threads' packing of
/// the shared B, whose lines the other core holds, was 8% of a 512³ call there, and
/// faer's split was 3–9% ahead up to 768 rows. On the Intel Xeon's 2 MiB it was behind.
fn shared(shape: Shape, threads: usize, features: &CpuFeatures) -> Option<Plan> {
    let faer_ahead = (FAER_SPLIT_MIN_L2..FAER_SPLIT_MAX_L2).contains(&features.l2_bytes)
        && shape.m <= threads * FAER_SPLIT_MAX_ROWS;
    let takes = shape.k > SPLIT_MAX_K && blocked_isa(shape, features) == Some(Isa::Avx2);
    (takes && !faer_ahead).then(|| {
        let panels = shape.m.div_ceil(MR_AVX2);
        let chunks = panels
            .div_ceil(SHARED_MAX_ROWS / MR_AVX2)
            .max(threads * SHARED_CHUNKS_PER_THREAD)
            .next_multiple_of(threads)
            .min(panels);
        Plan {
            kernel: Kernel::Blocked(Isa::Avx2),
            split: Split::Shared { threads, chunks },
        }
    })
}

/// A row split of `shape` into `per_thread` blocks per thread, each through the kernel a
/// typical block gets. The kernel is chosen once, for a typical block, so the last
/// (shorter) block does not go elsewhere; blocks for the blocked kernel are whole
/// micro-panels of rows, as even as they can be (1000 rows: 504 and 496).
fn row_blocks(shape: Shape, threads: usize, per_thread: usize, features: &CpuFeatures) -> Plan {
    let blocks = threads * per_thread;
    let part = Shape::new(shape.m.div_ceil(blocks), shape.k, shape.n);
    let kernel = one_thread_kernel(part, features);
    let unit = match kernel {
        Kernel::Blocked(Isa::Avx512) => MR_AVX512,
        Kernel::Blocked(Isa::Avx2) => MR_AVX2,
        Kernel::Small(isa) => small::tile_shape(isa, shape.n).0,
        _ => 16,
    };
    let rows = shape.m.div_ceil(unit).div_ceil(blocks) * unit;
    Plan {
        kernel,
        split: rows_split(
            threads,
            rows,
            if shape.flops() < CALLER_JOINS_MAX_FLOPS {
                caller_join(shape)
            } else {
                Join::Workers
            },
        ),
    }
}

fn rows_split(threads: usize, rows: usize, join: Join) -> Split {
    Split::Rows {
        threads,
        rows,
        join,
    }
}

/// How the caller of a split it works on wakes its helpers: every worker from
/// [`WAKE_ALL_MIN_FLOPS`] (GEMMs) or [`WAKE_ALL_MIN_ELEMENTS`] (the vector shapes),
/// only those it needs below.
fn caller_join(shape: Shape) -> Join {
    let large = if is_vector_shape(shape) {
        shape.flops() / 2.0 >= WAKE_ALL_MIN_ELEMENTS
    } else {
        shape.flops() >= WAKE_ALL_MIN_FLOPS
    };
    if large {
        Join::CallerFirstArrivals
    } else {
        Join::Caller
    }
}

/// The kernel for a one-thread product of `shape`: small, narrow, blocked, or faer.
fn one_thread_kernel(shape: Shape, features: &CpuFeatures) -> Kernel {
    if let Some(isa) = small_isa(shape, features) {
        Kernel::Small(isa)
    } else if use_narrow(shape, features) {
        Kernel::Narrow
    } else if let Some(isa) = blocked_isa(shape, features) {
        Kernel::Blocked(isa)
    } else {
        faer(features)
    }
}

/// faer's kernel, held to its AVX2+FMA code where an AVX2 limit took AVX-512 away.
fn faer(features: &CpuFeatures) -> Kernel {
    Kernel::Faer {
        avx2_only: features.faer_avx2,
    }
}

/// The ISA of the blocked kernel for a one-thread product of `shape`, where it is
/// ahead of faer: AVX-512 from k ≥ 256, n ≥ 640 and m ≥ 16; AVX2 from k ≥ 512, n ≥ 512
/// and m ≥ 64.
fn blocked_isa(shape: Shape, features: &CpuFeatures) -> Option<Isa> {
    let (m, k, n) = (shape.m, shape.k, shape.n);
    match Isa::best(features)? {
        Isa::Avx512 => (m >= 16 && k >= 256 && n >= 640).then_some(Isa::Avx512),
        Isa::Avx2 => (m >= 64 && k >= 512 && n >= 512).then_some(Isa::Avx2),
    }
}

/// The ISA of the small kernel for a one-thread product of `shape`: the widest of
/// ours, for B of at most [`SMALL_MAX_B_AVX512`] or [`SMALL_MAX_B_AVX2`] floats.
fn small_isa(shape: Shape, features: &CpuFeatures) -> Option<Isa> {
    let isa = Isa::best(features)?;
    let max_b = match isa {
        Isa::Avx512 => SMALL_MAX_B_AVX512,
        Isa::Avx2 => SMALL_MAX_B_AVX2,
    };
    (shape.k * shape.n <= max_b).then_some(isa)
}

/// Whether a one-thread product takes the narrow kernel (AVX-512 only): C of at most
/// 64 columns, at least [`NARROW_MIN_ROWS`] rows, k ≥ 256.
fn use_narrow(shape: Shape, features: &CpuFeatures) -> bool {
    Kernel::Narrow.available(features)
        && shape.n <= narrow::MAX_N
        && shape.m >= NARROW_MIN_ROWS
        && shape.k >= 256
}

/// Row blocks per thread for a narrow product on several threads: as many as
/// [`SPLIT_BLOCKS_PER_THREAD`] while each keeps [`NARROW_MIN_ROWS`] rows (so it still
/// goes to the narrow kernel), or `None` when the product is not narrow or cannot give
/// every thread that many rows.
fn narrow_blocks_per_thread(shape: Shape, threads: usize, features: &CpuFeatures) -> Option<usize> {
    let per_thread = (shape.m / (threads * NARROW_MIN_ROWS)).min(SPLIT_BLOCKS_PER_THREAD);
    (per_thread >= 1 && use_narrow(shape, features)).then_some(per_thread)
}

/// Whether a multi-threaded product with a long inner dimension (k > [`SPLIT_MAX_K`])
/// runs as one row block per thread instead of faer's own split: when every thread
/// gets [`SPLIT_TALL_MIN_ROWS`] rows, or [`SPLIT_BLOCKED_MIN_ROWS`] that go to the
/// AVX-512 blocked kernel. Never for a narrow C (at most [`narrow::MAX_N`] columns)
/// without the narrow kernel: faer's own split is ahead there.
fn split_tall(shape: Shape, threads: usize, features: &CpuFeatures) -> bool {
    let rows = shape.m / threads;
    let block = Shape::new(rows, shape.k, shape.n);
    shape.k > SPLIT_MAX_K
        && shape.n > narrow::MAX_N
        && (rows >= SPLIT_TALL_MIN_ROWS
            || (rows >= SPLIT_BLOCKED_MIN_ROWS
                && blocked_isa(block, features) == Some(Isa::Avx512)))
}

/// The ISA of the few-rows kernel for `shape` on `threads` threads, where it is ahead:
/// 2 to 15 rows of C with B of at least 2^19 elements, 16 to 24 rows with 2^21; on
/// several threads, 2^22.
fn few_rows_isa(shape: Shape, threads: usize, features: &CpuFeatures) -> Option<Isa> {
    let b_elements = shape.k * shape.n;
    let min_b = if threads > 1 {
        1 << 22
    } else if shape.m <= 15 {
        1 << 19
    } else {
        1 << 21
    };
    let isa = Isa::best(features)?;
    ((2..=few_rows::MAX_M).contains(&shape.m) && b_elements >= min_b).then_some(isa)
}

/// True for matrix × vector (`n == 1`) and vector × matrix (`m == 1`).
pub(crate) fn is_vector_shape(shape: Shape) -> bool {
    shape.m == 1 || shape.n == 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::features::SimdLimit;

    const AVX512: CpuFeatures = CpuFeatures::AVX512;
    const AVX2: CpuFeatures = CpuFeatures::AVX2;
    const NEON: CpuFeatures = CpuFeatures::NEON;

    fn one(kernel: Kernel) -> Plan {
        Plan {
            kernel,
            split: Split::One,
        }
    }

    fn rows(kernel: Kernel, threads: usize, rows: usize, join: Join) -> Plan {
        Plan {
            kernel,
            split: Split::Rows {
                threads,
                rows,
                join,
            },
        }
    }

    /// An AVX2-only CPU with 1 MiB and with 2 MiB of L2, and an AVX-512 one with 1 MiB
    /// (the constants have Zen 3's 512 KiB).
    const AVX2_L2_1M: CpuFeatures = CpuFeatures {
        l2_bytes: 1 << 20,
        ..AVX2
    };
    const AVX2_L2_2M: CpuFeatures = CpuFeatures {
        l2_bytes: 2 << 20,
        ..AVX2
    };
    const AVX512_L2_1M: CpuFeatures = CpuFeatures {
        l2_bytes: 1 << 20,
        ..AVX512
    };

    #[test]
    fn a_table_of_shapes_gets_its_plans() {
        use Isa::{Avx2 as A2, Avx512 as A5};
        use Kernel::{Blocked, FewRows, Narrow, Small};
        let faer = Kernel::Faer { avx2_only: false };
        let s = Shape::new;
        // Who computes a split: the caller with every worker woken, the caller with
        // the workers it needs, the workers alone.
        let (all, caller, workers) = (Join::CallerFirstArrivals, Join::Caller, Join::Workers);
        // The vector kernels in AVX2 (x86-64) or portable code (NEON machines).
        // With prefetch where the matrix is at least the last-level cache (32 MiB in
        // the table's features): 4096 × 2048 floats and more.
        let mv = |avx2, prefetch| Kernel::MatVec { avx2, prefetch };
        let (mv_avx2, mv_portable) = (mv(true, true), mv(false, false));
        let vm = Kernel::VecMat {
            avx2: true,
            prefetch: true,
        };
        let vm_cached = Kernel::VecMat {
            avx2: true,
            prefetch: false,
        };
        let inner = |kernel, threads, depth| Plan {
            kernel,
            split: Split::Inner {
                threads,
                depth,
                join: all,
            },
        };
        let cols = |kernel, threads, cols, join| Plan {
            kernel,
            split: Split::Columns {
                threads,
                cols,
                join,
            },
        };
        let faer_split = |threads| Plan {
            kernel: faer,
            split: Split::Faer { threads },
        };
        let shared = |threads, chunks| Plan {
            kernel: Blocked(A2),
            split: Split::Shared { threads, chunks },
        };
        let table: &[(Shape, usize, CpuFeatures, Plan)] = &[
            // Small squares: faer on one thread, except where B fits the small kernel
            // in the widest ISA of ours.
            (s(64, 64, 64), 1, AVX512, one(Small(A5))),
            (s(64, 64, 64), 1, AVX2, one(Small(A2))),
            (s(64, 64, 64), 1, NEON, one(faer)),
            (s(65, 65, 65), 1, AVX2, one(faer)),
            (s(128, 128, 128), 1, AVX512, one(Small(A5))),
            (s(129, 129, 129), 1, AVX512, one(faer)),
            (s(256, 256, 256), 1, AVX2, one(faer)),
            // A long A with a small B: row blocks through the small kernel.
            (s(1000, 64, 64), 2, AVX2, rows(Small(A2), 2, 504, caller)),
            (s(1000, 64, 64), 2, AVX512, rows(Small(A5), 2, 504, caller)),
            (s(256, 256, 256), 1, NEON, one(faer)),
            // Large products: the blocked kernel in the widest ISA, faer on aarch64.
            (s(1000, 1000, 1000), 1, AVX512, one(Blocked(A5))),
            (s(1024, 1024, 1024), 1, AVX2, one(Blocked(A2))),
            (s(4096, 4096, 4096), 1, NEON, one(faer)),
            // Two threads, long k: with AVX-512, one row block per thread through the
            // blocked kernel (in whole micro-panels: 1000 rows as 504 + 496); with AVX2,
            // the kernel on a shared packed B in chunks of at most 30 rows, at least 32
            // a thread; faer's own split elsewhere.
            (
                s(1000, 1000, 1000),
                2,
                AVX512,
                rows(Blocked(A5), 2, 504, workers),
            ),
            (s(1000, 1000, 1000), 2, AVX2, shared(2, 64)),
            (s(1024, 1024, 1024), 2, AVX2, shared(2, 64)),
            (s(700, 1000, 1000), 2, AVX2, shared(2, 64)),
            (s(512, 512, 512), 2, AVX2, shared(2, 64)),
            (s(2048, 2048, 2048), 2, AVX2, shared(2, 70)),
            (s(4096, 4096, 4096), 2, AVX2, shared(2, 138)),
            (s(4096, 4096, 4096), 3, AVX2, shared(3, 138)),
            (s(100, 1000, 1000), 2, AVX2, shared(2, 17)),
            (s(64, 1000, 1000), 8, AVX2, shared(8, 11)),
            (s(511, 511, 511), 2, AVX2, rows(faer, 2, 256, workers)),
            (s(40, 1000, 1000), 2, AVX2, faer_split(2)),
            // An L2 of 1 MiB: faer's split for at most 384 rows a thread.
            (s(512, 512, 512), 2, AVX2_L2_1M, faer_split(2)),
            (s(768, 1000, 2000), 2, AVX2_L2_1M, faer_split(2)),
            (s(770, 1000, 1000), 2, AVX2_L2_1M, shared(2, 64)),
            (s(1000, 1000, 1000), 2, AVX2_L2_1M, shared(2, 64)),
            (s(1536, 1000, 1000), 4, AVX2_L2_1M, faer_split(4)),
            // An L2 of 2 MiB keeps the shared B.
            (s(512, 512, 512), 2, AVX2_L2_2M, shared(2, 64)),
            (s(768, 1000, 2000), 2, AVX2_L2_2M, shared(2, 64)),
            (
                s(700, 1000, 1000),
                2,
                AVX512,
                rows(Blocked(A5), 2, 352, workers),
            ),
            (
                s(700, 1000, 1000),
                2,
                AVX512_L2_1M,
                rows(Blocked(A5), 2, 352, workers),
            ),
            (s(40, 1000, 1000), 2, AVX512, faer_split(2)),
            (s(1000, 1000, 1000), 2, NEON, faer_split(2)),
            (s(4096, 4096, 4096), 2, NEON, rows(faer, 2, 2048, workers)),
            // Two threads, short k: row blocks of at least 256 rows, at most 4 per
            // thread, through faer; the caller joins short products.
            (s(256, 256, 256), 2, AVX2, rows(faer, 2, 128, all)),
            // Under WAKE_ALL_MIN_FLOPS the caller wakes only the workers it needs.
            (s(128, 128, 128), 2, AVX2, rows(faer, 2, 64, caller)),
            (s(127, 257, 513), 2, AVX512, rows(faer, 2, 64, all)),
            (s(4096, 64, 4096), 2, AVX2, rows(faer, 2, 512, workers)),
            // Narrow: AVX-512's kernel, 4 blocks per thread of at least 512 rows.
            (s(4096, 4096, 64), 1, AVX512, one(Narrow)),
            (s(4096, 4096, 64), 2, AVX512, rows(Narrow, 2, 512, workers)),
            (s(4096, 4096, 64), 1, AVX2, one(faer)),
            // Few rows: B streamed, the inner dimension in ranges of whole passes.
            (s(8, 4096, 4096), 1, AVX2, inner(FewRows(A2), 1, 4096)),
            (s(8, 4096, 4096), 2, AVX512, inner(FewRows(A5), 2, 512)),
            (s(8, 256, 1000), 1, AVX512, one(faer)),
            (s(8, 4096, 4096), 1, NEON, one(faer)),
            // Vector shapes.
            (s(4096, 4096, 1), 1, AVX2, one(mv_avx2)),
            (s(4096, 4096, 1), 2, NEON, rows(mv_portable, 2, 32, all)),
            (
                s(512, 512, 1),
                2,
                AVX2,
                rows(mv(true, false), 2, 32, caller),
            ),
            // Vector × matrix: a block of columns a thread while each has 2048 or
            // more, else ranges of a long inner dimension, else columns again.
            (s(1, 4096, 4096), 2, AVX2, cols(vm, 2, 2048, all)),
            (s(1, 4096, 4096), 4, AVX512, inner(vm, 4, 256)),
            (s(1, 2048, 8192), 2, AVX512, cols(vm, 2, 4096, all)),
            (s(1, 20, 2048), 2, AVX2, cols(vm_cached, 2, 1024, caller)),
            (s(1, 2048, 2048), 1, AVX512, one(vm_cached)),
            (s(1, 2048, 4096), 1, AVX512, one(vm)),
            (s(2048, 4096, 1), 1, AVX2, one(mv_avx2)),
            (s(2048, 2048, 1), 1, AVX2, one(mv(true, false))),
        ];
        for &(shape, threads, features, want) in table {
            assert_eq!(
                plan(shape, threads, &features),
                want,
                "{shape} on {threads} threads, {features:?}"
            );
        }
    }

    #[test]
    fn every_plan_uses_an_available_kernel_and_covers_the_product() {
        let shapes = [
            (2, 3, 2),
            (9, 700, 749),
            (16, 300, 2000),
            (24, 4096, 4096),
            (100, 1000, 1000),
            (515, 300, 2),
            (1001, 100, 300),
            (2100, 520, 40),
            (8192, 8192, 8192),
            (1, 8192, 3),
            (8192, 3, 1),
        ];
        for features in [AVX512, AVX2, NEON, AVX2.limited_to(SimdLimit::Portable)] {
            for threads in [1, 2, 3, 8] {
                for (m, k, n) in shapes {
                    let shape = Shape::new(m, k, n);
                    let p = plan(shape, threads, &features);
                    assert!(p.kernel.available(&features), "{shape}: {p:?}");
                    match p.split {
                        Split::One => {}
                        Split::Rows {
                            threads: t, rows, ..
                        } => {
                            assert!(
                                t == threads && rows > 0 && rows < m.max(2) * 2,
                                "{shape}: {p:?}"
                            );
                        }
                        Split::Columns { cols, .. } => {
                            assert!(m == 1 && cols > 0, "{shape}: {p:?}")
                        }
                        Split::Inner { depth, .. } => assert!(depth > 0, "{shape}: {p:?}"),
                        Split::Shared { threads: t, chunks } => {
                            assert!(
                                t == threads
                                    && matches!(p.kernel, Kernel::Blocked(_))
                                    && chunks > 0
                                    && chunks <= m.div_ceil(MR_AVX2),
                                "{shape}: {p:?}"
                            );
                        }
                        Split::Faer { threads: t } => assert_eq!(t, threads, "{shape}"),
                    }
                    if threads == 1 {
                        assert!(
                            matches!(p.split, Split::One | Split::Inner { threads: 1, .. }),
                            "{shape}: {p:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn thread_count_follows_the_work() {
        assert_eq!(threads_for(Shape::square(64), 8, &AVX2), 1);
        assert_eq!(threads_for(Shape::square(112), 8, &AVX2), 1);
        assert_eq!(threads_for(Shape::square(128), 8, &AVX2), 2);
        assert_eq!(threads_for(Shape::square(112), 8, &AVX512), 1);
        assert_eq!(threads_for(Shape::square(128), 8, &AVX512), 2);
        // Where 2 MFLOP a thread was not measured, 128³ keeps one thread.
        assert_eq!(threads_for(Shape::square(128), 8, &NEON), 1);
        assert_eq!(threads_for(Shape::square(4096), 8, &AVX512), 8);
        // Vector shapes count the matrix streamed, not the flops.
        assert_eq!(threads_for(Shape::new(1, 128, 256), 8, &AVX2), 1);
        assert_eq!(threads_for(Shape::new(1, 4096, 4096), 8, &AVX2), 8);
        assert_eq!(threads_for(Shape::new(4096, 4096, 1), 8, &AVX2), 8);
        assert_eq!(threads_for(Shape::square(4096), 1, &AVX2), 1);
    }
}
