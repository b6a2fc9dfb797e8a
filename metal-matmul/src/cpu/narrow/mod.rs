//! Narrow products (C at most 64 columns wide) with AVX-512, for x86-64 CPUs that
//! have AVX-512F: neither A nor B is packed.
//!
//! Why: a GEMM library packs A into micro-panels before its micro-kernel runs. When C
//! is narrow, every element of A takes part in only `n` multiply-adds, so packing A
//! (reading and writing all of it once more) costs a large share of the product:
//! 4096×4096×64 on one thread reached 84–104 GFLOPS through faer 0.24 and 70–86
//! through OpenBLAS 0.3.21 on 2 Intel Xeon vCPUs (best of each of four interleaved
//! runs), where the register peak is about 136. Here a micro-kernel broadcasts A's
//! values straight from its rows (each row is read once, front to back: streams the
//! hardware prefetcher follows) and loads B's rows as they lie, `n` floats each (the
//! last vector masked), which for `n ≤ 64` is already the layout a packed B panel
//! would have. The same product then reached 113–123 GFLOPS in the same runs (see
//! `use_narrow` in `cpu::rules` for the region and the other shapes measured).
//!
//! The inner dimension is cut into blocks of at most [`B_BLOCK_FLOATS`]`/ n` steps, so
//! the rows of B one block reads (at most 512 KiB) stay in L2 while every row of A
//! passes over them.

#[cfg(target_arch = "x86_64")]
mod avx512;

/// The widest C this path takes: four 16-float vectors.
pub(super) const MAX_N: usize = 64;

/// Floats per AVX-512 vector.
const W: usize = 16;

/// Floats of B one block of the inner dimension reads (512 KiB, a quarter of the
/// Xeon's 2 MiB L2): B stays in L2 beside the lines of A streaming through. On one
/// thread, 4096×4096×64 measured the same with 1 MiB blocks (the whole of B), and on
/// two threads 256 KiB and 512 KiB blocks were ahead of 1 MiB ones (median of 9–15
/// interleaved rounds: 141–158 against 135–148 GFLOPS with one row block per thread,
/// 175–185 against 150 with four).
const B_BLOCK_FLOATS: usize = 128 * 1024;

/// Whether this CPU runs the narrow kernel (x86-64 with AVX-512F, detected at run time).
pub(super) fn available() -> bool {
    super::blocked::available()
}

/// `C = A·B` for row-major `a` (m×k), `b` (k×n) and `c` (m×n) with `n ≤ MAX_N`, on the
/// calling thread.
///
/// # Panics
/// If the CPU lacks AVX-512F (check [`available`] first), `n > MAX_N`, or the lengths
/// do not match the shape.
pub(super) fn gemm(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    assert!(available(), "the narrow GEMM needs AVX-512F");
    assert!(n <= MAX_N, "the narrow GEMM takes at most {MAX_N} columns");
    assert!(
        a.len() == m * k && b.len() == k * n && c.len() == m * n,
        "narrow GEMM lengths"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(0.0);
        return;
    }
    let kc = (B_BLOCK_FLOATS / n).min(k);
    for p0 in (0..k).step_by(kc) {
        let kb = kc.min(k - p0);
        rows(a, b, c, (m, k, n), p0, kb);
    }
}

/// Every row of C over the block `p0..p0 + kb` of the inner dimension: `R` rows at a
/// time (24 accumulators, or 12 for C of 32 columns or fewer, enough to cover the
/// latency of the multiply-adds), then the last rows one by one.
fn rows(
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    (m, k, n): (usize, usize, usize),
    p0: usize,
    kb: usize,
) {
    let vectors = n.div_ceil(W);
    let group = match vectors {
        4 => 6,
        3 => 8,
        _ => 12,
    };
    let mut i = 0;
    while i < m {
        let r = if m - i >= group { group } else { 1 };
        tile(a, b, c, (k, n), i, r, p0, kb);
        i += r;
    }
}

/// `C[i..i + r, ..] (+)= A[i..i + r, p0..p0 + kb] · B[p0..p0 + kb, ..]`, added to C
/// when `p0 > 0`.
#[allow(clippy::too_many_arguments)]
fn tile(
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    (k, n): (usize, usize),
    i: usize,
    r: usize,
    p0: usize,
    kb: usize,
) {
    let vectors = n.div_ceil(W);
    let a_tile = &a[i * k + p0..(i + r - 1) * k + p0 + kb];
    let b_block = &b[p0 * n..(p0 + kb) * n];
    let c_tile = &mut c[i * n..(i + r) * n];
    assert!(
        (1..=4).contains(&vectors) && p0 + kb <= k && matches!(r, 1 | 6 | 8 | 12),
        "narrow tile"
    );
    #[cfg(target_arch = "x86_64")]
    {
        use avx512::kernel;
        assert!(available(), "the narrow kernel needs AVX-512F");
        let cols = n - (vectors - 1) * W;
        let last = (((1u32) << cols) - 1) as u16;
        let (ap, bp, cp) = (a_tile.as_ptr(), b_block.as_ptr(), c_tile.as_mut_ptr());
        let acc = p0 > 0;
        // SAFETY: the CPU has AVX-512F (asserted just above). A's tile holds rows
        // i..i + r of `kb` floats each, `k` apart, from column p0; B's block rows
        // p0..p0 + kb of `n` floats each; C's tile rows i..i + r of `n` floats, `n`
        // apart, borrowed mutably here alone: exactly the floats the kernel touches,
        // with `(vectors - 1)·16 + cols = n` columns. Each instance's rows and vectors
        // are the `r` and `vectors` asserted above, and R·V ≤ 24 in every arm.
        unsafe {
            match (r, vectors) {
                (6, 4) => kernel::<6, 4>(kb, ap, k, bp, n, cp, n, last, acc),
                (8, 3) => kernel::<8, 3>(kb, ap, k, bp, n, cp, n, last, acc),
                (12, 2) => kernel::<12, 2>(kb, ap, k, bp, n, cp, n, last, acc),
                (12, _) => kernel::<12, 1>(kb, ap, k, bp, n, cp, n, last, acc),
                (_, 4) => kernel::<1, 4>(kb, ap, k, bp, n, cp, n, last, acc),
                (_, 3) => kernel::<1, 3>(kb, ap, k, bp, n, cp, n, last, acc),
                (_, 2) => kernel::<1, 2>(kb, ap, k, bp, n, cp, n, last, acc),
                (_, _) => kernel::<1, 1>(kb, ap, k, bp, n, cp, n, last, acc),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // `available()` is false here, so `gemm` asserted before reaching this.
        let _ = (a_tile, b_block, c_tile, p0);
        unreachable!("the narrow GEMM runs on x86-64 only")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::kernel_tests::{check_product, has_avx512, patterned, random};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any width up to MAX_N (whole and masked vectors), any count of rows (whole
        /// groups and the rows after them), any inner dimension, with random values.
        #[test]
        fn any_shape_matches_the_reference(
            m in 1usize..60,
            k in 0usize..400,
            n in 1usize..=MAX_N,
            seed in any::<u64>(),
        ) {
            if !has_avx512() {
                return Ok(());
            }
            let (a, b) = random(seed, m, k, n);
            let checked = check_product((&a, &b), (m, k, n), |a, b, c| gemm(a, b, c, m, k, n));
            prop_assert!(checked.is_ok(), "{checked:?}");
        }
    }

    #[test]
    fn every_width_and_edge_matches_the_reference() {
        if !has_avx512() {
            return;
        }
        // Every width of 1–4 vectors, whole and masked; row counts that leave 1 to
        // group − 1 rows after the last whole group; inner dimensions of one block,
        // several (n = 64: 2048 per block), and 1.
        let shapes = [
            (6, 10, 64),
            (13, 300, 64),
            (50, 2500, 64),
            (17, 5000, 49),
            (9, 40, 48),
            (23, 77, 33),
            (25, 3, 32),
            (30, 200, 17),
            (12, 1, 16),
            (35, 9000, 15),
            (7, 64, 2),
            (1, 100, 1),
        ];
        for (m, k, n) in shapes {
            let (a, b) = patterned(m, k, n);
            check_product((&a, &b), (m, k, n), |a, b, c| gemm(a, b, c, m, k, n))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
