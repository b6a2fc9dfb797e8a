//! faer 0.24's GEMM, the kernel for every general shape without one of ours: pure Rust,
//! with packing and micro-kernels dispatched at run time to the widest SIMD the CPU
//! has (docs/PERFORMANCE.md says how it was chosen).

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::Dims;

/// `C = A·B` for `dims` through faer on the calling thread.
pub(super) fn gemm(a: &[f32], b: &[f32], c: &mut [f32], dims: Dims) {
    product(a, b, c, dims, Par::Seq);
}

/// `C = A·B` for `dims` through faer's own split on `threads` threads of the current
/// rayon pool (the caller runs it inside the backend's pool).
pub(in crate::cpu) fn gemm_parallel(
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    dims: Dims,
    threads: usize,
) {
    dims.assert_fits(a, b, c);
    product(a, b, c, dims, Par::rayon(threads));
}

/// faer on dense operands only: faer 0.24.4's small-matrix path (nano-gemm) computes
/// wrong results and writes out of bounds on row-major views built with a run-time row
/// stride (`from_row_major_slice_with_stride`), even one equal to the row length
/// (16×30×20, found by this crate's tests). Strided operands are therefore copied
/// into dense ones first; the plan never gives faer any.
fn product(a: &[f32], b: &[f32], c: &mut [f32], d: Dims, par: Par) {
    let dense = |x: &[f32], rows: usize, cols: usize, ld: usize| -> Vec<f32> {
        x.chunks(ld)
            .take(rows)
            .flat_map(|r| &r[..cols])
            .copied()
            .collect()
    };
    let a_dense;
    let a = if d.lda == d.k {
        &a[..d.m * d.k]
    } else {
        a_dense = dense(a, d.m, d.k, d.lda);
        &a_dense
    };
    let b_dense;
    let b = if d.ldb == d.n {
        &b[..d.k * d.n]
    } else {
        b_dense = dense(b, d.k, d.n, d.ldb);
        &b_dense
    };
    let lhs = MatRef::from_row_major_slice(a, d.m, d.k);
    let rhs = MatRef::from_row_major_slice(b, d.k, d.n);
    if d.ldc == d.n {
        let dst = MatMut::from_row_major_slice_mut(&mut c[..d.m * d.n], d.m, d.n);
        matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, par);
    } else {
        let mut out = vec![0.0f32; d.m * d.n];
        let dst = MatMut::from_row_major_slice_mut(&mut out, d.m, d.n);
        matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, par);
        for (to, from) in c.chunks_mut(d.ldc).zip(out.chunks_exact(d.n)) {
            to[..d.n].copy_from_slice(from);
        }
    }
}
