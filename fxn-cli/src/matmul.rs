//! `fxn-cli matmul`: multiply random matrices on a backend and check the result.

use std::fmt::Write as _;
use std::time::Instant;

use metal_matmul::numeric::{DEFAULT_TOLERANCE, verify_product};
use metal_matmul::{Backend, CpuBackend, MatmulOptions, Method, Shape};
use serde::Serialize;

use crate::args::{BackendArgs, parse_method, random_matrix, rng};
use crate::error::{CliError, CliResult, ExitKind};
use crate::output::{JSON_FORMAT_VERSION, print_json, print_text};

/// Above this many multiply-adds the check uses the CPU backend instead of the f64
/// reference loop (which would take minutes at 4096³).
const REFERENCE_MAX_WORK: f64 = 2.0e9;

/// `fxn-cli matmul` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rows of A and C (`--size` for a square product).
    #[arg(short, long, visible_alias = "size", default_value_t = 1024)]
    m: usize,
    /// Columns of A, rows of B (default: m).
    #[arg(short, long)]
    k: Option<usize>,
    /// Columns of B and C (default: m).
    #[arg(short, long)]
    n: Option<usize>,
    #[command(flatten)]
    backend: BackendArgs,
    /// The Metal method: auto, simple, tiled, mps, simdgroup.
    #[arg(long, default_value = "auto", value_parser = parse_method)]
    method: Method,
    /// Seed for the random matrices (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// Skip checking the result.
    #[arg(long)]
    no_check: bool,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// The `matmul --json` document.
#[derive(Debug, Serialize)]
struct MatmulOutput {
    format_version: u32,
    shape: Shape,
    backend: &'static str,
    device: String,
    method: Method,
    /// Wall time of the call, milliseconds.
    total_ms: f64,
    /// GPU execution time, milliseconds (Metal only).
    gpu_ms: Option<f64>,
    gflops: f64,
    /// What the result was checked against, if anything.
    checked_against: Option<&'static str>,
    /// The largest error relative to max|A|·max|B|·k.
    max_scaled_error: Option<f64>,
}

/// Runs `fxn-cli matmul`.
pub fn run(args: &Args) -> CliResult {
    let shape = Shape::new(args.m, args.k.unwrap_or(args.m), args.n.unwrap_or(args.m));
    let selected = args.backend.open()?;
    let backend = selected.backend;
    // Validate before allocating: a huge shape is a usage error, not an abort.
    let (len_a, len_b, len_c) = shape.lens()?;
    shape.check(len_a, len_b, len_c, metal_matmul::DEFAULT_MAX_DIM)?;

    let mut rng = rng(args.seed);
    let a = random_matrix(&mut rng, shape.m, shape.k)?;
    let b = random_matrix(&mut rng, shape.k, shape.n)?;
    let mut c = vec![f32::NAN; len_c];
    let options = MatmulOptions {
        method: args.method,
        check_finite: true,
    };
    let started = Instant::now();
    let report = backend.matmul_with(&a, &b, &mut c, shape, &options)?;
    let seconds = started.elapsed().as_secs_f64();

    let (checked_against, max_scaled_error) = if args.no_check {
        (None, None)
    } else {
        let (against, err) = check(&a, &b, &c, shape)?;
        (Some(against), Some(err))
    };
    let out = MatmulOutput {
        format_version: JSON_FORMAT_VERSION,
        shape,
        backend: report.backend.name(),
        device: backend.device_info().name,
        method: report.method,
        total_ms: report.total.as_secs_f64() * 1e3,
        gpu_ms: report.gpu.map(|d| d.as_secs_f64() * 1e3),
        gflops: if seconds > 0.0 {
            shape.flops() / seconds / 1e9
        } else {
            0.0
        },
        checked_against,
        max_scaled_error,
    };
    if args.json {
        print_json(&out)
    } else {
        print_text(&render(&out))
    }
}

/// Checks `c` against the f64 reference, or against the CPU backend for large shapes.
fn check(a: &[f32], b: &[f32], c: &[f32], shape: Shape) -> CliResult<(&'static str, f64)> {
    let verified = if shape.flops() / 2.0 <= REFERENCE_MAX_WORK {
        verify_product(a, b, c, shape, DEFAULT_TOLERANCE).map(|e| ("f64 reference", e))
    } else {
        let cpu = CpuBackend::new()?;
        let want = cpu.matmul(a, b, shape)?;
        let scale = |v: &[f32]| v.iter().fold(0.0f64, |m, x| m.max(f64::from(x.abs())));
        let want64: Vec<f64> = want.iter().map(|&x| f64::from(x)).collect();
        let (err, at) = metal_matmul::numeric::max_scaled_error(
            c,
            &want64,
            scale(a) * scale(b) * shape.k as f64,
        );
        if err <= DEFAULT_TOLERANCE {
            Ok(("CPU backend", err))
        } else {
            Err(metal_matmul::Error::InvalidArgument(format!(
                "result differs from the CPU backend at index {at}: scaled error {err:.3e}"
            )))
        }
    };
    verified.map_err(|e| CliError::new(ExitKind::Verification, format!("verification failed: {e}")))
}

fn render(o: &MatmulOutput) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "shape:    {}", o.shape);
    let _ = writeln!(
        s,
        "backend:  {} ({}), method {}",
        o.backend, o.device, o.method
    );
    let _ = write!(s, "time:     {:.3} ms", o.total_ms);
    if let Some(gpu) = o.gpu_ms {
        let _ = write!(s, " ({gpu:.3} ms on the GPU)");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "GFLOPS:   {:.1}", o.gflops);
    match (o.checked_against, o.max_scaled_error) {
        (Some(against), Some(err)) => {
            let _ = writeln!(
                s,
                "check:    ok against the {against} (max scaled error {err:.2e})"
            );
        }
        _ => {
            let _ = writeln!(s, "check:    skipped");
        }
    }
    s
}
