//! The Metal backend's recovery from GPU faults, provoked through the test-only
//! `fault-injection` feature (`cargo xtask test-metal` turns it on; a plain
//! `cargo test` skips this file, since the hook is not in a default build).
//!
//! Skips with a printed reason without a device, and fails then when
//! `FXN_REQUIRE_METAL=1`.

mod common;

use common::{check_metal, metal_or_skip, native_code};
use metal_matmul::{Backend, Error, MatmulOptions, NativeCode, Shape, random_matrix};

#[test]
fn the_backend_recovers_from_a_gpu_fault() {
    let Some(backend) = metal_or_skip("the_backend_recovers_from_a_gpu_fault") else {
        return;
    };
    for code in [NativeCode::GpuFault, NativeCode::KernelTimeout] {
        for method in backend.methods() {
            backend.inject_fault(code).unwrap();
            let options = MatmulOptions {
                method,
                ..MatmulOptions::default()
            };
            let mut c = vec![0.0; 24 * 24];
            let a = random_matrix(24 * 24, 3);
            let (got, message) =
                native_code(backend.matmul_with(&a, &a, &mut c, Shape::square(24), &options));
            assert_eq!(got, code, "{method}: {message}");
            // The next call runs normally.
            check_metal(&backend, method, Shape::new(24, 25, 26), 12);
        }
    }
    assert!(matches!(
        backend.inject_fault(NativeCode::OutOfMemory),
        Err(Error::InvalidArgument(_))
    ));
}
