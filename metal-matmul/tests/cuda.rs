//! The CUDA backend's tests: every method on random shapes (odd edges, 1×N, N×1,
//! degenerate), the staging paths and row blocks, errors and recovery, concurrency,
//! the report and the device facts.
//!
//! Tests that need a device skip with a printed reason where there is none and fail
//! when `FXN_REQUIRE_CUDA=1` (`cargo xtask test-cuda`). The last tests run everywhere:
//! they check what a machine without CUDA must answer.

mod common;

use common::{check_forced, cuda_or_skip};
use metal_matmul::numeric::DEFAULT_TOLERANCE;
use metal_matmul::verify;
use metal_matmul::{
    Backend, BackendChoice, BackendKind, CudaBackend, CudaLibrary, CudaReport, CudaStaging,
    CudaStatus, Error, MatmulOptions, Method, Shape, random_matrix, select,
};

/// [`check_forced`] on a CUDA backend, which also reports GPU time; returns the scaled
/// error.
fn check(backend: &CudaBackend, method: Method, shape: Shape, seed: u64) -> f64 {
    let (report, err) = check_forced(backend, method, shape, seed);
    assert!(report.gpu.is_some_and(|g| g > std::time::Duration::ZERO));
    err
}

/// `method` on `shape` through `matmul_detailed` into `c`, NaN first (an element it never
/// writes fails), checked against the f64 reference within the method's tolerance;
/// returns the report.
fn detailed_checked(
    backend: &CudaBackend,
    method: Method,
    (a, b): (&[f32], &[f32]),
    c: &mut [f32],
    shape: Shape,
) -> CudaReport {
    c.fill(f32::NAN);
    let options = MatmulOptions {
        method,
        ..MatmulOptions::default()
    };
    let r = backend
        .matmul_detailed(a, b, c, shape, &options)
        .unwrap_or_else(|e| panic!("{method} {shape}: {e}"));
    verify::full(a, b, c, shape, method.tolerance())
        .unwrap_or_else(|e| panic!("{method} {shape}: {e}"));
    r
}

const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 300, 1),
    (1, 257, 513),
    (513, 257, 1),
    (2, 3, 4),
    (17, 33, 5),
    (31, 32, 33),
    (127, 257, 513),
    (128, 128, 128),
    (129, 127, 131),
    (250, 1, 250),
    (300, 9, 1000),
    // k and n multiples of 4 (the register-blocked kernel's float4 loads), m not.
    (130, 260, 516),
    (3, 4, 4),
];

#[test]
fn every_method_matches_the_reference_on_odd_shapes() {
    let Some(backend) = cuda_or_skip("every_method_matches_the_reference_on_odd_shapes") else {
        return;
    };
    for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
        for method in backend.methods() {
            check(&backend, method, Shape::new(m, k, n), 100 + i as u64);
        }
    }
}

#[test]
fn large_products_are_staged_pinned_and_cut_into_blocks() {
    let Some(backend) = cuda_or_skip("large_products_are_staged_pinned_and_cut_into_blocks") else {
        return;
    };
    // 1100 rows: pinned staging, two blocks of the default 1024 rows (the second short).
    let shape = Shape::new(1100, 300, 700);
    let a = random_matrix(shape.m * shape.k, 7);
    let b = random_matrix(shape.k * shape.n, 8);
    let mut c = vec![0.0; shape.m * shape.n];
    for method in [Method::Cublas, Method::RegisterBlocked, Method::Tiled] {
        assert_eq!(method.tolerance(), DEFAULT_TOLERANCE);
        let r = detailed_checked(&backend, method, (&a, &b), &mut c, shape);
        assert!(r.pinned, "{r:?}");
        assert_eq!(r.blocks, 2, "{r:?}");
        assert!(r.to_device > std::time::Duration::ZERO && r.to_host > std::time::Duration::ZERO);
    }
}

#[test]
fn operands_in_lent_pinned_memory_are_copied_in_place_and_buffers_reused() {
    let Some(backend) = cuda_or_skip("operands_in_lent_pinned_memory_are_copied_in_place") else {
        return;
    };
    let shape = Shape::new(1100, 300, 700);
    let (va, vb) = (
        random_matrix(shape.m * shape.k, 9),
        random_matrix(shape.k * shape.n, 10),
    );
    let lend = |from: &[f32]| {
        let mut h = backend.host_buffer(from.len()).unwrap();
        assert!(h.is_pinned(), "{h:?}");
        h.copy_from_slice(from);
        h
    };
    let (a, b) = (lend(&va), lend(&vb));
    let mut lent_c = backend.host_buffer(shape.m * shape.n).unwrap();
    let mut heap_c = vec![0.0; shape.m * shape.n];
    for method in [Method::Cublas, Method::RegisterBlocked] {
        // All three lent: nothing staged.
        let r = detailed_checked(&backend, method, (&a, &b), &mut lent_c, shape);
        assert!(r.in_place && !r.pinned, "{r:?}");
        assert_eq!(r.blocks, 2, "{r:?}");
        // A lent, B and C on the heap (staged).
        let r = detailed_checked(&backend, method, (&a, &vb), &mut heap_c, shape);
        assert!(r.in_place && r.pinned, "{r:?}");
    }
    // Nothing lent: staged as before.
    let r = detailed_checked(&backend, Method::Cublas, (&va, &vb), &mut heap_c, shape);
    assert!(!r.in_place && r.pinned, "{r:?}");
    // A buffer given back is lent again (page-locking is the slow part).
    let at = a.as_ptr();
    drop(a);
    let again = backend.host_buffer(shape.m * shape.k).unwrap();
    assert_eq!(again.as_ptr(), at);
}

#[test]
fn small_blocks_and_every_staging_give_the_same_answer() {
    // Only the skip check: each staging below opens its own backend.
    let Some(_device) = cuda_or_skip("small_blocks_and_every_staging_give_the_same_answer") else {
        return;
    };
    let shape = Shape::new(301, 67, 203);
    for (staging, blocks) in [
        (
            CudaStaging {
                pinned_min_bytes: 0,
                overlap_min_rows: 1,
                chunk_rows: 37,
            },
            301usize.div_ceil(37),
        ),
        (
            CudaStaging {
                pinned_min_bytes: 0,
                overlap_min_rows: usize::MAX,
                chunk_rows: 37,
            },
            1,
        ),
        (
            CudaStaging {
                pinned_min_bytes: u64::MAX,
                overlap_min_rows: 1,
                chunk_rows: 37,
            },
            1,
        ),
    ] {
        let backend = CudaBackend::new().unwrap().with_staging(staging);
        let a = random_matrix(shape.m * shape.k, 21);
        let b = random_matrix(shape.k * shape.n, 22);
        let mut c = vec![0.0; shape.m * shape.n];
        for method in backend.methods() {
            let r = detailed_checked(&backend, method, (&a, &b), &mut c, shape);
            assert_eq!(r.blocks as usize, blocks, "{staging:?} {method}");
            assert_eq!(
                r.pinned,
                staging.pinned_min_bytes == 0,
                "{staging:?} {method}"
            );
        }
    }
}

#[test]
fn tf32_is_opt_in_and_less_precise_than_fp32() {
    let Some(backend) = cuda_or_skip("tf32_is_opt_in_and_less_precise_than_fp32") else {
        return;
    };
    let shape = Shape::square(512);
    assert_eq!(
        backend.resolve(Method::Auto, shape).unwrap(),
        Method::Cublas
    );
    let fp32 = check(&backend, Method::Cublas, shape, 5);
    let tf32 = check(&backend, Method::CublasTf32, shape, 5);
    eprintln!("scaled error: cublas {fp32:.2e}, cublas-tf32 {tf32:.2e}");
    // TF32 rounds the inputs to 10 mantissa bits: its error is far above FP32's.
    assert!(tf32 > 4.0 * fp32, "fp32 {fp32:e}, tf32 {tf32:e}");
}

#[test]
fn degenerate_shapes_need_no_device_work() {
    let Some(backend) = cuda_or_skip("degenerate_shapes_need_no_device_work") else {
        return;
    };
    let mut c = vec![f32::NAN; 12];
    let r = backend
        .matmul_with(
            &[],
            &[],
            &mut c,
            Shape::new(3, 0, 4),
            &MatmulOptions::default(),
        )
        .unwrap();
    assert!(c.iter().all(|&v| v == 0.0));
    assert_eq!(r.gpu, None);
    assert!(
        backend
            .matmul(&[], &[1.0; 5], Shape::new(0, 1, 5))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn bad_arguments_are_errors_and_the_backend_stays_usable() {
    let Some(backend) = cuda_or_skip("bad_arguments_are_errors_and_the_backend_stays_usable")
    else {
        return;
    };
    let mut c = [0.0; 4];
    let shape = Shape::square(2);
    assert!(matches!(
        backend.matmul_with(
            &[1.0; 3],
            &[1.0; 4],
            &mut c,
            shape,
            &MatmulOptions::default()
        ),
        Err(Error::InvalidArgument(_))
    ));
    for method in [Method::Mps, Method::Simdgroup] {
        let options = MatmulOptions {
            method,
            ..MatmulOptions::default()
        };
        let err = backend
            .matmul_with(&[1.0; 4], &[1.0; 4], &mut c, shape, &options)
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument(ref m) if m.contains(method.name())),
            "{err}"
        );
    }
    // Out of memory is found before anything is allocated: A alone would be 640 GB.
    let big = CudaBackend::new().unwrap().with_max_dim(1 << 20);
    let err = big.check_fits(Shape::new(400_000, 400_000, 1)).unwrap_err();
    match err {
        Error::Cuda {
            library: CudaLibrary::Driver,
            ref name,
            ..
        } => assert_eq!(name, "CUDA_ERROR_OUT_OF_MEMORY", "{err}"),
        other => panic!("{other:?}"),
    }
    assert!(big.check_fits(Shape::square(1024)).is_ok());
    check(&backend, Method::Cublas, Shape::square(64), 9);
    check(&big, Method::Tiled, Shape::square(65), 10);
}

#[test]
fn non_finite_inputs_and_outputs_are_reported_when_asked() {
    let Some(backend) = cuda_or_skip("non_finite_inputs_and_outputs_are_reported_when_asked")
    else {
        return;
    };
    common::assert_detects_non_finite(&backend);
}

#[test]
fn concurrent_callers_get_correct_answers() {
    let Some(backend) = cuda_or_skip("concurrent_callers_get_correct_answers") else {
        return;
    };
    let methods = backend.methods();
    std::thread::scope(|scope| {
        for t in 0..12u64 {
            let backend = &backend;
            let methods = &methods;
            scope.spawn(move || {
                for round in 0..4u64 {
                    let size = 60 + 37 * ((t + round) % 7) as usize;
                    let shape = Shape::new(size, size + 3, size + 1);
                    let method = methods[((t + round) % methods.len() as u64) as usize];
                    check(backend, method, shape, 1000 + 10 * t + round);
                }
                // One staged, blocked product per thread as well.
                check(
                    backend,
                    Method::Cublas,
                    Shape::new(1030, 129, 257),
                    2000 + t,
                );
            });
        }
    });
    assert!(backend.drain_pool() > 0);
    check(&backend, Method::Cublas, Shape::square(100), 3);
}

#[test]
fn the_device_reports_its_facts() {
    let Some(backend) = cuda_or_skip("the_device_reports_its_facts") else {
        return;
    };
    let facts = backend.facts();
    eprintln!("{facts:#?}");
    assert!(!facts.name.is_empty());
    assert!(facts.sm_count > 0);
    assert_eq!(
        facts.arch,
        format!(
            "sm_{}{}",
            facts.compute_capability.0, facts.compute_capability.1
        )
    );
    if let Some(per_sm) = facts.cores_per_sm {
        assert_eq!(facts.cuda_cores(), Some(per_sm * facts.sm_count));
    }
    assert!(facts.driver_version >= 11_000, "{facts:?}");
    let info = backend.device_info();
    assert_eq!(info.device_type, metal_matmul::CUDA_DEVICE_TYPE);
    assert_eq!(info.compute_capability, facts.capability_string());
    assert!(info.memory_free <= info.memory_total && info.memory_total > 0);
    assert!(!info.unified_memory);
    assert_eq!(
        select(BackendChoice::Cuda).unwrap().backend.kind(),
        BackendKind::Cuda
    );
}

// ---- Everywhere: what a machine without CUDA answers.

#[test]
fn without_cuda_the_backend_is_unavailable_never_a_panic() {
    let status = CudaStatus::probe();
    eprintln!("{status:?}");
    assert_eq!(status.available(), status.reason.is_none());
    if status.available() {
        assert!(status.facts.is_some());
        return;
    }
    assert!(status.facts.is_none());
    match CudaBackend::new() {
        Err(Error::Unavailable { backend, reason }) => {
            assert_eq!(backend, BackendKind::Cuda);
            assert!(!reason.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        select(BackendChoice::Cuda),
        Err(Error::Unavailable {
            backend: BackendKind::Cuda,
            ..
        })
    ));
    if !metal_matmul::MetalStatus::probe().available() {
        let selected = select(BackendChoice::Auto).unwrap();
        assert_eq!(selected.backend.kind(), BackendKind::Cpu);
        let reason = selected.fallback_reason.unwrap();
        assert!(reason.contains("cuda"), "{reason}");
        assert!(select(BackendChoice::Gpu).is_err());
    }
}
