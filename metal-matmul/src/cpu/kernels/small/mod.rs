//! Small products whose operands sit in L1 and L2, in AVX2+FMA or AVX-512F: neither
//! operand packed.
//!
//! A GEMM library packs A and B into panels before it multiplies; for a small product
//! (64³: 0.5 MFLOP, a few microseconds) the packing and the loops around it cost a
//! large share of the call. When B fits in L2 it can instead be read in place: each
//! 6 × 16 tile of C (6 × 64 in AVX-512) is the sum over k of six broadcasts from A's
//! rows (sequential in each row) times two (four) vectors of one row of B. Tiles go
//! row-block by row-block while B fits in L1 (the tile's rows of A stay there while
//! B's columns pass), column panel by column panel past it ([`B_IN_L1`]); the columns
//! past the last whole vector go through masked loads and stores. Where it is ahead of faer:
//! docs/PERFORMANCE.md, "The small kernel".

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

use super::{CpuFeatures, Dims, Isa};

/// Rows and columns of C per tile in `isa` for a product of `n` columns: 6 × 16 (two
/// 8-float vectors) in AVX2; in AVX-512 6 × 64 (four 16-float vectors, 24
/// accumulators), or 8 × 32 where `n ≤ 32` (16 accumulators where 6 × 64 would have
/// 6 or 12; docs/PERFORMANCE.md, "The small kernel"). Row blocks of a split are cut in
/// whole multiples of the rows.
pub(in crate::cpu) const fn tile_shape(isa: Isa, n: usize) -> (usize, usize) {
    match isa {
        Isa::Avx2 => (6, 16),
        Isa::Avx512 if n <= 32 => (8, 32),
        Isa::Avx512 => (6, 64),
    }
}

/// The most floats of B for which the tiles go row-block by row-block (32 KiB, an L1
/// data cache of Zen 3 or Zen 4); products with more go column panel by column panel
/// (128×96×128 on the Intel Xeon, 2026-12-07: docs/PERFORMANCE.md, "The small kernel").
const B_IN_L1: usize = 8192;

/// `C = A·B` for `dims` on the calling thread, in `isa`'s tiles.
///
/// # Panics
/// If the CPU lacks `isa` (AVX2 and FMA, or AVX-512F), or the slices do not hold
/// `dims`.
pub(super) fn gemm(isa: Isa, a: &[f32], b: &[f32], c: &mut [f32], d: Dims) {
    assert!(
        isa.available(&CpuFeatures::detect()),
        "the small GEMM in {isa:?} needs a CPU that has it"
    );
    d.assert_fits(a, b, c);
    let (mr, nr) = tile_shape(isa, d.n);
    // Tiles row-block by row-block while B fits in L1; past that, column panel by
    // column panel, so that each panel of B stays in L1 while A's rows pass. No row
    // or no column: no tile.
    let by_columns = d.k * d.n > B_IN_L1;
    let (row_tiles, col_tiles) = (d.m.div_ceil(mr), d.n.div_ceil(nr));
    #[cfg(target_arch = "x86_64")]
    for t in 0..row_tiles * col_tiles {
        let (ti, tj) = if by_columns {
            (t % row_tiles, t / row_tiles)
        } else {
            (t / col_tiles, t % col_tiles)
        };
        let (i0, j0) = (ti * mr, tj * nr);
        let rows = mr.min(d.m - i0);
        let cols = nr.min(d.n - j0);
        let at = (
            a.as_ptr().wrapping_add(i0 * d.lda),
            b.as_ptr().wrapping_add(j0),
            c.as_mut_ptr().wrapping_add(i0 * d.ldc + j0),
        );
        // SAFETY: the CPU has `isa` (asserted); `assert_fits` holds, so rows
        // i0..i0 + rows of A hold k floats at stride lda, the k rows of B hold
        // columns j0..j0 + cols at stride ldb, and rows i0..i0 + rows of C hold
        // those columns at stride ldc, borrowed mutably; rows ≤ mr, cols ≤ nr, the
        // tile's limits in `isa` for `d.n` columns.
        unsafe {
            match isa {
                Isa::Avx2 => avx2::tile((rows, cols, d.k), at.0, d.lda, at.1, d.ldb, at.2, d.ldc),
                Isa::Avx512 => {
                    avx512::tile((rows, cols, d.k), at.0, d.lda, at.1, d.ldb, at.2, d.ldc)
                }
            }
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (by_columns, row_tiles, col_tiles, c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Shape;
    use crate::cpu::kernels::tests::{check_product, patterned};

    #[test]
    fn column_panel_order_matches_the_reference() {
        // B of more than B_IN_L1 floats: tiles column panel by column panel, with
        // partial tiles in both directions.
        let features = CpuFeatures::detect();
        for isa in [Isa::Avx512, Isa::Avx2] {
            if !isa.available(&features) {
                eprintln!("skipped {isa:?}: this CPU lacks it");
                continue;
            }
            for (m, k, n) in [(13, 130, 129), (64, 128, 128), (9, 300, 40), (1, 8193, 1)] {
                assert!(k * n > B_IN_L1);
                let (a, b) = patterned(m, k, n);
                check_product((&a, &b), (m, k, n), |a, b, c| {
                    gemm(isa, a, b, c, Dims::packed(Shape::new(m, k, n)));
                })
                .unwrap_or_else(|e| panic!("{isa:?} {m}×{k}×{n}: {e}"));
            }
        }
    }

    #[test]
    fn every_tile_edge_matches_the_reference() {
        // Row counts 1 to two tiles and one more, column counts 1 to two tiles and one
        // more (whole and masked vectors), strides wider than the rows, in each ISA
        // this CPU has.
        let features = CpuFeatures::detect();
        let isas: Vec<Isa> = [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .filter(|isa| isa.available(&features))
            .collect();
        if isas.is_empty() {
            eprintln!("skipped: this CPU has neither AVX-512F nor AVX2+FMA");
        }
        // Each tile shape of the ISA: those for narrow products (n ≤ 32 in AVX-512) and
        // the widest.
        let mut shapes: Vec<_> = isas
            .iter()
            .flat_map(|&isa| {
                [
                    (isa, tile_shape(isa, 1)),
                    (isa, tile_shape(isa, usize::MAX)),
                ]
            })
            .collect();
        shapes.dedup();
        for (isa, (mr, nr)) in shapes {
            for m in 1..=2 * mr + 1 {
                for n in (1..=2 * nr + 1)
                    .step_by(3)
                    .chain([nr, 2 * nr])
                    .filter(|&n| tile_shape(isa, n) == (mr, nr))
                {
                    let k = 1 + (m * n) % 37;
                    let (a, b) = patterned(m, k, n);
                    let d = Dims {
                        lda: k + 1,
                        ldc: n + 2,
                        ..Dims::packed(Shape::new(m, k, n))
                    };
                    let wide_a: Vec<f32> = a
                        .chunks(k)
                        .flat_map(|row| row.iter().copied().chain([f32::NAN]))
                        .collect();
                    check_product((&a, &b), (m, k, n), |_, b, c| {
                        let mut wide_c = vec![f32::NAN; m * d.ldc];
                        gemm(isa, &wide_a, b, &mut wide_c, d);
                        for (to, from) in c.chunks_mut(n).zip(wide_c.chunks(d.ldc)) {
                            to.copy_from_slice(&from[..n]);
                        }
                    })
                    .unwrap_or_else(|e| panic!("{isa:?}: {e}"));
                }
            }
        }
    }
}
