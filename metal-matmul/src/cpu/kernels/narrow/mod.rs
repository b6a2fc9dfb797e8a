//! Narrow products (C at most 64 columns wide) with AVX-512F: neither A nor B is
//! packed.
//!
//! When C is narrow, every element of A takes part in only `n` multiply-adds, so a GEMM
//! library's packing of A (reading and writing all of it once more) costs a large share
//! of the product. Here a micro-kernel broadcasts A's values straight from its rows
//! (each row read once, front to back: streams the hardware prefetcher follows) and
//! loads B's rows as they lie, `n` floats each (the last vector masked), which for
//! `n ≤ 64` is already the layout a packed B panel would have. The inner dimension is
//! cut into blocks of at most [`B_BLOCK_FLOATS`]`/ n` steps, so the rows of B one block
//! reads stay in L2 while every row of A passes over them. Measurements:
//! docs/PERFORMANCE.md, "The narrow kernel".

#[cfg(target_arch = "x86_64")]
mod avx512;

use super::Dims;

/// The widest C this path takes: four 16-float vectors.
pub(in crate::cpu) const MAX_N: usize = 64;

/// Floats per AVX-512 vector.
const W: usize = 16;

/// Floats of B one block of the inner dimension reads (512 KiB, a quarter of a 2 MiB
/// L2).
const B_BLOCK_FLOATS: usize = 128 * 1024;

/// `C = A·B` for `dims` with `n ≤ MAX_N`, on the calling thread.
///
/// # Panics
/// If the CPU lacks AVX-512F, `n > MAX_N`, or the slices do not hold `dims`.
pub(super) fn gemm(a: &[f32], b: &[f32], c: &mut [f32], d: Dims) {
    assert!(
        d.n <= MAX_N,
        "the narrow GEMM takes at most {MAX_N} columns"
    );
    d.assert_fits(a, b, c);
    if d.m == 0 || d.n == 0 {
        return;
    }
    if d.k == 0 {
        d.zero_c(c);
        return;
    }
    let kc = (B_BLOCK_FLOATS / d.n).min(d.k);
    for p0 in (0..d.k).step_by(kc) {
        let kb = kc.min(d.k - p0);
        rows(a, b, c, d, p0, kb);
    }
}

/// Every row of C over the block `p0..p0 + kb` of the inner dimension: `R` rows at a
/// time (24 accumulators, or 12 for C of 32 columns or fewer, enough to cover the
/// latency of the multiply-adds), then the last rows one by one.
fn rows(a: &[f32], b: &[f32], c: &mut [f32], d: Dims, p0: usize, kb: usize) {
    let vectors = d.n.div_ceil(W);
    let group = match vectors {
        4 => 6,
        3 => 8,
        _ => 12,
    };
    let mut i = 0;
    while i < d.m {
        let r = if d.m - i >= group { group } else { 1 };
        tile(a, b, c, d, (i, r), (p0, kb));
        i += r;
    }
}

/// `C[i..i + r, ..] (+)= A[i..i + r, p0..p0 + kb] · B[p0..p0 + kb, ..]`, added to C
/// when `p0 > 0`.
fn tile(
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    d: Dims,
    (i, r): (usize, usize),
    (p0, kb): (usize, usize),
) {
    let (n, lda, ldb, ldc) = (d.n, d.lda, d.ldb, d.ldc);
    let vectors = n.div_ceil(W);
    let a_tile = &a[i * lda + p0..(i + r - 1) * lda + p0 + kb];
    let b_block = &b[p0 * ldb..(p0 + kb - 1) * ldb + n];
    let c_tile = &mut c[i * ldc..(i + r - 1) * ldc + n];
    assert!(
        (1..=4).contains(&vectors) && p0 + kb <= d.k && matches!(r, 1 | 6 | 8 | 12),
        "narrow tile"
    );
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a_tile, b_block, c_tile, lda, ldb, ldc);
        unreachable!("AVX-512 is x86-64 only; `Kernel::run` checked availability")
    }
    #[cfg(target_arch = "x86_64")]
    {
        use avx512::kernel;
        assert!(
            std::arch::is_x86_feature_detected!("avx512f"),
            "the narrow kernel needs AVX-512F"
        );
        let cols = n - (vectors - 1) * W;
        let last = (((1u32) << cols) - 1) as u16;
        let (ap, bp, cp) = (a_tile.as_ptr(), b_block.as_ptr(), c_tile.as_mut_ptr());
        let acc = p0 > 0;
        // SAFETY: the CPU has AVX-512F (asserted just above). A's tile holds rows i..i + r
        // of `kb` floats each, `lda` apart, from column p0; B's block rows p0..p0 + kb of `n`
        // floats each, `ldb` apart; C's tile rows i..i + r of `n` floats, `ldc` apart,
        // borrowed mutably here alone: exactly the floats the kernel touches, with
        // `(vectors - 1)·16 + cols = n` columns. Each instance's rows and vectors are the
        // `r` and `vectors` asserted above, and R·V ≤ 24 in every arm.
        unsafe {
            match (r, vectors) {
                (6, 4) => kernel::<6, 4>(kb, ap, lda, bp, ldb, cp, ldc, last, acc),
                (8, 3) => kernel::<8, 3>(kb, ap, lda, bp, ldb, cp, ldc, last, acc),
                (12, 2) => kernel::<12, 2>(kb, ap, lda, bp, ldb, cp, ldc, last, acc),
                (12, _) => kernel::<12, 1>(kb, ap, lda, bp, ldb, cp, ldc, last, acc),
                (_, 4) => kernel::<1, 4>(kb, ap, lda, bp, ldb, cp, ldc, last, acc),
                (_, 3) => kernel::<1, 3>(kb, ap, lda, bp, ldb, cp, ldc, last, acc),
                (_, 2) => kernel::<1, 2>(kb, ap, lda, bp, ldb, cp, ldc, last, acc),
                (_, _) => kernel::<1, 1>(kb, ap, lda, bp, ldb, cp, ldc, last, acc),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Shape;
    use crate::cpu::kernels::tests::{check_product, has_avx512, patterned, random};
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
            let checked = check_product((&a, &b), (m, k, n), |a, b, c| gemm(a, b, c, Dims::packed(Shape::new(m, k, n))));
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
            check_product((&a, &b), (m, k, n), |a, b, c| {
                gemm(a, b, c, Dims::packed(Shape::new(m, k, n)))
            })
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
