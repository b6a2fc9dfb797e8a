//! `fxn-cli bench`: GFLOPS over sizes and shapes, per backend, method and thread count,
//! each result checked against a reference before its number is reported.
//!
//! Every case is warmed up, then timed `--reps` times (fewer when a case would overrun
//! `--budget`); the table gives the median and the best. Output is a text table, CSV
//! (`--csv`) or one versioned JSON document (`--json`); `--plot FILE` draws GFLOPS
//! against size as an SVG.

mod measure;
mod memory;
mod plot;
mod progress;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use metal_matmul::{
    Backend, BackendChoice, BackendKind, Method, SelectOptions, Shape, select_with,
};

use crate::error::{CliError, CliResult};
use crate::output::{print_json, print_text};

/// The plan's sizes: square products from 32³ to 2048³.
const DEFAULT_SIZES: &[usize] = &[32, 64, 128, 256, 512, 1024, 2048];

/// `fxn-cli bench` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Square sizes, comma-separated (default 32,64,128,256,512,1024,2048 when no
    /// --shapes are given).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<usize>,
    /// Other shapes, m×k×n (C is m×n, A m×k, B k×n), e.g. 127x257x513,1x4096x4096.
    #[arg(long, value_delimiter = ',', value_parser = parse_shape)]
    shapes: Vec<Shape>,
    /// Backends: cpu, metal, cuda, gpu (Metal, else CUDA), auto (Metal, else CUDA, else
    /// the CPU) or all (every backend available here), comma-separated.
    #[arg(long, short, default_value = "auto", value_delimiter = ',')]
    backend: Vec<String>,
    /// Methods: auto, all (auto and every method the backend can force) or a list such
    /// as simple,tiled,mps or cublas,cublas-tf32,register-blocked. A method a backend
    /// lacks is skipped for it.
    #[arg(long, default_value = "auto", value_delimiter = ',')]
    methods: Vec<String>,
    /// CPU worker threads, comma-separated to compare several (default: FXN_THREADS,
    /// else every core).
    #[arg(long, short = 't', value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..))]
    threads: Vec<u16>,
    /// Timed repetitions per case.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    reps: u32,
    /// Untimed warm-up calls per case (the first one is checked).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    warmup: u32,
    /// Seconds one case may take; fewer repetitions run when it would take longer
    /// (never fewer than 3).
    #[arg(long, default_value_t = 10.0)]
    budget: f64,
    /// Times to go through all the cases, one after another; each case's figures are
    /// over the calls of every round. On a machine whose speed drifts (a shared
    /// virtual machine), several rounds give every case a share of each phase rather
    /// than one case a slow minute. Memory and concurrent callers are measured in the
    /// first round only.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Also time this many threads calling the same backend at once, and report their
    /// combined GFLOPS beside one caller's.
    #[arg(long, value_parser = clap::value_parser!(u16).range(2..))]
    callers: Option<u16>,
    /// Seed for the random matrices.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where A, B and C live: heap (`Vec`s) or backend (memory the backend lends,
    /// pinned on CUDA, as the challenge engine uses it).
    #[arg(long, value_enum, default_value = "heap")]
    host_memory: measure::HostMemory,
    /// Print one versioned JSON document instead of the table.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV instead of the table.
    #[arg(long)]
    csv: bool,
    /// Draw GFLOPS against size per backend, method and thread count into this SVG file
    /// (its name must end in `.svg`; it is checked before the first case is timed).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

/// One thing to time: a shape on a backend with a method.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// The product's shape.
    pub shape: Shape,
    /// Which entry of the opened backends runs it.
    pub backend: usize,
    /// The method forced (or `Auto`).
    pub method: Method,
}

/// A backend opened for the run, with the thread count it was opened with.
#[derive(Debug)]
pub struct Opened {
    /// The backend.
    pub backend: Box<dyn Backend>,
    /// Worker threads (CPU only).
    pub threads: Option<usize>,
    /// Its label in tables and plots, e.g. `cpu (2 threads)`.
    pub label: String,
}

fn parse_shape(s: &str) -> Result<Shape, String> {
    let dims: Vec<usize> = s
        .trim()
        .split(['x', 'X', '×'])
        .map(|d| d.trim().parse::<usize>().map_err(|e| format!("`{s}`: {e}")))
        .collect::<Result<_, _>>()?;
    match dims[..] {
        [m, k, n] => Ok(Shape::new(m, k, n)),
        [size] => Ok(Shape::square(size)),
        _ => Err(format!("`{s}`: expected m×k×n, e.g. 127x257x513")),
    }
}

/// Runs `fxn-cli bench`.
pub fn run(args: &Args) -> CliResult {
    let shapes = shapes(args)?;
    let opened = open_backends(args)?;
    let cases = cases(args, &opened, &shapes)?;
    // The plot's file is checked now, not after minutes of timing.
    let plot = args
        .plot
        .as_deref()
        .map(plot::PlotFile::create)
        .transpose()?;
    let settings = measure::Settings {
        reps: args.reps as usize,
        warmup: args.warmup as usize,
        budget: Duration::from_secs_f64(args.budget.max(0.0)),
        callers: args.callers.map(usize::from),
        rounds: args.rounds as usize,
        seed: args.seed,
        host_memory: args.host_memory,
    };
    let mut progress = progress::Progress::new(cases.len() * settings.rounds);
    let mut results: Vec<measure::CaseResult> = Vec::with_capacity(cases.len());
    for round in 0..settings.rounds {
        for (i, case) in cases.iter().enumerate() {
            let b = &opened[case.backend];
            progress.start(&format!(
                "{} {} {}",
                report::shape_label(case.shape),
                b.label,
                case.method
            ));
            let first_round = round == 0;
            let result = measure::run_case(case, b, &settings, first_round);
            progress.finish();
            let result = result?;
            if first_round {
                results.push(result);
            } else {
                results[i].merge(result);
            }
        }
    }
    progress.done();
    let doc = report::BenchReport::new(&opened, results, &settings);
    if let Some(plot) = plot {
        plot.write(&plot::svg(&doc))?;
    }
    if args.json {
        print_json(&doc)
    } else if args.csv {
        print_text(&report::csv(&doc))
    } else {
        print_text(&report::table(&doc))
    }
}

fn shapes(args: &Args) -> CliResult<Vec<Shape>> {
    let mut shapes: Vec<Shape> = if args.sizes.is_empty() && !args.shapes.is_empty() {
        Vec::new()
    } else if args.sizes.is_empty() {
        DEFAULT_SIZES.iter().map(|&s| Shape::square(s)).collect()
    } else {
        args.sizes.iter().map(|&s| Shape::square(s)).collect()
    };
    shapes.extend(&args.shapes);
    for s in &shapes {
        if s.is_degenerate() {
            return Err(CliError::usage(format!(
                "shape {s} has a zero dimension: there is nothing to time"
            )));
        }
        let (la, lb, lc) = s.lens()?;
        s.check(la, lb, lc, metal_matmul::DEFAULT_MAX_DIM)?;
    }
    Ok(shapes)
}

fn open_backends(args: &Args) -> CliResult<Vec<Opened>> {
    let mut choices = Vec::new();
    for name in &args.backend {
        match name.trim().to_ascii_lowercase().as_str() {
            "all" => {
                choices.push((BackendChoice::Cpu, false));
                choices.push((BackendChoice::Metal, false));
                choices.push((BackendChoice::Cuda, false));
            }
            other => {
                let choice: BackendChoice = other.parse().map_err(|e: metal_matmul::Error| {
                    CliError::usage(format!("--backend: {e} (or all)"))
                })?;
                choices.push((choice, true));
            }
        }
    }
    let threads: Vec<Option<usize>> = if args.threads.is_empty() {
        vec![None]
    } else {
        args.threads.iter().map(|&t| Some(usize::from(t))).collect()
    };
    let mut opened: Vec<Opened> = Vec::new();
    for (choice, required) in choices {
        for &t in &threads {
            let options = SelectOptions {
                threads: t,
                ..SelectOptions::default()
            };
            let selected = match select_with(choice, &options) {
                Ok(s) => s,
                Err(e) if !required => {
                    eprintln!("fxn-cli: skipping the {choice} backend: {e}");
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(reason) = &selected.fallback_reason {
                eprintln!(
                    "fxn-cli: {choice} chose {}: {reason}",
                    selected.backend.kind()
                );
            }
            let backend = selected.backend;
            let kind = backend.kind();
            let threads = (kind == BackendKind::Cpu)
                .then(|| backend.device_info().max_threads_per_group as usize);
            // A GPU has no thread count: open it once, whatever --threads lists.
            if kind != BackendKind::Cpu && opened.iter().any(|o| o.backend.kind() == kind) {
                break;
            }
            if opened
                .iter()
                .any(|o| o.backend.kind() == kind && o.threads == threads)
            {
                continue;
            }
            let label = match threads {
                Some(1) => format!("{kind} (1 thread)"),
                Some(t) => format!("{kind} ({t} threads)"),
                None => kind.to_string(),
            };
            opened.push(Opened {
                backend,
                threads,
                label,
            });
        }
    }
    if opened.is_empty() {
        return Err(CliError::usage("no backend to benchmark"));
    }
    Ok(opened)
}

fn cases(args: &Args, opened: &[Opened], shapes: &[Shape]) -> CliResult<Vec<Case>> {
    let mut per_backend: Vec<Vec<Method>> = Vec::new();
    for o in opened {
        let available = o.backend.methods();
        let mut methods = Vec::new();
        for name in &args.methods {
            match name.trim().to_ascii_lowercase().as_str() {
                "all" => {
                    methods.push(Method::Auto);
                    methods.extend(&available);
                }
                other => {
                    let m: Method = other.parse().map_err(|e: metal_matmul::Error| {
                        CliError::usage(format!("--methods: {e} (or all)"))
                    })?;
                    if m == Method::Auto || available.contains(&m) {
                        methods.push(m);
                    } else {
                        eprintln!(
                            "fxn-cli: the {} backend has no method `{m}`; skipping it there",
                            o.backend.kind()
                        );
                    }
                }
            }
        }
        let mut seen = Vec::new();
        methods.retain(|m| {
            let new = !seen.contains(m);
            seen.push(*m);
            new
        });
        per_backend.push(methods);
    }
    let mut cases = Vec::new();
    for &shape in shapes {
        for (backend, methods) in per_backend.iter().enumerate() {
            for &method in methods {
                cases.push(Case {
                    shape,
                    backend,
                    method,
                });
            }
        }
    }
    if cases.is_empty() {
        return Err(CliError::usage(
            "no method to benchmark on the chosen backends",
        ));
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_in_m_k_n_order() {
        assert_eq!(
            parse_shape("127x257x513").unwrap(),
            Shape::new(127, 257, 513)
        );
        assert_eq!(parse_shape("64").unwrap(), Shape::square(64));
        assert_eq!(parse_shape("2×3×4").unwrap(), Shape::new(2, 3, 4));
        assert!(parse_shape("2x3").is_err());
        assert!(parse_shape("ax3x4").is_err());
    }
}
