//! The CPU backend: multithreaded f32 GEMM on every platform.
//!
//! A call goes one way: validate, take thread permits, [`plan::plan`] (shape, threads,
//! CPU features → kernel and split), [`exec::run`] (the split on the pool), the
//! finiteness check. The kernels (`kernels/`) are faer 0.24 for general shapes and our
//! own where measurement put them ahead: a cache-blocked GEMM (AVX-512F and AVX2+FMA),
//! a kernel for narrow C and one for few rows of C (B streamed unpacked), and
//! streaming matrix × vector and vector × matrix. Kernels are chosen by the features
//! detected at run time ([`features::CpuFeatures`]), never by the CPU's name; on
//! aarch64 (Apple silicon) faer and the portable vector kernels run.
//!
//! Each backend owns a rayon pool of its worker threads. A product worth several
//! threads is admitted through [`permits`], which bound the pool's threads computing at
//! once to its workers; a product that finds no thread free, or is worth one, runs on
//! its caller's thread at once.

mod caches;
mod exec;
mod features;
mod info;
mod kernels;
mod permits;
mod plan;
mod tasks;

use std::time::Instant;

use crate::numeric::{check_finite, first_non_finite};
use crate::shape::DEFAULT_MAX_DIM;
use crate::{
    Backend, BackendKind, DeviceInfo, Error, MatmulOptions, MatmulReport, Method, Result, Shape,
};
use features::CpuFeatures;

pub use features::{SIMD_ENV, SimdLimit};
pub use info::CpuInfo;

/// Multithreaded f32 matrix multiplication on the CPU.
#[derive(Debug)]
pub struct CpuBackend {
    pool: rayon::ThreadPool,
    permits: permits::Permits,
    threads: usize,
    max_dim: usize,
    info: CpuInfo,
    /// What the CPU has, before the limit.
    detected: CpuFeatures,
    limit: SimdLimit,
    /// What the plan chooses kernels by: `detected` less what `limit` excludes.
    features: CpuFeatures,
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

    /// A backend with exactly `threads` workers (at least 1). Its kernels use what the
    /// CPU has, limited by `FXN_CPU_SIMD` ([`SIMD_ENV`]) when that is set; a value that
    /// is not a [`SimdLimit`] name is an error.
    pub fn with_threads(threads: usize) -> Result<Self> {
        if threads == 0 {
            return Err(Error::invalid("the CPU backend needs at least one thread"));
        }
        let limit = match std::env::var(SIMD_ENV) {
            Ok(v) if !v.trim().is_empty() => v
                .parse::<SimdLimit>()
                .map_err(|e| Error::invalid(format!("{SIMD_ENV}: {e}")))?,
            _ => SimdLimit::Avx512,
        };
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
            detected: CpuFeatures::detect(),
            limit: SimdLimit::Avx512,
            features: CpuFeatures::detect(),
            info,
        }
        .with_simd_limit(limit))
    }

    /// Limits this backend's own kernels to `limit` (replacing any earlier limit, the
    /// one from `FXN_CPU_SIMD` included). Never adds what the CPU lacks. The
    /// [`CpuInfo::simd`] of [`Self::cpu_info`] then names what the kernels use.
    pub fn with_simd_limit(mut self, limit: SimdLimit) -> Self {
        self.limit = limit;
        self.features = self.detected.limited_to(limit);
        let detected = CpuInfo::detect().simd;
        self.info.simd = if self.features == self.detected {
            detected
        } else {
            format!(
                "{} (limited; the CPU has {detected})",
                limited_simd(&self.features)
            )
        };
        self
    }

    /// The limit on this backend's kernels ([`SimdLimit::Avx512`]: none).
    pub fn simd_limit(&self) -> SimdLimit {
        self.limit
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
        plan::threads_for(shape, self.threads, &self.features)
    }

    /// What the CPU is.
    pub fn cpu_info(&self) -> &CpuInfo {
        &self.info
    }
}

/// The widest ISA left in `features` after a limit, in [`CpuInfo::simd`]'s words.
fn limited_simd(features: &CpuFeatures) -> &'static str {
    if features.avx512f {
        "avx512f"
    } else if features.avx2_fma {
        "avx2+fma"
    } else {
        "portable"
    }
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
                "method `{}` is a GPU method; the CPU backend has only `auto`",
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
            let plan = plan::plan(shape, threads, &self.features);
            exec::run(&self.pool, plan, a, b, c, shape);
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
    fn a_backend_needs_a_thread() {
        assert!(CpuBackend::with_threads(0).is_err());
        assert_eq!(CpuBackend::with_threads(3).unwrap().threads(), 3);
    }

    #[test]
    fn a_simd_limit_narrows_the_plan_and_the_info() {
        let cpu = CpuBackend::with_threads(1).unwrap();
        let detected = CpuFeatures::detect();
        let portable = cpu.with_simd_limit(SimdLimit::Portable);
        assert_eq!(portable.simd_limit(), SimdLimit::Portable);
        // Without our x86 kernels a mid-size product goes to faer.
        assert_eq!(
            plan::plan(Shape::new(512, 512, 512), 1, &portable.features).kernel,
            kernels::Kernel::Faer { avx2_only: false }
        );
        let avx2 = portable.with_simd_limit(SimdLimit::Avx2);
        assert!(!avx2.features.avx512f);
        // faer is held to AVX2 where the limit took AVX-512 away (a 256³ product on one
        // thread is faer's under the AVX2 plan).
        assert_eq!(
            plan::plan(Shape::square(256), 1, &avx2.features).kernel,
            kernels::Kernel::Faer {
                avx2_only: detected.avx512f
            }
        );
        assert_eq!(avx2.features.avx2_fma, detected.avx2_fma);
        if detected.avx512f {
            assert!(avx2.cpu_info().simd.starts_with("avx2+fma (limited"));
        }
        let full = avx2.with_simd_limit(SimdLimit::Avx512);
        assert_eq!(full.features, detected);
        assert_eq!(full.cpu_info().simd, CpuInfo::detect().simd);
    }

    #[test]
    fn every_path_matches_the_reference() {
        // One shape in each region of the plan on this CPU (few rows, narrow, blocked,
        // short-k and tall row splits, faer's split, the vector shapes), on one and two
        // threads, with random operands against the f64 reference. The largest is
        // 520×700×530 (the tall block, two NC blocks, partial tiles): 1030×900×1100
        // took most of this binary's 170 s in CI's debug build.
        let shapes = [
            Shape::new(1, 300, 700),
            Shape::new(700, 300, 1),
            Shape::new(1, 1, 1),
            Shape::new(2, 3, 2),
            Shape::new(8, 2048, 300),
            Shape::new(15, 1001, 4200),
            Shape::new(127, 257, 513),
            Shape::new(300, 64, 300),
            Shape::new(1001, 100, 300),
            Shape::new(1030, 200, 130),
            Shape::new(2100, 520, 40),
            Shape::new(515, 300, 2),
            Shape::new(300, 600, 800),
            Shape::new(130, 700, 1030),
            Shape::new(520, 700, 530),
        ];
        for (threads, limit) in [1, 2]
            .into_iter()
            .flat_map(|t| SimdLimit::ALL.map(|l| (t, l)))
        {
            let cpu = CpuBackend::with_threads(threads)
                .unwrap()
                .with_simd_limit(limit);
            for shape in shapes {
                let (m, k, n) = (shape.m, shape.k, shape.n);
                let (a, b) = kernels::tests::random(m as u64 ^ n as u64, m, k, n);
                kernels::tests::check_product((&a, &b), (m, k, n), |a, b, c| {
                    cpu.matmul_into(a, b, c, shape).unwrap();
                })
                .unwrap_or_else(|e| {
                    panic!(
                        "{threads} threads, limit {limit}, {:?}: {e}",
                        plan::plan(shape, threads, &cpu.features)
                    )
                });
            }
        }
    }
}
