//! The narrow-product micro-kernel in AVX-512F intrinsics: `R` rows of C, each of `V`
//! 16-float vectors (the last one masked to the columns C has), with A and B read
//! where they lie, unpacked.
//!
//! Register-only intrinsics are safe inside a `#[target_feature]` function (Rust 1.87
//! and later; AVX-512 intrinsics are stable from 1.89, the workspace's minimum); the
//! loads and stores through raw pointers keep their `unsafe` blocks.

use std::arch::x86_64::{
    __m512, __mmask16, _mm512_add_ps, _mm512_fmadd_ps, _mm512_mask_storeu_ps,
    _mm512_maskz_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
};

use super::W;

/// `C[0..R, 0..cols] (+)= A[0..R, 0..kb] · B[0..kb, 0..cols]`, where `cols` is
/// `(V - 1)·16` plus the number of bits set in `last` (a run of low bits).
///
/// Each step of the inner dimension loads one row of B (V vectors) and broadcasts one
/// value from each of the R rows of A, for R·V fused multiply-adds. The lanes of B and
/// C outside `last` are neither read nor written: AVX-512's masked loads and stores
/// suppress the access itself, faults included.
///
/// # Safety
/// - The CPU has AVX-512F; `1 ≤ V ≤ 4`, `R·V ≤ 24` accumulators.
/// - For every `r < R` and `p < kb`, `a + r·lda + p` is a readable float.
/// - For every `p < kb`, the `cols` floats at `b + p·ldb` are readable.
/// - For every `r < R`, the `cols` floats at `c + r·ldc` are readable and writable, and
///   not aliased elsewhere during the call.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn kernel<const R: usize, const V: usize>(
    kb: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    last: __mmask16,
    accumulate: bool,
) {
    let mask = |v: usize| if v + 1 == V { last } else { 0xffff };
    let mut acc: [[__m512; V]; R] = [[_mm512_setzero_ps(); V]; R];
    for p in 0..kb {
        // SAFETY: p < kb, so row p of B (its `cols` floats, of which the masks let
        // only those through) and a[r·lda + p] for r < R are readable (contract).
        unsafe {
            let bp = b.add(p * ldb);
            let bv: [__m512; V] =
                std::array::from_fn(|v| _mm512_maskz_loadu_ps(mask(v), bp.add(v * W)));
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(r * lda + p));
                for (sum, &bj) in row.iter_mut().zip(&bv) {
                    *sum = _mm512_fmadd_ps(av, bj, *sum);
                }
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (v, &sum) in row.iter().enumerate() {
            // SAFETY: row r of the tile has `cols` readable and writable floats at
            // c + r·ldc (contract), and the mask lets only those through.
            unsafe {
                let cp = c.add(r * ldc + v * W);
                let out = if accumulate {
                    _mm512_add_ps(sum, _mm512_maskz_loadu_ps(mask(v), cp))
                } else {
                    sum
                };
                _mm512_mask_storeu_ps(cp, mask(v), out);
            }
        }
    }
}
