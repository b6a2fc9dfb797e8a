//! Arguments shared by several commands, and opening the backend they name.

use metal_matmul::{BackendChoice, Method, SelectOptions, Selected, select_with};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{CliError, CliResult};

/// Which backend to open and how.
#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// Backend: auto (Metal, else CUDA, else the CPU), cpu, metal, cuda or gpu (Metal,
    /// else CUDA). FXN_BACKEND overrides auto.
    #[arg(long, short, default_value = "auto", value_parser = parse_choice)]
    pub backend: BackendChoice,
    /// CPU worker threads (default: FXN_THREADS, else every core).
    #[arg(long, short = 't', value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
}

impl BackendArgs {
    /// Opens the backend these arguments name.
    pub fn open(&self) -> CliResult<Selected> {
        let options = SelectOptions {
            threads: self.threads.map(usize::from),
            ..SelectOptions::default()
        };
        Ok(select_with(self.backend, &options)?)
    }
}

fn parse_choice(s: &str) -> Result<BackendChoice, String> {
    s.parse().map_err(|e: metal_matmul::Error| e.to_string())
}

/// Parses a method name for clap.
pub fn parse_method(s: &str) -> Result<Method, String> {
    s.parse().map_err(|e: metal_matmul::Error| e.to_string())
}

/// A `rows×cols` matrix of values uniform in [-1, 1), reproducible from `rng`.
pub fn random_matrix(rng: &mut StdRng, rows: usize, cols: usize) -> CliResult<Vec<f32>> {
    let len = rows
        .checked_mul(cols)
        .ok_or_else(|| CliError::usage(format!("a {rows}×{cols} matrix is too large")))?;
    Ok((0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect())
}

/// A random generator from `seed`, or from the system's entropy.
pub fn rng(seed: Option<u64>) -> StdRng {
    seed.map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64)
}
