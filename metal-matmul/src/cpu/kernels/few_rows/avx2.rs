//! The few-rows micro-kernel in AVX2+FMA intrinsics: `R` rows of B at a time, added
//! into every row of C, 8 columns per step; the last columns through masked loads and
//! stores.

use std::arch::x86_64::{
    __m256, __m256i, _mm256_add_ps, _mm256_cmpgt_epi32, _mm256_fmadd_ps, _mm256_loadu_ps,
    _mm256_maskload_ps, _mm256_maskstore_ps, _mm256_set1_epi32, _mm256_set1_ps, _mm256_setr_epi32,
    _mm256_storeu_ps,
};

use super::R_MAX;

/// Floats per AVX vector.
const W: usize = 8;

/// `C[0..m, 0..n] += A-block[0..m, 0..R] · B[0..R, 0..n]`.
///
/// For each 8 columns, the R rows of B are loaded once and each of the m rows of C is
/// read, updated with R multiply-adds (two chains, joined at the end) and written back.
/// The last chunk of fewer than 8 columns goes through `vmaskmovps`, which neither
/// reads nor writes the lanes outside its mask, faults included.
///
/// # Safety
/// - The CPU has AVX2 and FMA; `1 ≤ R ≤ R_MAX`.
/// - For every `i < m` and `r < R`, `a + i·R_MAX + r` is a readable float.
/// - For every `r < R`, the `n` floats at `b + r·ldb` are readable.
/// - For every `i < m`, the `n` floats at `c + i·ldc` are readable and writable, and
///   not aliased elsewhere during the call.
/// - `n > 0`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn kernel<const R: usize>(
    m: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    n: usize,
) {
    let whole = n / W;
    for chunk in 0..whole {
        let j = chunk * W;
        // SAFETY: j + 8 ≤ n, so each row of B's 8 floats at j are readable (contract).
        let bv: [__m256; R] =
            std::array::from_fn(|r| unsafe { _mm256_loadu_ps(b.add(r * ldb + j)) });
        for i in 0..m {
            // SAFETY: row i < m of C has `n` readable and writable floats at c + i·ldc
            // and j + 8 ≤ n (contract); a[i·R_MAX + r] for r < R is readable (contract).
            unsafe {
                let cp = c.add(i * ldc + j);
                let sum = row_update::<R>(a.add(i * R_MAX), &bv, _mm256_loadu_ps(cp));
                _mm256_storeu_ps(cp, sum);
            }
        }
    }
    let rest = n - whole * W;
    if rest > 0 {
        let j = whole * W;
        // Lane l is on when l < rest: the sign bit of each 32-bit lane, set by compare.
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let mask: __m256i = _mm256_cmpgt_epi32(_mm256_set1_epi32(rest as i32), lanes);
        // SAFETY: the masked lanes are the columns j..n of each row of B, readable
        // (contract); the others are not accessed.
        let bv: [__m256; R] =
            std::array::from_fn(|r| unsafe { _mm256_maskload_ps(b.add(r * ldb + j), mask) });
        for i in 0..m {
            // SAFETY: the masked lanes are the columns j..n of row i < m of C, readable
            // and writable (contract); a[i·R_MAX + r] for r < R is readable (contract).
            unsafe {
                let cp = c.add(i * ldc + j);
                let sum = row_update::<R>(a.add(i * R_MAX), &bv, _mm256_maskload_ps(cp, mask));
                _mm256_maskstore_ps(cp, mask, sum);
            }
        }
    }
}

/// `acc + Σ_r a[r]·bv[r]`, in two chains of multiply-adds so that a row waits on half as
/// many dependent steps.
///
/// # Safety
/// The CPU has AVX2 and FMA; `a[0..R]` is readable.
#[inline(always)]
unsafe fn row_update<const R: usize>(a: *const f32, bv: &[__m256; R], acc: __m256) -> __m256 {
    // SAFETY: the caller guarantees AVX2 and FMA and that a[0..R] is readable.
    unsafe {
        let mut even = acc;
        let mut odd = _mm256_set1_ps(0.0);
        for (r, &bj) in bv.iter().enumerate() {
            let av = _mm256_set1_ps(*a.add(r));
            if r % 2 == 0 {
                even = _mm256_fmadd_ps(av, bj, even);
            } else {
                odd = _mm256_fmadd_ps(av, bj, odd);
            }
        }
        _mm256_add_ps(even, odd)
    }
}
