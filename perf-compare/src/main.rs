//! `perf-compare`: metal-matmul's CPU backend beside faer 0.24, OpenBLAS and
//! matrixmultiply 0.3, measured side by side in one interleaved run.
//!
//! For each shape every library runs once to warm up (and its result is checked), then
//! the libraries take turns, each round starting with the next library, so a burst of
//! load from another process hits all of them alike. A turn sleeps `--pause-ms`
//! (default 150 ms: the previous library's threads stop spinning; OpenBLAS's busy-wait
//! for a while after a call), makes one untimed call (when a call takes under 0.1 s),
//! then times a burst of about 50 ms of calls (at least one). Rounds: as many as fit
//! the time budget (`--budget` seconds per shape, default 40), at least 3 and at most
//! `--reps`. It prints best and median GFLOPS per library over all timed calls, ours
//! against the best other library's best, and the paired ratio: ours against each
//! other library call for call, round by round, the lowest of the medians (see
//! [`paired_ratio`]). Each round ends with a 20 ms probe of the machine's ceiling at
//! that moment, fused multiply-adds on registers only on as many threads (the "FMA
//! peak" column, best and median over the rounds; see `peak.rs`): when it moves, the
//! host moved, whatever the libraries read.
//!
//! Shapes are written `m×k×n` (C is m×n, A m×k, B k×n), the order of
//! `metal_matmul::Shape`. For the vector shapes the OpenBLAS column is `cblas_sgemv`,
//! the routine a BLAS caller uses for them.
//!
//! ```text
//! cargo run --release --manifest-path perf-compare/Cargo.toml -- [--threads 1,2]
//!     [--shapes 256x256x256,...] [--reps 7] [--budget 40] [--pause-ms 150] [--csv]
//! ```
//!
//! To time an AVX2-only CPU's paths on an AVX-512 one, limit ours with
//! `FXN_CPU_SIMD=avx2` and OpenBLAS with `OPENBLAS_CORETYPE=Zen` (Haswell's kernels).
//! The limit holds the faer column to faer's AVX2+FMA code too (its x86-64 GEMM,
//! `private-gemm-x86`, called as faer calls it on an AVX2-only CPU; see [`faer_avx2`]),
//! and the FMA-peak probe to AVX2. matrixmultiply 0.3 chooses AVX-512 by itself too
//! and is limited only when it is compiled: build this tool with
//! `MMTEST_FEATURE=avx,avx2,fma` in the environment (matrixmultiply reads it with
//! `option_env!`) and a target directory of its own. The header of each table names
//! what each column runs.
//!
//! One process runs per thread count (matrixmultiply reads its thread count from
//! `MATMUL_NUM_THREADS` once per process); with several counts it starts itself again.
//! On one thread every library computes on the process's main thread, faer included
//! (not on a pool's worker): two virtual CPUs of a shared host can differ in speed at
//! the same moment, and a library on a thread of its own could sit on the slower one.

mod blas;
mod faer_avx2;
mod peak;

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use metal_matmul::{Backend, CpuBackend, Shape, SimdLimit};

/// The shapes of issue 5's table, written m×k×n.
const DEFAULT_SHAPES: &str = "256x256x256,1024x1024x1024,4096x4096x4096,1000x1000x1000,\
127x257x513,4096x64x4096,4096x4096x64,1x4096x4096,4096x4096x1";

struct Options {
    threads: Vec<usize>,
    shapes: Vec<Shape>,
    reps: usize,
    budget: Duration,
    pause: Duration,
    csv: bool,
}

fn main() -> ExitCode {
    match parse(std::env::args().skip(1).collect()) {
        Ok(opts) if opts.threads.len() > 1 => respawn(&opts),
        Ok(opts) => match run(&opts, opts.threads[0]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("perf-compare: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("perf-compare: {e}");
            ExitCode::from(2)
        }
    }
}

fn parse(args: Vec<String>) -> Result<Options, String> {
    let mut opts = Options {
        threads: vec![1, 2],
        shapes: parse_shapes(DEFAULT_SHAPES)?,
        reps: 7,
        budget: Duration::from_secs(40),
        pause: Duration::from_millis(150),
        csv: false,
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--threads" => {
                opts.threads = value()?
                    .split(',')
                    .map(|t| {
                        t.trim()
                            .parse::<usize>()
                            .map_err(|e| format!("--threads: {e}"))
                    })
                    .collect::<Result<_, _>>()?;
                if opts.threads.is_empty() || opts.threads.contains(&0) {
                    return Err("--threads needs positive counts".into());
                }
            }
            "--shapes" => opts.shapes = parse_shapes(&value()?)?,
            "--reps" => {
                opts.reps = value()?.parse().map_err(|e| format!("--reps: {e}"))?;
                opts.reps = opts.reps.max(1);
            }
            "--budget" => {
                let secs: f64 = value()?.parse().map_err(|e| format!("--budget: {e}"))?;
                opts.budget = Duration::from_secs_f64(secs.max(0.0));
            }
            "--pause-ms" => {
                let ms: u64 = value()?.parse().map_err(|e| format!("--pause-ms: {e}"))?;
                opts.pause = Duration::from_millis(ms);
            }
            "--csv" => opts.csv = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(opts)
}

fn parse_shapes(text: &str) -> Result<Vec<Shape>, String> {
    text.split(',')
        .map(|s| {
            let dims: Vec<usize> = s
                .trim()
                .split(['x', '×'])
                .map(|d| d.parse().map_err(|e| format!("shape `{s}`: {e}")))
                .collect::<Result<_, _>>()?;
            match dims[..] {
                [m, k, n] if m > 0 && k > 0 && n > 0 => Ok(Shape::new(m, k, n)),
                [s] if s > 0 => Ok(Shape::square(s)),
                _ => Err(format!("shape `{s}`: expected m×k×n or a size")),
            }
        })
        .collect()
}

/// Runs this program once per thread count, in turn.
fn respawn(opts: &Options) -> ExitCode {
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("perf-compare: cannot find my own executable");
        return ExitCode::FAILURE;
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for &t in &opts.threads {
        let mut child_args = Vec::new();
        let mut skip = false;
        for a in &args {
            if skip {
                skip = false;
            } else if a == "--threads" {
                skip = true;
            } else {
                child_args.push(a.clone());
            }
        }
        child_args.extend(["--threads".to_owned(), t.to_string()]);
        match Command::new(&exe).args(&child_args).status() {
            Ok(s) if s.success() => {}
            Ok(s) => {
                eprintln!("perf-compare: the run with {t} threads failed ({s})");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("perf-compare: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// What matrixmultiply may run: the features it was compiled to allow
/// (`MMTEST_FEATURE`), or its own choice.
fn matrixmultiply_isa() -> String {
    match option_env!("MMTEST_FEATURE") {
        Some(allowed) if !allowed.is_empty() => format!("held to {allowed} (MMTEST_FEATURE)"),
        _ => "its own choice".to_owned(),
    }
}

/// One library's way of computing `C = A·B`.
type Gemm<'a> = Box<dyn FnMut(&[f32], &[f32], &mut [f32], Shape) + 'a>;

fn run(opts: &Options, threads: usize) -> Result<(), String> {
    // SAFETY: no other thread exists yet (no library has been called), so nothing reads
    // the environment concurrently.
    unsafe { std::env::set_var("MATMUL_NUM_THREADS", threads.to_string()) };
    blas::set_threads(threads);
    let ours = CpuBackend::with_threads(threads).map_err(|e| e.to_string())?;
    let faer_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| e.to_string())?;
    let faer_par = if threads == 1 {
        Par::Seq
    } else {
        Par::rayon(threads)
    };
    // An AVX2 limit on ours holds faer and the probe to AVX2 as well.
    let avx2_only = ours.simd_limit() == SimdLimit::Avx2;
    let faer_held = avx2_only && faer_avx2::runs();
    let faer_call = move |dst: MatMut<'_, f32>, lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>| {
        if faer_held {
            faer_avx2::matmul(dst, lhs, rhs, threads);
        } else {
            matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, faer_par);
        }
    };

    let mut libs: Vec<(&str, Gemm)> = vec![
        (
            "ours",
            Box::new(|a, b, c, s| ours.matmul_into(a, b, c, s).expect("ours")),
        ),
        (
            "faer",
            Box::new(|a, b, c, s: Shape| {
                let lhs = MatRef::from_row_major_slice(a, s.m, s.k);
                let rhs = MatRef::from_row_major_slice(b, s.k, s.n);
                let dst = MatMut::from_row_major_slice_mut(c, s.m, s.n);
                if threads == 1 {
                    // On the calling thread, like every other library on one thread:
                    // inside `install` it ran on the pool's worker, which the kernel may
                    // keep on the other virtual CPU, and on a shared host two vCPUs
                    // can differ by 40% at the same moment (taskset, 1024³: 53 against
                    // 91 GFLOPS), a bias no interleaving removes.
                    faer_call(dst, lhs, rhs);
                } else {
                    faer_pool.install(|| faer_call(dst, lhs, rhs));
                }
            }),
        ),
        ("openblas", Box::new(blas::gemm)),
        (
            "matrixmultiply",
            Box::new(|a, b, c, s: Shape| {
                // SAFETY: a, b and c hold m·k, k·n and m·n elements (made for `s`), and
                // the strides describe those row-major matrices, so every access is in
                // bounds; c does not alias a or b.
                unsafe {
                    matrixmultiply::sgemm(
                        s.m,
                        s.k,
                        s.n,
                        1.0,
                        a.as_ptr(),
                        s.k as isize,
                        1,
                        b.as_ptr(),
                        s.n as isize,
                        1,
                        0.0,
                        c.as_mut_ptr(),
                        s.n as isize,
                        1,
                    );
                }
            }),
        ),
    ];

    if opts.csv {
        println!("threads,shape,library,best_gflops,median_gflops,runs");
    } else {
        println!(
            "\n## {threads} thread{} — load average at start: {}; ours: {}; faer: {}; OpenBLAS: {}; matrixmultiply: {}\n",
            if threads == 1 { "" } else { "s" },
            load_average(),
            ours.cpu_info().simd,
            if faer_held {
                "held to AVX2+FMA"
            } else {
                "its own choice"
            },
            blas::config(),
            matrixmultiply_isa()
        );
        println!(
            "| shape m×k×n | ours | faer 0.24 | OpenBLAS | matrixmultiply 0.3 | ours / best other | paired | FMA peak |"
        );
        println!("|---|---|---|---|---|---|---|---|");
    }
    for &shape in &opts.shapes {
        let a = values(shape.m * shape.k, 1);
        let b = values(shape.k * shape.n, 2);
        let mut outs: Vec<Vec<f32>> = libs.iter().map(|_| vec![0.0; shape.m * shape.n]).collect();
        let mut times: Vec<Vec<f64>> = libs.iter().map(|_| Vec::new()).collect();
        // Each library's fastest call of each round, for the paired ratio.
        let mut round_best: Vec<Vec<f64>> = libs.iter().map(|_| Vec::new()).collect();
        // The machine's register-only FMA rate at the end of each round.
        let mut ceiling: Vec<f64> = Vec::new();
        // Warm-up, and the check of every library's answer.
        let mut first = Vec::with_capacity(libs.len());
        for ((name, gemm), c) in libs.iter_mut().zip(outs.iter_mut()) {
            c.fill(f32::NAN);
            let start = Instant::now();
            gemm(&a, &b, c, shape);
            first.push(start.elapsed().as_secs_f64());
            check(&a, &b, c, shape).map_err(|e| format!("{name} at {shape}: {e}"))?;
        }
        let round: f64 = first.iter().sum::<f64>().max(1e-9);
        let rounds = ((opts.budget.as_secs_f64() / round) as usize).clamp(3, opts.reps.max(3));
        for round in 0..rounds {
            // Each round starts with a different library. A turn begins with a pause,
            // so the previous library's threads stop spinning (OpenBLAS's busy-wait
            // for a while after a call and would steal a core from whoever runs next), then
            // one untimed call wakes this library's threads (skipped for calls longer
            // than WAKE_CALL_MAX_SECS, which a wake-up cannot move), then a burst of
            // timed calls (about 50 ms of them) measures it hot.
            let count = libs.len();
            for turn in 0..count {
                let i = (turn + round) % count;
                let burst = ((0.05 / first[i].max(1e-9)) as usize).clamp(1, MAX_BURST);
                std::thread::sleep(opts.pause);
                if first[i] < WAKE_CALL_MAX_SECS {
                    (libs[i].1)(&a, &b, &mut outs[i], shape);
                }
                let mut fastest = f64::INFINITY;
                for _ in 0..burst {
                    let start = Instant::now();
                    (libs[i].1)(&a, &b, &mut outs[i], shape);
                    let secs = start.elapsed().as_secs_f64();
                    times[i].push(secs);
                    fastest = fastest.min(secs);
                }
                round_best[i].push(fastest);
            }
            ceiling.extend(peak::fma_gflops(threads, !avx2_only));
        }
        ceiling.sort_by(f64::total_cmp);
        let ceiling_cell = match (ceiling.last(), ceiling.get(ceiling.len() / 2)) {
            (Some(best), Some(median)) => format!("{best:.1} ({median:.1})"),
            _ => "n/a".to_owned(),
        };
        let stats: Vec<(f64, f64)> = times
            .iter_mut()
            .map(|t| {
                t.sort_by(f64::total_cmp);
                let gf = |secs: f64| shape.flops() / secs / 1e9;
                (gf(t[0]), gf(t[t.len() / 2]))
            })
            .collect();
        let label = format!("{}×{}×{}", shape.m, shape.k, shape.n);
        if opts.csv {
            for ((name, _), (best, median)) in libs.iter().zip(&stats) {
                println!("{threads},{label},{name},{best:.2},{median:.2},{rounds}");
            }
            if let (Some(best), Some(median)) = (ceiling.last(), ceiling.get(ceiling.len() / 2)) {
                println!("{threads},{label},fma_peak,{best:.2},{median:.2},{rounds}");
            }
        } else {
            let best_other = stats[1..].iter().map(|s| s.0).fold(0.0, f64::max);
            let cells: Vec<String> = stats
                .iter()
                .map(|(best, median)| format!("{best:.1} ({median:.1})"))
                .collect();
            println!(
                "| {label} | {} | {:.0}% | {:.0}% | {ceiling_cell} |",
                cells.join(" | "),
                100.0 * stats[0].0 / best_other,
                100.0 * paired_ratio(&round_best)
            );
        }
    }
    Ok(())
}

/// The most timed calls in one burst. A burst is about 50 ms of calls; with at most
/// 50 calls (the limit before 2026-12-04), a 64³ product (about 6 µs) was timed over
/// 0.3 ms straight after the pause, while the CPU was still waking, and its best and
/// median measured the wake-up more than the library.
const MAX_BURST: usize = 10_000;

/// Calls at least this long (in the warm-up) get no untimed call before their timed
/// ones: waking a library's threads takes microseconds, and skipping it lets the time
/// budget give 4096³ twice the rounds.
const WAKE_CALL_MAX_SECS: f64 = 0.1;

/// Ours (library 0) against the strongest other library, call for call: for each other
/// library, the median over rounds of its fastest call of the round against ours of the
/// same round; the lowest of those medians. On a shared virtual machine whose speed
/// drifts by tens of percent within minutes, comparing calls made seconds apart cancels
/// the drift that the best-of-run figures each catch at a different moment.
///
/// Each library is compared on its own: the fastest of three libraries in each round
/// is the maximum of three noisy samples, which beats one sample of an equally fast
/// library in most rounds. The first version took that maximum; in a run that printed
/// both, it read up to 9 points lower (1000³ on two threads: 87.5% against 93%).
fn paired_ratio(round_best: &[Vec<f64>]) -> f64 {
    let rounds = round_best.iter().map(Vec::len).min().unwrap_or(0);
    round_best[1..]
        .iter()
        .map(|other| {
            let mut ratios: Vec<f64> = (0..rounds).map(|r| other[r] / round_best[0][r]).collect();
            ratios.sort_by(f64::total_cmp);
            ratios.get(rounds / 2).copied().unwrap_or(f64::NAN)
        })
        .fold(f64::INFINITY, f64::min)
}

/// Deterministic values in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Checks 256 sampled elements of `c` (all of them when fewer) against f64 dot products.
fn check(a: &[f32], b: &[f32], c: &[f32], s: Shape) -> Result<(), String> {
    let scale = s.k as f64; // |A|, |B| ≤ 1
    let total = s.m * s.n;
    let step = (total / 256).max(1);
    for idx in (0..total).step_by(step) {
        let (i, j) = (idx / s.n, idx % s.n);
        let want: f64 = (0..s.k)
            .map(|p| f64::from(a[i * s.k + p]) * f64::from(b[p * s.n + j]))
            .sum();
        let err = (f64::from(c[idx]) - want).abs() / scale;
        if err.is_nan() || err > 1e-5 {
            return Err(format!(
                "C[{i}][{j}] = {}, want {want} (scaled error {err:.2e})",
                c[idx]
            ));
        }
    }
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}
