//! The few-rows micro-kernel in AVX-512F intrinsics: `R` rows of B at a time, added
//! into every row of C, 16 columns per step.
//!
//! Register-only intrinsics are safe inside a `#[target_feature]` function (Rust 1.87
//! and later; AVX-512 intrinsics are stable from 1.89, the workspace's minimum); the
//! loads and stores through raw pointers keep their `unsafe` blocks.

use std::arch::x86_64::{
    __m512, __mmask16, _mm512_fmadd_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps,
    _mm512_set1_ps,
};

use super::R_MAX;

/// Floats per AVX-512 vector.
const W: usize = 16;

/// `C[0..m, 0..n] += A-block[0..m, 0..R] · B[0..R, 0..n]`.
///
/// For each 16 columns (the last ones masked by `last`), the R rows of B are loaded
/// once and each of the m rows of C is read, updated with R multiply-adds and written
/// back. Lanes outside the mask are neither read nor written: AVX-512's masked loads
/// and stores suppress the access itself, faults included.
///
/// # Safety
/// - The CPU has AVX-512F; `1 ≤ R ≤ R_MAX`.
/// - For every `i < m` and `r < R`, `a + i·R_MAX + r` is a readable float.
/// - For every `r < R`, the `n` floats at `b + r·ldb` are readable.
/// - For every `i < m`, the `n` floats at `c + i·ldc` are readable and writable, and
///   not aliased elsewhere during the call.
/// - `n > 0`, and `last` has the low `n - 16·(⌈n / 16⌉ - 1)` bits set and no others.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn kernel<const R: usize>(
    m: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    n: usize,
    last: __mmask16,
) {
    let chunks = n.div_ceil(W);
    for chunk in 0..chunks {
        let j = chunk * W;
        let mask = if chunk + 1 == chunks { last } else { 0xffff };
        // SAFETY: j < n, so the masked lanes of each row of B from column j are within
        // its `n` readable floats (contract).
        let bv: [__m512; R] =
            std::array::from_fn(|r| unsafe { _mm512_maskz_loadu_ps(mask, b.add(r * ldb + j)) });
        for i in 0..m {
            // SAFETY: row i < m of C has `n` readable and writable floats at c + i·ldc
            // and j < n (contract); a[i·R_MAX + r] for r < R is readable (contract).
            unsafe {
                let cp = c.add(i * ldc + j);
                let mut acc = _mm512_maskz_loadu_ps(mask, cp);
                for (r, &bj) in bv.iter().enumerate() {
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(*a.add(i * R_MAX + r)), bj, acc);
                }
                _mm512_mask_storeu_ps(cp, mask, acc);
            }
        }
    }
}
