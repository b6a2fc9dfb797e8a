//! faer 0.24's GEMM, the kernel for every general shape without one of ours: pure Rust,
//! with packing and micro-kernels dispatched at run time to the widest SIMD the CPU
//! has (docs/PERFORMANCE.md says how it was chosen), or held to its AVX2+FMA code
//! under an AVX2 limit.
//!
//! faer chooses its x86-64 code by `is_x86_feature_detected!("avx512f")` and takes no
//! say in it, so the AVX2 copy calls the crate faer calls for that,
//! `private-gemm-x86`, with `InstrSet::Avx256`, the same arguments faer passes it on an
//! AVX2-only CPU (faer 0.24.4, `linalg/matmul/mod.rs`). faer sends products of at most
//! 16³ multiply-adds to `nano-gemm` instead; so does this module.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::Dims;

/// `C = A·B` for `dims` through faer on the calling thread, in its AVX2+FMA code where
/// `avx2_only`.
///
/// # Panics
/// If the slices do not hold `dims`, or `avx2_only` on a CPU without AVX2 and FMA.
pub(super) fn gemm(avx2_only: bool, a: &[f32], b: &[f32], c: &mut [f32], dims: Dims) {
    dims.assert_fits(a, b, c);
    product(avx2_only, a, b, c, dims, 1);
}

/// `C = A·B` for `dims` through faer's own split on `threads` threads of the current
/// rayon pool (the caller runs it inside the backend's pool), in its AVX2+FMA code
/// where `avx2_only`.
///
/// # Panics
/// As [`gemm`].
pub(in crate::cpu) fn gemm_parallel(
    avx2_only: bool,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    dims: Dims,
    threads: usize,
) {
    dims.assert_fits(a, b, c);
    product(avx2_only, a, b, c, dims, threads);
}

/// The largest product, in multiply-adds, faer gives `nano-gemm` (its
/// `NANO_GEMM_THRESHOLD`).
const NANO_GEMM_MAX: usize = 16 * 16 * 16;

/// faer on dense operands only: faer 0.24.4's small-matrix path (nano-gemm) computes
/// wrong results and writes out of bounds on row-major views built with a run-time row
/// stride (`from_row_major_slice_with_stride`), even one equal to the row length
/// (16×30×20, found by this crate's tests). Strided operands are therefore copied
/// into dense ones first; the plan never gives faer any.
fn product(avx2_only: bool, a: &[f32], b: &[f32], c: &mut [f32], d: Dims, threads: usize) {
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
    if d.ldc == d.n {
        dense_product(avx2_only, a, b, &mut c[..d.m * d.n], d, threads);
    } else {
        let mut out = vec![0.0f32; d.m * d.n];
        dense_product(avx2_only, a, b, &mut out, d, threads);
        for (to, from) in c.chunks_mut(d.ldc).zip(out.chunks_exact(d.n)) {
            to[..d.n].copy_from_slice(from);
        }
    }
}

/// `c = a·b` for dense row-major operands of `d`'s m, k and n.
fn dense_product(avx2_only: bool, a: &[f32], b: &[f32], c: &mut [f32], d: Dims, threads: usize) {
    let macs = d.m.saturating_mul(d.k).saturating_mul(d.n);
    if avx2_only && macs > NANO_GEMM_MAX {
        #[cfg(target_arch = "x86_64")]
        {
            avx2_product(a, b, c, d, threads);
            return;
        }
        #[cfg(not(target_arch = "x86_64"))]
        panic!("faer's AVX2 code on a CPU that is not x86-64");
    }
    let par = if threads > 1 {
        Par::rayon(threads)
    } else {
        Par::Seq
    };
    let lhs = MatRef::from_row_major_slice(a, d.m, d.k);
    let rhs = MatRef::from_row_major_slice(b, d.k, d.n);
    let dst = MatMut::from_row_major_slice_mut(c, d.m, d.n);
    matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, par);
}

/// faer's x86-64 GEMM in its AVX2+FMA code, as faer calls it (threads split the
/// product when it has at least 4 · 4096 multiply-adds, faer's `PAR_THRESHOLD_MNK`
/// for f32).
#[cfg(target_arch = "x86_64")]
fn avx2_product(a: &[f32], b: &[f32], c: &mut [f32], d: Dims, threads: usize) {
    use private_gemm_x86::{Accum, DType, DstKind, IType, InstrSet};
    assert!(
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
        "faer's AVX2 code on a CPU without AVX2 and FMA"
    );
    assert!(a.len() == d.m * d.k && b.len() == d.k * d.n && c.len() == d.m * d.n);
    let macs = d.m * d.k * d.n;
    let threads = if macs >= 4 * 4096 { threads.max(1) } else { 1 };
    let stride = |x: usize| isize::try_from(x).expect("a row stride fits isize");
    let alpha = 1.0f32;
    // SAFETY: the CPU has AVX2 and FMA (asserted above), which the `Avx256` code needs.
    // `c`, `a` and `b` are dense row-major m×n, m×k and k×n matrices (lengths asserted
    // above): row strides n, k and n, column stride 1, so every element the call reads
    // or writes is inside its slice; `c` is borrowed mutably, so it aliases neither
    // operand. The index pointers are null (no index lists, `DstKind::Full`), `alpha`
    // points to an f32 as `DType::F32` requires, and `real_diag` is null (no diagonal).
    unsafe {
        private_gemm_x86::gemm(
            DType::F32,
            IType::U64,
            InstrSet::Avx256,
            d.m,
            d.n,
            d.k,
            c.as_mut_ptr().cast(),
            stride(d.n),
            1,
            std::ptr::null(),
            std::ptr::null(),
            DstKind::Full,
            Accum::Replace,
            a.as_ptr().cast(),
            stride(d.k),
            1,
            false,
            std::ptr::null(),
            0,
            b.as_ptr().cast(),
            stride(d.n),
            1,
            false,
            (&raw const alpha).cast(),
            threads,
        );
    }
}
