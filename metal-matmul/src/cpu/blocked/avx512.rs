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

use super::{MR, NR};

/// Floats per vector.
const W: usize = 16;

/// Steps before the end of the loop at which the tile of C is prefetched. With C_AHEAD
/// and B_AHEAD, 4096³ on one thread went from 0.90 to 0.94–0.95 of OpenBLAS (Intel
/// Xeon, median of 7–9 paired rounds, two runs; 2048³ unchanged, at 1.02), where C's
/// rows are 16 KiB apart and C does not stay in the caches between passes.
const C_AHEAD: usize = 48;

/// Steps ahead at which packed B is prefetched into L1 (2 KiB ahead of the loads).
const B_AHEAD: usize = 16;

/// `C[0..MR, 0..NR] (+)= A-panel · B-panel` over `kb` steps.
///
/// # Safety
/// - The CPU has AVX-512F.
/// - `kb ≤ KC`; `a` points to `MR·KC` readable floats (`a[p·MR + r]`), and `b` to `NR·kb`
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
    // The tile of C is read (and written) only after the loop, and its rows are far
    // apart, so each would miss there: fetch it C_AHEAD steps before the end, late
    // enough that the stream of B through L1 does not evict it again first.
    let fetch_c_at = kb.saturating_sub(C_AHEAD);
    let mut acc: [[__m512; 2]; MR] = [[_mm512_setzero_ps(); 2]; MR];
    for p in 0..kb {
        if p == fetch_c_at {
            for r in 0..MR {
                let row = c.wrapping_add(r * ldc);
                // A prefetch is a hint that never faults: safe inside this AVX-512
                // function.
                _mm_prefetch::<_MM_HINT_T0>(row.cast());
                _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(NR - 1).cast());
            }
        }
        // Packed B, B_AHEAD steps ahead (past the panel's end near the last steps: a
        // prefetch never faults, and `wrapping_add` forms the address without `add`'s
        // in-bounds requirement).
        let ahead = b.wrapping_add((p + B_AHEAD) * NR);
        _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(W).cast());
        // SAFETY: p < kb ≤ KC, so b[p·NR .. p·NR + 32] and a[p·MR + r] are within the
        // panels (contract); b's rows are 128 bytes from a 64-byte aligned start,
        // so both loads of B are aligned.
        unsafe {
            let bp = b.add(p * NR);
            let b0 = _mm512_load_ps(bp);
            let b1 = _mm512_load_ps(bp.add(W));
            let ap = a.add(p * MR);
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(r));
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
