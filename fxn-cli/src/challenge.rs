//! `fxn-cli challenge`: answer one matrix-multiplication challenge from a file or stdin.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use fxn_challenge::{ChallengeError, Engine, EngineConfig, Limits, parse_challenge};

use crate::error::{CliError, CliResult};

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

impl From<ChallengeError> for CliError {
    fn from(err: ChallengeError) -> Self {
        if err.is_client_error() {
            CliError::usage(format!("invalid challenge: {err}"))
        } else {
            CliError::failure(err.to_string())
        }
    }
}

/// `fxn-cli challenge` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The challenge: an envelope {"type":"MATRIX_MULTIPLICATION","payload":{...}} or a
    /// bare payload {"size":10}. A file, or - (the default) for stdin.
    #[arg(default_value = "-")]
    input: PathBuf,
    #[command(flatten)]
    engine: EngineArgs,
    /// Print indented JSON instead of the compact wire form.
    #[arg(long)]
    pretty: bool,
}

/// Runs `fxn-cli challenge`.
pub fn run(args: &Args) -> CliResult {
    let body = if args.input.as_os_str() == "-" {
        let mut body = Vec::new();
        io::stdin()
            .lock()
            .read_to_end(&mut body)
            .map_err(|e| CliError::failure(format!("cannot read stdin: {e}")))?;
        body
    } else {
        std::fs::read(&args.input)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", args.input.display())))?
    };
    let challenge = parse_challenge(&body, &args.engine.limits())?;
    drop(body);
    let engine = args.engine.open()?;
    let outcome = engine.run(challenge)?;
    let mut out = io::stdout().lock();
    if args.pretty {
        let value: serde_json::Value = serde_json::from_slice(&outcome.to_json())?;
        serde_json::to_writer_pretty(&mut out, &value).map_err(io::Error::from)?;
    } else {
        outcome.write_json(&mut out)?;
    }
    writeln!(out)?;
    out.flush()?;
    Ok(())
}
