//! A small FFI to the system OpenBLAS (`libopenblas-dev`): `cblas_sgemm`, `cblas_sgemv`
//! and the thread-count calls.

use std::ffi::{CStr, c_char, c_int};

use metal_matmul::Shape;

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

#[link(name = "openblas")]
unsafe extern "C" {
    fn cblas_sgemm(
        layout: c_int,
        trans_a: c_int,
        trans_b: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f32,
        a: *const f32,
        lda: c_int,
        b: *const f32,
        ldb: c_int,
        beta: f32,
        c: *mut f32,
        ldc: c_int,
    );
    fn cblas_sgemv(
        layout: c_int,
        trans: c_int,
        m: c_int,
        n: c_int,
        alpha: f32,
        a: *const f32,
        lda: c_int,
        x: *const f32,
        incx: c_int,
        beta: f32,
        y: *mut f32,
        incy: c_int,
    );
    fn openblas_set_num_threads(threads: c_int);
    fn openblas_get_config() -> *const c_char;
    fn openblas_get_corename() -> *const c_char;
}

fn int(v: usize) -> c_int {
    c_int::try_from(v).expect("dimension fits a C int")
}

/// Sets OpenBLAS's thread count.
pub fn set_threads(threads: usize) {
    // SAFETY: a plain setter with no pointer arguments.
    unsafe { openblas_set_num_threads(int(threads)) }
}

/// OpenBLAS's build configuration and the kernel it chose for this CPU.
pub fn config() -> String {
    // SAFETY: both return pointers to static NUL-terminated strings owned by OpenBLAS.
    let (config, core) = unsafe {
        (
            CStr::from_ptr(openblas_get_config()),
            CStr::from_ptr(openblas_get_corename()),
        )
    };
    format!(
        "{} (kernel {})",
        config.to_string_lossy().trim(),
        core.to_string_lossy()
    )
}

/// `C = A·B` row-major: `cblas_sgemv` for the vector shapes, `cblas_sgemm` otherwise.
pub fn gemm(a: &[f32], b: &[f32], c: &mut [f32], s: Shape) {
    assert_eq!(a.len(), s.m * s.k);
    assert_eq!(b.len(), s.k * s.n);
    assert_eq!(c.len(), s.m * s.n);
    if s.n == 1 {
        // c (m) = A (m×k) · b (k)
        // SAFETY: A is m×k row-major with lda = k, x = b has k elements, y = c has m;
        // the lengths were asserted above and c does not alias a or b.
        unsafe {
            cblas_sgemv(
                ROW_MAJOR,
                NO_TRANS,
                int(s.m),
                int(s.k),
                1.0,
                a.as_ptr(),
                int(s.k),
                b.as_ptr(),
                1,
                0.0,
                c.as_mut_ptr(),
                1,
            );
        }
    } else if s.m == 1 {
        // c (n) = a (k) · B (k×n) = Bᵀ·a
        // SAFETY: B is k×n row-major with lda = n, x = a has k elements, y = c has n;
        // the lengths were asserted above and c does not alias a or b.
        unsafe {
            cblas_sgemv(
                ROW_MAJOR,
                TRANS,
                int(s.k),
                int(s.n),
                1.0,
                b.as_ptr(),
                int(s.n),
                a.as_ptr(),
                1,
                0.0,
                c.as_mut_ptr(),
                1,
            );
        }
    } else {
        // SAFETY: A (m×k, lda k), B (k×n, ldb n) and C (m×n, ldc n) are row-major with
        // the lengths asserted above; c does not alias a or b.
        unsafe {
            cblas_sgemm(
                ROW_MAJOR,
                NO_TRANS,
                NO_TRANS,
                int(s.m),
                int(s.n),
                int(s.k),
                1.0,
                a.as_ptr(),
                int(s.k),
                b.as_ptr(),
                int(s.n),
                0.0,
                c.as_mut_ptr(),
                int(s.n),
            );
        }
    }
}
