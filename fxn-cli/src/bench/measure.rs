//! Timing one case: warm-up, the check, the timed repetitions, peak memory and, on
//! request, several concurrent callers.

use std::time::{Duration, Instant};

use metal_matmul::{HostBuffer, MatmulOptions, MatmulReport, Shape, verify};
use serde::Serialize;

use super::{Case, Opened, memory};
use crate::args::{in_backend_memory, nan_output, random_operands};
use crate::error::{CliError, CliResult, ExitKind};

/// How every case is timed.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Settings {
    /// Timed repetitions per case and round (fewer when the budget runs out, never under
    /// 3).
    pub reps: usize,
    /// Untimed calls before timing; the first one's result is checked.
    pub warmup: usize,
    /// Time one case may take.
    #[serde(serialize_with = "secs")]
    pub budget: Duration,
    /// Concurrent callers timed besides one, if asked.
    pub callers: Option<usize>,
    /// Passes over all the cases; each case's timings are pooled over them.
    pub rounds: usize,
    /// Seed of the random matrices.
    pub seed: u64,
    /// Where A, B and C live.
    pub host_memory: HostMemory,
}

/// Where a case's A, B and C live in host memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum HostMemory {
    /// Plain `Vec`s, as most callers hold them.
    Heap,
    /// Buffers the backend lends (`Backend::host_buffer`: pinned memory on CUDA), as
    /// the challenge engine uses them; the operands are copied there untimed.
    Backend,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The measured figures of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// The product's shape.
    pub shape: Shape,
    /// Index of the backend in the report's `backends`.
    pub backend: usize,
    /// The method asked for.
    pub method: metal_matmul::Method,
    /// The method that ran (what `auto` resolved to).
    pub method_ran: metal_matmul::Method,
    /// Timed calls, over every round.
    pub reps: usize,
    /// Wall time of the fastest call, milliseconds.
    pub best_ms: f64,
    /// Median wall time, milliseconds.
    pub median_ms: f64,
    /// GFLOPS of the fastest call.
    pub best_gflops: f64,
    /// GFLOPS of the median call.
    pub median_gflops: f64,
    /// Median GPU execution time, milliseconds (Metal's command buffer; CUDA's kernel
    /// or cuBLAS call from events).
    pub gpu_median_ms: Option<f64>,
    /// CUDA only: where the time went.
    pub cuda: Option<CudaSplit>,
    /// What the result was checked against.
    pub checked_against: &'static str,
    /// The largest error found, relative to max|A|·max|B|·k.
    pub max_scaled_error: f64,
    /// Peak resident memory of the first call above what the process held with the
    /// three matrices allocated, MiB (Linux only).
    pub peak_extra_mib: Option<f64>,
    /// Size of A, B and C together, MiB.
    pub matrices_mib: f64,
    /// Several callers at once, if asked.
    pub concurrent: Option<Concurrent>,
    /// Every timed call's wall time, seconds, sorted: what rounds pool.
    #[serde(skip)]
    walls: Vec<f64>,
    /// Every GPU execution time, seconds, sorted.
    #[serde(skip)]
    gpu: Vec<f64>,
    /// Every CUDA call's (copy in, copy out) seconds.
    #[serde(skip)]
    copies: Vec<(f64, f64)>,
}

/// A CUDA case's split of one call (medians over its timed calls), from CUDA events.
/// With several row blocks the copies overlap the kernels, so the parts add up to
/// more than the wall time.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CudaSplit {
    /// Host→device copies of A and B, milliseconds.
    pub to_device_ms: f64,
    /// Device→host copy of C, milliseconds.
    pub to_host_ms: f64,
    /// GFLOPS over the kernel (GPU) time alone.
    pub kernel_gflops: f64,
    /// Operands were staged through pinned buffers.
    pub pinned: bool,
    /// Some operand was copied in place from or into lent pinned memory.
    pub in_place: bool,
    /// Row blocks the product was cut into.
    pub blocks: u32,
}

impl CaseResult {
    /// The figures of `walls` and `gpu` for this case's shape.
    fn set_timings(&mut self, mut walls: Vec<f64>, mut gpu: Vec<f64>, copies: Vec<(f64, f64)>) {
        walls.sort_by(f64::total_cmp);
        gpu.sort_by(f64::total_cmp);
        let flops = self.shape.flops();
        let best = walls.first().copied().unwrap_or(f64::NAN);
        let median_s = median(&walls);
        self.reps = walls.len();
        self.best_ms = best * 1e3;
        self.median_ms = median_s * 1e3;
        self.best_gflops = flops / best / 1e9;
        self.median_gflops = flops / median_s / 1e9;
        self.gpu_median_ms = (!gpu.is_empty()).then(|| median(&gpu) * 1e3);
        if let Some(split) = self.cuda.as_mut().filter(|_| !copies.is_empty()) {
            let mut ins: Vec<f64> = copies.iter().map(|c| c.0).collect();
            let mut outs: Vec<f64> = copies.iter().map(|c| c.1).collect();
            ins.sort_by(f64::total_cmp);
            outs.sort_by(f64::total_cmp);
            split.to_device_ms = median(&ins) * 1e3;
            split.to_host_ms = median(&outs) * 1e3;
            split.kernel_gflops = self
                .gpu_median_ms
                .map_or(f64::NAN, |ms| flops / (ms / 1e3) / 1e9);
        }
        self.walls = walls;
        self.gpu = gpu;
        self.copies = copies;
    }

    /// Pools a later round of the same case into this one: its calls join the best and
    /// the median, its error and peak memory count if larger.
    pub fn merge(&mut self, later: CaseResult) {
        let walls = [std::mem::take(&mut self.walls), later.walls].concat();
        let gpu = [std::mem::take(&mut self.gpu), later.gpu].concat();
        let copies = [std::mem::take(&mut self.copies), later.copies].concat();
        self.set_timings(walls, gpu, copies);
        self.max_scaled_error = self.max_scaled_error.max(later.max_scaled_error);
        self.peak_extra_mib = match (self.peak_extra_mib, later.peak_extra_mib) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some(k) = self.concurrent.as_mut() {
            k.ratio_to_one_caller = k.gflops / self.best_gflops;
        }
    }
}

/// Combined throughput of several threads calling one backend at once, against one
/// caller's sustained throughput measured the same way in between.
#[derive(Debug, Clone, Serialize)]
pub struct Concurrent {
    /// Calling threads.
    pub callers: usize,
    /// Calls each made.
    pub calls_each: usize,
    /// All their floating-point operations over the wall time, GFLOPS: the best of
    /// [`CONCURRENT_ROUNDS`] rounds.
    pub gflops: f64,
    /// `gflops` over one caller's best single call (`best_gflops` of the case, over
    /// every round).
    pub ratio_to_one_caller: f64,
    /// One caller making calls one after another (about 0.3 s of them, at least the
    /// repetitions), GFLOPS over the wall time: the best of [`CONCURRENT_ROUNDS`]
    /// rounds, each run just before a round of the callers.
    pub one_caller_gflops: f64,
    /// `gflops` over `one_caller_gflops`: sustained throughput against sustained
    /// throughput, measured seconds apart.
    pub ratio_to_one_caller_rounds: f64,
}

/// Times one case; concurrent callers only when `with_callers` (the first round).
pub fn run_case(
    case: &Case,
    opened: &Opened,
    settings: &Settings,
    with_callers: bool,
) -> CliResult<CaseResult> {
    let shape = case.shape;
    let backend = opened.backend.as_ref();
    let (a, b) = random_operands(shape, Some(settings.seed))?;
    let (_, _, len_c) = shape.lens()?;
    let (a, b, mut c) = match settings.host_memory {
        HostMemory::Heap => (a.into(), b.into(), HostBuffer::from(vec![f32::NAN; len_c])),
        HostMemory::Backend => (
            in_backend_memory(backend, a)?,
            in_backend_memory(backend, b)?,
            nan_output(backend, len_c)?,
        ),
    };
    let options = MatmulOptions {
        method: case.method,
        check_finite: false,
    };
    let matrices_mib = 4.0 * (a.len() + b.len() + c.len()) as f64 / (1024.0 * 1024.0);

    // First call: peak memory, then the check of its result.
    let baseline = memory::reset_peak();
    let first = backend.matmul_with(&a, &b, &mut c, shape, &options)?;
    let peak_extra_mib = baseline.and_then(memory::peak_above);
    let (checked_against, max_scaled_error) =
        verify::product(&a, &b, &c, shape, first.method.tolerance())
            .map(|(checked, err)| (checked.description(), err))
            .map_err(|e| {
                CliError::new(
                    ExitKind::Verification,
                    format!("{shape} on {} ({}): {e}", opened.label, case.method),
                )
            })?;

    let started = Instant::now();
    for _ in 1..settings.warmup {
        backend.matmul_with(&a, &b, &mut c, shape, &options)?;
    }
    let per_call = if settings.warmup > 1 {
        started.elapsed() / (settings.warmup - 1) as u32
    } else {
        first.total
    };
    let reps = reps_within(settings, per_call);
    let mut reports: Vec<MatmulReport> = Vec::with_capacity(reps);
    let mut walls = Vec::with_capacity(reps);
    let mut copies = Vec::new();
    let mut split = None;
    for _ in 0..reps {
        let t = Instant::now();
        match backend.as_cuda() {
            Some(cuda) => {
                let r = cuda.matmul_detailed(&a, &b, &mut c, shape, &options)?;
                walls.push(t.elapsed().as_secs_f64());
                copies.push((r.to_device.as_secs_f64(), r.to_host.as_secs_f64()));
                split = Some(CudaSplit {
                    to_device_ms: f64::NAN,
                    to_host_ms: f64::NAN,
                    kernel_gflops: f64::NAN,
                    pinned: r.pinned,
                    in_place: r.in_place,
                    blocks: r.blocks,
                });
                reports.push(r.report);
            }
            None => {
                reports.push(backend.matmul_with(&a, &b, &mut c, shape, &options)?);
                walls.push(t.elapsed().as_secs_f64());
            }
        }
    }
    let gpu: Vec<f64> = reports
        .iter()
        .filter_map(|r| r.gpu.map(|d| d.as_secs_f64()))
        .collect();
    let mut result = CaseResult {
        shape,
        backend: case.backend,
        method: case.method,
        method_ran: first.method,
        reps,
        best_ms: f64::NAN,
        median_ms: f64::NAN,
        best_gflops: f64::NAN,
        median_gflops: f64::NAN,
        gpu_median_ms: None,
        cuda: split,
        checked_against,
        max_scaled_error,
        peak_extra_mib,
        matrices_mib,
        concurrent: None,
        walls: Vec::new(),
        gpu: Vec::new(),
        copies: Vec::new(),
    };
    result.set_timings(walls, gpu, copies);

    result.concurrent = match settings.callers.filter(|_| with_callers) {
        Some(callers) => Some(concurrent(
            opened,
            case,
            (&a, &b),
            callers,
            reps.max((0.3e3 / result.median_ms) as usize),
            result.best_gflops,
        )?),
        None => None,
    };
    Ok(result)
}

/// Repetitions that fit the budget at `per_call`, between 3 and `settings.reps`.
fn reps_within(settings: &Settings, per_call: Duration) -> usize {
    let fit = settings.budget.as_secs_f64() / per_call.as_secs_f64().max(1e-9);
    (fit as usize).clamp(3.min(settings.reps), settings.reps)
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Rounds of the concurrent measurement; the best is reported, as for one caller, since
/// load from outside only ever lowers a round's figure.
pub const CONCURRENT_ROUNDS: usize = 3;

/// `callers` threads each make `calls` calls on the same backend at once (each with its
/// own C, sharing A and B), [`CONCURRENT_ROUNDS`] times. Before each of those rounds one
/// caller makes `total_calls` calls alone, one after another, so both throughputs are
/// sustained rates over runs of about the same length, taken seconds apart, not one
/// caller's fastest single call against a long run of many.
fn concurrent(
    opened: &Opened,
    case: &Case,
    (a, b): (&[f32], &[f32]),
    callers: usize,
    total_calls: usize,
    one_caller_best_call: f64,
) -> CliResult<Concurrent> {
    // `total_calls` is enough work (about 0.3 s of one caller's time, at least the
    // repetitions) that starting the threads and the last stragglers matter little.
    let calls = total_calls.div_ceil(callers).max(2);
    let mut best_many = 0.0_f64;
    let mut best_one = 0.0_f64;
    for _ in 0..CONCURRENT_ROUNDS {
        best_one = best_one.max(one_caller_round(opened, case, (a, b), total_calls)?);
        best_many = best_many.max(concurrent_round(opened, case, (a, b), callers, calls)?);
    }
    Ok(Concurrent {
        callers,
        calls_each: calls,
        gflops: best_many,
        ratio_to_one_caller: best_many / one_caller_best_call,
        one_caller_gflops: best_one,
        ratio_to_one_caller_rounds: best_many / best_one,
    })
}

/// One caller makes `calls` calls one after another; GFLOPS over the whole span.
fn one_caller_round(
    opened: &Opened,
    case: &Case,
    (a, b): (&[f32], &[f32]),
    calls: usize,
) -> CliResult<f64> {
    let shape = case.shape;
    let options = MatmulOptions {
        method: case.method,
        check_finite: false,
    };
    let (_, _, len_c) = shape.lens()?;
    let mut c = vec![f32::NAN; len_c];
    let started = Instant::now();
    for _ in 0..calls {
        opened.backend.matmul_with(a, b, &mut c, shape, &options)?;
    }
    Ok(shape.flops() * calls as f64 / started.elapsed().as_secs_f64() / 1e9)
}

/// One round of [`concurrent`].
fn concurrent_round(
    opened: &Opened,
    case: &Case,
    (a, b): (&[f32], &[f32]),
    callers: usize,
    calls: usize,
) -> CliResult<f64> {
    let shape = case.shape;
    let backend = opened.backend.as_ref();
    let options = MatmulOptions {
        method: case.method,
        check_finite: false,
    };
    let (_, _, len_c) = shape.lens()?;
    // Every caller allocates and touches its C, then all start together: the timed
    // span holds the products only, not thread start-up or first-touch page faults.
    let ready = std::sync::Barrier::new(callers + 1);
    let done = std::sync::Barrier::new(callers + 1);
    let mut started = Instant::now();
    let outcome: Vec<CliResult<metal_matmul::Result<()>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..callers)
            .map(|_| {
                let (ready, done) = (&ready, &done);
                scope.spawn(move || {
                    let mut c = vec![f32::NAN; len_c];
                    ready.wait();
                    let mut result = Ok(());
                    for _ in 0..calls {
                        result = backend
                            .matmul_with(a, b, &mut c, shape, &options)
                            .map(|_| ());
                        if result.is_err() {
                            break;
                        }
                    }
                    done.wait();
                    result
                })
            })
            .collect();
        ready.wait();
        started = Instant::now();
        done.wait();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| CliError::failure("a concurrent caller panicked"))
            })
            .collect()
    });
    let wall = started.elapsed().as_secs_f64();
    for r in outcome {
        r??;
    }
    Ok(shape.flops() * (callers * calls) as f64 / wall / 1e9)
}
