//! `fxn-cli challenge`: answer one matrix-multiplication challenge from a file or stdin.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use fxn_challenge::{ChallengeError, parse_challenge};

use crate::args::EngineArgs;
use crate::error::{CliError, CliResult};

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
