//! How the CUDA backend chooses a method and moves operands: [`CudaPolicy`] and
//! [`CudaStaging`]. Pure Rust, tested everywhere.

use crate::{Error, Method, Result, Shape};

/// The automatic method choice on CUDA, with thresholds the caller can set.
///
/// cuBLAS (pure FP32) when any dimension reaches [`cublas_min_dim`](Self::cublas_min_dim);
/// below it the tiled kernel when every dimension reaches
/// [`tiled_min_dim`](Self::tiled_min_dim), else the simple kernel. TF32 is never chosen
/// automatically: it changes the answer's precision, and a challenge is checked
/// against an FP32 result. docs/PERFORMANCE.md (CUDA) has the measured crossovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CudaPolicy {
    /// Use cuBLAS when any of m, k, n reaches this.
    pub cublas_min_dim: usize,
    /// Below `cublas_min_dim`, use the tiled kernel when all of m, k, n reach this.
    pub tiled_min_dim: usize,
}

impl Default for CudaPolicy {
    fn default() -> Self {
        Self {
            cublas_min_dim: 256,
            tiled_min_dim: 16,
        }
    }
}

impl CudaPolicy {
    /// The method this policy picks for `shape`: never [`Method::CublasTf32`].
    pub fn choose(&self, shape: Shape) -> Method {
        let max = shape.m.max(shape.k).max(shape.n);
        let min = shape.m.min(shape.k).min(shape.n);
        if max >= self.cublas_min_dim {
            Method::Cublas
        } else if min >= self.tiled_min_dim {
            Method::Tiled
        } else {
            Method::Simple
        }
    }
}

/// The methods the CUDA backend runs.
pub(crate) const CUDA_METHODS: [Method; 5] = [
    Method::Simple,
    Method::Tiled,
    Method::RegisterBlocked,
    Method::Cublas,
    Method::CublasTf32,
];

/// The method a call runs: the policy's choice for `Auto`, a CUDA method as asked,
/// and [`Error::InvalidArgument`] for a method CUDA does not have (Metal's).
pub(crate) fn resolve(requested: Method, shape: Shape, policy: &CudaPolicy) -> Result<Method> {
    match requested {
        Method::Auto => Ok(policy.choose(shape)),
        m if CUDA_METHODS.contains(&m) => Ok(m),
        m => Err(Error::invalid(format!(
            "method `{m}` is not a CUDA method (CUDA has simple, tiled, register-blocked, cublas and cublas-tf32)"
        ))),
    }
}

/// How operands travel between the caller's memory and the device.
///
/// Small products copy straight from the caller's (pageable) slices. From
/// [`pinned_min_bytes`](Self::pinned_min_bytes) of A, B and C together, they are staged
/// through page-locked buffers kept per caller (the CPU copies, several threads at
/// once, while the DMA engines run), and from [`overlap_min_rows`](Self::overlap_min_rows)
/// rows of A the product is cut into row blocks of about
/// [`chunk_rows`](Self::chunk_rows) so that copying A in and C out overlaps the
/// multiplication. docs/PERFORMANCE.md (CUDA) has the measurements behind the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CudaStaging {
    /// Stage through pinned buffers from this many bytes of A, B and C together.
    pub pinned_min_bytes: u64,
    /// Overlap copies with compute from this many rows of A (with pinned staging).
    pub overlap_min_rows: usize,
    /// Rows of A (and C) per block when overlapping.
    pub chunk_rows: usize,
}

impl Default for CudaStaging {
    fn default() -> Self {
        Self {
            pinned_min_bytes: 4 << 20,
            overlap_min_rows: 1024,
            chunk_rows: 1024,
        }
    }
}

/// The plan of one product's transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Stage through pinned buffers.
    pub pinned: bool,
    /// Rows of A per block; `m` when there is one block.
    pub chunk_rows: usize,
}

impl CudaStaging {
    /// The plan for `shape` (not degenerate).
    pub(crate) fn plan(&self, shape: Shape) -> Plan {
        let bytes = 4
            * (shape.m as u64 * shape.k as u64
                + shape.k as u64 * shape.n as u64
                + shape.m as u64 * shape.n as u64);
        let pinned = bytes >= self.pinned_min_bytes;
        let overlap = pinned && shape.m >= self.overlap_min_rows && self.chunk_rows > 0;
        Plan {
            pinned,
            chunk_rows: if overlap {
                self.chunk_rows.min(shape.m)
            } else {
                shape.m
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_prefers_cublas_and_never_tf32() {
        let p = CudaPolicy::default();
        assert_eq!(p.choose(Shape::square(8192)), Method::Cublas);
        assert_eq!(p.choose(Shape::new(1, 256, 1)), Method::Cublas);
        assert_eq!(p.choose(Shape::new(8, 512, 512)), Method::Cublas);
        assert_eq!(p.choose(Shape::square(128)), Method::Tiled);
        assert_eq!(p.choose(Shape::square(32)), Method::Tiled);
        assert_eq!(p.choose(Shape::new(32, 8, 32)), Method::Simple);
        for size in [1, 7, 100, 4096] {
            assert_ne!(p.choose(Shape::square(size)), Method::CublasTf32);
        }
    }

    #[test]
    fn thresholds_are_configurable() {
        let p = CudaPolicy {
            cublas_min_dim: usize::MAX,
            tiled_min_dim: 1,
        };
        assert_eq!(p.choose(Shape::square(4096)), Method::Tiled);
    }

    #[test]
    fn only_cuda_methods_resolve() {
        let p = CudaPolicy::default();
        for m in CUDA_METHODS {
            assert_eq!(resolve(m, Shape::square(3), &p).unwrap(), m);
        }
        for m in [Method::Mps, Method::Simdgroup] {
            let err = resolve(m, Shape::square(3), &p).unwrap_err();
            assert!(err.to_string().contains(m.name()), "{err}");
        }
        assert_eq!(
            resolve(Method::Auto, Shape::square(512), &p).unwrap(),
            Method::Cublas
        );
    }

    #[test]
    fn staging_plans_follow_the_thresholds() {
        let s = CudaStaging::default();
        let small = s.plan(Shape::square(64));
        assert!(!small.pinned);
        assert_eq!(small.chunk_rows, 64);
        let mid = s.plan(Shape::square(1000));
        assert!(mid.pinned);
        assert_eq!(mid.chunk_rows, 1000);
        let big = s.plan(Shape::square(8192));
        assert!(big.pinned);
        assert_eq!(big.chunk_rows, 1024);
        let off = CudaStaging { chunk_rows: 0, ..s }.plan(Shape::square(8192));
        assert_eq!(off.chunk_rows, 8192);
    }
}
