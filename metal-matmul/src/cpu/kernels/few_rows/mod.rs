//! Products with few rows of C (2 to [`MAX_M`]), in AVX-512F or AVX2+FMA: B is read
//! once, row after row, and never packed.
//!
//! With few rows, each element of B takes part in only `m` multiply-adds, so the
//! product is bound by reading B, and a GEMM library's packing of B (reading and
//! writing all of it once more, in panels whose rows are far apart) costs more than
//! the arithmetic. This kernel instead streams B in storage order, [`R_MAX`] whole rows
//! at a time (streams the hardware prefetcher follows), and adds them into every row of
//! C. The R_MAX columns of A a pass uses are copied into a small block first (A's rows
//! are k floats apart, and would fall in the same L1 sets).
//!
//! C's rows should be an odd number of 64-byte lines apart: when n is a multiple of
//! 1024, rows a multiple of 4 KiB apart fall in the same L1 set and each load of C
//! waits on the stores to the rows before it. The plan therefore runs this kernel
//! through `cpu::exec`'s inner-dimension split, which gives it scratch rows at
//! [`scratch_stride`]. Measurements: docs/PERFORMANCE.md, "The few-rows kernel".

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

use super::{Dims, Isa};

/// The most rows of C this kernel takes.
pub(in crate::cpu) const MAX_M: usize = 24;

/// Rows of B added into C per pass: each pass reads and writes C once, so more rows per
/// pass mean less traffic on C; 8 loaded vectors leave registers for the rest.
const R_MAX: usize = 8;

/// Floats per 64-byte line.
const LINE: usize = 16;

/// `C = A·B` for `dims` with `m ≤ MAX_M`, on the calling thread, in `isa`.
///
/// # Panics
/// If the CPU lacks `isa`, `m > MAX_M`, or the slices do not hold `dims`.
pub(super) fn gemm(isa: Isa, a: &[f32], b: &[f32], c: &mut [f32], d: Dims) {
    assert!(d.m <= MAX_M, "the few-rows GEMM takes at most {MAX_M} rows");
    d.assert_fits(a, b, c);
    if d.m == 0 || d.n == 0 {
        return;
    }
    for row in c.chunks_mut(d.ldc).take(d.m) {
        row[..d.n].fill(0.0);
    }
    let mut a_block = [0.0f32; MAX_M * R_MAX];
    let mut p = 0;
    while p < d.k {
        let rows = R_MAX.min(d.k - p);
        for i in 0..d.m {
            let from = &a[i * d.lda + p..i * d.lda + p + rows];
            a_block[i * R_MAX..i * R_MAX + rows].copy_from_slice(from);
        }
        let b_rows = &b[p * d.ldb..(p + rows - 1) * d.ldb + d.n];
        pass(isa, &a_block, b_rows, c, d, rows);
        p += rows;
    }
}

/// The row stride of a scratch C for this kernel: whole 64-byte lines, an odd number
/// of them, so that the rows' lines at one column fall in different L1 sets (64 sets
/// of 64 bytes: an odd stride in lines visits all of them before it repeats).
pub(in crate::cpu) fn scratch_stride(n: usize) -> usize {
    let lines = n.div_ceil(LINE);
    (lines | 1) * LINE
}

/// One pass: `C += a_block[.., 0..rows] · b_rows`, through the kernel of `R_MAX` rows
/// when `rows == R_MAX`, else one row at a time.
fn pass(
    isa: Isa,
    a_block: &[f32; MAX_M * R_MAX],
    b_rows: &[f32],
    c: &mut [f32],
    d: Dims,
    rows: usize,
) {
    let (m, n, ldb, ldc) = (d.m, d.n, d.ldb, d.ldc);
    assert!(
        (1..=R_MAX).contains(&rows)
            && b_rows.len() >= (rows - 1) * ldb + n
            && c.len() >= (m - 1) * ldc + n
            && n > 0,
        "few-rows pass lengths"
    );
    #[cfg(target_arch = "x86_64")]
    {
        let (ap, bp, cp) = (a_block.as_ptr(), b_rows.as_ptr(), c.as_mut_ptr());
        match isa {
            Isa::Avx512 => {
                assert!(std::arch::is_x86_feature_detected!("avx512f"), "AVX-512F");
                let cols = n - (n.div_ceil(16) - 1) * 16;
                let last = ((1u32 << cols) - 1) as u16;
                // SAFETY: the CPU has AVX-512F (asserted just above). `a_block` holds
                // MAX_M·R_MAX ≥ m·R_MAX floats, so a_block[i·R_MAX + r] is readable for
                // i < m and r < R_MAX (the one-row calls start r floats in and read
                // column 0 only); `b_rows` holds `rows` rows of `n` floats, `ldb` apart,
                // of which each call reads R_MAX (or 1, row r); `c` holds m rows of n
                // floats `ldc` apart (asserted above), borrowed mutably here alone;
                // n > 0 and `last` has exactly the low `cols` bits set, the columns of
                // the last 16-float chunk.
                unsafe {
                    if rows == R_MAX {
                        avx512::kernel::<R_MAX>(m, ap, bp, ldb, cp, ldc, n, last);
                    } else {
                        for r in 0..rows {
                            let (ar, br) = (ap.add(r), bp.add(r * ldb));
                            avx512::kernel::<1>(m, ar, br, ldb, cp, ldc, n, last);
                        }
                    }
                }
            }
            Isa::Avx2 => {
                assert!(
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma"),
                    "AVX2 and FMA"
                );
                // SAFETY: the CPU has AVX2 and FMA (asserted just above); the operands
                // are as for the AVX-512 arm above, and n > 0 (asserted).
                unsafe {
                    if rows == R_MAX {
                        avx2::kernel::<R_MAX>(m, ap, bp, ldb, cp, ldc, n);
                    } else {
                        for r in 0..rows {
                            let (ar, br) = (ap.add(r), bp.add(r * ldb));
                            avx2::kernel::<1>(m, ar, br, ldb, cp, ldc, n);
                        }
                    }
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, a_block, b_rows, c, d, rows);
        unreachable!("the few-rows kernel is x86-64 only; `Kernel::run` checked availability")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Shape;
    use crate::cpu::features::CpuFeatures;
    use crate::cpu::kernels::tests::{check_product, patterned, random};
    use proptest::prelude::*;

    /// The ISAs this CPU runs, printing the ones skipped.
    fn isas() -> Vec<Isa> {
        let features = CpuFeatures::detect();
        [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .filter(|isa| {
                let runs = isa.available(&features);
                if !runs {
                    eprintln!("skipped {isa:?}: this CPU lacks it");
                }
                runs
            })
            .collect()
    }

    /// `gemm` into C rows `ldc` apart (poisoned between the rows), checked.
    fn check(isa: Isa, a: &[f32], b: &[f32], (m, k, n): (usize, usize, usize), ldc: usize) {
        let dims = Dims {
            ldc,
            ..Dims::packed(Shape::new(m, k, n))
        };
        check_product((a, b), (m, k, n), |a, b, c| {
            let mut wide = vec![f32::NAN; m * ldc];
            gemm(isa, a, b, &mut wide, dims);
            for (to, from) in c.chunks_exact_mut(n).zip(wide.chunks(ldc)) {
                to.copy_from_slice(&from[..n]);
            }
        })
        .unwrap_or_else(|e| panic!("{isa:?}, ldc {ldc}: {e}"));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Any count of rows up to MAX_M, any inner dimension (none, a few rows left
        /// after the last pass of eight) and any width (whole and masked chunks), with
        /// random values, in every ISA this CPU runs.
        #[test]
        fn any_shape_matches_the_reference(
            m in 1usize..=MAX_M,
            k in 0usize..700,
            n in 1usize..90,
            seed in any::<u64>(),
        ) {
            let (a, b) = random(seed, m, k, n);
            for isa in isas() {
                check(isa, &a, &b, (m, k, n), scratch_stride(n));
            }
        }
    }

    #[test]
    fn every_edge_matches_the_reference() {
        // 1 to 24 rows; n whole chunks and a masked last chunk; k a multiple of 8, with
        // 1–7 rows left over; n = 1000 and 4096, packed and at the scratch stride.
        let shapes = [
            (2, 8, 16),
            (15, 19, 33),
            (1, 5, 1),
            (7, 300, 1000),
            (3, 1100, 47),
            (8, 2051, 64),
            (13, 7, 3),
            (24, 40, 4096),
        ];
        for isa in isas() {
            for (m, k, n) in shapes {
                let (a, b) = patterned(m, k, n);
                check(isa, &a, &b, (m, k, n), n);
                check(isa, &a, &b, (m, k, n), scratch_stride(n));
            }
        }
    }

    #[test]
    fn the_scratch_stride_is_an_odd_number_of_lines() {
        for (n, stride) in [
            (1, 16),
            (16, 16),
            (17, 48),
            (1000, 1008),
            (1024, 1040),
            (4096, 4112),
        ] {
            assert_eq!(scratch_stride(n), stride, "n = {n}");
        }
    }
}
