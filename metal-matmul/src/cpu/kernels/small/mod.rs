//! Small products whose operands sit in L1 and L2, in AVX2+FMA or AVX-512F: neither
//! operand packed.
//!
//! A GEMM library packs A and B into panels before it multiplies; for a small product
//! (64³: 0.5 MFLOP, a few microseconds) the packing and the loops around it cost a
//! large share of the call. When B fits in L2 it can instead be read in place: each
//! 6 × 16 tile of C (8 × 32 in AVX-512) is the sum over k of six (eight) broadcasts
//! from A's rows (sequential in each row) times two vectors of one row of B. Tiles go
//! row-block by row-block, so the tile's rows of A stay in L1 while B's columns pass; the columns past the last
//! whole vector go through masked loads and stores. Where it is ahead of faer:
//! docs/PERFORMANCE.md, "The small kernel".

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

use super::{CpuFeatures, Dims, Isa};

/// Rows and columns of C per tile in `isa`: 6 × 16 (two 8-float vectors) in AVX2,
/// 8 × 32 (two 16-float vectors) in AVX-512. Row blocks of a split are cut in whole
/// multiples of the rows.
pub(in crate::cpu) const fn tile_shape(isa: Isa) -> (usize, usize) {
    match isa {
        Isa::Avx2 => (6, 16),
        Isa::Avx512 => (8, 32),
    }
}

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
    let (mr, nr) = tile_shape(isa);
    // No row or no column: the loops below do nothing.
    #[cfg(target_arch = "x86_64")]
    for i0 in (0..d.m).step_by(mr) {
        let rows = mr.min(d.m - i0);
        for j0 in (0..d.n).step_by(nr) {
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
            // tile's limits in `isa`.
            unsafe {
                match isa {
                    Isa::Avx2 => {
                        avx2::tile((rows, cols, d.k), at.0, d.lda, at.1, d.ldb, at.2, d.ldc)
                    }
                    Isa::Avx512 => {
                        avx512::tile((rows, cols, d.k), at.0, d.lda, at.1, d.ldb, at.2, d.ldc)
                    }
                }
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (mr, nr, c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Shape;
    use crate::cpu::kernels::tests::{check_product, patterned};

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
        for isa in isas {
            let (mr, nr) = tile_shape(isa);
            for m in 1..=2 * mr + 1 {
                for n in (1..=2 * nr + 1).step_by(3).chain([nr, 2 * nr]) {
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
