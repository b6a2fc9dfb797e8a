//! Helpers shared by the integration tests: the Metal and CUDA skip rules and
//! page-aligned buffers.
//!
//! Every test that needs a Metal device calls [`metal_or_skip`]: without a device it
//! prints why the test is skipped and returns `None`; with `FXN_REQUIRE_METAL=1` (what
//! `cargo xtask test-metal` sets on a Mac) a missing device fails the test instead.

#![allow(dead_code)] // each test file uses a different subset

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

use metal_matmul::{
    Backend, CudaBackend, CudaStatus, Error, MatmulOptions, MatmulReport, MetalBackend,
    MetalStatus, Method, NativeCode, Shape, random_matrix, verify,
};

/// Set to `1` to make a missing Metal device a test failure instead of a skip.
pub const REQUIRE_METAL_ENV: &str = "FXN_REQUIRE_METAL";

/// True when `FXN_REQUIRE_METAL=1`.
pub fn metal_required() -> bool {
    std::env::var(REQUIRE_METAL_ENV).is_ok_and(|v| v.trim() == "1")
}

/// Whether Metal is available; otherwise prints why `test` is skipped and returns
/// false. Panics when Metal is unavailable and `FXN_REQUIRE_METAL=1`.
pub fn metal_present(test: &str) -> bool {
    let status = MetalStatus::probe();
    if status.available() {
        return true;
    }
    let reason = status
        .reason
        .unwrap_or_else(|| "no reason given".to_owned());
    assert!(
        !metal_required(),
        "{test}: {REQUIRE_METAL_ENV}=1 but Metal is unavailable: {reason}"
    );
    eprintln!("skipped {test}: Metal is unavailable: {reason}");
    false
}

/// A Metal backend, or `None` after printing why `test` is skipped (see
/// [`metal_present`]). A device that answers but whose backend fails to open is a
/// test failure.
pub fn metal_or_skip(test: &str) -> Option<MetalBackend> {
    if !metal_present(test) {
        return None;
    }
    match MetalBackend::new() {
        Ok(backend) => Some(backend),
        Err(err) => panic!("{test}: a Metal device answered but the backend did not open: {err}"),
    }
}

/// Runs `shape` on `backend` with `method` forced, into a NaN-poisoned C (an element
/// the kernel never writes fails verification), and checks every element against the
/// f64 reference within the method's tolerance; returns the report and the largest
/// scaled error. Panics, naming method and shape, on any failure.
pub fn check_forced(
    backend: &dyn Backend,
    method: Method,
    shape: Shape,
    seed: u64,
) -> (MatmulReport, f64) {
    let a = random_matrix(shape.m * shape.k, seed);
    let b = random_matrix(shape.k * shape.n, seed + 1);
    let mut c = vec![f32::NAN; shape.m * shape.n];
    let options = MatmulOptions {
        method,
        ..MatmulOptions::default()
    };
    let report = backend
        .matmul_with(&a, &b, &mut c, shape, &options)
        .unwrap_or_else(|e| panic!("{method} {shape}: {e}"));
    assert_eq!(report.backend, backend.kind());
    assert_eq!(report.method, method, "{shape}");
    let err = verify::full(&a, &b, &c, shape, method.tolerance())
        .unwrap_or_else(|e| panic!("{method} {shape}: {e}"));
    (report, err)
}

/// [`check_forced`] on a Metal backend.
pub fn check_metal(backend: &MetalBackend, method: Method, shape: Shape, seed: u64) {
    check_forced(backend, method, shape, seed);
}

/// The code and message of a native (bridge) error; panics on anything else.
pub fn native_code(result: Result<impl std::fmt::Debug, Error>) -> (NativeCode, String) {
    match result {
        Err(Error::Native { code, message }) => (code, message),
        other => panic!("expected a native error, got {other:?}"),
    }
}

/// Set to `1` to make a missing CUDA device a test failure instead of a skip.
pub const REQUIRE_CUDA_ENV: &str = "FXN_REQUIRE_CUDA";

/// True when `FXN_REQUIRE_CUDA=1` (what `cargo xtask test-cuda` sets).
pub fn cuda_required() -> bool {
    std::env::var(REQUIRE_CUDA_ENV).is_ok_and(|v| v.trim() == "1")
}

/// A CUDA backend, or `None` after printing why `test` is skipped. Panics when CUDA is
/// unavailable and `FXN_REQUIRE_CUDA=1`, and when a device answered but the backend
/// did not open.
pub fn cuda_or_skip(test: &str) -> Option<CudaBackend> {
    let status = CudaStatus::probe();
    if !status.available() {
        let reason = status
            .reason
            .unwrap_or_else(|| "no reason given".to_owned());
        assert!(
            !cuda_required(),
            "{test}: {REQUIRE_CUDA_ENV}=1 but CUDA is unavailable: {reason}"
        );
        eprintln!("skipped {test}: CUDA is unavailable: {reason}");
        return None;
    }
    match CudaBackend::new() {
        Ok(backend) => Some(backend),
        Err(err) => panic!("{test}: a CUDA device answered but the backend did not open: {err}"),
    }
}

/// The alignment of [`AlignedF32`]: 16 KiB, the page size of Apple silicon and a
/// multiple of the 4 KiB pages of Intel Macs.
pub const PAGE_ALIGN: usize = 16 * 1024;

/// A zeroed f32 buffer from the global allocator, made either page-aligned (what Metal
/// can wrap without copying when its byte length is a page multiple too) or with
/// `calloc` (whose large allocations are zero pages the kernel maps lazily: a huge
/// buffer costs address space, not memory, until it is touched). Allocation failure is
/// `None`, never an abort.
pub struct AlignedF32 {
    ptr: NonNull<f32>,
    len: usize,
    layout: Layout,
}

impl AlignedF32 {
    /// `len` zeroed elements at a [`PAGE_ALIGN`]ed address, or `None` when the allocator
    /// refuses. (Over-aligned zeroed memory is written with zeros, so keep it small.)
    pub fn zeroed(len: usize) -> Option<Self> {
        Self::with_align(len, PAGE_ALIGN)
    }

    /// `len` zeroed elements from `calloc`, untouched, or `None` when it refuses.
    pub fn lazy_zeroed(len: usize) -> Option<Self> {
        Self::with_align(len, std::mem::align_of::<f32>())
    }

    fn with_align(len: usize, align: usize) -> Option<Self> {
        let bytes = len.checked_mul(4)?.max(4);
        let layout = Layout::from_size_align(bytes, align).ok()?;
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        NonNull::new(raw.cast::<f32>()).map(|ptr| Self { ptr, len, layout })
    }

    /// A copy of `values` in aligned memory.
    pub fn from_slice(values: &[f32]) -> Self {
        let mut buf = Self::zeroed(values.len()).expect("allocating an aligned buffer");
        buf.as_mut_slice().copy_from_slice(values);
        buf
    }

    /// The elements.
    pub fn as_slice(&self) -> &[f32] {
        // SAFETY: `ptr` points to `len` zero-initialised (hence valid) f32s that live
        // as long as `self`; no `&mut` to them exists while `&self` is borrowed.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The elements, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedF32 {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with exactly this layout.
        unsafe { dealloc(self.ptr.as_ptr().cast(), self.layout) };
    }
}

/// Checks that `backend` reports NaN and infinity with `check_finite`: in A and in B
/// (named as such), and in C (finite inputs whose product overflows f32) after it, with
/// the automatic method and every method the backend can force; and that without the
/// check the overflowed product is returned as computed.
pub fn assert_detects_non_finite(backend: &dyn metal_matmul::Backend) {
    use metal_matmul::{Error, MatmulOptions, Method, Shape};
    let checked = MatmulOptions {
        check_finite: true,
        ..MatmulOptions::default()
    };
    let square = Shape::square(2);
    let mut c = [0.0; 4];
    let err = backend
        .matmul_with(
            &[1.0, f32::NAN, 3.0, 4.0],
            &[1.0; 4],
            &mut c,
            square,
            &checked,
        )
        .unwrap_err();
    assert_eq!(
        err,
        Error::NonFinite {
            operand: "A",
            index: 1,
            row: 0,
            col: 1
        }
    );
    let err = backend
        .matmul_with(
            &[1.0; 4],
            &[1.0, 1.0, f32::NEG_INFINITY, 1.0],
            &mut c,
            square,
            &checked,
        )
        .unwrap_err();
    assert_eq!(
        err,
        Error::NonFinite {
            operand: "B",
            index: 2,
            row: 1,
            col: 0
        }
    );
    for method in std::iter::once(Method::Auto).chain(backend.methods()) {
        let options = MatmulOptions { method, ..checked };
        let err = backend
            .matmul_with(&[1e30; 4], &[1e30; 4], &mut c, square, &options)
            .unwrap_err();
        assert!(
            matches!(err, Error::NonFinite { operand: "C", .. }),
            "{method}: {err:?}"
        );
    }
    backend
        .matmul_into(&[1e30; 4], &[1e30; 4], &mut c, square)
        .unwrap();
    assert!(c.iter().all(|v| v.is_infinite()), "{c:?}");
}
