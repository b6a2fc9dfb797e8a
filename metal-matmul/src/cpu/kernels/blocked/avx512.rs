//! The 8 × 48 micro-kernel in AVX-512F intrinsics: 24 accumulator registers (8 rows of
//! three 16-float vectors), three loads of packed B and eight broadcasts of packed A
//! per step of the inner dimension, 24 fused multiply-adds; and the same loop with 4
//! rows or 16 and 32 columns, for the edges of C.
//!
//! Register-only intrinsics are safe inside a `#[target_feature]` function (Rust 1.87
//! and later; AVX-512 intrinsics are stable from 1.89, the workspace's minimum); the
//! loads and stores through raw pointers keep their `unsafe` blocks.

use super::{Avx512, MR_AVX512, Micro, assert_micro};

impl Micro for Avx512 {
    const MR: usize = MR_AVX512;
    const NR: usize = 48;
    const W: usize = 16;
    const KC: usize = 384;
    const KC_TALL: usize = 768;
    const TALL_ROWS: usize = 512;
    const NC: usize = 480;
    const MC: Option<usize> = None;
    const NEXT_B_TILES: usize = 0;

    fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    fn micro(
        a_panel: &[f32],
        b_panel: &[f32],
        _next_b: &[f32],
        c: &mut [f32],
        ldc: usize,
        kb: usize,
        acc: bool,
        rows: usize,
        vectors: usize,
    ) {
        assert_micro::<Self>(a_panel, b_panel, c, ldc, kb, rows, vectors);
        assert!(matches!(rows, 4 | MR), "AVX-512 tiles have 4 or 8 rows");
        #[cfg(target_arch = "x86_64")]
        {
            let (a, b, c) = (a_panel.as_ptr(), b_panel.as_ptr(), c.as_mut_ptr());
            // SAFETY: the CPU has AVX-512F, each instance's rows and vectors are the
            // `rows` and `vectors` asserted above, and the panels and the tile have the
            // lengths the kernel reads and writes, B 64-byte aligned (`assert_micro`).
            unsafe {
                match (rows, vectors) {
                    (MR, 3) => kernel::<MR, 3>(kb, a, b, c, ldc, acc),
                    (MR, 2) => kernel::<MR, 2>(kb, a, b, c, ldc, acc),
                    (MR, _) => kernel::<MR, 1>(kb, a, b, c, ldc, acc),
                    (_, 3) => kernel::<4, 3>(kb, a, b, c, ldc, acc),
                    (_, 2) => kernel::<4, 2>(kb, a, b, c, ldc, acc),
                    (_, _) => kernel::<4, 1>(kb, a, b, c, ldc, acc),
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = acc;
            unreachable!("AVX-512 is x86-64 only; `assert_micro` checked availability")
        }
    }

    fn edge_rows(rows: usize) -> usize {
        rows.next_multiple_of(4)
    }

    fn pack_a_panel(a: &[f32], lda: usize, kb: usize, out: &mut [f32]) -> bool {
        if !Self::available() {
            return false;
        }
        assert!(
            out.len() == MR * kb && a.len() >= (MR - 1) * lda + kb,
            "A micro-panel lengths"
        );
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX-512F (checked above); `a` holds MR rows of kb floats at
        // stride lda and `out` MR·kb floats, borrowed mutably (asserted above).
        unsafe {
            pack_a_panel(a.as_ptr(), lda, kb, out.as_mut_ptr())
        };
        cfg!(target_arch = "x86_64")
    }
}

const MR: usize = MR_AVX512;
#[cfg(target_arch = "x86_64")]
const NR: usize = 48;
#[cfg(target_arch = "x86_64")]
const W: usize = 16;

#[cfg(target_arch = "x86_64")]
use super::transpose::transpose8;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m256, __m512, _MM_HINT_T0, _mm_prefetch, _mm256_loadu_ps, _mm256_storeu_ps, _mm512_add_ps,
    _mm512_fmadd_ps, _mm512_load_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
    _mm512_storeu_ps,
};

#[cfg(target_arch = "x86_64")]
/// Steps before the end of the loop at which the tile of C is prefetched
/// (docs/PERFORMANCE.md, "The blocked kernel").
const C_AHEAD: usize = 48;

#[cfg(target_arch = "x86_64")]
/// Steps ahead at which packed B is prefetched into L1 (3 KiB ahead of the loads).
const B_AHEAD: usize = 16;

/// `C[0..R, 0..V·16] (+)= A-panel · B-panel` over `kb` steps: `R` = MR rows and `V` = 3
/// vectors (the whole NR = 48 columns) for whole tiles; fewer for the last panels of a
/// block (at most 32 columns, at most 4 rows), which would otherwise spend part of
/// their multiply-adds on zero padding.
///
/// # Safety
/// - The CPU has AVX-512F; `R ≤ MR` and `V` is 1, 2 or 3.
/// - `kb ≤ KC_TALL`; `a` points to `MR·kb` readable floats (`a[p·MR + r]`), and `b` to
///   `NR·kb` readable floats (`b[p·NR + j]`) whose start is 64-byte aligned.
/// - `c` points to a tile of `R` rows of `V·16` floats each, row `r` starting at
///   `c + r·ldc`, all readable and writable and not aliased elsewhere during the call.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const R: usize, const V: usize>(
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
    let mut acc: [[__m512; V]; R] = [[_mm512_setzero_ps(); V]; R];
    for p in 0..kb {
        if p == fetch_c_at {
            for r in 0..R {
                let row = c.wrapping_add(r * ldc);
                // Every line of the row's V·16 floats, whatever their alignment: one
                // prefetch per 16 floats, and one at the last float. A prefetch is a
                // hint that never faults: safe inside this AVX-512 function.
                for v in 0..=V {
                    _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add((v * W).min(V * W - 1)).cast());
                }
            }
        }
        // Packed B, B_AHEAD steps ahead (past the panel's end near the last steps: a
        // prefetch never faults, and `wrapping_add` forms the address without `add`'s
        // in-bounds requirement).
        let ahead = b.wrapping_add((p + B_AHEAD) * NR);
        for v in 0..V {
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(v * W).cast());
        }
        // SAFETY: p < kb ≤ KC_TALL, r < R ≤ MR and V·16 ≤ NR, so b[p·NR .. p·NR + V·16]
        // and a[p·MR + r] are within the panels (contract); b's rows are 192 bytes from a 64-byte
        // aligned start, so the loads of B are aligned.
        unsafe {
            let bp = b.add(p * NR);
            let bv: [__m512; V] = std::array::from_fn(|v| _mm512_load_ps(bp.add(v * W)));
            let ap = a.add(p * MR);
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(r));
                for (sum, &bj) in row.iter_mut().zip(&bv) {
                    *sum = _mm512_fmadd_ps(av, bj, *sum);
                }
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (v, &sum) in row.iter().enumerate() {
            // SAFETY: row r of the tile is c[r·ldc .. r·ldc + V·16], readable and
            // writable (contract), and v < V.
            unsafe {
                let cp = c.add(r * ldc + v * W);
                let out = if accumulate {
                    _mm512_add_ps(sum, _mm512_loadu_ps(cp))
                } else {
                    sum
                };
                _mm512_storeu_ps(cp, out);
            }
        }
    }
}

/// Packs one whole micro-panel of A: `out[p·MR + r] = a[r·lda + p]` for `r < MR` (8) and
/// `p < kb`, eight columns at a time as 8 × 8 transposes in 256-bit registers (the
/// classic unpack, shuffle, lane-swap sequence), the last `kb % 8` columns one by one.
///
/// # Safety
/// - The CPU has AVX-512F (which implies the AVX used here).
/// - `a` points to MR rows of `kb` readable floats, row `r` starting at `a + r·lda`;
///   `out` points to `MR·kb` writable floats not aliased elsewhere during the call.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_a_panel(a: *const f32, lda: usize, kb: usize, out: *mut f32) {
    let mut p = 0;
    while p + 8 <= kb {
        // SAFETY: p + 8 ≤ kb, so each row's eight floats at p are readable (contract).
        let r: [__m256; MR] =
            std::array::from_fn(|i| unsafe { _mm256_loadu_ps(a.add(i * lda + p)) });
        let columns = transpose8(r);
        for (j, column) in columns.into_iter().enumerate() {
            // SAFETY: (p + j)·MR + MR ≤ kb·MR, within `out` (contract).
            unsafe { _mm256_storeu_ps(out.add((p + j) * MR), column) };
        }
        p += 8;
    }
    for p in p..kb {
        for r in 0..MR {
            // SAFETY: p < kb and r < MR: within the rows and `out` (contract).
            unsafe { *out.add(p * MR + r) = *a.add(r * lda + p) };
        }
    }
}
