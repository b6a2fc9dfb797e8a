//! Small products whose operands sit in L1 and L2, in AVX2+FMA: neither operand packed.
//!
//! A GEMM library packs A and B into panels before it multiplies; for a small product
//! (64³: 0.5 MFLOP, a few microseconds) the packing and the loops around it cost a
//! large share of the call. When B fits in L2 it can instead be read in place: each
//! 6 × 16 tile of C is the sum over k of six broadcasts from A's rows (sequential in
//! each row) times two vectors of one row of B. Tiles go row-block by row-block, so
//! the six rows of A stay in L1 while B's columns pass; the columns past the last
//! whole 8 go through masked loads and stores. Where it is ahead of faer:
//! docs/PERFORMANCE.md, "The small kernel".

#[cfg(target_arch = "x86_64")]
mod avx2;

use super::Dims;

/// Rows of C per tile; row blocks of a split are cut in whole multiples of it.
pub(in crate::cpu) const MR: usize = 6;

/// Columns of C per tile (two 8-float vectors).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const NR: usize = 16;

/// Whether this CPU runs the kernel (AVX2 and FMA, detected at run time).
fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `C = A·B` for `dims` on the calling thread.
///
/// # Panics
/// If the CPU lacks AVX2 or FMA, or the slices do not hold `dims`.
pub(super) fn gemm(a: &[f32], b: &[f32], c: &mut [f32], d: Dims) {
    assert!(available(), "the small GEMM needs AVX2 and FMA");
    d.assert_fits(a, b, c);
    // No row or no column: the loops below do nothing.
    #[cfg(target_arch = "x86_64")]
    for i0 in (0..d.m).step_by(MR) {
        let rows = MR.min(d.m - i0);
        for j0 in (0..d.n).step_by(NR) {
            let cols = NR.min(d.n - j0);
            // SAFETY: the CPU has AVX2 and FMA (asserted); `assert_fits` holds, so rows
            // i0..i0 + rows of A hold k floats at stride lda, the k rows of B hold
            // columns j0..j0 + cols at stride ldb, and rows i0..i0 + rows of C hold
            // those columns at stride ldc, borrowed mutably; rows ≤ 6, cols ≤ 16.
            unsafe {
                avx2::tile(
                    (rows, cols, d.k),
                    a.as_ptr().add(i0 * d.lda),
                    d.lda,
                    b.as_ptr().add(j0),
                    d.ldb,
                    c.as_mut_ptr().add(i0 * d.ldc + j0),
                    d.ldc,
                )
            };
        }
    }
}
