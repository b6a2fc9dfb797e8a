//! The CPU backend: the plan's correctness tests and property tests over shapes.
//! These run everywhere, always.

use metal_matmul::numeric::DEFAULT_TOLERANCE;
use metal_matmul::verify;
use metal_matmul::{Backend, CpuBackend, MatmulOptions, Shape, random_matrix};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Multiplies fresh random matrices into a NaN-poisoned output and checks every element
/// against the f64 reference.
fn check_shape(backend: &CpuBackend, shape: Shape, seed: u64) {
    let a = random_matrix(shape.m * shape.k, seed);
    let b = random_matrix(shape.k * shape.n, !seed);
    let mut c = vec![f32::NAN; shape.m * shape.n];
    backend
        .matmul_into(&a, &b, &mut c, shape)
        .unwrap_or_else(|e| panic!("{shape}: {e}"));
    verify::full(&a, &b, &c, shape, DEFAULT_TOLERANCE).unwrap_or_else(|e| panic!("{shape}: {e}"));
}

#[test]
fn initialization_reports_a_cpu() {
    let cpu = CpuBackend::new().unwrap();
    let info = cpu.device_info();
    assert_eq!(info.device_type, "CPU");
    assert!(!info.name.is_empty());
    assert!(cpu.threads() >= 1);
    assert!(cpu.methods().is_empty());
}

#[test]
fn two_by_two_gives_the_plan_answer() {
    let cpu = CpuBackend::new().unwrap();
    let c = cpu
        .matmul(
            &[1.0, 2.0, 3.0, 4.0],
            &[5.0, 6.0, 7.0, 8.0],
            Shape::square(2),
        )
        .unwrap();
    assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
}

#[test]
fn the_plan_correctness_cases() {
    for threads in [1, 2] {
        let cpu = CpuBackend::with_threads(threads).unwrap();
        for (i, shape) in [
            Shape::square(32),
            Shape::square(64),
            Shape::new(128, 64, 32),
            Shape::square(256),
        ]
        .into_iter()
        .enumerate()
        {
            check_shape(&cpu, shape, 100 + i as u64);
        }
    }
}

#[test]
fn large_enough_to_use_every_thread() {
    let cpu = CpuBackend::with_threads(2).unwrap();
    let shape = Shape::new(300, 257, 301);
    assert_eq!(cpu.threads_for(shape), 2);
    check_shape(&cpu, shape, 7);
}

#[test]
fn small_products_use_one_thread() {
    let cpu = CpuBackend::with_threads(2).unwrap();
    assert_eq!(cpu.threads_for(Shape::square(16)), 1);
}

#[test]
fn zero_dimensions_give_empty_or_zero_results() {
    let cpu = CpuBackend::new().unwrap();
    // m = 0: C is empty.
    assert_eq!(
        cpu.matmul(&[], &[1.0, 2.0], Shape::new(0, 1, 2)).unwrap(),
        Vec::<f32>::new()
    );
    // n = 0: C is empty.
    assert_eq!(
        cpu.matmul(&[1.0, 2.0], &[], Shape::new(2, 1, 0)).unwrap(),
        Vec::<f32>::new()
    );
    // k = 0: C is m×n zeros, even when the output held something before.
    let mut c = vec![f32::NAN; 6];
    cpu.matmul_into(&[], &[], &mut c, Shape::new(2, 0, 3))
        .unwrap();
    assert_eq!(c, [0.0; 6]);
}

#[test]
fn finite_check_passes_finite_data() {
    let cpu = CpuBackend::new().unwrap();
    let options = MatmulOptions {
        check_finite: true,
        ..MatmulOptions::default()
    };
    let mut c = [f32::NAN; 4];
    let report = cpu
        .matmul_with(
            &[1.0, 2.0, 3.0, 4.0],
            &[5.0, 6.0, 7.0, 8.0],
            &mut c,
            Shape::square(2),
            &options,
        )
        .unwrap();
    assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
    assert_eq!(report.backend, metal_matmul::BackendKind::Cpu);
    assert!(report.gpu.is_none());
}

/// A NaN or infinity in A or B is reported with its operand and position by every
/// kernel, on one and two threads. The CPU backend scans A and B only when C has a
/// non-finite value, so this checks that each kernel carries one into C, even an
/// infinity met by zeros only (∞·0 is NaN) or next to an infinity of the other sign.
#[test]
fn every_kernel_carries_a_non_finite_input_into_c() {
    use metal_matmul::Error;
    let options = MatmulOptions {
        check_finite: true,
        ..MatmulOptions::default()
    };
    // Vector × matrix, matrix × vector, few rows, narrow, blocked, general (the
    // kernels the backend picks on an Intel CPU with AVX-512; other CPUs take faer's for
    // some of them), and a tall product split between threads.
    let shapes = [
        Shape::new(1, 300, 200),
        Shape::new(300, 200, 1),
        Shape::new(8, 1024, 1024),
        Shape::new(1024, 512, 32),
        Shape::new(100, 300, 700),
        Shape::new(70, 90, 60),
        Shape::new(1100, 300, 700),
    ];
    let mut rng = StdRng::seed_from_u64(17);
    for threads in [1, 2] {
        let cpu = CpuBackend::with_threads(threads).unwrap();
        for shape in shapes {
            let cases = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN]
                .into_iter()
                .flat_map(|bad| [(bad, true), (bad, false)]);
            for (bad, in_a) in cases {
                let (m, k, n) = (shape.m, shape.k, shape.n);
                let mut a = random_matrix(m * k, rng.random());
                let mut b = random_matrix(k * n, rng.random());
                let (row, p, col) = (
                    rng.random_range(0..m),
                    rng.random_range(0..k),
                    rng.random_range(0..n),
                );
                // In A, with B's row p all zeros (∞·0); in B, with A's column p zero
                // and an infinity of the other sign in the same column of B.
                if in_a {
                    a[row * k + p] = bad;
                    b[p * n..(p + 1) * n].fill(0.0);
                } else {
                    b[p * n + col] = bad;
                    (0..m).for_each(|i| a[i * k + p] = 0.0);
                    if k > 1 {
                        let q = (p + 1) % k;
                        b[q * n + col] = -bad;
                    }
                }
                let mut c = vec![0.0; m * n];
                let err = cpu
                    .matmul_with(&a, &b, &mut c, shape, &options)
                    .expect_err("a non-finite input must be reported");
                let want = if in_a {
                    let index = row * k + p;
                    Error::NonFinite {
                        operand: "A",
                        index,
                        row,
                        col: p,
                    }
                } else {
                    // The first non-finite value of B: the smaller index of the two.
                    let q = (p + 1) % k;
                    let index = if k > 1 {
                        (p * n + col).min(q * n + col)
                    } else {
                        p * n + col
                    };
                    Error::NonFinite {
                        operand: "B",
                        index,
                        row: index / n,
                        col,
                    }
                };
                assert_eq!(err, want, "{shape}, {threads} threads, {bad}, in A: {in_a}");
            }
        }
    }
}

/// Dimensions that catch edge handling: 0, 1, primes, and non-multiples of every tile
/// and register block size in use (4, 8, 16, 32, 48, 64).
fn dimension() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        Just(2),
        Just(3),
        Just(7),
        Just(13),
        Just(17),
        Just(31),
        Just(33),
        Just(65),
        Just(97),
        1usize..80
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_shape_matches_the_reference(m in dimension(), k in dimension(), n in dimension(), seed in any::<u64>(), threads in 1usize..=2) {
        let cpu = CpuBackend::with_threads(threads).unwrap();
        let shape = Shape::new(m, k, n);
        check_shape(&cpu, shape, seed);
    }
}
