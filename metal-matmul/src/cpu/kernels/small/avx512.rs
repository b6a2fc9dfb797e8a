//! The small kernel's tile in AVX-512F intrinsics: `R` rows (1 to 8) of two 16-float
//! vectors, or one, the last one masked when the tile's columns are not a multiple
//! of 16.
//!
//! Register-only intrinsics are safe inside a `#[target_feature]` function; the loads
//! and stores through raw pointers keep their `unsafe` blocks.

use std::arch::x86_64::{
    __m512, __mmask16, _mm512_fmadd_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps,
    _mm512_set1_ps, _mm512_setzero_ps,
};

/// Floats per AVX-512 vector.
const W: usize = 16;

/// `C[0..rows, 0..cols] = A[0..rows, 0..k] · B[0..k, 0..cols]`, all three in place.
///
/// # Safety
/// - The CPU has AVX-512F; `1 ≤ rows ≤ 8`, `1 ≤ cols ≤ 32`.
/// - For `r < rows`, the `k` floats at `a + r·lda` are readable; for `p < k`, the `cols`
///   floats at `b + p·ldb` are readable; for `r < rows`, the `cols` floats at
///   `c + r·ldc` are writable and not aliased elsewhere during the call.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn tile(
    (rows, cols, k): (usize, usize, usize),
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
) {
    let p = (a, lda, b, ldb, c, ldc);
    // SAFETY: every arm is the contract above, with R = rows and (V−1)·16 < cols ≤ V·16.
    unsafe {
        match (rows, cols.div_ceil(W)) {
            (8, 2) => product::<8, 2>(cols, k, p),
            (8, _) => product::<8, 1>(cols, k, p),
            (7, 2) => product::<7, 2>(cols, k, p),
            (7, _) => product::<7, 1>(cols, k, p),
            (6, 2) => product::<6, 2>(cols, k, p),
            (6, _) => product::<6, 1>(cols, k, p),
            (5, 2) => product::<5, 2>(cols, k, p),
            (5, _) => product::<5, 1>(cols, k, p),
            (4, 2) => product::<4, 2>(cols, k, p),
            (4, _) => product::<4, 1>(cols, k, p),
            (3, 2) => product::<3, 2>(cols, k, p),
            (3, _) => product::<3, 1>(cols, k, p),
            (2, 2) => product::<2, 2>(cols, k, p),
            (2, _) => product::<2, 1>(cols, k, p),
            (_, 2) => product::<1, 2>(cols, k, p),
            (_, _) => product::<1, 1>(cols, k, p),
        }
    }
}

type Ptrs = (*const f32, usize, *const f32, usize, *mut f32, usize);

/// The product of one `R × V·16` tile, vector `V−1` masked to `cols − (V−1)·16` lanes
/// (all 16 when the tile is whole). AVX-512's masked loads and stores suppress the
/// access to lanes outside the mask, faults included.
///
/// # Safety
/// As [`tile`], with `rows = R` and `(V−1)·16 < cols ≤ V·16`.
#[target_feature(enable = "avx512f")]
unsafe fn product<const R: usize, const V: usize>(
    cols: usize,
    k: usize,
    (a, lda, b, ldb, c, ldc): Ptrs,
) {
    let rem = cols - (V - 1) * W;
    let last: __mmask16 = if rem >= W { 0xffff } else { (1u16 << rem) - 1 };
    let mask = |v: usize| if v + 1 == V { last } else { 0xffff };
    let mut acc: [[__m512; V]; R] = [[_mm512_setzero_ps(); V]; R];
    for p in 0..k {
        // SAFETY: p < k; vector v's masked lanes lie inside the `cols` floats of B's
        // row p (contract).
        let bv: [__m512; V] = std::array::from_fn(|v| unsafe {
            _mm512_maskz_loadu_ps(mask(v), b.add(p * ldb + v * W))
        });
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: r < R = rows and p < k: within row r of A (contract).
            let av = _mm512_set1_ps(unsafe { *a.add(r * lda + p) });
            for (sum, &bj) in row.iter_mut().zip(&bv) {
                *sum = _mm512_fmadd_ps(av, bj, *sum);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (v, &sum) in row.iter().enumerate() {
            // SAFETY: row r of C holds `cols` writable floats (contract); the mask keeps
            // vector v to them.
            unsafe { _mm512_mask_storeu_ps(c.add(r * ldc + v * W), mask(v), sum) };
        }
    }
}
