//! Arguments shared by several commands, and opening the backend they name.

use fxn_challenge::{Engine, EngineConfig, Limits};
use metal_matmul::{
    Backend, BackendChoice, HostBuffer, Method, SelectOptions, Selected, Shape, random_matrix,
    select_with,
};

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

/// A and B of `shape`, values uniform in [-1, 1) ([`random_matrix`]): reproducible from
/// `seed`, or from the system's entropy without one. A shape whose lengths overflow is a
/// usage error.
pub fn random_operands(shape: Shape, seed: Option<u64>) -> CliResult<(Vec<f32>, Vec<f32>)> {
    let (len_a, len_b, _) = shape.lens()?;
    let seed = seed.unwrap_or_else(rand::random);
    Ok((random_matrix(len_a, seed), random_matrix(len_b, !seed)))
}

/// `v` in the memory `backend` lends for operands when that memory is pinned (CUDA: the
/// product's copies then run in place, with no staging), else `v` itself. The move
/// into pinned memory costs one copy of `v`.
pub fn in_backend_memory(backend: &dyn Backend, v: Vec<f32>) -> CliResult<HostBuffer> {
    let mut lent = backend.host_buffer(v.len())?;
    if !lent.is_pinned() {
        return Ok(HostBuffer::from(v));
    }
    lent.copy_from_slice(&v);
    Ok(lent)
}

/// `len` NaN (an element the product never writes then fails the check) in the memory
/// `backend` lends for results.
pub fn nan_output(backend: &dyn Backend, len: usize) -> CliResult<HostBuffer> {
    let mut c = backend.host_buffer(len)?;
    c.fill(f32::NAN);
    Ok(c)
}

/// Parses a positive integer for clap.
pub fn parse_positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

/// How the challenge engine is set up (shared by `challenge` and `serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// The largest dimension (rows or columns) of any matrix, and the largest `size`.
    #[arg(long, default_value_t = metal_matmul::DEFAULT_MAX_DIM, value_parser = parse_positive)]
    pub max_dim: usize,
    /// The most MiB that A, B and C may take together as f32 (default: what the
    /// largest square challenge needs, 3·max_dim²·4 bytes).
    #[arg(long)]
    pub memory_budget_mib: Option<u64>,
    /// CPU worker threads (default: FXN_THREADS, else every core).
    #[arg(long, short = 't', value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Never use a GPU (Metal or CUDA), even for `gpu`, `metal` or `cuda` requests.
    #[arg(long)]
    pub no_gpu: bool,
    /// Check every product with Freivalds' test before answering; a GPU result that
    /// fails is recomputed on the CPU (a payload can ask with "selfCheck": true).
    #[arg(long)]
    pub self_check: bool,
}

impl EngineArgs {
    /// The limits these arguments set.
    pub fn limits(&self) -> Limits {
        let mut limits = Limits::with_max_dim(self.max_dim);
        if let Some(mib) = self.memory_budget_mib {
            limits.memory_budget = mib.saturating_mul(1 << 20);
        }
        limits
    }

    /// Opens the engine: the CPU backend and, unless `--no-gpu`, Metal or else CUDA
    /// when a device answers.
    pub fn open(&self) -> CliResult<Engine> {
        Engine::new(EngineConfig {
            limits: self.limits(),
            threads: self.threads.map(usize::from),
            use_gpu: !self.no_gpu,
            self_check: self.self_check,
            ..EngineConfig::default()
        })
        .map_err(CliError::from)
    }
}
