//! The Metal backend's tests: the plan's correctness tests for every method (forced),
//! odd and rectangular shapes, errors, the pool, zero-copy and timing (fault recovery is
//! in `metal_faults.rs`, behind the `fault-injection` feature).
//!
//! Tests that need a device skip with a printed reason where there is none and fail
//! when `FXN_REQUIRE_METAL=1` (`cargo xtask test-metal` on a Mac). The tests at the
//! bottom run everywhere: they check what a build without a device must answer.

mod common;

use common::{AlignedF32, check_metal, metal_or_skip, metal_present, native_code};
use metal_matmul::numeric::DEFAULT_TOLERANCE;
use metal_matmul::verify;
use metal_matmul::{
    Backend, BackendChoice, BackendKind, DeviceInfo, Error, MatmulOptions, MetalBackend,
    MetalStatus, Method, MethodPolicy, NativeCode, Shape, random_matrix, select,
};

#[test]
fn init_reports_the_device() {
    let Some(backend) = metal_or_skip("init_reports_the_device") else {
        return;
    };
    let info = backend.device_info();
    eprintln!("{info:#?}");
    assert_eq!(info.device_type, DeviceInfo::METAL_DEVICE_TYPE);
    assert!(!info.name.is_empty());
    assert!(info.memory_total > 0);
    assert!(info.memory_free <= info.memory_total);
    // The tiled kernel needs 16×16 threads per group; every Metal GPU allows 1024.
    assert!(info.max_threads_per_group >= 256, "{info:?}");
    let gpu = info.gpu.as_ref().expect("a Metal device has GPU details");
    assert!(gpu.max_threadgroup_memory >= 2 * 16 * 16 * 4, "{gpu:?}");
    assert!(gpu.max_buffer_length > 0);
    assert!(
        gpu.families
            .split(' ')
            .any(|f| f == info.compute_capability)
            || info.compute_capability == "Unknown",
        "{gpu:?}"
    );
    assert_eq!(gpu.supports_metal3, gpu.families.contains("Metal3"));
    let methods = backend.methods();
    assert!(methods.contains(&Method::Simple) && methods.contains(&Method::Tiled));
    assert_eq!(methods.contains(&Method::Mps), gpu.supports_mps);
    if methods.contains(&Method::Simdgroup) {
        assert!(gpu.supports_simdgroup_matrix);
    }
    for m in methods {
        assert!(backend.supports(m));
    }
}

#[test]
fn the_plan_example_on_every_method() {
    let Some(backend) = metal_or_skip("the_plan_example_on_every_method") else {
        return;
    };
    let a = [1.0, 2.0, 3.0, 4.0];
    let b = [5.0, 6.0, 7.0, 8.0];
    for method in backend.methods() {
        let mut c = [f32::NAN; 4];
        let options = MatmulOptions {
            method,
            ..MatmulOptions::default()
        };
        backend
            .matmul_with(&a, &b, &mut c, Shape::square(2), &options)
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        assert_eq!(c, [19.0, 22.0, 43.0, 50.0], "{method}");
    }
}

#[test]
fn the_plans_shapes_on_every_method() {
    let Some(backend) = metal_or_skip("the_plans_shapes_on_every_method") else {
        return;
    };
    let shapes = [
        Shape::square(32),
        Shape::square(64),
        Shape::new(128, 64, 32),
        Shape::square(256),
    ];
    for method in backend.methods() {
        for (i, &shape) in shapes.iter().enumerate() {
            check_metal(&backend, method, shape, 10 + i as u64);
        }
    }
}

#[test]
fn shapes_that_are_not_tile_multiples_on_every_method() {
    let Some(backend) = metal_or_skip("shapes_that_are_not_tile_multiples_on_every_method") else {
        return;
    };
    let shapes = [
        Shape::square(1),
        Shape::new(3, 5, 7),
        Shape::square(15),
        Shape::square(17),
        Shape::new(15, 16, 17),
        Shape::new(31, 33, 35),
        Shape::new(33, 1, 65),
        Shape::new(1, 300, 1),
        Shape::new(100, 37, 3),
        Shape::new(65, 129, 31),
        Shape::new(257, 3, 129),
        Shape::new(200, 100, 50),
        Shape::new(7, 1000, 9),
    ];
    for method in backend.methods() {
        for (i, &shape) in shapes.iter().enumerate() {
            check_metal(&backend, method, shape, 100 + i as u64);
        }
    }
}

#[test]
fn auto_runs_the_policys_choice() {
    let Some(backend) = metal_or_skip("auto_runs_the_policys_choice") else {
        return;
    };
    let policy = MethodPolicy {
        mps_min_dim: 96,
        tiled_min_dim: 16,
    };
    let backend = backend.with_policy(policy);
    for shape in [
        Shape::new(5, 6, 7),
        Shape::square(40),
        Shape::new(100, 20, 30),
    ] {
        let want = backend.resolve(Method::Auto, shape).unwrap();
        assert_eq!(
            want,
            policy.choose(shape, backend.supports(Method::Mps)),
            "{shape}"
        );
        let a = random_matrix(shape.m * shape.k, 1);
        let b = random_matrix(shape.k * shape.n, 2);
        let mut c = vec![f32::NAN; shape.m * shape.n];
        let report = backend
            .matmul_with(&a, &b, &mut c, shape, &MatmulOptions::default())
            .unwrap();
        assert_eq!(report.method, want);
        verify::full(&a, &b, &c, shape, DEFAULT_TOLERANCE).unwrap();
    }
}

#[test]
fn zero_sized_products_need_no_device_work() {
    let Some(backend) = metal_or_skip("zero_sized_products_need_no_device_work") else {
        return;
    };
    let mut c = vec![f32::NAN; 6];
    let report = backend
        .matmul_with(
            &[],
            &[],
            &mut c,
            Shape::new(2, 0, 3),
            &MatmulOptions::default(),
        )
        .unwrap();
    assert_eq!(c, vec![0.0; 6]);
    assert_eq!(report.gpu, None);
    let mut empty: Vec<f32> = Vec::new();
    backend
        .matmul_with(
            &[],
            &[1.0; 3],
            &mut empty,
            Shape::new(0, 1, 3),
            &MatmulOptions::default(),
        )
        .unwrap();
}

#[test]
fn gpu_time_is_reported() {
    let Some(backend) = metal_or_skip("gpu_time_is_reported") else {
        return;
    };
    let shape = Shape::square(128);
    let a = random_matrix(128 * 128, 5);
    let b = random_matrix(128 * 128, 6);
    let mut c = vec![0.0; 128 * 128];
    for method in backend.methods() {
        let options = MatmulOptions {
            method,
            ..MatmulOptions::default()
        };
        let report = backend
            .matmul_with(&a, &b, &mut c, shape, &options)
            .unwrap();
        let gpu = report
            .gpu
            .unwrap_or_else(|| panic!("{method}: no GPU time"));
        assert!(!gpu.is_zero(), "{method}");
        assert!(!report.total.is_zero(), "{method}");
        eprintln!("{method}: gpu {gpu:?}, total {:?}", report.total);
    }
}

#[test]
fn non_finite_values_are_detected() {
    let Some(backend) = metal_or_skip("non_finite_values_are_detected") else {
        return;
    };
    common::assert_detects_non_finite(&backend);
}

#[test]
fn a_broken_shader_is_a_compile_error_with_the_log() {
    let Some(backend) = metal_or_skip("a_broken_shader_is_a_compile_error_with_the_log") else {
        return;
    };
    let (code, message) = native_code(
        backend.compile_shaders("#include <metal_stdlib>\nkernel void matmul_simple(device float* x [[buffer(0)]]) { x[0] = undeclared_name; }\n"),
    );
    assert_eq!(code, NativeCode::ShaderCompile);
    assert!(
        message.contains("undeclared_name"),
        "no compiler log: {message}"
    );
    // A source that compiles but lacks a required kernel.
    let (code, message) = native_code(backend.compile_shaders(
        "#include <metal_stdlib>\nkernel void matmul_simple(device float* x [[buffer(0)]]) { x[0] = 1.0f; }\n",
    ));
    assert_eq!(code, NativeCode::ShaderCompile);
    assert!(message.contains("matmul_tiled"), "{message}");
    assert!(matches!(
        backend.compile_shaders("a\0b"),
        Err(Error::InvalidArgument(_))
    ));
    // The failed compilations left the working pipelines in place.
    check_metal(&backend, Method::Tiled, Shape::new(20, 30, 40), 7);
    // Recompiling the crate's own source works and keeps every method.
    let methods = backend.methods();
    let source = metal_matmul_sys::SHADER_SOURCE.to_str().unwrap();
    backend.compile_shaders(source).unwrap();
    assert_eq!(backend.methods(), methods);
    check_metal(&backend, Method::Simple, Shape::new(9, 10, 11), 8);
}

#[test]
fn a_source_without_the_simdgroup_kernel_leaves_it_unsupported() {
    let Some(backend) =
        metal_or_skip("a_source_without_the_simdgroup_kernel_leaves_it_unsupported")
    else {
        return;
    };
    let full = metal_matmul_sys::SHADER_SOURCE.to_str().unwrap();
    // Rename the kernel so the library has no function of that name.
    let without = full.replace(
        "kernel void matmul_simdgroup",
        "kernel void renamed_simdgroup",
    );
    backend.compile_shaders(&without).unwrap();
    assert!(!backend.supports(Method::Simdgroup));
    let (code, _) = native_code(backend.resolve(Method::Simdgroup, Shape::square(8)));
    assert_eq!(code, NativeCode::Unsupported);
    check_metal(&backend, Method::Tiled, Shape::square(33), 9);
}

#[test]
fn dimensions_over_the_limit_are_rejected() {
    let Some(backend) = metal_or_skip("dimensions_over_the_limit_are_rejected") else {
        return;
    };
    assert_eq!(backend.max_dim(), metal_matmul::DEFAULT_MAX_DIM);
    let over = Shape::new(8193, 1, 1);
    let err = backend
        .matmul_with(
            &vec![0.0; 8193],
            &[0.0],
            &mut vec![0.0; 8193],
            over,
            &MatmulOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(ref m) if m.contains("8193")),
        "{err:?}"
    );
    assert!(backend.check_fits(over).is_err());
    let small = backend.with_max_dim(16);
    let err = small
        .matmul_with(
            &[0.0; 17],
            &[0.0],
            &mut [0.0; 17],
            Shape::new(17, 1, 1),
            &MatmulOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    // Lengths that disagree with the shape.
    let err = small
        .matmul_with(
            &[0.0; 3],
            &[0.0; 4],
            &mut [0.0; 4],
            Shape::square(2),
            &MatmulOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
}

#[test]
fn a_request_larger_than_the_device_is_out_of_memory() {
    let Some(backend) = metal_or_skip("a_request_larger_than_the_device_is_out_of_memory") else {
        return;
    };
    let backend = backend.with_max_dim(1 << 22);
    // Checked without allocating anything: three 4 TiB matrices, over any Mac.
    let (code, message) = native_code(backend.check_fits(Shape::square(1 << 20)));
    assert_eq!(code, NativeCode::OutOfMemory, "{message}");
    // A real call whose C alone is larger than the device's free memory; A and B are
    // tiny. C is zeroed lazily by the allocator, so its pages are never touched: the
    // bridge must refuse before it allocates or copies.
    let free = backend.device_info().memory_free;
    let side = ((free / 4) as f64).sqrt() as usize + 1024;
    let shape = Shape::new(side, 1, side);
    let Some(mut c) = AlignedF32::lazy_zeroed(side * side) else {
        eprintln!(
            "part skipped: the allocator refused {} bytes of address space",
            side * side * 4
        );
        return;
    };
    let a = vec![1.0; side];
    let (code, message) = native_code(backend.matmul_with(
        &a,
        &a,
        c.as_mut_slice(),
        shape,
        &MatmulOptions::default(),
    ));
    assert_eq!(code, NativeCode::OutOfMemory, "{message}");
    // Still usable.
    check_metal(&backend, Method::Tiled, Shape::square(40), 11);
}

#[test]
fn forced_methods_the_device_lacks_are_unsupported() {
    let Some(backend) = metal_or_skip("forced_methods_the_device_lacks_are_unsupported") else {
        return;
    };
    for method in [Method::Mps, Method::Simdgroup] {
        let options = MatmulOptions {
            method,
            ..MatmulOptions::default()
        };
        let mut c = [0.0; 4];
        let result = backend.matmul_with(&[1.0; 4], &[1.0; 4], &mut c, Shape::square(2), &options);
        if backend.supports(method) {
            eprintln!("{method} is supported here: checking it runs instead");
            result.unwrap();
            assert_eq!(c, [2.0; 4]);
        } else {
            let (code, message) = native_code(result);
            assert_eq!(code, NativeCode::Unsupported, "{message}");
        }
    }
}

#[test]
fn the_pool_reuses_buffers_within_its_limit() {
    let Some(backend) = metal_or_skip("the_pool_reuses_buffers_within_its_limit") else {
        return;
    };
    // 30×30 floats are 3600 bytes: never a page multiple, so always copied via the pool.
    let shape = Shape::square(30);
    for i in 0..4 {
        check_metal(&backend, Method::Tiled, shape, 20 + i);
    }
    let stats = backend.pool_stats();
    assert_eq!(stats.limit_bytes, 256 << 20);
    assert!(stats.hits >= 9, "{stats:?}");
    assert!(
        stats.cached_buffers >= 3 && stats.cached_bytes > 0,
        "{stats:?}"
    );
    assert!(stats.cached_bytes <= stats.limit_bytes);
    let released = backend.drain_pool();
    assert_eq!(released, stats.cached_bytes);
    assert_eq!(backend.pool_stats().cached_bytes, 0);
    // With pooling off nothing is kept, and products still work.
    backend.set_pool_limit(0);
    check_metal(&backend, Method::Simple, shape, 30);
    let off = backend.pool_stats();
    assert_eq!(
        (off.cached_bytes, off.cached_buffers, off.limit_bytes),
        (0, 0, 0)
    );
    // A small limit holds at most that much.
    backend.set_pool_limit(8000);
    check_metal(&backend, Method::Simple, shape, 31);
    assert!(backend.pool_stats().cached_bytes <= 8000);
}

#[test]
fn page_aligned_slices_are_used_without_copying_on_unified_memory() {
    let Some(backend) =
        metal_or_skip("page_aligned_slices_are_used_without_copying_on_unified_memory")
    else {
        return;
    };
    // 64×64 f32 = 16 KiB: a page multiple on Apple silicon (16 KiB) and Intel (4 KiB).
    let shape = Shape::square(64);
    let a_data = random_matrix(64 * 64, 40);
    let b_data = random_matrix(64 * 64, 41);
    let a = AlignedF32::from_slice(&a_data);
    let b = AlignedF32::from_slice(&b_data);
    let mut c = AlignedF32::zeroed(64 * 64).unwrap();
    c.as_mut_slice().fill(f32::NAN);
    let unified = backend.device_info().unified_memory;
    for method in backend.methods() {
        let options = MatmulOptions {
            method,
            ..MatmulOptions::default()
        };
        let report = backend
            .matmul_detailed(
                a.as_slice(),
                b.as_slice(),
                c.as_mut_slice(),
                shape,
                &options,
            )
            .unwrap();
        assert_eq!(report.zero_copy_inputs, unified, "{method}");
        assert_eq!(report.zero_copy_output, unified, "{method}");
        verify::full(&a_data, &b_data, c.as_slice(), shape, DEFAULT_TOLERANCE)
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        c.as_mut_slice().fill(f32::NAN);
    }
    // Unaligned lengths are copied.
    let shape = Shape::square(10);
    let a = random_matrix(10 * 10, 42);
    let mut c = vec![0.0; 100];
    let report = backend
        .matmul_detailed(&a, &a, &mut c, shape, &MatmulOptions::default())
        .unwrap();
    assert!(!report.zero_copy_inputs && !report.zero_copy_output);
}

// ---- everywhere: what a build or machine without Metal answers -----------------------

#[test]
fn without_metal_the_backend_is_unavailable_and_auto_falls_back() {
    let status = MetalStatus::probe();
    if status.available() {
        eprintln!("Metal is available here: the fallback is not exercised");
        return;
    }
    let _ = metal_present("without_metal_the_backend_is_unavailable_and_auto_falls_back");
    assert!(status.reason.is_some());
    match MetalBackend::new() {
        Err(Error::Unavailable { backend, .. }) => assert_eq!(backend, BackendKind::Metal),
        other => panic!("{other:?}"),
    }
    match select(BackendChoice::Metal) {
        Err(Error::Unavailable { .. }) => {}
        other => panic!("explicit metal must fail without a device: {other:?}"),
    }
    if std::env::var_os(metal_matmul::BACKEND_ENV).is_none() {
        let selected = select(BackendChoice::Auto).unwrap();
        assert_eq!(selected.backend.kind(), BackendKind::Cpu);
        assert!(selected.fallback_reason.is_some());
    }
}

#[test]
fn the_bridge_is_built_exactly_for_macos() {
    let status = MetalStatus::probe();
    assert_eq!(status.compiled, metal_matmul_sys::BRIDGE_BUILT);
    if !cfg!(target_os = "macos") {
        assert!(!status.compiled, "{status:?}");
    }
}
