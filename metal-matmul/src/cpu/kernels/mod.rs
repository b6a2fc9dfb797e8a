//! The CPU kernels: each computes `C = A·B` for one block of a product on the calling
//! thread, through one signature, [`Kernel::run`]`(a, b, c, Dims)`. Which kernel runs
//! where, and how a product is split between threads, is the plan's business
//! (`cpu::plan`); running a split is `cpu::exec`'s.
//!
//! | kernel | ISA | what it is for |
//! |---|---|---|
//! | [`Kernel::Faer`] | faer's own run-time dispatch (AVX-512, AVX2, NEON, scalar), or its AVX2+FMA code under an AVX2 limit | every general shape without a kernel of ours |
//! | [`Kernel::Blocked`] | AVX-512F (8 × 48 tile) or AVX2+FMA (6 × 16 tile) | large GEMMs: the five loops of BLIS |
//! | [`Kernel::Narrow`] | AVX-512F | C at most 64 columns: neither operand packed |
//! | [`Kernel::FewRows`] | AVX-512F or AVX2+FMA | 2 to 24 rows of C: B streamed once, unpacked |
//! | [`Kernel::Small`] | AVX-512F (6 × 64 tile) or AVX2+FMA (6 × 16 tile) | small products in L1/L2: neither operand packed |
//! | [`Kernel::MatVec`], [`Kernel::VecMat`] | AVX2+FMA (software prefetch for a matrix past the last-level cache), or portable code | `n == 1`, `m == 1`: the matrix streamed once |

pub(super) mod blocked;
mod faer_gemm;
pub(super) mod few_rows;
pub(super) mod gemv;
pub(super) mod narrow;
pub(super) mod small;
#[cfg(test)]
pub(super) mod tests;

use super::features::CpuFeatures;
use crate::Shape;

/// The dimensions and row strides of one product: A is `m×k` with rows `lda` floats
/// apart, B `k×n` with rows `ldb` apart, C `m×n` with rows `ldc` apart, all row-major.
/// Each slice starts at its matrix's first element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dims {
    /// Rows of A and C.
    pub m: usize,
    /// Columns of A, rows of B.
    pub k: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Floats from one row of A to the next (at least `k`).
    pub lda: usize,
    /// Floats from one row of B to the next (at least `n`).
    pub ldb: usize,
    /// Floats from one row of C to the next (at least `n`).
    pub ldc: usize,
}

impl Dims {
    /// Dense row-major matrices of `shape` (every stride its row length).
    pub fn packed(shape: Shape) -> Self {
        Self {
            m: shape.m,
            k: shape.k,
            n: shape.n,
            lda: shape.k,
            ldb: shape.n,
            ldc: shape.n,
        }
    }

    /// The same strides with `m` rows.
    pub fn with_rows(self, m: usize) -> Self {
        Self { m, ..self }
    }

    /// Sets C's `m×n` floats to zero: the product when `k == 0` (an empty sum).
    pub fn zero_c(&self, c: &mut [f32]) {
        for row in c.chunks_mut(self.ldc).take(self.m) {
            row[..self.n].fill(0.0);
        }
    }

    /// Panics unless the strides are at least the row lengths and each slice holds its
    /// matrix: the precondition of every kernel, checked once per block in
    /// [`Kernel::run`].
    pub fn assert_fits(&self, a: &[f32], b: &[f32], c: &[f32]) {
        let span = |rows: usize, cols: usize, ld: usize| {
            if rows == 0 || cols == 0 {
                0
            } else {
                (rows - 1) * ld + cols
            }
        };
        assert!(
            self.lda >= self.k && self.ldb >= self.n && self.ldc >= self.n,
            "strides shorter than rows: {self:?}"
        );
        assert!(
            a.len() >= span(self.m, self.k, self.lda)
                && b.len() >= span(self.k, self.n, self.ldb)
                && c.len() >= span(self.m, self.n, self.ldc),
            "slices shorter than {self:?}: {} {} {}",
            a.len(),
            b.len(),
            c.len()
        );
    }
}

/// The instruction set a kernel of ours is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// x86-64 AVX-512F: 16 floats per vector, 32 vector registers.
    Avx512,
    /// x86-64 AVX2 with FMA: 8 floats per vector, 16 vector registers.
    Avx2,
}

impl Isa {
    /// Whether a CPU with `features` runs code written for this ISA.
    pub fn available(self, features: &CpuFeatures) -> bool {
        match self {
            Self::Avx512 => features.avx512f,
            Self::Avx2 => features.avx2_fma,
        }
    }

    /// The widest ISA of ours a CPU with `features` runs, if any.
    pub fn best(features: &CpuFeatures) -> Option<Self> {
        [Self::Avx512, Self::Avx2]
            .into_iter()
            .find(|isa| isa.available(features))
    }
}

/// A one-thread kernel computing `C = A·B` (C overwritten).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// faer 0.24's product on the calling thread: its own choice of SIMD, or its
    /// AVX2+FMA code where `avx2_only` (an AVX2 limit on an AVX-512 CPU).
    Faer {
        /// Whether faer is held to its AVX2+FMA code.
        avx2_only: bool,
    },
    /// Our cache-blocked GEMM ([`blocked`]).
    Blocked(Isa),
    /// Our kernel for C of at most [`narrow::MAX_N`] columns ([`narrow`], AVX-512 only).
    Narrow,
    /// Our kernel for 2 to [`few_rows::MAX_M`] rows of C ([`few_rows`]).
    FewRows(Isa),
    /// Our kernel for small products, neither operand packed ([`small`]).
    Small(Isa),
    /// Matrix × vector, `n == 1` ([`gemv`]): AVX2+FMA where `avx2`, else portable code.
    MatVec {
        /// Whether the AVX2+FMA copy runs.
        avx2: bool,
        /// Whether the AVX2+FMA copy asks for the next rows of A into L2 ahead of use.
        prefetch: bool,
    },
    /// Vector × matrix, `m == 1` ([`gemv`]): AVX2+FMA where `avx2`, else portable code.
    VecMat {
        /// Whether the AVX2+FMA copy runs.
        avx2: bool,
        /// Whether the AVX2+FMA copy asks for the next rows of B into L2 ahead of use.
        prefetch: bool,
    },
}

impl Kernel {
    /// Whether a CPU with `features` runs this kernel. The one definition of
    /// availability: the plan asks it, and [`Kernel::run`] asserts it.
    pub fn available(self, features: &CpuFeatures) -> bool {
        match self {
            Self::Faer { avx2_only } => !avx2_only || features.avx2_fma,
            Self::MatVec { avx2, .. } | Self::VecMat { avx2, .. } => !avx2 || features.avx2_fma,
            Self::Blocked(isa) | Self::FewRows(isa) | Self::Small(isa) => isa.available(features),
            Self::Narrow => features.avx512f,
        }
    }

    /// `C = A·B` for `dims` on the calling thread. Allocates nothing but the kernels'
    /// per-thread packing buffers (kept between calls) and, for faer, its own scratch.
    ///
    /// # Panics
    /// If this CPU lacks the kernel's ISA, the slices do not hold `dims`
    /// ([`Dims::assert_fits`]), or the shape is outside the kernel's domain (more than
    /// [`narrow::MAX_N`] columns for `Narrow`, more than [`few_rows::MAX_M`] rows for
    /// `FewRows`, `n != 1` for `MatVec`, `m != 1` for `VecMat`). The plan never makes
    /// such a call.
    pub fn run(self, a: &[f32], b: &[f32], c: &mut [f32], dims: Dims) {
        assert!(
            self.available(&CpuFeatures::detect()),
            "{self:?} needs an ISA this CPU lacks"
        );
        dims.assert_fits(a, b, c);
        if dims.m == 0 || dims.n == 0 {
            return;
        }
        if dims.k == 0 {
            dims.zero_c(c);
            return;
        }
        match self {
            Self::Faer { avx2_only } => faer_gemm::gemm(avx2_only, a, b, c, dims),
            Self::Blocked(Isa::Avx512) => blocked::gemm::<blocked::Avx512>(a, b, c, dims),
            Self::Blocked(Isa::Avx2) => blocked::gemm::<blocked::Avx2>(a, b, c, dims),
            Self::Narrow => narrow::gemm(a, b, c, dims),
            Self::Small(isa) => small::gemm(isa, a, b, c, dims),
            Self::FewRows(isa) => few_rows::gemm(isa, a, b, c, dims),
            Self::MatVec { avx2, prefetch } => {
                gemv::matrix_vector((avx2, prefetch), a, b, c, dims);
            }
            Self::VecMat { avx2, prefetch } => {
                gemv::vector_matrix((avx2, prefetch), a, b, c, dims);
            }
        }
    }
}

pub(super) use faer_gemm::gemm_parallel as faer_parallel;
