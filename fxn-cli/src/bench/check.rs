//! Checking a benchmark's result before its number is reported.

use metal_matmul::Shape;
use metal_matmul::numeric::verify_product;

/// Up to this many multiply-adds the whole result is checked against the f64 reference
/// loop (about a second at 1024³ would be too slow per case).
const FULL_CHECK_MAX_WORK: f64 = 2.7e8;

/// Elements sampled, spread evenly over C, when the product is too large to check whole.
const SAMPLES: usize = 4096;

/// Checks `c = a·b` within `tolerance` (a scaled error; [`Method::tolerance`] of the
/// method that ran): every element against the f64 reference for small products, an
/// even sample of elements (each an exact f64 dot product) for large ones. Returns what
/// it checked against and the largest scaled error.
///
/// [`Method::tolerance`]: metal_matmul::Method::tolerance
pub fn verify(
    a: &[f32],
    b: &[f32],
    c: &[f32],
    shape: Shape,
    tolerance: f64,
) -> Result<(&'static str, f64), metal_matmul::Error> {
    if shape.flops() / 2.0 <= FULL_CHECK_MAX_WORK {
        return verify_product(a, b, c, shape, tolerance).map(|e| ("f64 reference", e));
    }
    let max_abs = |v: &[f32]| v.iter().fold(0.0f64, |m, x| m.max(f64::from(x.abs())));
    let scale = (max_abs(a) * max_abs(b) * shape.k as f64).max(1.0);
    let total = c.len();
    let step = (total / SAMPLES).max(1);
    let mut worst = 0.0f64;
    // An odd stride walks through rows and columns both.
    for idx in (0..total).step_by(step | 1) {
        let (i, j) = (idx / shape.n, idx % shape.n);
        let want: f64 = (0..shape.k)
            .map(|p| f64::from(a[i * shape.k + p]) * f64::from(b[p * shape.n + j]))
            .sum();
        let err = (f64::from(c[idx]) - want).abs() / scale;
        if err.is_nan() || err > tolerance {
            return Err(metal_matmul::Error::InvalidArgument(format!(
                "C[{i}][{j}] = {}, the f64 dot product gives {want} (scaled error {err:.2e})",
                c[idx]
            )));
        }
        worst = worst.max(err);
    }
    Ok(("f64 dot products of sampled elements", worst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_element_is_caught_small_and_large() {
        for shape in [Shape::new(3, 4, 5), Shape::new(700, 700, 700)] {
            let a = vec![0.5f32; shape.m * shape.k];
            let b = vec![0.25f32; shape.k * shape.n];
            let want = 0.125 * shape.k as f32;
            let mut c = vec![want; shape.m * shape.n];
            assert!(verify(&a, &b, &c, shape, metal_matmul::numeric::DEFAULT_TOLERANCE).is_ok());
            c[0] = f32::NAN;
            assert!(
                verify(&a, &b, &c, shape, metal_matmul::numeric::DEFAULT_TOLERANCE).is_err(),
                "{shape}"
            );
        }
    }
}
