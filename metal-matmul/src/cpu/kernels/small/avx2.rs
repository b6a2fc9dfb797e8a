//! The small kernel's tile in AVX2+FMA intrinsics: `R` rows (1 to 6) of two 8-float
//! vectors, or one, the last one masked when the tile's columns are not a multiple
//! of 8.

use std::arch::x86_64::{
    __m256, __m256i, _mm256_broadcast_ss, _mm256_cmpgt_epi32, _mm256_fmadd_ps, _mm256_loadu_ps,
    _mm256_maskload_ps, _mm256_maskstore_ps, _mm256_set1_epi32, _mm256_setr_epi32,
    _mm256_setzero_ps, _mm256_storeu_ps,
};

/// Floats per AVX vector.
const W: usize = 8;

/// `C[0..rows, 0..cols] = A[0..rows, 0..k] · B[0..k, 0..cols]`, all three in place.
///
/// # Safety
/// - The CPU has AVX2 and FMA; `1 ≤ rows ≤ 6`, `1 ≤ cols ≤ 16`.
/// - For `r < rows`, the `k` floats at `a + r·lda` are readable; for `p < k`, the `cols`
///   floats at `b + p·ldb` are readable; for `r < rows`, the `cols` floats at
///   `c + r·ldc` are writable and not aliased elsewhere during the call.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn tile(
    (rows, cols, k): (usize, usize, usize),
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
) {
    let ptrs = (a, lda, b, ldb, c, ldc);
    // SAFETY: every arm is the contract above, with R = rows and (V−1)·8 < cols ≤ V·8.
    unsafe {
        match (rows, cols.div_ceil(W)) {
            (6, 2) => run::<6, 2>(cols, k, ptrs),
            (6, _) => run::<6, 1>(cols, k, ptrs),
            (5, 2) => run::<5, 2>(cols, k, ptrs),
            (5, _) => run::<5, 1>(cols, k, ptrs),
            (4, 2) => run::<4, 2>(cols, k, ptrs),
            (4, _) => run::<4, 1>(cols, k, ptrs),
            (3, 2) => run::<3, 2>(cols, k, ptrs),
            (3, _) => run::<3, 1>(cols, k, ptrs),
            (2, 2) => run::<2, 2>(cols, k, ptrs),
            (2, _) => run::<2, 1>(cols, k, ptrs),
            (_, 2) => run::<1, 2>(cols, k, ptrs),
            (_, _) => run::<1, 1>(cols, k, ptrs),
        }
    }
}

type Ptrs = (*const f32, usize, *const f32, usize, *mut f32, usize);

/// The `R × V·8` instance of [`tile`]: a whole tile without masks, else one whose last
/// vector is masked to `cols`.
///
/// # Safety
/// As [`tile`], with `rows = R` and `(V−1)·8 < cols ≤ V·8`.
#[target_feature(enable = "avx2,fma")]
unsafe fn run<const R: usize, const V: usize>(cols: usize, k: usize, p: Ptrs) {
    // SAFETY: the same contract.
    unsafe {
        if cols == V * W {
            product::<R, V, false>(cols, k, p)
        } else {
            product::<R, V, true>(cols, k, p)
        }
    }
}

/// Lanes `i < rem` of a mask for `vmaskmovps`.
#[target_feature(enable = "avx2")]
fn lanes(rem: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(rem as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// The product of one tile; with `MASKED`, vector `V−1` covers `cols − (V−1)·8` lanes.
/// `vmaskmovps` neither reads nor writes lanes outside its mask, faults included.
///
/// # Safety
/// As [`run`].
#[target_feature(enable = "avx2,fma")]
unsafe fn product<const R: usize, const V: usize, const MASKED: bool>(
    cols: usize,
    k: usize,
    (a, lda, b, ldb, c, ldc): Ptrs,
) {
    let mask = lanes(cols - (V - 1) * W);
    let mut acc: [[__m256; V]; R] = [[_mm256_setzero_ps(); V]; R];
    for p in 0..k {
        // SAFETY: p < k; vectors v < V−1 lie inside the `cols` floats of B's row p, and
        // the last one too unless MASKED, when the mask keeps it to them (contract).
        let bv: [__m256; V] = std::array::from_fn(|v| unsafe {
            let at = b.add(p * ldb + v * W);
            if MASKED && v == V - 1 {
                _mm256_maskload_ps(at, mask)
            } else {
                _mm256_loadu_ps(at)
            }
        });
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: r < R = rows and p < k: within row r of A (contract).
            let av = unsafe { _mm256_broadcast_ss(&*a.add(r * lda + p)) };
            for (sum, &bj) in row.iter_mut().zip(&bv) {
                *sum = _mm256_fmadd_ps(av, bj, *sum);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (v, &sum) in row.iter().enumerate() {
            // SAFETY: row r of C holds `cols` writable floats (contract); the last
            // vector is masked to them when MASKED.
            unsafe {
                let at = c.add(r * ldc + v * W);
                if MASKED && v == V - 1 {
                    _mm256_maskstore_ps(at, mask, sum);
                } else {
                    _mm256_storeu_ps(at, sum);
                }
            }
        }
    }
}
