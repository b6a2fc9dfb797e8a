//! `fxn-cli matmul`: multiply random matrices on a backend and check the result.

use std::fmt::Write as _;
use std::time::Instant;

use metal_matmul::{Backend, CpuBackend, MatmulOptions, Method, Shape, verify};
use serde::Serialize;

use crate::args::{BackendArgs, in_backend_memory, nan_output, parse_method, random_operands};
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
    /// The method: auto; Metal's simple, tiled, mps, simdgroup; CUDA's simple, tiled,
    /// register-blocked, cublas, cublas-tf32.
    #[arg(long, default_value = "auto", value_parser = parse_method)]
    method: Method,
    /// Seed for the random matrices (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// Skip checking the result.
    #[arg(long)]
    no_check: bool,
    /// Calls to time: the first is cold (threads asleep, buffers and caches cold); with
    /// more, the best and median of the warm calls after it are printed too. The last
    /// call's result is the one checked.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    repeat: u32,
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
    /// The warm calls after the first (`--repeat` above 1).
    warm: Option<WarmCalls>,
    /// What the result was checked against, if anything.
    checked_against: Option<&'static str>,
    /// The largest error relative to max|A|·max|B|·k.
    max_scaled_error: Option<f64>,
}

/// The calls after the first: what a caller that multiplies again and again sees.
#[derive(Debug, Serialize)]
struct WarmCalls {
    calls: u32,
    best_ms: f64,
    median_ms: f64,
    best_gflops: f64,
    median_gflops: f64,
}

impl WarmCalls {
    /// Best and median of `seconds` (at least one call) for a product of `flops`.
    fn from_seconds(mut seconds: Vec<f64>, flops: f64) -> Option<Self> {
        seconds.sort_by(f64::total_cmp);
        let best = *seconds.first()?;
        let median = seconds[seconds.len() / 2];
        Some(Self {
            calls: u32::try_from(seconds.len()).unwrap_or(u32::MAX),
            best_ms: best * 1e3,
            median_ms: median * 1e3,
            best_gflops: gflops(flops, best),
            median_gflops: gflops(flops, median),
        })
    }
}

/// `flops` over `seconds` in GFLOPS, 0 for a call too short to time.
fn gflops(flops: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        flops / seconds / 1e9
    } else {
        0.0
    }
}

/// Runs `fxn-cli matmul`.
pub fn run(args: &Args) -> CliResult {
    let shape = Shape::new(args.m, args.k.unwrap_or(args.m), args.n.unwrap_or(args.m));
    let selected = args.backend.open()?;
    let backend = selected.backend;
    // Validate before allocating: a huge shape is a usage error, not an abort.
    let (len_a, len_b, len_c) = shape.lens()?;
    shape.check(len_a, len_b, len_c, metal_matmul::DEFAULT_MAX_DIM)?;

    // In the memory the backend lends (pinned on CUDA), as the challenge engine does.
    let (a, b) = random_operands(shape, args.seed)?;
    let (a, b) = (
        in_backend_memory(backend.as_ref(), a)?,
        in_backend_memory(backend.as_ref(), b)?,
    );
    let mut c = nan_output(backend.as_ref(), len_c)?;
    let options = MatmulOptions {
        method: args.method,
        check_finite: true,
    };
    let started = Instant::now();
    let report = backend.matmul_with(&a, &b, &mut c, shape, &options)?;
    let seconds = started.elapsed().as_secs_f64();
    let mut warm = Vec::new();
    for _ in 1..args.repeat {
        let started = Instant::now();
        backend.matmul_with(&a, &b, &mut c, shape, &options)?;
        warm.push(started.elapsed().as_secs_f64());
    }

    let (checked_against, max_scaled_error) = if args.no_check {
        (None, None)
    } else {
        let (against, err) = check(&a, &b, &c, shape, report.method.tolerance())?;
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
        gflops: gflops(shape.flops(), seconds),
        warm: WarmCalls::from_seconds(warm, shape.flops()),
        checked_against,
        max_scaled_error,
    };
    if args.json {
        print_json(&out)
    } else {
        print_text(&render(&out))
    }
}

/// Checks `c` within `tolerance` (the method's) against the f64 reference, or against
/// the CPU backend for large shapes.
fn check(
    a: &[f32],
    b: &[f32],
    c: &[f32],
    shape: Shape,
    tolerance: f64,
) -> CliResult<(&'static str, f64)> {
    let verified = if shape.flops() / 2.0 <= REFERENCE_MAX_WORK {
        verify::full(a, b, c, shape, tolerance).map(|e| ("f64 reference", e))
    } else {
        let want: Vec<f64> = CpuBackend::new()?
            .matmul(a, b, shape)?
            .into_iter()
            .map(f64::from)
            .collect();
        let scale = verify::scale(a, b, shape.k);
        verify::against(c, &want, shape, scale, tolerance).map(|e| ("CPU backend", e))
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
    if o.warm.is_some() {
        let _ = write!(s, " (the first call)");
    }
    if let Some(gpu) = o.gpu_ms {
        let _ = write!(s, " ({gpu:.3} ms on the GPU)");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "GFLOPS:   {:.1}", o.gflops);
    if let Some(w) = &o.warm {
        let _ = writeln!(
            s,
            "warm:     {} more calls: best {:.3} ms ({:.1} GFLOPS), median {:.3} ms ({:.1} GFLOPS)",
            w.calls, w.best_ms, w.best_gflops, w.median_ms, w.median_gflops
        );
    }
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
