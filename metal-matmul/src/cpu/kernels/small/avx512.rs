//! The small kernel's tile in AVX-512F intrinsics: `R` rows (1 to 6) of one to four
//! 16-float vectors, or 7 and 8 rows of one or two, the last vector masked when the
//! tile's columns are not a multiple of 16.
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
/// - The CPU has AVX-512F; `1 ≤ rows ≤ 6` and `1 ≤ cols ≤ 64`, or `rows` 7 or 8 and
///   `1 ≤ cols ≤ 32`.
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
    /// The instance for `R` rows and as many vectors as `cols` needs, up to `$v`.
    macro_rules! by_vectors {
        ($r:literal, 2) => {
            match cols.div_ceil(W) {
                1 => product::<$r, 1>(cols, k, p),
                _ => product::<$r, 2>(cols, k, p),
            }
        };
        ($r:literal, 4) => {
            match cols.div_ceil(W) {
                1 => product::<$r, 1>(cols, k, p),
                2 => product::<$r, 2>(cols, k, p),
                3 => product::<$r, 3>(cols, k, p),
                _ => product::<$r, 4>(cols, k, p),
            }
        };
    }
    // SAFETY: every arm is the contract above, with R = rows and (V−1)·16 < cols ≤ V·16.
    unsafe {
        match rows {
            8 => by_vectors!(8, 2),
            7 => by_vectors!(7, 2),
            6 => by_vectors!(6, 4),
            5 => by_vectors!(5, 4),
            4 => by_vectors!(4, 4),
            3 => by_vectors!(3, 4),
            2 => by_vectors!(2, 4),
            _ => by_vectors!(1, 4),
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
