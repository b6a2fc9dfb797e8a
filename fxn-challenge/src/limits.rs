//! How large a challenge may be.

use metal_matmul::DEFAULT_MAX_DIM;

/// Limits checked while a challenge is parsed and before any work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest number of rows or columns of any matrix, and the largest `size`.
    /// Default [`DEFAULT_MAX_DIM`] (8192, the largest challenge the Function Network's
    /// specification names).
    pub max_dim: usize,
    /// The most bytes A, B and C together may take as f32. Default: what the largest
    /// square challenge needs, `3 · max_dim² · 4` bytes (768 MiB at 8192), so with the
    /// default it never binds before `max_dim` does; lower it on small machines.
    pub memory_budget: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self::with_max_dim(DEFAULT_MAX_DIM)
    }
}

impl Limits {
    /// Limits with `max_dim` and the memory budget its largest square challenge needs.
    pub fn with_max_dim(max_dim: usize) -> Self {
        let dim = max_dim as u64;
        Self {
            max_dim,
            memory_budget: dim.saturating_mul(dim).saturating_mul(12),
        }
    }

    /// How many f32 values the budget holds.
    pub fn budget_elements(&self) -> u64 {
        self.memory_budget / 4
    }

    /// Checks that A (m×k), B (k×n) and C (m×n) together fit the memory budget.
    pub(crate) fn check_budget(&self, m: usize, k: usize, n: usize) -> Result<(), String> {
        let (m, k, n) = (m as u128, k as u128, n as u128);
        let elements = m * k + k * n + m * n;
        if elements * 4 > u128::from(self.memory_budget) {
            return Err(format!(
                "A, B and C would take {} bytes as f32, over the memory budget of {} bytes",
                elements * 4,
                self.memory_budget
            ));
        }
        Ok(())
    }
}
