//! The Metal backend: the Objective-C bridge behind a safe API.
//!
//! On macOS builds the bridge (`metal-matmul-sys`) is compiled in and [`MetalBackend`]
//! drives a real device. Everywhere else the same API exists as an honest stub:
//! [`MetalBackend::new`] answers [`Error::Unavailable`], and since no backend can be
//! made, nothing else can be called on one. Nothing panics.

#[cfg(metal_bridge)]
mod native;
#[cfg(not(metal_bridge))]
mod stub;

#[cfg(metal_bridge)]
use native as imp;
#[cfg(not(metal_bridge))]
use stub as imp;

mod errors;
mod report;
mod resolve;

use std::ffi::CString;
use std::time::Instant;

pub use report::{MetalReport, PoolStats};

use crate::backend::guarded_gpu_product;
use crate::shape::{BRIDGE_MAX_DIM, DEFAULT_MAX_DIM};
use crate::{
    Backend, BackendKind, DeviceInfo, Error, MatmulOptions, MatmulReport, Method, MethodPolicy,
    Result, Shape,
};

/// What the bridge reports about one successful product.
#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(not(metal_bridge), allow(dead_code))]
pub(crate) struct Outcome {
    /// `GPUEndTime - GPUStartTime` of the command buffer, 0 when Metal had none.
    pub gpu_seconds: f64,
    /// A and B were wrapped without copying.
    pub zero_copy_inputs: bool,
    /// C was wrapped without copying.
    pub zero_copy_output: bool,
}

/// Whether Metal can be used here, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MetalStatus {
    /// The Objective-C bridge is compiled into this build (macOS targets).
    pub compiled: bool,
    /// A Metal device answered at run time.
    pub device: bool,
    /// Why Metal is unavailable; `None` when it is available.
    pub reason: Option<String>,
}

impl MetalStatus {
    /// Probes the build and the system now.
    pub fn probe() -> Self {
        imp::probe()
    }

    /// True when the bridge is built and a device answered.
    pub fn available(&self) -> bool {
        self.compiled && self.device
    }
}

/// Matrix multiplication on the system's default Metal device.
///
/// One backend may serve many threads at once: the bridge locks its pipelines and
/// buffer pool, and every call encodes its own command buffer.
///
/// Buffers: A, B and C are wrapped without copying when the device has unified memory
/// and a slice's address and byte length are multiples of the page size (16 KiB on
/// Apple silicon); otherwise they are copied through a bounded pool of reusable
/// buffers ([`set_pool_limit`](Self::set_pool_limit), [`pool_stats`](Self::pool_stats)).
/// A request whose buffers would not fit the device's working set is refused with
/// [`NativeCode::OutOfMemory`](crate::NativeCode::OutOfMemory) before anything is allocated.
#[derive(Debug)]
pub struct MetalBackend {
    inner: imp::Context,
    policy: MethodPolicy,
    max_dim: usize,
}

impl MetalBackend {
    /// Opens the system default device and compiles the kernels. Fails with
    /// [`Error::Unavailable`] where the bridge is not built or no device answers, and
    /// with [`Error::Native`] when set-up fails on a device (e.g. shader compilation,
    /// with the compiler's log in the message).
    pub fn new() -> Result<Self> {
        Ok(Self {
            inner: imp::Context::open()?,
            policy: MethodPolicy::default(),
            max_dim: DEFAULT_MAX_DIM,
        })
    }

    /// Sets the thresholds of the automatic method choice.
    pub fn with_policy(mut self, policy: MethodPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the largest dimension accepted (default [`DEFAULT_MAX_DIM`]; never more than
    /// the bridge's 32-bit interface carries).
    pub fn with_max_dim(mut self, max_dim: usize) -> Self {
        self.max_dim = max_dim.min(BRIDGE_MAX_DIM);
        self
    }

    /// The automatic method policy in use.
    pub fn policy(&self) -> MethodPolicy {
        self.policy
    }

    /// The largest dimension accepted.
    pub fn max_dim(&self) -> usize {
        self.max_dim
    }

    /// Whether this device can run `method` now ([`Method::Auto`] always can).
    pub fn supports(&self, method: Method) -> bool {
        method == Method::Auto || self.inner.supports(method)
    }

    /// The method a call with `requested` would run for `shape`: the policy's choice
    /// for [`Method::Auto`], else `requested` if the device supports it, else
    /// [`NativeCode::Unsupported`](crate::NativeCode::Unsupported).
    pub fn resolve(&self, requested: Method, shape: Shape) -> Result<Method> {
        resolve::resolve_method(requested, shape, &self.policy, |m| self.inner.supports(m))
    }

    /// Checks, without allocating, that a product of `shape` would be accepted: the
    /// dimension limit, then the device's memory ([`NativeCode::OutOfMemory`](crate::NativeCode::OutOfMemory) when A, B
    /// and C would not fit the recommended working set minus what is allocated, or one
    /// of them is over the device's largest buffer).
    pub fn check_fits(&self, shape: Shape) -> Result<()> {
        for (name, value) in [("m", shape.m), ("k", shape.k), ("n", shape.n)] {
            if value > self.max_dim {
                return Err(Error::invalid(format!(
                    "{name} = {value} is over the largest dimension allowed, {}",
                    self.max_dim
                )));
            }
        }
        shape.lens()?;
        if shape.is_degenerate() {
            return Ok(());
        }
        let (m, k, n) = bridge_dims(shape)?;
        self.inner.check_request(m, k, n)
    }

    /// Compiles Metal Shading Language `source` and, when every kernel the bridge needs
    /// builds, replaces the running pipelines with it. A source that does not compile is
    /// [`NativeCode::ShaderCompile`](crate::NativeCode::ShaderCompile) with the compiler's log, and the pipelines in use
    /// are kept. The source must define `matmul_simple` and `matmul_tiled`;
    /// `matmul_simdgroup` is optional. The crate's own kernels are
    /// `metal_matmul_sys::SHADER_SOURCE`.
    pub fn compile_shaders(&self, source: &str) -> Result<()> {
        let source = CString::new(source)
            .map_err(|_| Error::invalid("the shader source contains a NUL byte"))?;
        self.inner.compile(&source)
    }

    /// Sets the most bytes the buffer pool keeps cached between calls (default 256 MiB;
    /// 0 disables pooling); idle buffers over the new limit are released.
    pub fn set_pool_limit(&self, bytes: u64) {
        self.inner.set_pool_limit(bytes);
    }

    /// Releases every idle pooled buffer; returns the bytes released.
    pub fn drain_pool(&self) -> u64 {
        self.inner.drain_pool()
    }

    /// The buffer pool's state.
    pub fn pool_stats(&self) -> PoolStats {
        self.inner.pool_stats()
    }

    /// For tests of fault recovery, with the `fault-injection` feature only (off by
    /// default; not for production builds): makes the next product run on the GPU and
    /// then fail as though its command buffer had completed with `code`, which must be
    /// [`NativeCode::KernelTimeout`](crate::NativeCode::KernelTimeout) or [`NativeCode::GpuFault`](crate::NativeCode::GpuFault). Real faults (e.g. the
    /// GPU watchdog) cannot be provoked on demand.
    #[cfg(feature = "fault-injection")]
    pub fn inject_fault(&self, code: crate::NativeCode) -> Result<()> {
        use crate::NativeCode;
        match code {
            NativeCode::KernelTimeout | NativeCode::GpuFault => self.inner.inject_fault(code),
            other => Err(Error::invalid(format!(
                "only KernelTimeout and GpuFault can be injected, not {other:?}"
            ))),
        }
    }

    /// `C = A·B` like [`Backend::matmul_with`], with what only Metal reports: whether
    /// the operands were used without copying.
    pub fn matmul_detailed(
        &self,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        shape: Shape,
        options: &MatmulOptions,
    ) -> Result<MetalReport> {
        let start = Instant::now();
        shape.check(a.len(), b.len(), c.len(), self.max_dim)?;
        let method = self.resolve(options.method, shape)?;
        // Metal has no zero-length buffers: a degenerate product never reaches it.
        let outcome = guarded_gpu_product((a, b, c), shape, options.check_finite, |a, b, c| {
            self.inner.matmul(a, b, c, bridge_dims(shape)?, method)
        })?;
        Ok(MetalReport {
            report: MatmulReport {
                backend: BackendKind::Metal,
                method,
                total: start.elapsed(),
                gpu: errors::gpu_duration(outcome.gpu_seconds),
            },
            zero_copy_inputs: outcome.zero_copy_inputs,
            zero_copy_output: outcome.zero_copy_output,
        })
    }
}

/// The dimensions as the bridge's 32-bit integers.
fn bridge_dims(shape: Shape) -> Result<(u32, u32, u32)> {
    let dim = |v: usize| {
        u32::try_from(v)
            .map_err(|_| Error::invalid(format!("{v} does not fit the bridge's 32-bit interface")))
    };
    Ok((dim(shape.m)?, dim(shape.k)?, dim(shape.n)?))
}

impl Backend for MetalBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Metal
    }

    fn device_info(&self) -> DeviceInfo {
        self.inner.device_info()
    }

    fn methods(&self) -> Vec<Method> {
        Method::FORCEABLE
            .into_iter()
            .filter(|&m| self.inner.supports(m))
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_dims_must_fit_32_bits() {
        assert_eq!(bridge_dims(Shape::new(1, 2, 3)).unwrap(), (1, 2, 3));
        if usize::BITS > 32 {
            let big = u32::MAX as usize + 1;
            assert!(bridge_dims(Shape::new(big, 1, 1)).is_err());
        }
    }

    #[cfg(not(metal_bridge))]
    #[test]
    fn the_stub_answers_unavailable_and_never_panics() {
        let status = MetalStatus::probe();
        assert!(!status.compiled && !status.device && !status.available());
        assert!(
            status
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("no Metal bridge"))
        );
        match MetalBackend::new() {
            Err(Error::Unavailable { backend, reason }) => {
                assert_eq!(backend, BackendKind::Metal);
                assert!(reason.contains(std::env::consts::OS), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
