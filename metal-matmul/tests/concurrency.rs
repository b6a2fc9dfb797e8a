//! Many threads on one backend at once: 8 threads × many calls of mixed shapes (and, on
//! Metal, mixed methods), every result checked against the f64 reference. Runs on the
//! CPU backend everywhere and on the Metal backend where a device exists.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::metal_or_skip;
use metal_matmul::numeric::DEFAULT_TOLERANCE;
use metal_matmul::verify;
use metal_matmul::{Backend, CpuBackend, MatmulOptions, Method, Shape, random_matrix};

const THREADS: usize = 8;
const CALLS_PER_THREAD: usize = 40;

/// Shapes of every kind: tiny, tile multiples and not, thin, wide, rectangular, and (the
/// last four) products the CPU backend gives two threads when a caller is alone: its
/// row-block split, faer's own split (k > 512), and both vector kernels. Under load they
/// are given one thread or two depending on who waits.
const SHAPES: [Shape; 14] = [
    Shape::new(1, 1, 1),
    Shape::new(2, 2, 2),
    Shape::new(3, 5, 7),
    Shape::new(16, 16, 16),
    Shape::new(17, 31, 9),
    Shape::new(33, 64, 47),
    Shape::new(64, 1, 64),
    Shape::new(1, 200, 1),
    Shape::new(50, 70, 30),
    Shape::new(96, 96, 96),
    Shape::new(130, 100, 310),
    Shape::new(48, 600, 160),
    Shape::new(1, 300, 500),
    Shape::new(400, 330, 1),
];

/// Runs the load on `backend`, cycling through `methods` per call; returns the calls made.
fn hammer(backend: &dyn Backend, methods: &[Method]) -> usize {
    let done = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let done = &done;
            scope.spawn(move || {
                for i in 0..CALLS_PER_THREAD {
                    let shape = SHAPES[(t * 7 + i) % SHAPES.len()];
                    let method = methods[(t + i) % methods.len()];
                    let seed = (t * 1000 + i) as u64;
                    let a = random_matrix(shape.m * shape.k, seed);
                    let b = random_matrix(shape.k * shape.n, seed + 500);
                    let mut c = vec![f32::NAN; shape.m * shape.n];
                    let options = MatmulOptions {
                        method,
                        check_finite: i % 2 == 0,
                    };
                    let report = backend
                        .matmul_with(&a, &b, &mut c, shape, &options)
                        .unwrap_or_else(|e| panic!("thread {t} call {i} {method} {shape}: {e}"));
                    if method != Method::Auto {
                        assert_eq!(report.method, method);
                    }
                    verify::full(&a, &b, &c, shape, DEFAULT_TOLERANCE)
                        .unwrap_or_else(|e| panic!("thread {t} call {i} {method} {shape}: {e}"));
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    done.into_inner()
}

#[test]
fn cpu_backend_under_eight_threads() {
    let backend = CpuBackend::with_threads(2).unwrap();
    for &shape in &SHAPES[SHAPES.len() - 4..] {
        assert_eq!(backend.threads_for(shape), 2, "{shape}");
    }
    assert_eq!(
        hammer(&backend, &[Method::Auto]),
        THREADS * CALLS_PER_THREAD
    );
}

#[test]
fn metal_backend_under_eight_threads() {
    let Some(backend) = metal_or_skip("metal_backend_under_eight_threads") else {
        return;
    };
    let mut methods = backend.methods();
    methods.push(Method::Auto);
    // A small pool limit makes threads contend for it and evict from it.
    backend.set_pool_limit(64 * 1024);
    assert_eq!(hammer(&backend, &methods), THREADS * CALLS_PER_THREAD);
    let stats = backend.pool_stats();
    assert!(stats.cached_bytes <= 64 * 1024, "{stats:?}");
    assert!(stats.hits + stats.misses > 0, "{stats:?}");
}
