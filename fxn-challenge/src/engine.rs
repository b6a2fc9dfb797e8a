//! Running a challenge: the backends, set up once, and upstream's rules for choosing.

use std::time::Duration;

use metal_matmul::numeric::first_non_finite;
use metal_matmul::verify::{FreivaldsReport, freivalds};
use metal_matmul::{
    Backend, BackendChoice, HostBuffer, MatmulOptions, SelectOptions, Shape, select_with,
};

use crate::random::{fresh_seed, random_fill, seeded_rng};
use crate::{BackendRequest, Challenge, ChallengeError, Limits, Operands, Outcome};

/// `auto` runs on the GPU from this many rows of A on (upstream's threshold).
pub const GPU_MIN_SIZE: usize = 100;

/// Rounds of Freivalds' check when the self-check is on (each round is O(n²); a wrong
/// product survives a round with probability zero, two rounds guard against an
/// unlucky draw near a tolerance edge).
pub const SELF_CHECK_ROUNDS: u32 = 2;

/// How an [`Engine`] is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// The size limits of challenges, also given to the backends.
    pub limits: Limits,
    /// CPU worker threads; `None` for the CPU backend's default.
    pub threads: Option<usize>,
    /// Open a GPU backend (Metal, else CUDA) when there is a device (default true). Off, every
    /// challenge runs on the CPU.
    pub use_gpu: bool,
    /// Check every product with Freivalds' test before answering (default off; a
    /// payload can ask for it with `"selfCheck": true`).
    pub self_check: bool,
    /// Rounds of the check.
    pub self_check_rounds: u32,
    /// `auto` uses the GPU from this many rows of A on.
    pub gpu_min_size: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            threads: None,
            use_gpu: true,
            self_check: false,
            self_check_rounds: SELF_CHECK_ROUNDS,
            gpu_min_size: GPU_MIN_SIZE,
        }
    }
}

/// The backends and rules that answer challenges. Made once and shared: it is
/// `Send + Sync`, and every call may run concurrently.
#[derive(Debug)]
pub struct Engine {
    cpu: Box<dyn Backend>,
    gpu: Option<Box<dyn Backend>>,
    gpu_unavailable: Option<String>,
    config: EngineConfig,
}

impl Engine {
    /// Opens the CPU backend and, when `config.use_gpu`, a GPU backend: Metal when a
    /// device answers, else CUDA (through [`select_with`] with `gpu`). A missing GPU is not an error: its
    /// reason is kept ([`gpu_unavailable_reason`](Self::gpu_unavailable_reason)) and
    /// GPU requests run on the CPU.
    pub fn new(config: EngineConfig) -> Result<Self, ChallengeError> {
        let options = SelectOptions {
            threads: config.threads,
            max_dim: Some(config.limits.max_dim),
            ..SelectOptions::default()
        };
        let cpu = select_with(BackendChoice::Cpu, &options)
            .map_err(|e| ChallengeError::Internal(format!("cannot open the CPU backend: {e}")))?
            .backend;
        let (gpu, gpu_unavailable) = if !config.use_gpu {
            (None, Some("the GPU is turned off".to_owned()))
        } else {
            // Metal, then CUDA: the Go node's order.
            match select_with(BackendChoice::Gpu, &options) {
                Ok(selected) => (Some(selected.backend), None),
                Err(e) => (None, Some(e.to_string())),
            }
        };
        if let Some(reason) = &gpu_unavailable {
            log::debug!("challenge: GPU requests will run on the CPU: {reason}");
        }
        Ok(Self::with_backends(cpu, gpu, config).with_gpu_reason(gpu_unavailable))
    }

    /// An engine on backends the caller made (e.g. a test double for a faulty GPU).
    /// `cpu` is the fallback and must be reliable.
    pub fn with_backends(
        cpu: Box<dyn Backend>,
        gpu: Option<Box<dyn Backend>>,
        config: EngineConfig,
    ) -> Self {
        let gpu_unavailable = gpu.is_none().then(|| "no GPU backend was given".to_owned());
        Self {
            cpu,
            gpu,
            gpu_unavailable,
            config,
        }
    }

    fn with_gpu_reason(mut self, reason: Option<String>) -> Self {
        self.gpu_unavailable = reason;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The size limits challenges are checked against.
    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    /// The GPU backend, when one is open.
    pub fn gpu(&self) -> Option<&dyn Backend> {
        self.gpu.as_deref()
    }

    /// Why there is no GPU backend, when there is none.
    pub fn gpu_unavailable_reason(&self) -> Option<&str> {
        self.gpu_unavailable.as_deref()
    }

    /// Parses an envelope body and runs it: [`parse_envelope`](crate::parse_envelope)
    /// then [`run`](Self::run).
    pub fn answer(&self, body: &[u8]) -> Result<Outcome, ChallengeError> {
        self.run(crate::parse_envelope(body, self.limits())?)
    }

    /// Runs a validated challenge with upstream's rules: the GPU for `gpu`, `metal`,
    /// `cuda`, or `auto` with at least [`gpu_min_size`](EngineConfig::gpu_min_size)
    /// rows; the CPU otherwise. With no GPU, a GPU request runs on the CPU; a GPU error,
    /// a non-finite GPU result or one the self-check rejects is logged and the product
    /// is recomputed on the CPU.
    pub fn run(&self, challenge: Challenge) -> Result<Outcome, ChallengeError> {
        let shape = challenge.shape();
        let check = self.config.self_check || challenge.self_check == Some(true);
        let want_gpu = match challenge.backend {
            BackendRequest::Cpu => false,
            BackendRequest::Gpu => true,
            BackendRequest::Auto => shape.m >= self.config.gpu_min_size,
        };
        // Generated operands and C go in memory the backend that will run lends (pinned
        // on CUDA: its copies then need no staging); given ones stay where parsed.
        let host = match (want_gpu, self.gpu.as_deref()) {
            (true, Some(gpu)) => gpu,
            _ => self.cpu.as_ref(),
        };
        let lend = |len: usize| {
            host.host_buffer(len)
                .map_err(|e| ChallengeError::Internal(e.to_string()))
        };
        let (len_a, len_b, len_c) = shape
            .lens()
            .map_err(|e| ChallengeError::invalid("payload", e.to_string()))?;
        let (a, b, seed) = match challenge.operands {
            Operands::Random { seed, .. } => {
                let seed = seed.unwrap_or_else(fresh_seed);
                let mut rng = seeded_rng(seed);
                let mut a = lend(len_a)?;
                random_fill(&mut rng, &mut a);
                let mut b = lend(len_b)?;
                random_fill(&mut rng, &mut b);
                (a, b, Some(seed))
            }
            Operands::Given { a, b } => (HostBuffer::from(a.data), HostBuffer::from(b.data), None),
        };
        let mut c = lend(len_c)?;

        let mut gpu_fallback = None;
        let mut ran = None;
        if want_gpu {
            match self.gpu.as_deref() {
                Some(gpu) => match self.attempt(gpu, &a, &b, &mut c, shape, check) {
                    Ok(done) => ran = Some((gpu, done)),
                    Err(reason) => {
                        log::warn!("challenge {shape}: {reason}; recomputing on the CPU");
                        gpu_fallback = Some(reason.to_string());
                    }
                },
                None => {
                    gpu_fallback = self.gpu_unavailable.clone();
                }
            }
        }
        let (backend, (elapsed, self_check)) = match ran {
            Some(done) => done,
            None => {
                let cpu = self.cpu.as_ref();
                match self.attempt(cpu, &a, &b, &mut c, shape, check) {
                    Ok(done) => (cpu, done),
                    Err(Attempt::Overflow(message)) => {
                        return Err(ChallengeError::invalid("payload", message));
                    }
                    Err(reason) => return Err(ChallengeError::Internal(reason.to_string())),
                }
            }
        };
        Ok(Outcome {
            shape,
            matrix_size: shape.m,
            c,
            backend: backend.kind(),
            device: backend.device_info(),
            cuda: backend.as_cuda().map(|cuda| cuda.facts().clone()),
            computation_time: elapsed,
            self_check,
            seed,
            gpu_fallback,
        })
    }

    /// One multiplication on `backend`, its result checked for finiteness and, with
    /// `check`, by Freivalds' test.
    fn attempt(
        &self,
        backend: &dyn Backend,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        shape: Shape,
        check: bool,
    ) -> Result<(Duration, Option<FreivaldsReport>), Attempt> {
        let report = backend
            .matmul_with(a, b, c, shape, &MatmulOptions::default())
            .map_err(|e| Attempt::Failed(format!("the {} backend failed: {e}", backend.kind())))?;
        // The inputs are finite, so a non-finite result is an f32 overflow, or a fault.
        if let Some(index) = positive_zeros_and_first_non_finite(c) {
            let (row, col) = (index / shape.n, index % shape.n);
            return Err(Attempt::Overflow(format!(
                "the product overflows f32: C[{row}][{col}] is {} (computed on the {} backend)",
                c[index],
                backend.kind()
            )));
        }
        let self_check = check.then(|| {
            freivalds(
                a,
                b,
                c,
                shape,
                self.config.self_check_rounds,
                rand::random(),
            )
        });
        if let Some(report) = self_check.filter(|r| !r.passed) {
            log::error!(
                "challenge {shape}: the self-check rejected the {} backend's product (worst residual {:.3e} × tolerance)",
                backend.kind(),
                report.worst_ratio
            );
            return Err(Attempt::Rejected(format!(
                "the self-check rejected the {} backend's product (worst residual {:.3e} × tolerance)",
                backend.kind(),
                report.worst_ratio
            )));
        }
        Ok((report.total, self_check))
    }
}

/// Why one attempt gave no answer.
#[derive(Debug)]
enum Attempt {
    /// The backend returned an error.
    Failed(String),
    /// The result holds infinity or NaN.
    Overflow(String),
    /// The self-check rejected the result.
    Rejected(String),
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(s) | Self::Overflow(s) | Self::Rejected(s) => f.write_str(s),
        }
    }
}

/// One pass over C after a product, on all cores for large results: turns every `-0.0`
/// into `+0.0`, and answers the position of the first NaN or infinity, if any (C is
/// then an error, and the pass may stop early).
///
/// The Go node sums each element from `+0`, so its C never holds `-0.0` (IEEE: `+0 + -0`
/// is `+0`); a kernel that starts from its first product can give `-0.0` (`-3·0`), whose
/// `%.6f` is `-0.000000`, and the answer's `merkleRoot` would then differ from the
/// node's. Adding `+0.0` maps `-0.0` to `+0.0` and leaves every other value as it is
/// (the compiler may not drop it: `x + 0.0` is not `x` for `x = -0.0`). Each chunk is
/// scanned while it is still in cache from that write.
fn positive_zeros_and_first_non_finite(c: &mut [f32]) -> Option<usize> {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 18;
    c.par_chunks_mut(CHUNK)
        .enumerate()
        .find_map_first(|(i, chunk)| {
            for v in chunk.iter_mut() {
                *v += 0.0;
            }
            first_non_finite(chunk).map(|at| i * CHUNK + at)
        })
}

#[cfg(test)]
mod tests {
    use super::positive_zeros_and_first_non_finite;

    #[test]
    fn one_pass_maps_negative_zeros_and_finds_the_first_non_finite_value() {
        // Several chunks of the parallel pass: -0.0 everywhere, a NaN and an infinity
        // far apart, the earlier one answered.
        let len = 3 * (1 << 18) + 11;
        let mut c = vec![-0.0f32; len];
        assert_eq!(positive_zeros_and_first_non_finite(&mut c), None);
        assert!(c.iter().all(|v| v.to_bits() == 0), "every -0.0 is +0.0");
        c[len - 1] = f32::NAN;
        c[(1 << 18) + 5] = f32::INFINITY;
        assert_eq!(
            positive_zeros_and_first_non_finite(&mut c),
            Some((1 << 18) + 5)
        );
    }
}
