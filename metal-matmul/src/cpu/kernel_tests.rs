//! What the tests of the CPU kernels share: their operands and the check of a product.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::Shape;
use crate::numeric::{DEFAULT_TOLERANCE, verify_product};

/// Whether this CPU runs the AVX-512 kernels; when not, prints why the calling test is
/// skipped.
pub(super) fn has_avx512() -> bool {
    let has = super::blocked::available();
    if !has {
        eprintln!("skipped: this CPU has no AVX-512F");
    }
    has
}

/// A (m×k) and B (k×n) of small patterned values, the same on every run: integers
/// and quarters, so every product of two is exact in f32.
pub(super) fn patterned(m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
    let a = (0..m * k).map(|i| ((i * 7 % 13) as f32) - 6.0).collect();
    let b = (0..k * n)
        .map(|i| ((i * 5 % 11) as f32) / 4.0 - 1.0)
        .collect();
    (a, b)
}

/// A (m×k) and B (k×n) of uniform random values in [−1, 1), drawn from `seed`.
pub(super) fn random(seed: u64, m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut draw =
        |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0..1.0)).collect() };
    (draw(m * k), draw(k * n))
}

/// Runs `product` from A and B into a C filled with NaN first (so an element it never
/// writes fails), then checks C against the f64 reference; the error names the shape.
pub(super) fn check_product(
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
