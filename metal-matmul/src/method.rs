//! The GPU methods (kernels) of Metal and CUDA, and Metal's rule that picks one
//! automatically (CUDA's is [`CudaPolicy`](crate::CudaPolicy)).

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result, Shape};

/// Which kernel computes a product on the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum Method {
    /// Let the backend choose with its [`MethodPolicy`].
    #[default]
    Auto,
    /// `matmul_simple`: one thread per element of C.
    Simple,
    /// `matmul_tiled`: 16×16 tiles staged in threadgroup memory.
    Tiled,
    /// `MPSMatrixMultiplication` from Metal Performance Shaders.
    Mps,
    /// `matmul_simdgroup`: register-blocked `simdgroup_float8x8` tiles (Apple7+ / Mac2).
    Simdgroup,
    /// CUDA: cuBLAS SGEMM in pure FP32 (no tensor-core rounding).
    Cublas,
    /// CUDA: cuBLAS SGEMM on TF32 tensor cores: inputs rounded to a 10-bit mantissa
    /// (relative error near 1e-3), several times faster. Opt-in only; `auto` never
    /// picks it.
    CublasTf32,
    /// CUDA: our register-blocked kernel (128×128 tiles, 8×8 outputs per thread),
    /// compiled with NVRTC.
    RegisterBlocked,
}

impl Method {
    /// Every method that can be forced (all but [`Method::Auto`]).
    pub const FORCEABLE: [Method; 7] = [
        Method::Simple,
        Method::Tiled,
        Method::Mps,
        Method::Simdgroup,
        Method::Cublas,
        Method::CublasTf32,
        Method::RegisterBlocked,
    ];

    /// The lowercase name used on the command line and in JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Simple => "simple",
            Self::Tiled => "tiled",
            Self::Mps => "mps",
            Self::Simdgroup => "simdgroup",
            Self::Cublas => "cublas",
            Self::CublasTf32 => "cublas-tf32",
            Self::RegisterBlocked => "register-blocked",
        }
    }

    /// The scaled error (relative to max|A|·max|B|·k) that a correct product of this
    /// method stays within: [`TF32_TOLERANCE`](crate::numeric::TF32_TOLERANCE) for
    /// TF32, [`DEFAULT_TOLERANCE`](crate::numeric::DEFAULT_TOLERANCE) for every FP32
    /// method. Pass the method a report names (never `Auto`, which stands for FP32).
    pub const fn tolerance(self) -> f64 {
        match self {
            Self::CublasTf32 => crate::numeric::TF32_TOLERANCE,
            _ => crate::numeric::DEFAULT_TOLERANCE,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        [Method::Auto]
            .into_iter()
            .chain(Method::FORCEABLE)
            .find(|m| m.name() == lower)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown method `{s}` (expected auto, simple, tiled, mps, simdgroup, cublas, cublas-tf32 or register-blocked)"
                ))
            })
    }
}

/// The automatic choice of method, with thresholds the caller can set.
///
/// The rule is the one the Go Function Node shipped: MPS when any dimension is at least
/// [`mps_min_dim`](Self::mps_min_dim) and the device supports MPS; the tiled kernel when
/// every dimension is at least [`tiled_min_dim`](Self::tiled_min_dim); otherwise the
/// simple kernel. `fxn-cli bench --methods all` on a Mac shows where the crossovers lie
/// on that machine, to tune these numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MethodPolicy {
    /// Use MPS when any of m, k, n reaches this.
    pub mps_min_dim: usize,
    /// Use the tiled kernel when all of m, k, n reach this.
    pub tiled_min_dim: usize,
}

impl Default for MethodPolicy {
    fn default() -> Self {
        Self {
            mps_min_dim: 512,
            tiled_min_dim: 64,
        }
    }
}

impl MethodPolicy {
    /// The method this policy picks for `shape`; `mps_supported` says whether the device
    /// can run MPS.
    pub fn choose(&self, shape: Shape, mps_supported: bool) -> Method {
        let max = shape.m.max(shape.k).max(shape.n);
        let min = shape.m.min(shape.k).min(shape.n);
        if mps_supported && max >= self.mps_min_dim {
            Method::Mps
        } else if min >= self.tiled_min_dim {
            Method::Tiled
        } else {
            Method::Simple
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tf32_is_checked_against_the_looser_tolerance() {
        for method in Method::FORCEABLE.into_iter().chain([Method::Auto]) {
            let want = if method == Method::CublasTf32 {
                crate::numeric::TF32_TOLERANCE
            } else {
                crate::numeric::DEFAULT_TOLERANCE
            };
            assert_eq!(method.tolerance(), want, "{method}");
        }
        const { assert!(crate::numeric::TF32_TOLERANCE > crate::numeric::DEFAULT_TOLERANCE) };
    }

    #[test]
    fn the_default_policy_follows_the_go_node() {
        let p = MethodPolicy::default();
        assert_eq!(p.choose(Shape::square(512), true), Method::Mps);
        assert_eq!(p.choose(Shape::new(1, 4096, 1), true), Method::Mps);
        assert_eq!(p.choose(Shape::square(512), false), Method::Tiled);
        assert_eq!(p.choose(Shape::square(64), true), Method::Tiled);
        assert_eq!(p.choose(Shape::new(64, 63, 64), true), Method::Simple);
        assert_eq!(p.choose(Shape::new(1, 4096, 1), false), Method::Simple);
    }

    #[test]
    fn thresholds_are_configurable() {
        let p = MethodPolicy {
            mps_min_dim: 100,
            tiled_min_dim: 8,
        };
        assert_eq!(p.choose(Shape::square(100), true), Method::Mps);
        assert_eq!(p.choose(Shape::square(8), true), Method::Tiled);
    }

    #[test]
    fn names_round_trip() {
        for m in [Method::Auto].into_iter().chain(Method::FORCEABLE) {
            assert_eq!(m.name().parse::<Method>().unwrap(), m);
        }
        assert!("fast".parse::<Method>().is_err());
    }
}
