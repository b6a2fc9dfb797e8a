//! The 12 × 32 micro-kernel in AVX-512F intrinsics: 24 accumulator registers (12 rows
//! of two 16-float vectors), two loads of packed B and twelve broadcasts of packed A
//! per step of the inner dimension, 24 fused multiply-adds.
//!
//! Register-only intrinsics are safe inside a `#[target_feature]` function (Rust 1.87
//! and later; AVX-512 intrinsics are stable from 1.89, the workspace's minimum); the
//! loads and stores through raw pointers keep their `unsafe` blocks.

use std::arch::x86_64::{
    __m512, _MM_HINT_T0, _mm_prefetch, _mm512_add_ps, _mm512_fmadd_ps, _mm512_load_ps,
    _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
};

use super::{KC, MR, NR};

/// Floats per vector.
const W: usize = 16;

/// `C[0..MR, 0..NR] (+)= A-panel · B-panel` over `kb` steps.
///
/// # Safety
/// - The CPU has AVX-512F.
/// - `kb ≤ KC`; `a` points to `MR·KC` readable floats (`a[r·KC + p]`), and `b` to `NR·kb`
///   readable floats (`b[p·NR + j]`) whose start is 64-byte aligned.
/// - `c` points to a tile of MR rows of NR floats each, row `r` starting at
///   `c + r·ldc`, all readable and writable and not aliased elsewhere during the call.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn kernel(
    kb: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    // Start fetching the tile of C now: it is read (and written) only after the loop,
    // and its rows are far apart, so each would otherwise miss at the end.
    for r in 0..MR {
        let row = c.wrapping_add(r * ldc);
        // A prefetch is a hint that never faults: safe inside this AVX-512 function.
        _mm_prefetch::<_MM_HINT_T0>(row.cast());
        _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(NR - 1).cast());
    }
    let mut acc: [[__m512; 2]; MR] = [[_mm512_setzero_ps(); 2]; MR];
    for p in 0..kb {
        // SAFETY: p < kb ≤ KC, so b[p·NR .. p·NR + 32] and a[r·KC + p] are within the
        // panels (contract); b's rows are 128 bytes from a 64-byte aligned start,
        // so both loads of B are aligned.
        unsafe {
            let bp = b.add(p * NR);
            let b0 = _mm512_load_ps(bp);
            let b1 = _mm512_load_ps(bp.add(W));
            let ap = a.add(p);
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(r * KC));
                row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                row[1] = _mm512_fmadd_ps(av, b1, row[1]);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: row r of the tile is c[r·ldc .. r·ldc + 32], readable and writable
        // (contract).
        unsafe {
            let cp = c.add(r * ldc);
            let (mut v0, mut v1) = (row[0], row[1]);
            if accumulate {
                v0 = _mm512_add_ps(v0, _mm512_loadu_ps(cp));
                v1 = _mm512_add_ps(v1, _mm512_loadu_ps(cp.add(W)));
            }
            _mm512_storeu_ps(cp, v0);
            _mm512_storeu_ps(cp.add(W), v1);
        }
    }
}
