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

use std::time::Duration;

use crate::numeric::check_finite;
use crate::shape::{BRIDGE_MAX_DIM, DEFAULT_MAX_DIM};
use crate::{
    Backend, BackendKind, DeviceInfo, Error, MatmulOptions, MatmulReport, Method, MethodPolicy,
    Result, Shape,
};

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
#[derive(Debug)]
pub struct MetalBackend {
    inner: imp::Context,
    policy: MethodPolicy,
    max_dim: usize,
}

impl MetalBackend {
    /// Opens the system default device and compiles the kernels. Fails with
    /// [`Error::Unavailable`] where the bridge is not built or no device answers, and
    /// with [`Error::Native`] when set-up fails on a device (e.g. shader compilation).
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

    fn resolve(&self, requested: Method, shape: Shape) -> Result<Method> {
        let supports_mps = self.inner.supports_mps();
        match requested {
            Method::Auto => Ok(self.policy.choose(shape, supports_mps)),
            Method::Mps if !supports_mps => Err(Error::Native {
                code: crate::NativeCode::Unsupported,
                message: "Metal Performance Shaders does not support this device".to_owned(),
            }),
            Method::Simple | Method::Tiled | Method::Mps | Method::Simdgroup => Ok(requested),
        }
    }
}

impl Backend for MetalBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Metal
    }

    fn device_info(&self) -> DeviceInfo {
        self.inner.device_info()
    }

    fn methods(&self) -> Vec<Method> {
        let mps = self.inner.supports_mps();
        Method::FORCEABLE
            .into_iter()
            .filter(|&m| m != Method::Mps || mps)
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
        let start = std::time::Instant::now();
        shape.check(a.len(), b.len(), c.len(), self.max_dim.min(BRIDGE_MAX_DIM))?;
        let method = self.resolve(options.method, shape)?;
        if options.check_finite {
            check_finite("A", a, shape.k)?;
            check_finite("B", b, shape.n)?;
        }
        let gpu = if shape.is_degenerate() {
            // Metal has no zero-length buffers; the answer needs no device.
            c.fill(0.0);
            None
        } else {
            Some(self.inner.matmul(a, b, c, shape, method)?)
        };
        if options.check_finite {
            check_finite("C", c, shape.n)?;
        }
        Ok(MatmulReport {
            backend: BackendKind::Metal,
            method,
            total: start.elapsed(),
            gpu: gpu.map(Duration::from_secs_f64),
        })
    }
}
