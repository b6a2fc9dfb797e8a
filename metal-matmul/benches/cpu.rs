//! Criterion benchmarks of the CPU backend: the plan's square sizes and issue 5's
//! shapes, at one thread and at every core, with throughput in floating-point
//! operations (criterion's "elements" are FLOPs: 2·m·k·n per call).
//!
//! `cargo xtask bench-cpu` runs them; `cargo xtask bench-cpu -- 1024` filters by name.
//! Each product is checked against f64 arithmetic before it is timed.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use metal_matmul::numeric::DEFAULT_TOLERANCE;
use metal_matmul::verify;
use metal_matmul::{Backend, CpuBackend, Shape, random_matrix};

/// The plan's sizes.
const SIZES: &[usize] = &[32, 64, 128, 256, 512, 1024, 2048];

/// Issue 5's shapes, m×k×n, then a few-rows and a narrow one (which the backend has
/// kernels of its own for on Intel CPUs with AVX-512).
const SHAPES: &[(usize, usize, usize)] = &[
    (4096, 4096, 4096),
    (1000, 1000, 1000),
    (127, 257, 513),
    (4096, 64, 4096),
    (4096, 4096, 64),
    (1, 4096, 4096),
    (4096, 4096, 1),
    (8, 4096, 4096),
    (4096, 4096, 16),
];

fn bench_shape(c: &mut Criterion, group: &str, shape: Shape, backends: &[(usize, CpuBackend)]) {
    let a = random_matrix(shape.m * shape.k, 1);
    let b = random_matrix(shape.k * shape.n, 2);
    let mut out = vec![f32::NAN; shape.m * shape.n];
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(shape.flops() as u64));
    if shape.flops() > 1e10 {
        g.sample_size(10).warm_up_time(Duration::from_secs(1));
        g.measurement_time(Duration::from_secs(8));
    }
    for (threads, cpu) in backends {
        out.fill(f32::NAN);
        cpu.matmul_into(&a, &b, &mut out, shape)
            .expect("multiplies");
        verify::product(&a, &b, &out, shape, DEFAULT_TOLERANCE).expect("the product is right");
        let id = BenchmarkId::new(
            format!("{threads}t"),
            format!("{}x{}x{}", shape.m, shape.k, shape.n),
        );
        g.bench_function(id, |bench| {
            bench.iter(|| {
                cpu.matmul_into(black_box(&a), black_box(&b), &mut out, shape)
                    .expect("multiplies")
            })
        });
    }
    g.finish();
}

fn backends() -> Vec<(usize, CpuBackend)> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut counts = vec![1];
    if cores > 1 {
        counts.push(cores);
    }
    counts
        .into_iter()
        .map(|t| (t, CpuBackend::with_threads(t).expect("a CPU backend")))
        .collect()
}

fn squares(c: &mut Criterion) {
    let backends = backends();
    for &size in SIZES {
        bench_shape(c, "cpu_square", Shape::square(size), &backends);
    }
}

fn shapes(c: &mut Criterion) {
    let backends = backends();
    for &(m, k, n) in SHAPES {
        bench_shape(c, "cpu_shapes", Shape::new(m, k, n), &backends);
    }
}

criterion_group!(benches, squares, shapes);
criterion_main!(benches);
