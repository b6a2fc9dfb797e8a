//! The CPU backend: multithreaded f32 GEMM through faer, on every platform.
//!
//! faer was chosen by measurement against OpenBLAS, gemm and matrixmultiply (see the
//! README's "CPU backend" section): it matches OpenBLAS on square and rectangular shapes
//! at one and two threads, is pure Rust (no system BLAS to install), and its packing
//! and micro-kernels dispatch at run time to the widest SIMD the CPU has.
//!
//! Each backend owns a rayon pool of its worker threads: every call, from however many
//! caller threads, runs on that pool, so concurrent callers share the cores instead of
//! oversubscribing them.

mod info;

use std::time::Instant;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use crate::numeric::check_finite;
use crate::shape::DEFAULT_MAX_DIM;
use crate::{
    Backend, BackendKind, DeviceInfo, Error, MatmulOptions, MatmulReport, Method, Result, Shape,
};

pub use info::CpuInfo;

/// Below this many floating-point operations a product runs on one thread: splitting
/// it costs more than it saves (64³ is about 0.5 MFLOP).
const MIN_FLOPS_PER_THREAD: f64 = 4.0e6;

/// Multithreaded f32 matrix multiplication on the CPU.
#[derive(Debug)]
pub struct CpuBackend {
    pool: rayon::ThreadPool,
    threads: usize,
    max_dim: usize,
    info: CpuInfo,
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
            threads,
            max_dim: DEFAULT_MAX_DIM,
            info: CpuInfo::detect(),
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
    /// for small products.
    pub fn threads_for(&self, shape: Shape) -> usize {
        let by_work = (shape.flops() / MIN_FLOPS_PER_THREAD).floor().max(1.0);
        (by_work as usize).min(self.threads)
    }

    /// What the CPU is.
    pub fn cpu_info(&self) -> &CpuInfo {
        &self.info
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
                "method `{}` is a Metal method; the CPU backend has only `auto`",
                options.method
            )));
        }
        if options.check_finite {
            check_finite("A", a, shape.k)?;
            check_finite("B", b, shape.n)?;
        }
        if shape.is_degenerate() {
            c.fill(0.0);
        } else {
            let threads = self.threads_for(shape);
            let lhs = MatRef::from_row_major_slice(a, shape.m, shape.k);
            let rhs = MatRef::from_row_major_slice(b, shape.k, shape.n);
            let dst = MatMut::from_row_major_slice_mut(c, shape.m, shape.n);
            if threads == 1 {
                matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
            } else {
                self.pool
                    .install(|| matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::rayon(threads)));
            }
        }
        if options.check_finite {
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
