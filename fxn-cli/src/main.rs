//! `fxn-cli`: the command-line tool for Function Node operators.
//!
//! Data goes to stdout, diagnostics to stderr with an `fxn-cli:` prefix. Exit codes are
//! listed in [`error::ExitKind`]; a closed stdout (e.g. `| head`) ends quietly with 0.

mod args;
mod bench;
mod challenge;
mod error;
mod gpu;
mod matmul;
mod output;
mod serve;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::error::CliResult;

/// Matrix multiplication on Apple Metal GPUs, with a fast CPU fallback.
#[derive(Debug, Parser)]
#[command(name = "fxn-cli", about, version)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// GPU and backend information.
    #[command(subcommand)]
    Gpu(gpu::GpuCommand),
    /// Multiply random matrices of a given shape, check the result, print time and GFLOPS.
    Matmul(matmul::Args),
    /// GFLOPS over sizes and shapes per backend, method and thread count, each result
    /// checked; a table, CSV, JSON or an SVG plot.
    Bench(bench::Args),
    /// Answer one matrix-multiplication challenge (envelope or bare payload) from a
    /// file or stdin; print the response JSON.
    Challenge(challenge::Args),
    /// Answer challenges over HTTP: POST /challenge, GET /health.
    Serve(serve::Args),
}

fn main() -> ExitCode {
    // The version text probes Metal and CUDA (CUDA opens a context): only when asked.
    let mut command = Cli::command();
    if std::env::args_os()
        .skip(1)
        .any(|a| a == "--version" || a == "-V")
    {
        let version = version_text();
        command = command.version(version.clone()).long_version(version);
    }
    let matches = command.get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    // The server logs a line per request by default; other commands only warnings.
    let quiet = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    init_logging(cli.verbose, quiet);
    let result: CliResult = match &cli.command {
        Command::Gpu(cmd) => gpu::run(cmd),
        Command::Matmul(args) => matmul::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Challenge(args) => challenge::run(args),
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.kind == error::ExitKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fxn-cli: {err}");
            ExitCode::from(err.kind as u8)
        }
    }
}

/// `--version`: the crate version and Metal's and CUDA's compile-time and run-time
/// status.
fn version_text() -> String {
    let sign = |on: bool| if on { '+' } else { '-' };
    let metal = metal_matmul::MetalStatus::probe();
    let cuda = metal_matmul::CudaStatus::probe();
    format!(
        "{} {}metal(compile) {}metal(runtime) {}cuda(compile) {}cuda(runtime)",
        env!("CARGO_PKG_VERSION"),
        sign(metal.compiled),
        sign(metal.device),
        sign(cuda.compiled),
        sign(cuda.available()),
    )
}

fn init_logging(verbose: u8, quiet: &str) {
    let level = match verbose {
        0 => quiet,
        1 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_target(false)
        .format_timestamp(None)
        .init();
}
