//! The shape of a product and the checks every backend runs before any work.

use std::fmt;

use crate::{Error, Result};

/// The default largest dimension a backend accepts: the Function Network's
/// specification names 8192×8192 as the largest challenge. Change it per backend with
/// the backends' `with_max_dim`.
pub const DEFAULT_MAX_DIM: usize = 8192;

/// The largest dimension the Metal bridge's 32-bit interface can carry.
pub const BRIDGE_MAX_DIM: usize = u32::MAX as usize;

/// The dimensions of `C (m×n) = A (m×k) · B (k×n)`, all row-major.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Shape {
    /// Rows of A and C.
    pub m: usize,
    /// Columns of A, rows of B (the inner dimension).
    pub k: usize,
    /// Columns of B and C.
    pub n: usize,
}

impl Shape {
    /// A shape from its three dimensions.
    pub const fn new(m: usize, k: usize, n: usize) -> Self {
        Self { m, k, n }
    }

    /// The square shape `size×size×size`.
    pub const fn square(size: usize) -> Self {
        Self::new(size, size, size)
    }

    /// True when any dimension is zero: the product is empty (m or n is 0) or all
    /// zeros (k is 0), and no backend is asked.
    pub const fn is_degenerate(&self) -> bool {
        self.m == 0 || self.k == 0 || self.n == 0
    }

    /// Floating-point operations of the product, `2·m·k·n`, as f64 (never overflows).
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.k as f64 * self.n as f64
    }

    /// Element counts of A, B and C, or an error when one overflows `usize` or its byte
    /// size overflows `isize` (no allocation could hold it).
    pub fn lens(&self) -> Result<(usize, usize, usize)> {
        let len = |r: usize, c: usize, name: &str| {
            r.checked_mul(c)
                .filter(|&l| l.checked_mul(4).is_some_and(|b| b <= isize::MAX as usize))
                .ok_or_else(|| Error::invalid(format!("{name} is {r}×{c}: its size overflows")))
        };
        Ok((
            len(self.m, self.k, "A")?,
            len(self.k, self.n, "B")?,
            len(self.m, self.n, "C")?,
        ))
    }

    /// Checks the slice lengths against the shape and every dimension against
    /// `max_dim`. Every backend calls this before doing any work.
    pub fn check(&self, a: usize, b: usize, c: usize, max_dim: usize) -> Result<()> {
        for (name, value) in [("m", self.m), ("k", self.k), ("n", self.n)] {
            if value > max_dim {
                return Err(Error::invalid(format!(
                    "{name} = {value} is over the largest dimension allowed, {max_dim}"
                )));
            }
        }
        let (la, lb, lc) = self.lens()?;
        for (name, want, got) in [("A", la, a), ("B", lb, b), ("C", lc, c)] {
            if want != got {
                return Err(Error::invalid(format!(
                    "{name} has {got} elements, but the shape {self} needs {want}"
                )));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}×{}×{} (m×k×n)", self.m, self.k, self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_must_match_the_shape() {
        let s = Shape::new(2, 3, 4);
        assert!(s.check(6, 12, 8, DEFAULT_MAX_DIM).is_ok());
        let err = s.check(5, 12, 8, DEFAULT_MAX_DIM).unwrap_err();
        assert!(err.to_string().contains("A has 5 elements"), "{err}");
        let err = s.check(6, 13, 8, DEFAULT_MAX_DIM).unwrap_err();
        assert!(err.to_string().contains("B has 13 elements"), "{err}");
        let err = s.check(6, 12, 9, DEFAULT_MAX_DIM).unwrap_err();
        assert!(err.to_string().contains("C has 9 elements"), "{err}");
    }

    #[test]
    fn overflowing_products_are_rejected() {
        let s = Shape::new(usize::MAX, 2, 1);
        let err = s.check(0, 2, 0, usize::MAX).unwrap_err();
        assert!(err.to_string().contains("overflows"), "{err}");
        // Fits usize but not an allocation of f32.
        let s = Shape::new(1 << 62, 1, 1);
        assert!(s.lens().is_err());
    }

    #[test]
    fn dimensions_over_the_limit_are_rejected() {
        let s = Shape::new(9000, 1, 1);
        let err = s.check(9000, 1, 9000, DEFAULT_MAX_DIM).unwrap_err();
        assert!(err.to_string().contains("m = 9000"), "{err}");
    }

    #[test]
    fn degenerate_and_flops() {
        assert!(Shape::new(0, 3, 3).is_degenerate());
        assert!(Shape::new(3, 0, 3).is_degenerate());
        assert!(!Shape::square(1).is_degenerate());
        assert_eq!(Shape::new(2, 3, 4).flops(), 48.0);
    }
}
