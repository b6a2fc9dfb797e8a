//! Every error path of the safe API that can run on any machine.

mod common;

use metal_matmul::{
    Backend, BackendChoice, BackendKind, CpuBackend, Error, MatmulOptions, MetalBackend,
    MetalStatus, Method, Shape,
};

#[test]
fn wrong_slice_lengths_are_invalid_arguments() {
    let cpu = CpuBackend::new().unwrap();
    let shape = Shape::new(2, 3, 4);
    // (len A, len B, len C, the operand named in the error); the right lengths are 6, 12, 8.
    for (la, lb, lc, named) in [
        (5, 12, 8, "A has 5"),
        (7, 12, 8, "A has 7"),
        (6, 11, 8, "B has 11"),
        (6, 12, 9, "C has 9"),
    ] {
        let (a, b, mut c) = (vec![1.0; la], vec![1.0; lb], vec![0.0; lc]);
        let err = cpu.matmul_into(&a, &b, &mut c, shape).unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument(ref m) if m.contains(named)),
            "{err}"
        );
    }
    // The allocating form checks too.
    assert!(matches!(
        cpu.matmul(&[1.0; 6], &[1.0; 3], shape),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn overflowing_sizes_are_invalid_arguments_not_panics() {
    let cpu = CpuBackend::new().unwrap().with_max_dim(usize::MAX);
    let err = cpu
        .matmul(&[], &[], Shape::new(usize::MAX, usize::MAX, 2))
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(ref m) if m.contains("overflows")),
        "{err}"
    );
}

#[test]
fn dimensions_over_the_limit_are_rejected_before_any_allocation() {
    let cpu = CpuBackend::new().unwrap();
    let err = cpu.matmul(&[], &[], Shape::new(1, 8193, 1)).unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(ref m) if m.contains("k = 8193")),
        "{err}"
    );
    let small = CpuBackend::new().unwrap().with_max_dim(4);
    assert!(
        small
            .matmul(&[0.0; 25], &[0.0; 25], Shape::square(5))
            .is_err()
    );
    assert!(
        small
            .matmul(&[0.0; 16], &[0.0; 16], Shape::square(4))
            .is_ok()
    );
}

#[test]
fn metal_methods_are_refused_by_the_cpu() {
    let cpu = CpuBackend::new().unwrap();
    for method in Method::FORCEABLE {
        let options = MatmulOptions {
            method,
            ..MatmulOptions::default()
        };
        let err = cpu
            .matmul_with(&[1.0], &[1.0], &mut [0.0], Shape::square(1), &options)
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument(ref m) if m.contains(method.name())),
            "{err}"
        );
    }
}

#[test]
fn non_finite_inputs_and_outputs_are_reported_when_asked() {
    common::assert_detects_non_finite(&CpuBackend::new().unwrap());
}

#[test]
fn a_degenerate_product_still_reports_a_non_finite_input() {
    // Nothing is computed, so nothing reaches C: the inputs themselves are scanned.
    let cpu = CpuBackend::new().unwrap();
    let options = MatmulOptions {
        method: Method::Auto,
        check_finite: true,
    };
    let mut c: Vec<f32> = Vec::new();
    // m = 0: B holds a NaN.
    let b = [1.0, f32::NAN, 2.0, 3.0, 4.0, 5.0];
    let err = cpu
        .matmul_with(&[], &b, &mut c, Shape::new(0, 2, 3), &options)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NonFinite {
                operand: "B",
                index: 1,
                ..
            }
        ),
        "{err}"
    );
    // n = 0: A holds an infinity.
    let a = [1.0, 2.0, f32::INFINITY, 3.0];
    let err = cpu
        .matmul_with(&a, &[], &mut c, Shape::new(2, 2, 0), &options)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NonFinite {
                operand: "A",
                index: 2,
                ..
            }
        ),
        "{err}"
    );
    // k = 0: C is zeros, and nothing is non-finite.
    let mut c = vec![f32::NAN; 6];
    cpu.matmul_with(&[], &[], &mut c, Shape::new(2, 0, 3), &options)
        .unwrap();
    assert!(c.iter().all(|&v| v == 0.0));
}

#[test]
fn zero_threads_is_an_invalid_argument() {
    assert!(matches!(
        CpuBackend::with_threads(0),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn unknown_backend_and_method_names_are_invalid_arguments() {
    assert!(matches!(
        "vulkan".parse::<BackendChoice>(),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(
        " CUDA ".parse::<BackendChoice>().unwrap(),
        BackendChoice::Cuda
    );
    assert_eq!("GPU".parse::<BackendChoice>().unwrap(), BackendChoice::Gpu);
    assert!(matches!(
        "fastest".parse::<Method>(),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn metal_without_a_device_is_unavailable_not_a_panic() {
    let status = MetalStatus::probe();
    if status.available() {
        eprintln!("skipping: this machine has Metal; tests/metal.rs covers it");
        return;
    }
    assert!(status.reason.is_some());
    let err = MetalBackend::new().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unavailable {
                backend: BackendKind::Metal,
                ..
            }
        ),
        "{err}"
    );
    // An explicit request is an error, never a silent fallback to the CPU.
    let err = metal_matmul::select(BackendChoice::Metal).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    // Auto falls back and says why.
    let selected = metal_matmul::select(BackendChoice::Auto).unwrap();
    assert_eq!(selected.backend.kind(), BackendKind::Cpu);
    assert!(selected.fallback_reason.is_some());
}
