//! Criterion benchmarks of the Metal backend: every method the device supports, square
//! sizes 32 to 4096, with throughput in floating-point operations (criterion's
//! "elem/s" column counts FLOPs here: 1 Gelem/s = 1 GFLOPS). A summary table then puts
//! each method's measured GFLOPS (wall clock and GPU time) beside the plan's targets.
//!
//! Run on a Mac with `cargo xtask bench-metal` (criterion arguments after `--`, e.g.
//! `cargo xtask bench-metal -- mps`). `FXN_BENCH_SIZES=256,1024` limits the sizes.
//! Without a Metal device it prints why and exits successfully.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use metal_matmul::{
    Backend, MatmulOptions, MetalBackend, MetalStatus, Method, Shape, random_matrix,
};

const SIZES: [usize; 8] = [32, 64, 128, 256, 512, 1024, 2048, 4096];

/// The implementation plan's targets (phase 3.4 and the success metrics), in GFLOPS.
const TARGETS: [(usize, f64); 3] = [(256, 150.0), (1024, 500.0), (4096, 700.0)];

fn sizes() -> Vec<usize> {
    match std::env::var("FXN_BENCH_SIZES") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .filter(|&s| s > 0)
            .collect(),
        _ => SIZES.to_vec(),
    }
}

fn options(method: Method) -> MatmulOptions {
    MatmulOptions {
        method,
        ..MatmulOptions::default()
    }
}

fn criterion_benches(criterion: &mut Criterion, backend: &MetalBackend, sizes: &[usize]) {
    for method in backend.methods() {
        let mut group = criterion.benchmark_group(format!("metal/{method}"));
        for &size in sizes {
            let shape = Shape::square(size);
            let a = random_matrix(size * size, 1);
            let b = random_matrix(size * size, 2);
            let mut c = vec![0.0f32; size * size];
            group.throughput(Throughput::Elements(shape.flops() as u64));
            // Criterion's fewest samples for the large sizes, where one call takes up to
            // seconds with the simple kernel; times come from criterion's defaults or the
            // command line (`-- --measurement-time 2`).
            group.sample_size(if size >= 1024 { 10 } else { 30 });
            let opts = options(method);
            group.bench_with_input(
                BenchmarkId::from_parameter(size),
                &shape,
                |bench, &shape| {
                    bench.iter(|| {
                        backend
                            .matmul_with(black_box(&a), black_box(&b), &mut c, shape, &opts)
                            .expect("a benchmarked product failed")
                    })
                },
            );
        }
        group.finish();
    }
}

/// Median wall and GPU seconds of repeated calls (at least 3, or about one second).
fn measure(backend: &MetalBackend, method: Method, size: usize) -> (f64, Option<f64>) {
    let shape = Shape::square(size);
    let a = random_matrix(size * size, 3);
    let b = random_matrix(size * size, 4);
    let mut c = vec![0.0f32; size * size];
    let opts = options(method);
    backend
        .matmul_with(&a, &b, &mut c, shape, &opts)
        .expect("warm-up product failed");
    let mut wall = Vec::new();
    let mut gpu = Vec::new();
    let started = Instant::now();
    while wall.len() < 3 || (started.elapsed() < Duration::from_secs(1) && wall.len() < 200) {
        let t = Instant::now();
        let report = backend
            .matmul_with(&a, &b, &mut c, shape, &opts)
            .expect("measured product failed");
        wall.push(t.elapsed().as_secs_f64());
        if let Some(g) = report.gpu {
            gpu.push(g.as_secs_f64());
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let gpu = (!gpu.is_empty()).then(|| median(&mut gpu));
    (median(&mut wall), gpu)
}

fn summary(backend: &MetalBackend, sizes: &[usize]) {
    let info = backend.device_info();
    println!();
    println!(
        "Metal summary on {} ({}), median of repeated calls; GFLOPS = 2·n³ / time",
        info.name, info.compute_capability
    );
    println!(
        "{:>6} {:>10} {:>14} {:>14} {:>16} {:>12}",
        "size", "method", "GFLOPS (wall)", "GFLOPS (GPU)", "plan target", "pool/matrices"
    );
    for &size in sizes {
        let flops = Shape::square(size).flops();
        let target = TARGETS.iter().find(|(s, _)| *s == size).map(|(_, t)| *t);
        for method in backend.methods() {
            backend.drain_pool();
            let (wall, gpu) = measure(backend, method, size);
            let wall_gflops = flops / wall / 1e9;
            let gpu_gflops = gpu.map(|g| flops / g / 1e9);
            let verdict = match target {
                Some(t) if wall_gflops > t => format!("> {t:.0} met"),
                Some(t) => format!("> {t:.0} not met"),
                None => "-".to_owned(),
            };
            // Bytes the pool holds after the runs, relative to A + B + C: the GPU-side
            // copies this backend keeps (0 when every operand was wrapped without copying).
            let matrices = 3.0 * (size * size * 4) as f64;
            let pooled = backend.pool_stats().cached_bytes as f64 / matrices;
            println!(
                "{size:>6} {:>10} {wall_gflops:>14.1} {:>14} {verdict:>16} {pooled:>11.2}x",
                method.name(),
                gpu_gflops.map_or("-".to_owned(), |g| format!("{g:.1}")),
            );
        }
    }
    println!(
        "Plan targets: 256³ > 150 GFLOPS, 1024³ > 500, 4096³ > 700; MPS ahead of the custom kernels for large sizes; memory < 2× the matrices."
    );
}

fn main() {
    let status = MetalStatus::probe();
    if !status.available() {
        println!(
            "metal benchmarks skipped: {}",
            status.reason.as_deref().unwrap_or("Metal is unavailable")
        );
        return;
    }
    let backend = match MetalBackend::new() {
        Ok(backend) => backend,
        Err(err) => {
            eprintln!("metal benchmarks: a device answered but the backend did not open: {err}");
            std::process::exit(1);
        }
    };
    let sizes = sizes();
    println!("criterion's elem/s below are FLOP/s (1 Gelem/s = 1 GFLOPS)");
    let mut criterion = Criterion::default().configure_from_args();
    criterion_benches(&mut criterion, &backend, &sizes);
    criterion.final_summary();
    summary(&backend, &sizes);
}
