//! The 6 × 16 micro-kernel in AVX2+FMA intrinsics: 12 accumulator registers (6 rows of
//! two 8-float vectors), two loads of packed B and six broadcasts of packed A per step
//! of the inner dimension, 12 fused multiply-adds; with 2 or 4 rows or 8 columns for
//! the edges of C; and the packing of A's 6-row micro-panels by 8 × 8 transposes.
//! In BLIS's order the first four tiles of each B micro-panel's pass ask for the next
//! B micro-panel into L2, a quarter each, one line per four steps.
//! 12 accumulators, 2 of B and 1 broadcast fill 15 of the 16 registers, and 12
//! independent multiply-adds cover the FMA latency of two pipes (4 cycles on Zen 3 and
//! Skylake).

use super::{Avx2, MR_AVX2, Micro, assert_micro};

impl Micro for Avx2 {
    const MR: usize = MR_AVX2;
    const NR: usize = 16;
    const W: usize = 8;
    const KC: usize = 256;
    const KC_TALL: usize = 512;
    const TALL_ROWS: usize = 512;
    const NC: usize = 512;
    const MC: Option<usize> = Some(120);
    const NEXT_B_TILES: usize = UNROLL;

    fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    fn micro(
        a_panel: &[f32],
        b_panel: &[f32],
        next_b: &[f32],
        c: &mut [f32],
        ldc: usize,
        kb: usize,
        acc: bool,
        rows: usize,
        vectors: usize,
    ) {
        assert_micro::<Self>(a_panel, b_panel, c, ldc, kb, rows, vectors);
        assert!(matches!(rows, 2 | 4 | 6), "AVX2 tiles have 2, 4 or 6 rows");
        #[cfg(target_arch = "x86_64")]
        {
            let (a, b, c) = (a_panel.as_ptr(), b_panel.as_ptr(), c.as_mut_ptr());
            // One line of the next B micro-panel a trip of the unrolled loop: whole
            // tiles whose share covers every trip ask for it.
            let fetch = next_b.len() >= (kb / UNROLL) * NR;
            let next = next_b.as_ptr();
            // SAFETY: the CPU has AVX2 and FMA, each instance's rows and vectors are the
            // `rows` and `vectors` asserted above, and the panels and the tile have the
            // lengths the kernel reads and writes, B 64-byte aligned (`assert_micro`);
            // `next` is only prefetched.
            unsafe {
                match (rows, vectors) {
                    (6, 2) if fetch => kernel::<6, 2, true>(kb, a, b, c, ldc, acc, next),
                    (6, 2) => kernel::<6, 2, false>(kb, a, b, c, ldc, acc, next),
                    (6, _) => kernel::<6, 1, false>(kb, a, b, c, ldc, acc, next),
                    (4, 2) => kernel::<4, 2, false>(kb, a, b, c, ldc, acc, next),
                    (4, _) => kernel::<4, 1, false>(kb, a, b, c, ldc, acc, next),
                    (_, 2) => kernel::<2, 2, false>(kb, a, b, c, ldc, acc, next),
                    (_, _) => kernel::<2, 1, false>(kb, a, b, c, ldc, acc, next),
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (acc, next_b);
            unreachable!("AVX2 is x86-64 only; `assert_micro` checked availability")
        }
    }

    fn edge_rows(rows: usize) -> usize {
        rows.next_multiple_of(2)
    }

    fn pack_a_panel(a: &[f32], lda: usize, kb: usize, out: &mut [f32]) -> bool {
        if !Self::available() {
            return false;
        }
        assert!(
            out.len() == MR_AVX2 * kb && a.len() >= (MR_AVX2 - 1) * lda + kb,
            "A micro-panel lengths"
        );
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX2 (checked above); `a` holds 6 rows of kb floats at
        // stride lda and `out` 6·kb floats, borrowed mutably (asserted above).
        unsafe {
            pack_a_panel(a.as_ptr(), lda, kb, out.as_mut_ptr())
        };
        cfg!(target_arch = "x86_64")
    }
}

#[cfg(target_arch = "x86_64")]
use super::transpose::transpose8;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m256, _MM_HINT_T0, _MM_HINT_T1, _mm_prefetch, _mm256_add_ps, _mm256_broadcast_ss,
    _mm256_fmadd_ps, _mm256_load_ps, _mm256_loadu_ps, _mm256_setzero_ps, _mm256_storeu_ps,
};

/// Columns of a whole tile.
#[cfg(target_arch = "x86_64")]
const NR: usize = 16;

/// Floats per AVX vector.
#[cfg(target_arch = "x86_64")]
const W: usize = 8;

/// Steps before the end of the loop at which the tile of C is prefetched: 192 of a
/// 256-step block, early enough for a line from memory (docs/PERFORMANCE.md, "The
/// blocked kernel").
#[cfg(target_arch = "x86_64")]
const C_AHEAD: usize = 192;

/// Steps of the micro-kernel per trip of its unrolled loop; also the tiles that share
/// the prefetch of the next B micro-panel (one line a trip: 4 × kb/4 lines of a
/// kb-line panel).
const UNROLL: usize = 4;

/// Steps ahead at which packed A is prefetched into L1. In BLIS's order (`Micro::MC`)
/// the B micro-panel stays in L1 and A's micro-panels stream from L2.
#[cfg(target_arch = "x86_64")]
const A_AHEAD: usize = 24;

/// `C[0..R, 0..V·8] (+)= A-panel · B-panel` over `kb` steps; with `NEXT`, asking for
/// the line `next_b + 16·i` into L2 on trip `i` of the unrolled loop (a hint: any
/// address will do).
///
/// # Safety
/// - The CPU has AVX2 and FMA; `R ≤ 6` and `V` is 1 or 2.
/// - `a` points to `6·kb` readable floats (`a[p·6 + r]`), and `b` to `16·kb` readable
///   floats (`b[p·16 + j]`) whose start is 32-byte aligned.
/// - `c` points to a tile of `R` rows of `V·8` floats each, row `r` starting at
///   `c + r·ldc`, all readable and writable and not aliased elsewhere during the call.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel<const R: usize, const V: usize, const NEXT: bool>(
    kb: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    next_b: *const f32,
) {
    let fetch_c_at = kb.saturating_sub(C_AHEAD);
    let mut acc: [[__m256; V]; R] = [[_mm256_setzero_ps(); V]; R];
    // SAFETY: both ranges are within 0..kb (contract).
    unsafe { steps::<R, V, NEXT>(&mut acc, a, b, next_b, 0..fetch_c_at) };
    for r in 0..R {
        let row = c.wrapping_add(r * ldc);
        // The first and last float of the row's V·8: every line it touches. A
        // prefetch is a hint that never faults.
        _mm_prefetch::<_MM_HINT_T0>(row.cast());
        _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(V * W - 1).cast());
    }
    // SAFETY: as above.
    unsafe { steps::<R, V, NEXT>(&mut acc, a, b, next_b, fetch_c_at..kb) };
    for (r, row) in acc.iter().enumerate() {
        for (v, &sum) in row.iter().enumerate() {
            // SAFETY: row r of the tile is c[r·ldc .. r·ldc + V·8], readable and
            // writable (contract), and v < V.
            unsafe {
                let cp = c.add(r * ldc + v * W);
                let out = if accumulate {
                    _mm256_add_ps(sum, _mm256_loadu_ps(cp))
                } else {
                    sum
                };
                _mm256_storeu_ps(cp, out);
            }
        }
    }
}

/// Steps `steps` of the micro-kernel into `acc`, [`UNROLL`] at a time (one loop
/// counter and two prefetches of packed A for every four steps, which leaves the
/// core's dispatch more room when a neighbour shares it; with `NEXT`, one of
/// `next_b`), then one at a time.
///
/// The pointers are separate arguments: taken as one tuple, the compiled loop stored
/// the 12 accumulators to memory after every multiply-add (30% slower, 2026-12-07).
///
/// # Safety
/// The CPU has AVX2 and FMA; `steps` lies within the `kb` steps of [`kernel`]'s
/// panels `a` and `b` (its contract).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn steps<const R: usize, const V: usize, const NEXT: bool>(
    acc: &mut [[__m256; V]; R],
    a: *const f32,
    b: *const f32,
    next_b: *const f32,
    steps: std::ops::Range<usize>,
) {
    let step = |acc: &mut [[__m256; V]; R], p: usize| {
        // SAFETY: p is one of `steps`, within kb; r < R ≤ 6 and V·8 ≤ 16, so
        // b[p·16 .. p·16 + V·8] and a[p·6 + r] are within the panels; b's rows are
        // 64 bytes from a 32-byte aligned start, so the loads of B are aligned.
        unsafe {
            let bp = b.add(p * NR);
            let bv: [__m256; V] = std::array::from_fn(|v| _mm256_load_ps(bp.add(v * W)));
            let ap = a.add(p * MR_AVX2);
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_broadcast_ss(&*ap.add(r));
                for (sum, &bj) in row.iter_mut().zip(&bv) {
                    *sum = _mm256_fmadd_ps(av, bj, *sum);
                }
            }
        }
    };
    let mut p = steps.start;
    while p + UNROLL <= steps.end {
        // Packed A, A_AHEAD steps ahead: four steps are 96 bytes, so two lines.
        let ahead = a.wrapping_add((p + A_AHEAD) * MR_AVX2);
        _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(16).cast());
        if NEXT {
            _mm_prefetch::<_MM_HINT_T1>(next_b.wrapping_add(p / UNROLL * NR).cast());
        }
        for q in 0..UNROLL {
            step(acc, p + q);
        }
        p += UNROLL;
    }
    for p in p..steps.end {
        step(acc, p);
    }
}

/// Packs one whole micro-panel of A: `out[p·6 + r] = a[r·lda + p]` for `r < 6` and
/// `p < kb`, eight columns at a time as 8 × 8 transposes (two zero rows) whose
/// 8-float columns are stored 6 floats apart, each store's last two floats overwritten
/// by the next; the last eight columns and the rest one by one, so no store passes
/// the panel's end.
///
/// # Safety
/// - The CPU has AVX2.
/// - `a` points to 6 rows of `kb` readable floats, row `r` starting at `a + r·lda`;
///   `out` points to `6·kb` writable floats not aliased elsewhere during the call.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pack_a_panel(a: *const f32, lda: usize, kb: usize, out: *mut f32) {
    let mut p = 0;
    // The store of column p + 7 writes out[(p + 7)·6 .. (p + 7)·6 + 8], within the
    // panel while p + 8 < kb (then (p + 7)·6 + 8 ≤ (p + 8)·6 + 2 ≤ kb·6).
    while p + 8 < kb {
        let zero = _mm256_setzero_ps();
        let r: [__m256; 8] = std::array::from_fn(|i| {
            if i < MR_AVX2 {
                // SAFETY: p + 8 ≤ kb and i < 6, so row i's eight floats at p are
                // readable (contract).
                unsafe { _mm256_loadu_ps(a.add(i * lda + p)) }
            } else {
                zero
            }
        });
        let columns = transpose8(r);
        for (j, column) in columns.into_iter().enumerate() {
            // SAFETY: (p + j)·6 + 8 ≤ (p + 7)·6 + 8 ≤ kb·6 while p + 8 < kb (above).
            unsafe { _mm256_storeu_ps(out.add((p + j) * MR_AVX2), column) };
        }
        p += 8;
    }
    for p in p..kb {
        for r in 0..MR_AVX2 {
            // SAFETY: p < kb and r < 6: within the rows and `out` (contract).
            unsafe { *out.add(p * MR_AVX2 + r) = *a.add(r * lda + p) };
        }
    }
}
