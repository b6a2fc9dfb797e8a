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
mod rules;
mod tasks;

use std::time::Instant;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use crate::numeric::{check_finite, first_non_finite};
use crate::shape::DEFAULT_MAX_DIM;
use crate::{
    Backend, BackendKind, DeviceInfo, Error, MatmulOptions, MatmulReport, Method, Result, Shape,
};
use rules::{
    CALLER_JOINS_MAX_FLOPS, is_vector_shape, narrow_blocks_per_thread, split_rows,
    split_rows_blocks_per_thread, split_tall, use_blocked, use_few_rows, use_narrow,
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
        if shape.is_degenerate() {
            // Nothing is computed, so a non-finite input cannot reach C: the inputs are
            // scanned here, and C (zeros) is not.
            if options.check_finite {
                check_finite("A", a, shape.k)?;
                check_finite("B", b, shape.n)?;
            }
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
                let per_thread = split_rows_blocks_per_thread(shape, threads, self.intel);
                self.gemm_row_blocks(a, b, c, shape, threads, per_thread);
            } else if split_tall(shape, threads, self.intel) {
                self.gemm_row_blocks(a, b, c, shape, threads, 1);
            } else {
                self.pool
                    .install(|| gemm(a, b, c, shape, Par::rayon(threads)));
            }
            drop(held);
        }
        if options.check_finite && !shape.is_degenerate() && first_non_finite(c).is_some() {
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
            // Split into row blocks (k ≤ 512, two threads): on Intel one per thread, of
            // 512 and 489 rows; elsewhere seven of 128 rows and one of 105.
            Shape::new(1001, 100, 300),
            // On Intel two blocks per thread, of 272 rows but the last (214).
            Shape::new(1030, 200, 130),
            Shape::new(2100, 520, 40),
            // One row block per thread through the blocked kernel on Intel AVX-512.
            Shape::new(300, 600, 800),
        ];
        assert!(split_rows(Shape::new(1001, 100, 300), 2));
        assert!(split_rows(Shape::new(1030, 200, 130), 2));
        for (m, intel, per_thread) in [(1001, true, 1), (1001, false, 4), (1030, true, 2)] {
            let shape = Shape::new(m, 200, 130);
            assert_eq!(split_rows_blocks_per_thread(shape, 2, intel), per_thread);
        }
        // Blocks of at least 256 rows on Intel, at most four per thread.
        assert_eq!(
            split_rows_blocks_per_thread(Shape::new(127, 257, 513), 2, true),
            1
        );
        assert_eq!(
            split_rows_blocks_per_thread(Shape::new(4096, 64, 4096), 2, true),
            4
        );
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
