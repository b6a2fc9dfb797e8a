//! The CUDA backend: cuBLAS and our own NVRTC-compiled kernels on an NVIDIA GPU.
//!
//! Built on every target but macOS, through `cudarc` with dynamic loading: nothing of
//! CUDA is needed to build, and the driver, cuBLAS and NVRTC are loaded at run time
//! (probed first, so a machine without them gets [`Error::Unavailable`], never a
//! panic). On macOS the same API exists as a stub whose constructor answers
//! [`Error::Unavailable`].

#[cfg(not(target_os = "macos"))]
mod compile;
#[cfg(not(target_os = "macos"))]
mod context;
#[cfg(not(target_os = "macos"))]
mod errors;
#[cfg(not(target_os = "macos"))]
mod host;
#[cfg(not(target_os = "macos"))]
mod lane;
#[cfg(not(target_os = "macos"))]
mod memory;
#[cfg(not(target_os = "macos"))]
mod probe;
#[cfg(not(target_os = "macos"))]
mod schedule;
#[cfg(target_os = "macos")]
mod stub;

#[cfg(not(target_os = "macos"))]
use context as imp;
#[cfg(target_os = "macos")]
use stub as imp;

mod policy;
mod report;

#[cfg(not(target_os = "macos"))]
pub(crate) use host::Lent;

use std::time::Instant;

pub use policy::{CudaPolicy, CudaStaging};
pub use report::{CudaFacts, CudaReport, CudaStatus, cores_per_sm};

use crate::backend::guarded_gpu_product;
use crate::shape::DEFAULT_MAX_DIM;
use crate::{
    Backend, BackendKind, DeviceInfo, Error, HostBuffer, MatmulOptions, MatmulReport, Method,
    Result, Shape,
};

/// The largest dimension CUDA takes: cuBLAS and the kernels use 32-bit dimensions.
pub const CUDA_MAX_DIM: usize = i32::MAX as usize;

/// Device type reported by the CUDA backend.
pub const CUDA_DEVICE_TYPE: &str = "NVIDIA CUDA GPU";

impl CudaStatus {
    /// Probes the build, the libraries and device 0 now. Opening the device costs a
    /// CUDA context and the kernels' compilation the first time in a process (about a
    /// second); later probes reuse the compiled code.
    pub fn probe() -> Self {
        imp::probe()
    }
}

/// Matrix multiplication on CUDA device 0.
///
/// One backend may serve many threads at once: each call takes a *lane* (its own
/// streams, cuBLAS handle, device buffers and pinned staging buffers), up to
/// [`MAX_LANES`] at a time; further callers wait for a free lane. Lanes and their
/// buffers are kept for reuse ([`drain_pool`](Self::drain_pool) releases them). A
/// request whose buffers would not fit the device's free memory is refused with
/// `CUDA_ERROR_OUT_OF_MEMORY` before anything is allocated. A lane whose call failed
/// is dropped, so the next call starts from fresh state.
#[derive(Debug)]
pub struct CudaBackend {
    inner: imp::Context,
    policy: CudaPolicy,
    staging: CudaStaging,
    max_dim: usize,
}

/// The most lanes (concurrent calls on the device) one backend keeps.
pub const MAX_LANES: usize = 4;

impl CudaBackend {
    /// Opens device 0: loads the libraries, creates the context and compiles our
    /// kernels for the device's architecture (once per process). Fails with
    /// [`Error::Unavailable`] when CUDA is not compiled in, a library or symbol is
    /// missing, or no device answers; with [`Error::Cuda`] when set-up fails on a
    /// device (e.g. compilation, with NVRTC's log).
    pub fn new() -> Result<Self> {
        Ok(Self {
            inner: imp::Context::open()?,
            policy: CudaPolicy::default(),
            staging: CudaStaging::default(),
            max_dim: DEFAULT_MAX_DIM,
        })
    }

    /// Sets the thresholds of the automatic method choice.
    pub fn with_policy(mut self, policy: CudaPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets how operands are staged and when copies overlap compute.
    pub fn with_staging(mut self, staging: CudaStaging) -> Self {
        self.staging = staging;
        self
    }

    /// Sets the largest dimension accepted (default [`DEFAULT_MAX_DIM`]; never more than
    /// [`CUDA_MAX_DIM`]).
    pub fn with_max_dim(mut self, max_dim: usize) -> Self {
        self.max_dim = max_dim.min(CUDA_MAX_DIM);
        self
    }

    /// The automatic method policy in use.
    pub fn policy(&self) -> CudaPolicy {
        self.policy
    }

    /// The staging rules in use.
    pub fn staging(&self) -> CudaStaging {
        self.staging
    }

    /// The largest dimension accepted.
    pub fn max_dim(&self) -> usize {
        self.max_dim
    }

    /// The device's facts, read when the backend opened.
    pub fn facts(&self) -> &CudaFacts {
        self.inner.facts()
    }

    /// The method a call with `requested` would run for `shape`: the policy's choice
    /// for [`Method::Auto`], a CUDA method as asked, else [`Error::InvalidArgument`].
    pub fn resolve(&self, requested: Method, shape: Shape) -> Result<Method> {
        policy::resolve(requested, shape, &self.policy)
    }

    /// Checks, without allocating, that a product of `shape` would be accepted: the
    /// dimension limit, then the device's free memory (`CUDA_ERROR_OUT_OF_MEMORY` when
    /// A, B and C, plus headroom for cuBLAS, would not fit what is free now).
    pub fn check_fits(&self, shape: Shape) -> Result<()> {
        for (name, value) in [("m", shape.m), ("k", shape.k), ("n", shape.n)] {
            if value > self.max_dim {
                return Err(Error::invalid(format!(
                    "{name} = {value} is over the largest dimension allowed, {}",
                    self.max_dim
                )));
            }
        }
        let (la, lb, lc) = shape.lens()?;
        if shape.is_degenerate() {
            return Ok(());
        }
        let bytes = 4
            * (la as u64)
                .saturating_add(lb as u64)
                .saturating_add(lc as u64);
        self.inner.check_memory(bytes)
    }

    /// Releases every idle lane's buffers and the pinned host buffers not lent; returns
    /// the device bytes released.
    pub fn drain_pool(&self) -> u64 {
        self.inner.drain_pool()
    }

    /// `len` f32 of pinned host memory from the backend's pool, or
    /// [`Error::Cuda`] when the driver cannot page-lock them. Products whose A, B or C
    /// lie in such buffers skip the CPU's staging copy (see [`HostBuffer`]). A new
    /// buffer costs the driver's page-locking (about as long as writing it); one given
    /// back is kept for the next loan.
    pub fn pinned_buffer(&self, len: usize) -> Result<HostBuffer> {
        self.inner.lend(len)
    }

    /// `C = A·B` like [`Backend::matmul_with`], with where the time went: copies in,
    /// kernel, copies out (CUDA events), whether pinned staging was used, and into how
    /// many row blocks the product was cut.
    pub fn matmul_detailed(
        &self,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        shape: Shape,
        options: &MatmulOptions,
    ) -> Result<CudaReport> {
        let start = Instant::now();
        shape.check(a.len(), b.len(), c.len(), self.max_dim)?;
        let method = self.resolve(options.method, shape)?;
        let timing = guarded_gpu_product((a, b, c), shape, options.check_finite, |a, b, c| {
            let plan = self.staging.plan(shape);
            self.inner.matmul(a, b, c, shape, method, plan)
        })?;
        Ok(CudaReport {
            report: MatmulReport {
                backend: BackendKind::Cuda,
                method,
                total: start.elapsed(),
                gpu: (!shape.is_degenerate()).then_some(timing.kernel),
            },
            to_device: timing.to_device,
            kernel: timing.kernel,
            to_host: timing.to_host,
            pinned: timing.pinned,
            in_place: timing.in_place,
            blocks: timing.blocks,
        })
    }
}

impl Backend for CudaBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Cuda
    }

    fn device_info(&self) -> DeviceInfo {
        self.inner.device_info()
    }

    fn methods(&self) -> Vec<Method> {
        policy::CUDA_METHODS.to_vec()
    }

    fn as_cuda(&self) -> Option<&CudaBackend> {
        Some(self)
    }

    /// Pinned memory from the pool ([`pinned_buffer`](CudaBackend::pinned_buffer)); heap
    /// memory, with a warning logged, when the driver cannot page-lock more.
    fn host_buffer(&self, len: usize) -> Result<HostBuffer> {
        self.pinned_buffer(len).or_else(|e| {
            log::warn!("CUDA: {len} f32 of pinned host memory not available ({e}); using the heap");
            HostBuffer::heap(len)
        })
    }

    fn matmul_with(
        &self,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        shape: Shape,
        options: &MatmulOptions,
    ) -> Result<MatmulReport> {
        self.matmul_detailed(a, b, c, shape, options)
            .map(|r| r.report)
    }
}

/// The reason CUDA is unavailable, as an error.
#[cfg_attr(target_os = "macos", allow(dead_code))]
pub(crate) fn unavailable(reason: impl Into<String>) -> Error {
    Error::Unavailable {
        backend: BackendKind::Cuda,
        reason: reason.into(),
    }
}
