//! Freivalds' check of a product: O(n²) per round instead of recomputing it.
//!
//! For a random vector r, a correct C satisfies C·r = A·(B·r). A wrong C passes a
//! round only if its error vector happens to be orthogonal to r, which for r drawn
//! from a continuous distribution has probability zero; rounding is what makes the
//! two sides differ for a correct product, so each row gets a tolerance.
//!
//! The tolerance is the worst-case bound for an f32 product computed in any order,
//! with or without fused multiply-add: |ĉᵢⱼ − cᵢⱼ| ≤ γ(k+1)·(|A|·|B|)ᵢⱼ with
//! γ(n) = n·u/(1 − n·u), u = 2⁻²⁴ (the extra 1 is the rounding of the stored result).
//! Summed against |r|, row i may differ by at most γ(k+1)·(|A|·(|B|·|r|))ᵢ; the f64
//! arithmetic of the check itself adds a negligible 2⁻⁴⁰ relative margin. So a correct
//! product never fails, whatever the summation order of the device, and any error
//! larger than that bound (a wrong tile, a stale buffer, NaN, a bit flip in a high
//! bit) is caught. Errors below it are indistinguishable from rounding.

use metal_matmul::Shape;
use rand::Rng;

/// The outcome of [`freivalds`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FreivaldsReport {
    /// Rounds run.
    pub rounds: u32,
    /// Every row of every round was within its tolerance.
    pub passed: bool,
    /// The largest |C·r − A·(B·r)|ᵢ / toleranceᵢ seen (≤ 1 passes; infinite for NaN).
    pub worst_ratio: f64,
}

/// Checks `c = a·b` with `rounds` random vectors from `rng`.
///
/// `a` is m×k, `b` k×n and `c` m×n, row-major; the lengths must match `shape`
/// (callers pass validated operands; a mismatch fails the check rather than panics).
pub fn freivalds(
    a: &[f32],
    b: &[f32],
    c: &[f32],
    shape: Shape,
    rounds: u32,
    rng: &mut impl Rng,
) -> FreivaldsReport {
    let Shape { m, k, n } = shape;
    if a.len() != m * k || b.len() != k * n || c.len() != m * n {
        return FreivaldsReport {
            rounds: 0,
            passed: false,
            worst_ratio: f64::INFINITY,
        };
    }
    let u = f64::powi(2.0, -24);
    let steps = (k + 1) as f64;
    let gamma = steps * u / (1.0 - steps * u).max(f64::MIN_POSITIVE) * (1.0 + f64::powi(2.0, -40));
    let mut worst = 0.0f64;
    let mut r = vec![0.0f64; n];
    let mut br = vec![0.0f64; k];
    let mut br_abs = vec![0.0f64; k];
    for _ in 0..rounds {
        for x in &mut r {
            // Positive, so |r| = r, and bounded away from zero.
            *x = rng.random_range(0.5..1.5);
        }
        for (p, row) in b.chunks_exact(n).enumerate() {
            let (mut s, mut s_abs) = (0.0, 0.0);
            for (&bv, &rv) in row.iter().zip(&r) {
                let bv = f64::from(bv);
                s += bv * rv;
                s_abs += bv.abs() * rv;
            }
            br[p] = s;
            br_abs[p] = s_abs;
        }
        for (a_row, c_row) in a.chunks_exact(k).zip(c.chunks_exact(n)) {
            let (mut want, mut bound) = (0.0, 0.0);
            for ((&av, &s), &s_abs) in a_row.iter().zip(&br).zip(&br_abs) {
                let av = f64::from(av);
                want += av * s;
                bound += av.abs() * s_abs;
            }
            let got: f64 = c_row
                .iter()
                .zip(&r)
                .map(|(&cv, &rv)| f64::from(cv) * rv)
                .sum();
            let diff = (got - want).abs();
            let tolerance = gamma * bound;
            let ratio = if diff.is_nan() {
                f64::INFINITY
            } else if diff == 0.0 {
                0.0
            } else if tolerance > 0.0 {
                diff / tolerance
            } else {
                f64::INFINITY
            };
            worst = worst.max(ratio);
        }
    }
    FreivaldsReport {
        rounds,
        passed: worst <= 1.0,
        worst_ratio: worst,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand_chacha::ChaCha8Rng {
        rand_chacha::ChaCha8Rng::seed_from_u64(7)
    }

    #[test]
    fn a_correct_product_passes_and_a_wrong_one_fails() {
        let shape = Shape::new(3, 4, 5);
        let mut g = rng();
        let a: Vec<f32> = (0..12).map(|_| g.random_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..20).map(|_| g.random_range(-1.0..1.0)).collect();
        let c = metal_matmul::numeric::reference_matmul(&a, &b, shape);
        let mut c: Vec<f32> = c.iter().map(|&x| x as f32).collect();
        assert!(freivalds(&a, &b, &c, shape, 2, &mut g).passed);
        c[7] += 0.01;
        let report = freivalds(&a, &b, &c, shape, 2, &mut g);
        assert!(!report.passed, "{report:?}");
        c[7] = f32::NAN;
        assert!(!freivalds(&a, &b, &c, shape, 1, &mut g).passed);
    }

    #[test]
    fn wrong_lengths_fail_instead_of_panicking() {
        let report = freivalds(&[1.0], &[1.0], &[], Shape::square(1), 1, &mut rng());
        assert!(!report.passed);
    }

    #[test]
    fn exact_integer_products_have_no_residual() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [5.0, 6.0, 7.0, 8.0];
        let c = [19.0, 22.0, 43.0, 50.0];
        let report = freivalds(&a, &b, &c, Shape::square(2), 3, &mut rng());
        assert!(report.passed);
        assert!(report.worst_ratio <= 1.0);
    }
}
