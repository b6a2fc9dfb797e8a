//! The CPU backend: multithreaded f32 GEMM on every platform, through faer and, on
//! Intel CPUs with AVX-512, our own blocked, narrow and few-rows kernels.
//!
//! General shapes go to faer, except on Intel CPUs with AVX-512, where products with a
//! long inner dimension and wide rows of C (k ≥ 256, n ≥ 640, m ≥ 16), on which faer was
//! measured below OpenBLAS, go to our own [`blocked`] kernel, one row block per thread
//! (see [`use_blocked`] and [`split_tall`]), and tall narrow ones (n ≤ 64, m ≥ 512,
//! k ≥ 256) to the [`narrow`] kernel, which packs nothing, in row blocks of at least
//! 512 rows (see [`use_narrow`] and [`narrow_blocks_per_thread`]), and products of 2 to
//! 24 rows whose B does not fit in L2 to the [`few_rows`] kernel, which streams B once
//! (see [`use_few_rows`]);
//! the vector shapes (`m == 1` or `n == 1`) go to the
//! streaming kernels in [`gemv`], because packing a vector costs more than the product.
//!
//! faer was chosen by measurement against OpenBLAS, gemm and matrixmultiply (see the
//! README's "CPU backend" section): it matches OpenBLAS on square and rectangular shapes
//! at one and two threads, is pure Rust (no system BLAS to install), and its packing
//! and micro-kernels dispatch at run time to the widest SIMD the CPU has.
//!
//! Each backend owns a rayon pool of its worker threads. A product worth several
//! threads is admitted through [`permits`], which bound the pool's threads computing
//! at once to its workers: a caller alone gets every thread its product is worth and
//! runs on the pool; a product that finds no thread free runs on its caller's thread
//! at once. A product worth one thread runs on its caller's thread at once, where
//! waiting for a hand-off would cost more than the product.

mod blocked;
mod few_rows;
mod gemv;
mod info;
#[cfg(test)]
mod kernel_tests;
mod narrow;
mod permits;
mod tasks;

use std::time::Instant;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use crate::numeric::{check_finite, first_non_finite};
use crate::shape::DEFAULT_MAX_DIM;
use crate::{
    Backend, BackendKind, DeviceInfo, Error, MatmulOptions, MatmulReport, Method, Result, Shape,
};

pub use info::CpuInfo;

/// A GEMM gets one thread per this many floating-point operations, up to the workers:
/// below it, waking a second thread and splitting the panels costs more than it saves
/// (faer at 64³, 0.5 MFLOP, drops from about 100 GFLOPS on one thread to about 25 on
/// two). 128³ (4.2 MFLOP) stays on one thread; 192³ (14 MFLOP) and larger get two.
/// `perf-compare --shapes 96,128,160,192,256 --threads 1,2` shows the crossover.
const MIN_FLOPS_PER_THREAD: f64 = 4.0e6;

/// A vector shape (memory-bound) gets one thread per this many elements of its matrix:
/// a thread must stream at least 256 KiB for the split to pay.
const MIN_ELEMENTS_PER_THREAD: f64 = 65_536.0;

/// Multithreaded f32 matrix multiplication on the CPU.
#[derive(Debug)]
pub struct CpuBackend {
    pool: rayon::ThreadPool,
    permits: permits::Permits,
    threads: usize,
    max_dim: usize,
    info: CpuInfo,
    /// Whether the CPU is Intel's (see [`use_blocked`]).
    intel: bool,
}

impl CpuBackend {
    /// A backend with one worker per available core, or `FXN_THREADS` when that
    /// environment variable holds a positive number.
    pub fn new() -> Result<Self> {
        let threads = std::env::var("FXN_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&t| t > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        Self::with_threads(threads)
    }

    /// A backend with exactly `threads` workers (at least 1).
    pub fn with_threads(threads: usize) -> Result<Self> {
        if threads == 0 {
            return Err(Error::invalid("the CPU backend needs at least one thread"));
        }
        let info = CpuInfo::detect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("fxn-cpu-{i}"))
            .build()
            .map_err(|e| Error::Unavailable {
                backend: BackendKind::Cpu,
                reason: e.to_string(),
            })?;
        Ok(Self {
            pool,
            permits: permits::Permits::new(threads),
            threads,
            max_dim: DEFAULT_MAX_DIM,
            intel: info.model.contains("Intel"),
            info,
        })
    }

    /// Sets the largest dimension accepted (default [`DEFAULT_MAX_DIM`]).
    pub fn with_max_dim(mut self, max_dim: usize) -> Self {
        self.max_dim = max_dim;
        self
    }

    /// The number of worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The threads a product of `shape` is worth: never more than the workers, and one
    /// for small products. GEMMs are counted in floating-point operations, the vector
    /// shapes (`m == 1` or `n == 1`, memory-bound) in elements of the matrix streamed.
    pub fn threads_for(&self, shape: Shape) -> usize {
        let by_work = if is_vector_shape(shape) {
            shape.flops() / 2.0 / MIN_ELEMENTS_PER_THREAD
        } else {
            shape.flops() / MIN_FLOPS_PER_THREAD
        };
        // Saturating float-to-int cast; at least 1.
        (by_work.floor().max(1.0) as usize).min(self.threads)
    }

    /// What the CPU is.
    pub fn cpu_info(&self) -> &CpuInfo {
        &self.info
    }

    /// `C = A·B` as independent one-thread products over row blocks of C (see
    /// [`split_rows`]), each thread claiming the next block from a shared counter.
    ///
    /// A short product (under [`CALLER_JOINS_MAX_FLOPS`]) starts on the calling thread
    /// at once, with `threads - 1` pool workers joining as they wake: a worker that
    /// wakes late (a sleeping rayon worker, a halted virtual CPU) then costs its wake-up
    /// time at most, not a whole share of the work. Measured on 2 Zen 4 cores with
    /// `fxn-cli bench` (isolated calls, workers asleep between them), 256³ on two threads
    /// went from 102 to 183–192 GFLOPS (median). A longer product runs on the pool's
    /// own workers, which keeps 8 concurrent callers of 4096×64×4096 at 0.91 of one
    /// caller's throughput (0.80 when the callers' threads joined in).
    ///
    /// `per_thread` blocks per thread: several for short inner dimensions (cheap to
    /// repack B for), one for tall products with a long one (see [`split_tall`]).
    fn gemm_row_blocks(
        &self,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        shape: Shape,
        threads: usize,
        per_thread: usize,
    ) {
        // The kernel is chosen once, for a typical block, and runs every block: the
        // last one may be shorter (4200 rows in 8 blocks: 7 of 528 and one of 504), and
        // choosing again for it alone would send it elsewhere (to faer, below the
        // narrow kernel's 512 rows). Blocks for the blocked kernel are whole
        // micro-panels of rows, as even as they can be (1000 rows: 504 and 496, where
        // 16-row units gave 512 and 488).
        let part = Shape::new(shape.m.div_ceil(threads * per_thread), shape.k, shape.n);
        let kernel = self.one_thread_kernel(part);
        let unit = if kernel == OneThread::Blocked {
            blocked::MR
        } else {
            16
        };
        let rows = shape.m.div_ceil(unit).div_ceil(threads * per_thread) * unit;
        let blocks = c.chunks_mut(rows * shape.n).zip(a.chunks(rows * shape.k));
        let caller_joins = shape.flops() < CALLER_JOINS_MAX_FLOPS;
        tasks::run(&self.pool, threads, caller_joins, blocks, |(c, a)| {
            let part = Shape::new(c.len() / shape.n, shape.k, shape.n);
            kernel.run(a, b, c, part);
        });
    }

    /// The kernel for a one-thread product of `shape`: the blocked kernel or the narrow
    /// one where they are chosen (see [`use_blocked`] and [`use_narrow`]), faer
    /// elsewhere.
    fn one_thread_kernel(&self, shape: Shape) -> OneThread {
        if use_blocked(shape, self.intel) {
            OneThread::Blocked
        } else if use_narrow(shape, self.intel) {
            OneThread::Narrow
        } else {
            OneThread::Faer
        }
    }
}

/// A kernel that runs a product on the calling thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OneThread {
    /// [`blocked::gemm`].
    Blocked,
    /// [`narrow::gemm`].
    Narrow,
    /// faer's one-thread product.
    Faer,
}

impl OneThread {
    /// `C = A·B` for `shape` on the calling thread, through this kernel.
    fn run(self, a: &[f32], b: &[f32], c: &mut [f32], shape: Shape) {
        match self {
            Self::Blocked => blocked::gemm(a, b, c, shape.m, shape.k, shape.n),
            Self::Narrow => narrow::gemm(a, b, c, shape.m, shape.k, shape.n),
            Self::Faer => gemm(a, b, c, shape, Par::Seq),
        }
    }
}

/// `C = A·B` through faer with parallelism `par`.
fn gemm(a: &[f32], b: &[f32], c: &mut [f32], shape: Shape, par: Par) {
    let lhs = MatRef::from_row_major_slice(a, shape.m, shape.k);
    let rhs = MatRef::from_row_major_slice(b, shape.k, shape.n);
    let dst = MatMut::from_row_major_slice_mut(c, shape.m, shape.n);
    matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, par);
}

/// Whether a multi-threaded GEMM should run as independent one-thread products over
/// row blocks of C instead of one faer call sharing its packed panels. With a short
/// inner dimension each block's packing of B is cheap and the threads never wait on
/// each other. Measured on 2 Zen 4 cores, best of 20, split against faer's own split:
/// 4096×64×4096 203 against 181 GFLOPS, 256³ 210 against 179, 127×257×513 192
/// against 174, 512³ 224 against 222; from k = 768 up faer's is as fast or faster
/// (1000³: 218 against 208), hence [`SPLIT_MAX_K`].
fn split_rows(shape: Shape, threads: usize) -> bool {
    shape.k <= SPLIT_MAX_K && shape.m >= threads * SPLIT_MIN_ROWS
}

/// Whether a multi-threaded GEMM with a long inner dimension (k > [`SPLIT_MAX_K`])
/// should run as one row block per thread, each a one-thread product with its own
/// packing, instead of faer's own split: when every thread gets at least
/// [`SPLIT_TALL_MIN_ROWS`] rows, or when the blocks go to the blocked kernel.
///
/// Measured on 2 Intel Xeon vCPUs, blocks through faer, with `perf-compare --threads
/// 2`, best (median): 2048³ 216 (173) against faer's split 187 (168), 4096³ 206 (200)
/// against 188 (156); OpenBLAS 233 and 243–252 in the same runs. Blocks through the
/// blocked kernel (KC = 384), median of 21 rounds, each against OpenBLAS in the same
/// round: 1024³ 0.99 (faer's split 0.95), 2048³ 0.99 (0.94), 4096³ 0.98 (0.92),
/// 1000³ 0.96 (1.00).
fn split_tall(shape: Shape, threads: usize, cpu_intel: bool) -> bool {
    let rows = shape.m / threads;
    let block = Shape::new(rows, shape.k, shape.n);
    shape.k > SPLIT_MAX_K
        && (rows >= SPLIT_TALL_MIN_ROWS
            || (rows >= SPLIT_BLOCKED_MIN_ROWS && use_blocked(block, cpu_intel)))
}

/// The fewest rows of C per thread [`split_tall`] gives the blocked kernel. Each block
/// packs all of B for itself, which few rows do not pay for: on two Intel Xeon vCPUs,
/// best GFLOPS, 16×1000×1000 reached 65 in two 8-row blocks against 87 through faer's
/// own split; 64×1000×1000 133 against 134.
const SPLIT_BLOCKED_MIN_ROWS: usize = 64;

/// The fewest rows of C per thread [`split_tall`] accepts.
const SPLIT_TALL_MIN_ROWS: usize = 1024;

/// Below this many floating-point operations (about 1 ms on one core) the calling
/// thread works on a row-split product itself; see [`CpuBackend::gemm_row_blocks`].
const CALLER_JOINS_MAX_FLOPS: f64 = 1.0e8;

/// The longest inner dimension [`split_rows`] accepts.
const SPLIT_MAX_K: usize = 512;

/// Row blocks per thread: more than one, so a worker that wakes late takes a share of
/// the blocks instead of leaving its half to the first worker.
const SPLIT_BLOCKS_PER_THREAD: usize = 4;

/// The fewest rows of C per thread [`split_rows`] accepts (127×257×513 qualifies).
const SPLIT_MIN_ROWS: usize = 60;

/// Whether a one-thread GEMM takes the [`blocked`] AVX-512 kernel instead of faer: on
/// Intel CPUs with AVX-512, for C rows of 640 columns or more, an inner dimension of
/// 256 or more, and 16 rows or more. `cpu_intel` is whether the CPU's vendor is Intel.
///
/// Measured on 2 Intel Xeon vCPUs under KVM, one thread:
/// - faer 0.24's AVX-512 path (its `private-gemm-x86` blocking) loses 30–45% on rows of
///   768 to 1023 columns with fewer than 1024 rows (1000³: 52–65 GFLOPS through faer,
///   80–100 through the first version of the blocked kernel, OpenBLAS 107–118).
/// - With KC = 384 (see [`blocked`]), median of 21 paired rounds against OpenBLAS in
///   the same round: 2048³ 0.97 (faer 0.95), 4096³ 0.98 (faer 0.90), 1024³ and
///   768×1024×1024 the same as faer (1.02).
/// - The band reaches below k = 512, where the first version of this rule left faer:
///   1000×500×1000 through faer 55–73 GFLOPS on one thread and 103–132 on two
///   (OpenBLAS 110–113 and 186–209 in the same runs), through the 8 × 48 kernel 111 and
///   174–206; 1000×384×1000 70–83 (one thread) and 140 (two) through faer, 103–121 and
///   200–207 through the kernel. Hence k ≥ 256 since 2026-11-26: at k = 256–300
///   (1000×256×1000, 768×300×800, 2048×256×2048) both were level.
/// - The n and m edges, measured again with the 8 × 48 kernel on 2026-11-26
///   (`perf-compare --threads 1`, the rule widened so that the `ours` column ran the
///   kernel; best GFLOPS, kernel against faer): the band reaches below n = 768
///   (1000×1000×640 91 / 86, ×700 103 / 80, ×760 91 / 81, 2048×1000×640 88 / 80,
///   500×1000×700 91 / 79), not below 640 (1000×1000×576 86 / 89, ×512 110 / 116,
///   ×256 105 / 120, 2048×2048×512 106 / 115). Few rows are a band of their own, where
///   faer falls further: 16×1000×1000 53 / 39, 32×1000×1000 69 / 44, 64×1000×1000
///   77 / 43, 128×1000×1000 82 / 44, 16×4096×4096 34 / 23, 64×4096×4096 67 / 50,
///   12×2000×2000 42 / 19, 16×300×2000 60 / 45, 16×256×1000 65 / 62; with 8 rows or
///   fewer faer was level or ahead (8×1000×1000 34 / 34, 8×256×1000 43 / 86, 4×1000×1000
///   20 / 28). Hence n ≥ 640 and m ≥ 16 since then (n ≥ 768 and m ≥ 64 before).
/// - Outside this region faer stays: on narrower products (n = 576 or less) and small
///   ones it was as fast or faster. On AMD Zen 4 faer showed no such loss (1000³ at
///   105 GFLOPS, OpenBLAS 101), so other vendors keep faer everywhere.
fn use_blocked(shape: Shape, cpu_intel: bool) -> bool {
    cpu_intel && blocked::available() && shape.m >= 16 && shape.k >= 256 && shape.n >= 640
}

/// Whether a one-thread GEMM takes the [`narrow`] AVX-512 kernel (A and B unpacked)
/// instead of faer: on Intel CPUs with AVX-512, for C of at most 64 columns, 512 rows or
/// more and an inner dimension of 256 or more. (The vector shapes, `n == 1`, never get
/// here.) On several threads such products run as row blocks of at least 512 rows, each
/// through the narrow kernel (see [`narrow_blocks_per_thread`]).
///
/// Measured on 2 Intel Xeon vCPUs under KVM, one thread, median of 7–15 interleaved
/// rounds, narrow kernel / faer / OpenBLAS in GFLOPS (the machine in a slow phase for
/// some rows: compare within a row):
/// - 4096×4096×64: 111–123 / 80–90 / 61–76; ×32: 76–78 / 55 / 50; ×16: 58 / 35 / 30;
/// - 1000×1000×64: 90–106 / 80 / 65; 512×4096×64: 101–104 / 95 / 76;
///   4096×256×64: 97 / 71 / 64; 500×1000×48: 86–88 / 80 / 68;
/// - where faer kept up: 256×4096×64 88 / 102, 256×1000×64 100 / 100, 64×4096×64 77 /
///   98, 4096×64×64 119 / 121. Hence 512 rows and k ≥ 256.
///
/// On AMD Zen 4 it was not measured, so other vendors keep faer.
fn use_narrow(shape: Shape, cpu_intel: bool) -> bool {
    cpu_intel && narrow::available() && shape.n <= narrow::MAX_N && shape.m >= 512 && shape.k >= 256
}

/// Row blocks per thread for a product [`use_narrow`] takes, on several threads: as
/// many as [`SPLIT_BLOCKS_PER_THREAD`] while each keeps [`NARROW_MIN_ROWS`] rows (so it
/// still goes to the narrow kernel), or `None` when the product is not narrow or
/// cannot give every thread that many rows.
///
/// Several blocks per thread, claimed as threads come free, because the narrow kernel
/// packs nothing, so a block costs nothing to start, and a thread that falls behind
/// (a worker woken late, a busy host core) then leaves fewer rows to the other.
/// 4096×4096×64 on 2 Intel Xeon vCPUs, median of 15 interleaved rounds: 175–185 GFLOPS
/// with 4 blocks per thread against 136–151 with one (faer's own split: 142–149, in the
/// same rounds).
fn narrow_blocks_per_thread(shape: Shape, threads: usize, cpu_intel: bool) -> Option<usize> {
    let per_thread = (shape.m / (threads * NARROW_MIN_ROWS)).min(SPLIT_BLOCKS_PER_THREAD);
    (per_thread >= 1 && use_narrow(shape, cpu_intel)).then_some(per_thread)
}

/// The fewest rows of C [`use_narrow`] sends to the narrow kernel.
const NARROW_MIN_ROWS: usize = 512;

/// Whether a GEMM on `threads` threads takes the [`few_rows`] AVX-512 kernel (B
/// streamed once, unpacked) instead of faer or the blocked kernel: on Intel CPUs with
/// AVX-512, for C of 2 to 15 rows when B has at least 2^19 elements (2 MiB, more than
/// the Xeon's L2), of 16 to 24 rows when it has at least 2^21 (8 MiB); on several
/// threads, when B has at least 2^22 (16 MiB).
///
/// Measured on 2 Intel Xeon vCPUs, 2026-11-26, `perf-compare --threads 1` with this rule
/// widened so that `ours` ran the kernel, best GFLOPS, kernel / faer / OpenBLAS:
/// - B beyond L2: 2×4096×4096 15 / 4 / 2, 8×4096×4096 32 / 14 / 8, 15×4096×4096
///   50 / 23 / 13, 12×2048×2048 52 / 19 / 14, 15×1500×1500 72 / 46 / 42, 15×1000×1000
///   71 / 41 / 42, 12×1000×1000 63 / 43 / 50, 2×1000×1000 21 / 17 / 10, 4×1000×1000
///   43 / 32 / 20, 8×1000×1000 46 / 37 / 33, 8×500×1000 57 / 42 / 39, 12×512×1024
///   61 / 53 / 48, 4×512×2048 39 / 31 / 15, 8×2048×512 52 / 42 / 26;
/// - B in L2, where the libraries' packed kernels win: 8×256×1000 65 / 90 / 52,
///   8×1000×64 69 / 60 / 138, 15×256×256 83 / 71 / 115, 8×64×4096 40 / 59 / 45;
/// - 16 to 24 rows, where the blocked kernel is the alternative (its figure, from a run
///   with this path limited to 15 rows, after the slash): 24×4096×4096 54 / 39 (faer;
///   a harness with this kernel's loop put the blocked kernel at 45 against 52),
///   16×4096×4096 48 / 25 (faer; the harness: 35 against 52), 24×2048×2048 63 / 34
///   (faer; the harness: 60 against 71), 24×1000×2000 80 / 69, 16×1000×1000
///   61–70 / 57, 20×512×1024 61–73 / 64, 24×700×749 72–74 / 71: ahead from B of 2^21
///   elements, level below.
///
/// The first version padded its scratch copy of C to a stride of 1024 floats for
/// n = 1000 (see `few_rows`), which put 15×1000×1000 at 32 GFLOPS, behind the
/// libraries; the figures above are with the stride fixed.
///
/// Two threads (`--threads 2`, the inner dimension split between them), kernel / faer's
/// own split: 2×4096×4096 26–32 / 8, 8×4096×4096 66–67 / 22–23, 15×2048×2048 76–106 /
/// 49–54, 16×4096×4096 83 / 31, 24×2048×2048 95 / 35; but 8×500×1000 102 / 104,
/// 4×512×2048 41 / 58, 15×1500×1500 78 / 93, where faer's split scaled as well or
/// better. Measured again with the scratch stride fixed, two runs, the rule lowered to
/// 2^18 on two threads: 8×500×1000 57–68 / 98–105, 8×1000×1000 61–64 / 77–80,
/// 12×1000×1000 58–67 / 95–105, 20×1000×2000 80–88 / 114, 15×1500×1500 71–80 / 78–86,
/// 4×1000×2048 45–51 / 46–48: below 2^22 elements faer's split stays ahead or level.
fn use_few_rows(shape: Shape, threads: usize, cpu_intel: bool) -> bool {
    let b_elements = shape.k * shape.n;
    let min_b = if threads > 1 {
        1 << 22
    } else if shape.m <= 15 {
        1 << 19
    } else {
        1 << 21
    };
    cpu_intel
        && few_rows::available()
        && (2..=few_rows::MAX_M).contains(&shape.m)
        && b_elements >= min_b
}

/// True for matrix × vector (`n == 1`) and vector × matrix (`m == 1`), which take the
/// streaming kernels instead of the GEMM.
fn is_vector_shape(shape: Shape) -> bool {
    shape.m == 1 || shape.n == 1
}

impl Backend for CpuBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn device_info(&self) -> DeviceInfo {
        self.info.device_info(self.threads)
    }

    fn methods(&self) -> Vec<Method> {
        Vec::new()
    }

    fn matmul_with(
        &self,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        shape: Shape,
        options: &MatmulOptions,
    ) -> Result<MatmulReport> {
        let start = Instant::now();
        shape.check(a.len(), b.len(), c.len(), self.max_dim)?;
        if options.method != Method::Auto {
            return Err(Error::invalid(format!(
                "method `{}` is a Metal method; the CPU backend has only `auto`",
                options.method
            )));
        }
        // Finiteness: a degenerate product computes nothing, so its inputs are scanned
        // first; any other is scanned through C (below).
        if options.check_finite && shape.is_degenerate() {
            check_finite("A", a, shape.k)?;
            check_finite("B", b, shape.n)?;
        }
        if shape.is_degenerate() {
            c.fill(0.0);
        } else {
            // Products worth several threads are admitted through the permits (see
            // [`permits`]): a call takes what is free and, if nothing is, runs on this
            // caller's thread alone. One thread runs on this caller's thread.
            let want = self.threads_for(shape);
            let held = if want == 1 {
                None
            } else {
                self.permits.try_acquire(want)
            };
            let threads = held.as_ref().map_or(1, permits::Held::count);
            if is_vector_shape(shape) {
                if shape.n == 1 {
                    gemv::matrix_vector(&self.pool, a, b, c, shape.k, threads);
                } else {
                    gemv::vector_matrix(&self.pool, a, b, c, shape.n, threads);
                }
            } else if use_few_rows(shape, threads, self.intel) {
                let dims = (shape.m, shape.k, shape.n);
                few_rows::gemm(&self.pool, threads, a, b, c, dims);
            } else if threads == 1 {
                self.one_thread_kernel(shape).run(a, b, c, shape);
            } else if let Some(per_thread) = narrow_blocks_per_thread(shape, threads, self.intel) {
                self.gemm_row_blocks(a, b, c, shape, threads, per_thread);
            } else if split_rows(shape, threads) {
                self.gemm_row_blocks(a, b, c, shape, threads, SPLIT_BLOCKS_PER_THREAD);
            } else if split_tall(shape, threads, self.intel) {
                self.gemm_row_blocks(a, b, c, shape, threads, 1);
            } else {
                self.pool
                    .install(|| gemm(a, b, c, shape, Par::rayon(threads)));
            }
            drop(held);
        }
        if options.check_finite && first_non_finite(c).is_some() {
            // Every kernel computes every term A[i,p]·B[p,j] of C[i,j] (none skips a
            // zero), and a NaN or infinity in a term makes the sum NaN or infinite
            // (∞·0 is NaN, ∞ − ∞ too), so a non-finite A or B always reaches C. Only
            // then are A and B scanned, to name the operand it came from; a finite A and
            // B leave an overflow, reported in C. Scanning A and B before every product
            // cost 30–45% of a 4096×4096×64 product (a 64 MiB A against 17 ms of work).
            check_finite("A", a, shape.k)?;
            check_finite("B", b, shape.n)?;
            check_finite("C", c, shape.n)?;
        }
        Ok(MatmulReport {
            backend: BackendKind::Cpu,
            method: Method::Auto,
            total: start.elapsed(),
            gpu: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_count_follows_the_work() {
        let cpu = CpuBackend::with_threads(8).unwrap();
        assert_eq!(cpu.threads_for(Shape::square(64)), 1);
        assert_eq!(cpu.threads_for(Shape::square(128)), 1);
        assert_eq!(cpu.threads_for(Shape::square(4096)), 8);
        // Vector shapes count the matrix streamed, not the flops.
        assert_eq!(cpu.threads_for(Shape::new(1, 128, 256)), 1);
        assert_eq!(cpu.threads_for(Shape::new(1, 4096, 4096)), 8);
        assert_eq!(cpu.threads_for(Shape::new(4096, 4096, 1)), 8);
        let one = CpuBackend::with_threads(1).unwrap();
        assert_eq!(one.threads_for(Shape::square(4096)), 1);
        assert!(CpuBackend::with_threads(0).is_err());
    }

    /// Multiplies patterned matrices of `shape` on `cpu` and checks C against the f64
    /// reference.
    fn assert_matches_reference(cpu: &CpuBackend, shape: Shape) {
        let dims = (shape.m, shape.k, shape.n);
        let (a, b) = kernel_tests::patterned(shape.m, shape.k, shape.n);
        kernel_tests::check_product((&a, &b), dims, |a, b, c| {
            cpu.matmul_into(a, b, c, shape).unwrap();
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn the_blocked_region_matches_the_reference() {
        // One thread, shapes inside and at the edges of the region `use_blocked` sends to
        // the blocked kernel (on an Intel CPU with AVX-512; faer elsewhere).
        let cpu = CpuBackend::with_threads(1).unwrap();
        let shapes = [
            Shape::new(100, 520, 800),
            Shape::new(64, 512, 768),
            Shape::new(16, 256, 640),
            Shape::new(21, 1000, 700),
            Shape::new(70, 256, 800),
            Shape::new(130, 300, 1000),
            Shape::new(1023, 700, 1023),
            Shape::new(1030, 900, 1100),
        ];
        for shape in shapes {
            assert!(use_blocked(shape, true) == blocked::available(), "{shape}");
            assert_matches_reference(&cpu, shape);
        }
        assert!(!use_blocked(Shape::new(15, 1000, 1024), true));
        assert!(!use_blocked(Shape::new(1000, 255, 1000), true));
        assert!(!use_blocked(Shape::new(1000, 1000, 639), true));
        assert!(!use_blocked(Shape::new(1000, 1000, 1000), false));
    }

    #[test]
    fn the_narrow_region_matches_the_reference() {
        // One thread, and two (one row block per thread), at the edges of the region
        // `use_narrow` sends to the narrow kernel (on an Intel CPU with AVX-512).
        let shapes = [
            Shape::new(512, 256, 64),
            Shape::new(515, 300, 2),
            Shape::new(1100, 700, 33),
            Shape::new(2050, 600, 17),
            Shape::new(4200, 260, 64),
        ];
        for threads in [1, 2] {
            let cpu = CpuBackend::with_threads(threads).unwrap();
            for shape in shapes {
                assert!(use_narrow(shape, true) == narrow::available(), "{shape}");
                assert_matches_reference(&cpu, shape);
            }
        }
        assert!(!use_narrow(Shape::new(511, 1000, 64), true));
        assert!(!use_narrow(Shape::new(1000, 255, 64), true));
        assert!(!use_narrow(Shape::new(1000, 1000, 65), true));
        assert!(!use_narrow(Shape::new(1000, 1000, 64), false));
        // Blocks of at least 512 rows, at most 4 per thread.
        let per_thread = |m| narrow_blocks_per_thread(Shape::new(m, 1000, 64), 2, true);
        if narrow::available() {
            assert_eq!(per_thread(1000), None);
            assert_eq!(per_thread(1024), Some(1));
            assert_eq!(per_thread(3000), Some(2));
            assert_eq!(per_thread(4096), Some(4));
            assert_eq!(per_thread(9000), Some(4));
        } else {
            assert_eq!(per_thread(4096), None);
        }
    }

    #[test]
    fn the_few_rows_region_matches_the_reference() {
        // One and two threads (the inner dimension split into tasks), at the edges of
        // the region `use_few_rows` sends to the few-rows kernel (on an Intel CPU with
        // AVX-512).
        let one_thread = [
            Shape::new(2, 1024, 512),
            Shape::new(8, 700, 749),
            Shape::new(9, 700, 749),
            Shape::new(15, 1500, 1400),
            Shape::new(16, 2048, 1024),
            Shape::new(24, 1001, 2100),
        ];
        let two_threads = [Shape::new(3, 2048, 2048), Shape::new(15, 1001, 4200)];
        for (threads, shapes) in [(1, &one_thread[..]), (2, &two_threads[..])] {
            let cpu = CpuBackend::with_threads(threads).unwrap();
            for &shape in shapes {
                assert_eq!(cpu.threads_for(shape), threads, "{shape}");
                let chosen = use_few_rows(shape, threads, true);
                assert!(chosen == few_rows::available(), "{shape}");
                assert_matches_reference(&cpu, shape);
            }
        }
        assert!(!use_few_rows(Shape::new(8, 256, 1000), 1, true));
        assert!(!use_few_rows(Shape::new(15, 700, 748), 1, true));
        assert!(!use_few_rows(Shape::new(16, 1000, 1000), 1, true));
        assert!(!use_few_rows(Shape::new(25, 4096, 4096), 1, true));
        assert!(!use_few_rows(Shape::new(1, 4096, 4096), 1, true));
        assert!(!use_few_rows(Shape::new(8, 4096, 4096), 1, false));
        assert!(!use_few_rows(Shape::new(8, 2048, 1000), 2, true));
    }

    #[test]
    fn every_path_matches_the_reference() {
        let cpu = CpuBackend::with_threads(2).unwrap();
        let shapes = [
            Shape::new(1, 300, 700),
            Shape::new(700, 300, 1),
            Shape::new(1, 1, 1),
            Shape::new(2, 3, 2),
            Shape::new(127, 257, 513),
            Shape::new(300, 64, 300),
            // Split into row blocks of 501 and 500 (k ≤ 256, two threads).
            Shape::new(1001, 100, 300),
            Shape::new(2100, 520, 40),
            // One row block per thread through the blocked kernel on Intel AVX-512.
            Shape::new(300, 600, 800),
        ];
        assert!(split_rows(Shape::new(1001, 100, 300), 2));
        // One row block per thread: k > 512 and 1050 rows each.
        assert!(split_tall(Shape::new(2100, 520, 40), 2, cpu.intel));
        assert_eq!(
            split_tall(Shape::new(1000, 1000, 1000), 2, cpu.intel),
            use_blocked(Shape::new(500, 1000, 1000), cpu.intel)
        );
        assert!(!split_tall(Shape::new(1000, 1000, 1000), 2, false));
        // Blocks of 50 rows: too few to pay for packing all of B each.
        assert!(!split_tall(Shape::new(100, 1000, 1000), 2, true));
        assert_eq!(cpu.threads_for(Shape::new(1001, 100, 300)), 2);
        for shape in shapes {
            assert_matches_reference(&cpu, shape);
        }
    }
}
