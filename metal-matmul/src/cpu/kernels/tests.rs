//! What the tests of the CPU kernels share: their operands and the check of a product.

use super::{Dims, Isa, Kernel, few_rows, narrow};
use crate::Shape;
use crate::cpu::features::CpuFeatures;
use crate::numeric::DEFAULT_TOLERANCE;
use crate::verify::full as verify_product;

/// Whether this CPU runs the AVX-512 kernels; when not, prints why the calling test is
/// skipped.
pub(in crate::cpu) fn has_avx512() -> bool {
    let has = CpuFeatures::detect().avx512f;
    if !has {
        eprintln!("skipped: this CPU has no AVX-512F");
    }
    has
}

/// A (m×k) and B (k×n) of small patterned values, the same on every run: integers
/// and quarters, so every product of two is exact in f32.
pub(in crate::cpu) fn patterned(m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
    let a = (0..m * k).map(|i| ((i * 7 % 13) as f32) - 6.0).collect();
    let b = (0..k * n)
        .map(|i| ((i * 5 % 11) as f32) / 4.0 - 1.0)
        .collect();
    (a, b)
}

/// A (m×k) and B (k×n) of uniform random values in [−1, 1), drawn from `seed`
/// ([`random_matrix`](crate::random_matrix), B from the next seed).
pub(in crate::cpu) fn random(seed: u64, m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
    (
        crate::random_matrix(m * k, seed),
        crate::random_matrix(k * n, seed.wrapping_add(1)),
    )
}

/// Runs `product` from A and B into a C filled with NaN first (so an element it never
/// writes fails), then checks C against the f64 reference; the error names the shape.
pub(in crate::cpu) fn check_product(
    (a, b): (&[f32], &[f32]),
    (m, k, n): (usize, usize, usize),
    product: impl FnOnce(&[f32], &[f32], &mut [f32]),
) -> Result<(), String> {
    let mut c = vec![f32::NAN; m * n];
    product(a, b, &mut c);
    verify_product(a, b, &c, Shape::new(m, k, n), DEFAULT_TOLERANCE)
        .map(|_| ())
        .map_err(|e| format!("{m}×{k}×{n}: {e}"))
}

/// Every kernel this CPU runs, with the largest m and n it takes.
fn kernels() -> Vec<(Kernel, usize, usize)> {
    let features = CpuFeatures::detect();
    let all = [
        (Kernel::Faer { avx2_only: false }, usize::MAX, usize::MAX),
        (Kernel::Faer { avx2_only: true }, usize::MAX, usize::MAX),
        (Kernel::Blocked(Isa::Avx512), usize::MAX, usize::MAX),
        (Kernel::Blocked(Isa::Avx2), usize::MAX, usize::MAX),
        (Kernel::Narrow, usize::MAX, narrow::MAX_N),
        (Kernel::Small(Isa::Avx512), usize::MAX, usize::MAX),
        (Kernel::Small(Isa::Avx2), usize::MAX, usize::MAX),
        (Kernel::FewRows(Isa::Avx512), few_rows::MAX_M, usize::MAX),
        (Kernel::FewRows(Isa::Avx2), few_rows::MAX_M, usize::MAX),
    ];
    // The vector kernels in both copies, with and without prefetch (which the portable
    // copy ignores).
    let vector = [(true, true), (true, false), (false, true), (false, false)]
        .into_iter()
        .flat_map(|(avx2, prefetch)| {
            [
                (Kernel::MatVec { avx2, prefetch }, usize::MAX, 1),
                (Kernel::VecMat { avx2, prefetch }, 1, usize::MAX),
            ]
        });
    all.into_iter()
        .chain(vector)
        .filter(|(kernel, ..)| {
            let runs = kernel.available(&features);
            if !runs {
                eprintln!("skipped {kernel:?}: this CPU lacks its ISA");
            }
            runs
        })
        .collect()
}

mod every_kernel {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

        /// Each kernel this CPU runs, on random shapes inside its domain (0 and 1 and
        /// every tile edge included) and random values, through `Kernel::run`, against
        /// the f64 reference; C rows poisoned between the rows when `ldc > n`.
        #[test]
        fn random_shapes_match_the_reference(
            m in 0usize..140,
            k in 0usize..400,
            n in 0usize..140,
            pad in 0usize..3,
            seed in any::<u64>(),
        ) {
            for (kernel, max_m, max_n) in kernels() {
                let (m, n) = (m.min(max_m), n.min(max_n));
                let (a, b) = random(seed, m, k, n);
                let dims = Dims { ldc: n + pad, ..Dims::packed(Shape::new(m, k, n)) };
                let checked = check_product((&a, &b), (m, k, n), |a, b, c| {
                    let mut wide = vec![f32::NAN; m * dims.ldc];
                    kernel.run(a, b, &mut wide, dims);
                    for (to, from) in c.chunks_exact_mut(n.max(1)).zip(wide.chunks(dims.ldc.max(1))) {
                        to.copy_from_slice(&from[..n]);
                    }
                });
                prop_assert!(checked.is_ok(), "{kernel:?}: {checked:?}");
            }
        }
    }

    #[test]
    fn large_blocks_match_the_reference() {
        // Several k and n blocks, the tall block size, whole and partial tiles.
        for (kernel, max_m, max_n) in kernels() {
            for (m, k, n) in [(530, 1100, 500), (24, 2100, 1030), (700, 300, 64)] {
                let (m, n) = (m.min(max_m), n.min(max_n));
                let (a, b) = random(7, m, k, n);
                let dims = Dims::packed(Shape::new(m, k, n));
                check_product((&a, &b), (m, k, n), |a, b, c| kernel.run(a, b, c, dims))
                    .unwrap_or_else(|e| panic!("{kernel:?}: {e}"));
            }
        }
    }
}
