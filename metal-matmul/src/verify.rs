//! Checking a product `C = A·B`: the one way the workspace verifies a result.
//!
//! Three checks, from exact to cheap, all in f64:
//!
//! - [`full`]: every element against [`reference_product`], the naive f64 product. O(m·k·n).
//! - [`sampled`]: an even sample of elements, each an f64 dot product. O(samples·k).
//! - [`freivalds`]: C·r against A·(B·r) for random vectors r. O(rounds·(m·k + k·n + m·n)).
//!
//! [`full`] and [`sampled`] measure an element's error relative to the product's scale,
//! [`scale`] = max|A|·max|B|·k (f32 accumulation error grows with k), and fail with
//! [`Error::Mismatch`] above a tolerance: [`Method::tolerance`](crate::Method::tolerance)
//! of the method that ran ([`DEFAULT_TOLERANCE`] for FP32, [`TF32_TOLERANCE`] for TF32).
//! [`product`] picks between them by the product's size. [`freivalds`] needs no
//! tolerance: it bounds each row's rounding itself. A NaN never passes any of them.
//!
//! [`DEFAULT_TOLERANCE`]: crate::numeric::DEFAULT_TOLERANCE
//! [`TF32_TOLERANCE`]: crate::numeric::TF32_TOLERANCE

use crate::random::SplitMix64;
use crate::{Error, Result, Shape};

/// `C = A·B` computed in f64 with the naive triple loop: the reference [`full`] compares
/// against. Public so that tests can build exact expectations from it. O(m·k·n) on one
/// thread: for checking, not speed.
///
/// # Panics
/// When `a` or `b` is not as long as `shape` says.
pub fn reference_product(a: &[f32], b: &[f32], shape: Shape) -> Vec<f64> {
    let Shape { m, k, n } = shape;
    assert_eq!(a.len(), m * k, "A's length");
    assert_eq!(b.len(), k * n, "B's length");
    let mut c = vec![0.0f64; m * n];
    for i in 0..m {
        let row = &mut c[i * n..(i + 1) * n];
        for p in 0..k {
            let aip = f64::from(a[i * k + p]);
            for (cij, &bpj) in row.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                *cij += aip * f64::from(bpj);
            }
        }
    }
    c
}

/// The scale errors are measured against: max|A| · max|B| · k, at least 1 (so products
/// of tiny or zero operands are held to an absolute error). One pass over A and B.
pub fn scale(a: &[f32], b: &[f32], k: usize) -> f64 {
    let max_abs = |v: &[f32]| v.iter().fold(0.0f64, |m, x| m.max(f64::from(x.abs())));
    (max_abs(a) * max_abs(b) * k as f64).max(1.0)
}

/// Checks `got` (m×n of `shape`) element by element against `want`, errors relative to
/// `scale`; returns the largest scaled error, or [`Error::Mismatch`] for the largest
/// one when it is over `tolerance`. A NaN in `got` is an infinite error. O(m·n).
///
/// # Panics
/// When `got` and `want` differ in length.
pub fn against(got: &[f32], want: &[f64], shape: Shape, scale: f64, tolerance: f64) -> Result<f64> {
    assert_eq!(got.len(), want.len(), "lengths");
    let (err, at) = got
        .iter()
        .zip(want)
        .enumerate()
        .map(|(i, (&g, &w))| (scaled_error(g, w, scale), i))
        .fold(
            (0.0, 0),
            |best, cur| if cur.0 > best.0 { cur } else { best },
        );
    if err <= tolerance {
        Ok(err)
    } else {
        Err(mismatch(shape, at, got[at], want[at], err, tolerance))
    }
}

/// Checks every element of `c` against [`reference_product`]`(a, b, shape)` within `tolerance`
/// (see [`against`]); returns the largest scaled error. O(m·k·n) f64 multiply-adds on
/// one thread and m·n f64 of memory.
///
/// # Panics
/// When a slice is not as long as `shape` says.
pub fn full(a: &[f32], b: &[f32], c: &[f32], shape: Shape, tolerance: f64) -> Result<f64> {
    against(
        c,
        &reference_product(a, b, shape),
        shape,
        scale(a, b, shape.k),
        tolerance,
    )
}

/// Checks about `samples` elements of `c` spread over all of it (an odd stride, so the
/// sample walks through rows and columns both), each against an f64 dot product, within
/// `tolerance` of [`scale`]; returns the largest scaled error, or [`Error::Mismatch`] for
/// the first element over it. Every element when `samples` ≥ m·n. O(samples·k).
///
/// # Panics
/// When a slice is not as long as `shape` says.
pub fn sampled(
    a: &[f32],
    b: &[f32],
    c: &[f32],
    shape: Shape,
    tolerance: f64,
    samples: usize,
) -> Result<f64> {
    let Shape { m, k, n } = shape;
    assert_eq!(a.len(), m * k, "A's length");
    assert_eq!(b.len(), k * n, "B's length");
    assert_eq!(c.len(), m * n, "C's length");
    let scale = scale(a, b, k);
    let step = (c.len() / samples.max(1)).max(1) | 1;
    let mut worst = 0.0f64;
    for idx in (0..c.len()).step_by(step) {
        let (i, j) = (idx / n, idx % n);
        let want: f64 = (0..k)
            .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
            .sum();
        let err = scaled_error(c[idx], want, scale);
        if err > tolerance {
            return Err(mismatch(shape, idx, c[idx], want, err, tolerance));
        }
        worst = worst.max(err);
    }
    Ok(worst)
}

/// How [`product`] checked a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Checked {
    /// Every element, by [`full`].
    Full,
    /// [`PRODUCT_SAMPLES`] elements, by [`sampled`].
    Sampled,
}

impl Checked {
    /// What the result was checked against, in words: `"f64 reference"` or
    /// `"f64 dot products of sampled elements"`.
    pub fn description(self) -> &'static str {
        match self {
            Self::Full => "f64 reference",
            Self::Sampled => "f64 dot products of sampled elements",
        }
    }
}

/// Up to this many multiply-adds (m·k·n) [`product`] checks every element; above, a
/// sample.
pub const PRODUCT_FULL_MAX_WORK: f64 = 2.7e8;

/// Elements [`product`] samples from a product too large to check whole.
pub const PRODUCT_SAMPLES: usize = 4096;

/// Checks `c = a·b` within `tolerance`: [`full`] up to [`PRODUCT_FULL_MAX_WORK`]
/// multiply-adds, else [`sampled`] with [`PRODUCT_SAMPLES`] elements, so the check costs
/// at most about that much work whatever the size. Returns which check ran and the
/// largest scaled error.
///
/// # Panics
/// When a slice is not as long as `shape` says.
pub fn product(
    a: &[f32],
    b: &[f32],
    c: &[f32],
    shape: Shape,
    tolerance: f64,
) -> Result<(Checked, f64)> {
    if shape.flops() / 2.0 <= PRODUCT_FULL_MAX_WORK {
        full(a, b, c, shape, tolerance).map(|e| (Checked::Full, e))
    } else {
        sampled(a, b, c, shape, tolerance, PRODUCT_SAMPLES).map(|e| (Checked::Sampled, e))
    }
}

/// `|got - want| / scale`, infinite for NaN: a poisoned or unwritten element never
/// passes.
fn scaled_error(got: f32, want: f64, scale: f64) -> f64 {
    let e = (f64::from(got) - want).abs() / scale;
    if e.is_nan() { f64::INFINITY } else { e }
}

/// The [`Error::Mismatch`] for element `index` of a `shape` product.
fn mismatch(
    shape: Shape,
    index: usize,
    got: f32,
    want: f64,
    scaled_error: f64,
    tolerance: f64,
) -> Error {
    let n = shape.n.max(1);
    Error::Mismatch {
        row: index / n,
        col: index % n,
        got,
        want,
        scaled_error,
        tolerance,
    }
}

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

/// Freivalds' check of `c = a·b` with `rounds` random vectors drawn from `seed`: O(m·k +
/// k·n + m·n) per round instead of recomputing the product, and no caller tolerance.
///
/// For a random vector r, a correct C satisfies C·r = A·(B·r). A wrong C passes a round
/// only if its error vector happens to be orthogonal to r, which for r drawn from a
/// continuous distribution has probability zero; rounding is what makes the two sides
/// differ for a correct product, so each row gets a tolerance: the worst-case bound for
/// an f32 product computed in any order, with or without fused multiply-add,
/// |ĉᵢⱼ − cᵢⱼ| ≤ γ(k+1)·(|A|·|B|)ᵢⱼ with γ(n) = n·u/(1 − n·u), u = 2⁻²⁴ (the extra 1 is
/// the rounding of the stored result). Summed against |r|, row i may differ by at most
/// γ(k+1)·(|A|·(|B|·|r|))ᵢ; the f64 arithmetic of the check itself adds a negligible
/// 2⁻⁴⁰ relative margin. So a correct f32 product never fails, whatever the device's
/// summation order, and any error larger than that bound (a wrong tile, a stale buffer,
/// NaN, a bit flip in a high bit) is caught. Errors below it are indistinguishable from
/// rounding. (A TF32 product rounds more than this bound allows.)
///
/// `a` is m×k, `b` k×n and `c` m×n, row-major; lengths other than `shape` says fail the
/// check (zero rounds, not passed) rather than panic.
pub fn freivalds(
    a: &[f32],
    b: &[f32],
    c: &[f32],
    shape: Shape,
    rounds: u32,
    seed: u64,
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
    let mut rng = SplitMix64::new(seed);
    let mut worst = 0.0f64;
    let mut r = vec![0.0f64; n];
    let mut br = vec![0.0f64; k];
    let mut br_abs = vec![0.0f64; k];
    for _ in 0..rounds {
        for x in &mut r {
            // Positive, so |r| = r, and bounded away from zero: uniform in [0.5, 1.5).
            *x = 0.5 + rng.next_f64();
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
    use crate::numeric::DEFAULT_TOLERANCE;
    use crate::random_matrix;

    const A: [f32; 4] = [1.0, 2.0, 3.0, 4.0];
    const B: [f32; 4] = [5.0, 6.0, 7.0, 8.0];
    const C: [f32; 4] = [19.0, 22.0, 43.0, 50.0];

    #[test]
    fn reference_of_the_plan_example() {
        assert_eq!(
            reference_product(&A, &B, Shape::square(2)),
            vec![19.0, 22.0, 43.0, 50.0]
        );
    }

    #[test]
    fn nan_and_wrong_elements_never_pass_the_full_check() {
        let square = Shape::square(2);
        assert_eq!(full(&A, &B, &C, square, DEFAULT_TOLERANCE), Ok(0.0));
        let got = [19.0, 22.0, 43.0, f32::NAN];
        match full(&A, &B, &got, square, DEFAULT_TOLERANCE) {
            Err(Error::Mismatch {
                row: 1,
                col: 1,
                want,
                scaled_error,
                ..
            }) => {
                assert_eq!(want, 50.0);
                assert!(scaled_error.is_infinite());
            }
            other => panic!("{other:?}"),
        }
        let wrong = [19.0, 22.0, 44.0, 50.0];
        assert_eq!(
            full(&A, &B, &wrong, square, DEFAULT_TOLERANCE),
            Err(Error::Mismatch {
                row: 1,
                col: 0,
                got: 44.0,
                want: 43.0,
                scaled_error: 1.0 / scale(&A, &B, 2),
                tolerance: DEFAULT_TOLERANCE,
            })
        );
    }

    #[test]
    fn a_wrong_element_is_caught_small_and_large() {
        for shape in [Shape::new(3, 4, 5), Shape::new(700, 700, 700)] {
            let a = vec![0.5f32; shape.m * shape.k];
            let b = vec![0.25f32; shape.k * shape.n];
            let want = 0.125 * shape.k as f32;
            let mut c = vec![want; shape.m * shape.n];
            let (checked, err) = product(&a, &b, &c, shape, DEFAULT_TOLERANCE).unwrap();
            assert_eq!(err, 0.0);
            let small = shape.m == 3;
            assert_eq!(
                checked,
                if small {
                    Checked::Full
                } else {
                    Checked::Sampled
                }
            );
            c[0] = f32::NAN;
            assert!(
                matches!(
                    product(&a, &b, &c, shape, DEFAULT_TOLERANCE),
                    Err(Error::Mismatch { row: 0, col: 0, .. })
                ),
                "{shape}"
            );
        }
    }

    #[test]
    fn sampling_every_element_is_the_full_check() {
        let shape = Shape::new(13, 17, 11);
        let a = random_matrix(13 * 17, 1);
        let b = random_matrix(17 * 11, 2);
        let mut c: Vec<f32> = reference_product(&a, &b, shape)
            .iter()
            .map(|&x| x as f32)
            .collect();
        let whole = full(&a, &b, &c, shape, DEFAULT_TOLERANCE).unwrap();
        assert_eq!(
            sampled(&a, &b, &c, shape, DEFAULT_TOLERANCE, 1 << 20),
            Ok(whole)
        );
        c[13 * 11 - 1] += 0.5;
        assert!(matches!(
            sampled(&a, &b, &c, shape, DEFAULT_TOLERANCE, 1 << 20),
            Err(Error::Mismatch {
                row: 12,
                col: 10,
                ..
            })
        ));
    }

    #[test]
    fn against_reports_the_worst_element() {
        let shape = Shape::new(1, 3, 1);
        let got = [1.0, 2.5, 3.0];
        let want = [1.0, 2.0, 3.25];
        assert_eq!(
            against(&got, &want, Shape::new(3, 1, 1), 1.0, 0.1),
            Err(Error::Mismatch {
                row: 1,
                col: 0,
                got: 2.5,
                want: 2.0,
                scaled_error: 0.5,
                tolerance: 0.1,
            })
        );
        assert_eq!(against(&got[..1], &want[..1], shape, 1.0, 0.1), Ok(0.0));
    }

    #[test]
    fn freivalds_passes_a_correct_product_and_fails_a_wrong_one() {
        let shape = Shape::new(3, 4, 5);
        let a = random_matrix(12, 7);
        let b = random_matrix(20, 8);
        let mut c: Vec<f32> = reference_product(&a, &b, shape)
            .iter()
            .map(|&x| x as f32)
            .collect();
        assert!(freivalds(&a, &b, &c, shape, 2, 1).passed);
        c[7] += 0.01;
        let report = freivalds(&a, &b, &c, shape, 2, 2);
        assert!(!report.passed, "{report:?}");
        c[7] = f32::NAN;
        assert!(!freivalds(&a, &b, &c, shape, 1, 3).passed);
    }

    #[test]
    fn freivalds_fails_wrong_lengths_instead_of_panicking() {
        let report = freivalds(&[1.0], &[1.0], &[], Shape::square(1), 1, 0);
        assert!(!report.passed);
        assert_eq!(report.rounds, 0);
    }

    #[test]
    fn freivalds_finds_no_residual_in_an_exact_integer_product() {
        let report = freivalds(&A, &B, &C, Shape::square(2), 3, 4);
        assert!(report.passed && report.worst_ratio <= 1.0, "{report:?}");
    }
}
