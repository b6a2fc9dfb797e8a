//! The backend trait, the options and report of one call, and the kinds of backend.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::{DeviceInfo, Error, Method, Result, Shape};

/// Which implementation computes a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum BackendKind {
    /// The multithreaded CPU implementation, available everywhere.
    Cpu,
    /// Apple Metal, on macOS builds with a device.
    Metal,
    /// NVIDIA CUDA, on non-macOS builds where the driver, cuBLAS and NVRTC load.
    Cuda,
}

impl BackendKind {
    /// The lowercase name used on the command line and in JSON: `cpu`, `metal`, `cuda`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Metal => "metal",
            Self::Cuda => "cuda",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Options for one multiplication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MatmulOptions {
    /// The kernel to run; [`Method::Auto`] lets the backend choose.
    pub method: Method,
    /// Reject NaN or infinity in A or B, and in C (finite inputs whose product
    /// overflows f32), with [`Error::NonFinite`] naming the first operand, in the
    /// order A, B, C, that holds one; C's contents are then unspecified. Costs at most
    /// one read of each operand (a backend may read fewer: one whose every term reaches
    /// C reads C first, and A and B only when C holds one).
    pub check_finite: bool,
}

/// What one multiplication did and how long it took.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MatmulReport {
    /// The backend that ran.
    pub backend: BackendKind,
    /// The method that ran ([`Method::Auto`] resolved), [`Method::Auto`] for the CPU.
    pub method: Method,
    /// Wall time of the whole call, including buffer set-up and copies.
    pub total: Duration,
    /// Time the GPU spent executing (`GPUEndTime - GPUStartTime`); `None` off the GPU.
    pub gpu: Option<Duration>,
}

/// An implementation of `C = A·B` for row-major f32 matrices.
///
/// Implementations validate every argument (slice lengths, overflow, the dimension
/// limit) and answer degenerate shapes (a zero dimension) without doing any work. They
/// are `Send + Sync`: one backend may serve many threads at once.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// Facts about the device, read now (free memory changes over time).
    fn device_info(&self) -> DeviceInfo;

    /// The methods that [`MatmulOptions::method`] may force on this backend, besides
    /// [`Method::Auto`].
    fn methods(&self) -> Vec<Method>;

    /// The CUDA backend behind this trait object, when it is one: callers that want its
    /// copy/kernel split ([`CudaBackend::matmul_detailed`](crate::CudaBackend::matmul_detailed))
    /// or its device facts reach it here. `None` for every other backend.
    fn as_cuda(&self) -> Option<&crate::CudaBackend> {
        None
    }

    /// `len` f32 of host memory suited to this backend's operands and results: pinned
    /// memory on CUDA (copied by DMA with no staging), the heap elsewhere. See
    /// [`HostBuffer`](crate::HostBuffer) for what its contents are.
    fn host_buffer(&self, len: usize) -> Result<crate::HostBuffer> {
        crate::HostBuffer::heap(len)
    }

    /// `C = A·B` into `c`, with options; returns what ran and how long it took.
    ///
    /// `a` holds `m·k` elements, `b` `k·n` and `c` `m·n`, all row-major. `c` is
    /// overwritten, never read.
    fn matmul_with(
        &self,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        shape: Shape,
        options: &MatmulOptions,
    ) -> Result<MatmulReport>;

    /// `C = A·B` into `c` with default options.
    fn matmul_into(&self, a: &[f32], b: &[f32], c: &mut [f32], shape: Shape) -> Result<()> {
        self.matmul_with(a, b, c, shape, &MatmulOptions::default())
            .map(|_| ())
    }

    /// `C = A·B`, returning a new `m·n` vector.
    fn matmul(&self, a: &[f32], b: &[f32], shape: Shape) -> Result<Vec<f32>> {
        let (_, _, len_c) = shape.lens()?;
        let mut c = vec![0.0; len_c];
        self.matmul_into(a, b, &mut c, shape)?;
        Ok(c)
    }
}

/// Which backend [`select`](crate::select) should open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum BackendChoice {
    /// Metal when a device answers, else CUDA, else the CPU (each reason is logged).
    /// The environment variable `FXN_BACKEND` (`cpu`, `metal`, `cuda`, `gpu` or
    /// `auto`) overrides it.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// Metal, or an error when it is unavailable (never a silent fallback).
    Metal,
    /// CUDA, or an error when it is unavailable (never a silent fallback).
    Cuda,
    /// Any GPU: Metal, else CUDA; an error when neither is available.
    Gpu,
}

impl FromStr for BackendChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "metal" => Ok(Self::Metal),
            "cuda" => Ok(Self::Cuda),
            "gpu" => Ok(Self::Gpu),
            other => Err(Error::invalid(format!(
                "unknown backend `{other}` (expected auto, cpu, metal, cuda or gpu)"
            ))),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Metal => "metal",
            Self::Cuda => "cuda",
            Self::Gpu => "gpu",
        })
    }
}

/// The part of a GPU backend's call that does not touch the device: with
/// `check_finite`, A and B are scanned first and C after; a degenerate product (an empty
/// C, or k = 0) is answered with zeros and `T::default()` without calling `run`, so no
/// device is needed for it. `run` multiplies a product that is not degenerate. The
/// caller has checked the lengths against `shape`.
pub(crate) fn guarded_gpu_product<T: Default>(
    (a, b, c): (&[f32], &[f32], &mut [f32]),
    shape: Shape,
    check_finite: bool,
    run: impl FnOnce(&[f32], &[f32], &mut [f32]) -> Result<T>,
) -> Result<T> {
    use crate::numeric::check_finite as scan;
    if check_finite {
        scan("A", a, shape.k)?;
        scan("B", b, shape.n)?;
    }
    let outcome = if shape.is_degenerate() {
        c.fill(0.0);
        T::default()
    } else {
        run(a, b, c)?
    };
    if check_finite {
        scan("C", c, shape.n)?;
    }
    Ok(outcome)
}
