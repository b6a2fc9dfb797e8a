//! The Metal backend over the Objective-C bridge (macOS builds).

use std::ffi::{CStr, c_char};
use std::ptr::NonNull;

use metal_matmul_sys as sys;

use crate::{DeviceInfo, Error, GpuDetails, Method, Result};

use super::errors::{c_text, init_error, native_error};
use super::{MetalStatus, Outcome, PoolStats};

/// Owns one `MetalContext` (device, queue, pipelines, buffer pool); releases it on drop.
#[derive(Debug)]
pub(super) struct Context {
    ptr: NonNull<sys::MetalContext>,
}

// SAFETY: the bridge's contract (native/metal_matmul.h) is that every function may be
// called from any thread and that a context serialises its own mutable state (the
// buffer pool, pipelines, injected fault) under its lock; MTLDevice and MTLCommandQueue
// are thread-safe and each call encodes its own command buffer. The pointer is only
// freed by `Drop`, which needs exclusive ownership.
unsafe impl Send for Context {}
// SAFETY: as above: concurrent calls on one context (metal_matmul, metal_device_info,
// the pool functions, metal_compile_shaders) are allowed by the bridge, which locks what
// they share.
unsafe impl Sync for Context {}

type ErrorBuffer = [c_char; sys::METAL_ERROR_MESSAGE_LEN as usize];

fn error_buffer() -> ErrorBuffer {
    [0; sys::METAL_ERROR_MESSAGE_LEN as usize]
}

/// Runs one bridge call that reports a `METAL_*` status and may write a message into
/// the error buffer it is given (pointer and length), and turns the status into a
/// `Result`: the bridge's one status-to-`Result` path, like git2's `call!` or openssl's
/// `cvt`. `call` makes the FFI call; its `unsafe` block states why that is sound.
fn call(call: impl FnOnce(*mut c_char, usize) -> i32) -> Result<()> {
    let mut err = error_buffer();
    let rc = call(err.as_mut_ptr(), err.len());
    if rc == sys::METAL_SUCCESS {
        Ok(())
    } else {
        Err(native_error(rc, &message(rc, &err)))
    }
}

/// What the bridge wrote into `err` for status `rc`, or its own description of `rc`
/// (`metal_error_string`) when it wrote nothing.
fn message(rc: i32, err: &[c_char]) -> String {
    let text = c_text(err);
    if !text.trim().is_empty() {
        return text;
    }
    // SAFETY: metal_error_string accepts any code and returns a pointer to a static,
    // NUL-terminated string, never NULL.
    unsafe { CStr::from_ptr(sys::metal_error_string(rc)) }
        .to_string_lossy()
        .into_owned()
}

fn convert(info: &sys::MetalDeviceInfo) -> DeviceInfo {
    DeviceInfo {
        device_type: DeviceInfo::METAL_DEVICE_TYPE.to_owned(),
        name: c_text(&info.device_name),
        compute_capability: c_text(&info.gpu_family),
        memory_total: info.memory_total,
        memory_free: info.memory_free,
        max_threads_per_group: u32::try_from(info.max_threads_per_group).unwrap_or(0),
        unified_memory: info.is_unified_memory != 0,
        gpu: Some(GpuDetails {
            families: c_text(&info.gpu_families),
            max_threadgroup_memory: info.max_threadgroup_memory,
            max_buffer_length: info.max_buffer_length,
            current_allocated: info.current_allocated,
            low_power: info.is_low_power != 0,
            removable: info.is_removable != 0,
            supports_mps: info.supports_mps != 0,
            supports_simdgroup_matrix: info.supports_simdgroup_matrix != 0,
            supports_metal3: info.supports_metal3 != 0,
        }),
    }
}

pub(super) fn probe() -> MetalStatus {
    // SAFETY: takes no arguments; safe to call from any thread.
    let device = unsafe { sys::metal_is_available() } == 1;
    MetalStatus {
        compiled: true,
        device,
        reason: (!device).then(|| "MTLCreateSystemDefaultDevice found no Metal device".to_owned()),
    }
}

fn raw_method(method: Method) -> Result<i32> {
    match method {
        Method::Simple => Ok(sys::METAL_METHOD_SIMPLE),
        Method::Tiled => Ok(sys::METAL_METHOD_TILED),
        Method::Mps => Ok(sys::METAL_METHOD_MPS),
        Method::Simdgroup => Ok(sys::METAL_METHOD_SIMDGROUP),
        Method::Auto => Err(Error::invalid(
            "the method must be resolved before the bridge is called",
        )),
        Method::Cublas | Method::CublasTf32 | Method::RegisterBlocked => Err(Error::invalid(
            format!("`{method}` is a CUDA method, not a Metal one"),
        )),
    }
}

impl Context {
    pub(super) fn open() -> Result<Self> {
        let mut ptr: *mut sys::MetalContext = std::ptr::null_mut();
        let mut info = sys::MetalDeviceInfo::default();
        let mut err = error_buffer();
        // SAFETY: the out-pointers are valid for writes, `err` for the length passed; the
        // shader source is a NUL-terminated static string.
        let rc = unsafe {
            sys::metal_init(
                &mut ptr,
                sys::SHADER_SOURCE.as_ptr(),
                &mut info,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        // A success code with no context (a bridge fault) counts as no device.
        let failure = |rc| {
            let rc = if rc == sys::METAL_SUCCESS {
                sys::METAL_ERROR_NO_DEVICE
            } else {
                rc
            };
            init_error(rc, &message(rc, &err))
        };
        match NonNull::new(ptr) {
            Some(ptr) if rc == sys::METAL_SUCCESS => Ok(Self { ptr }),
            Some(ptr) => {
                // Not the bridge's contract (it leaves *out NULL on failure), but never leak.
                // SAFETY: the pointer came from metal_init and is released once, here.
                unsafe { sys::metal_cleanup(ptr.as_ptr()) };
                Err(failure(rc))
            }
            None => Err(failure(rc)),
        }
    }

    pub(super) fn supports(&self, method: Method) -> bool {
        let Ok(raw) = raw_method(method) else {
            return false;
        };
        // SAFETY: `self.ptr` is a live context (released only in Drop).
        unsafe { sys::metal_method_supported(self.ptr.as_ptr(), raw) == 1 }
    }

    pub(super) fn device_info(&self) -> DeviceInfo {
        let mut info = sys::MetalDeviceInfo::default();
        // SAFETY: `self.ptr` is a live context; `info` is valid for writes. With both
        // non-null the call cannot fail.
        unsafe { sys::metal_device_info(self.ptr.as_ptr(), &mut info) };
        convert(&info)
    }

    pub(super) fn check_request(&self, m: u32, k: u32, n: u32) -> Result<()> {
        // SAFETY: `self.ptr` is live; `call` passes a buffer writable for its length.
        call(|err, len| unsafe { sys::metal_check_request(self.ptr.as_ptr(), m, k, n, err, len) })
    }

    pub(super) fn compile(&self, source: &CStr) -> Result<()> {
        // SAFETY: `self.ptr` is live; `source` is NUL-terminated and outlives the call;
        // `call` passes a buffer writable for its length.
        call(|err, len| unsafe {
            sys::metal_compile_shaders(self.ptr.as_ptr(), source.as_ptr(), err, len)
        })
    }

    pub(super) fn set_pool_limit(&self, bytes: u64) {
        // SAFETY: `self.ptr` is live.
        unsafe { sys::metal_set_pool_limit(self.ptr.as_ptr(), bytes) }
    }

    pub(super) fn drain_pool(&self) -> u64 {
        // SAFETY: `self.ptr` is live.
        unsafe { sys::metal_pool_drain(self.ptr.as_ptr()) }
    }

    pub(super) fn pool_stats(&self) -> PoolStats {
        let mut raw = sys::MetalPoolStats::default();
        // SAFETY: `self.ptr` is live; `raw` is valid for writes. With both non-null the
        // call cannot fail.
        unsafe { sys::metal_pool_stats(self.ptr.as_ptr(), &mut raw) };
        PoolStats {
            cached_bytes: raw.cached_bytes,
            cached_buffers: raw.cached_buffers,
            limit_bytes: raw.limit_bytes,
            hits: raw.hits,
            misses: raw.misses,
            zero_copy_wraps: raw.zero_copy_wraps,
        }
    }

    #[cfg(feature = "fault-injection")]
    pub(super) fn inject_fault(&self, code: crate::NativeCode) -> Result<()> {
        // SAFETY: `self.ptr` is live. The call writes no message: `call`'s buffer stays
        // empty and the error carries the code's description.
        call(|_, _| unsafe { sys::metal_inject_fault(self.ptr.as_ptr(), code.raw()) })
    }

    /// Runs one product with a resolved method. The caller checked the slices against
    /// the shape and that no dimension is zero.
    pub(super) fn matmul(
        &self,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        (m, k, n): (u32, u32, u32),
        method: Method,
    ) -> Result<Outcome> {
        let method = raw_method(method)?;
        let (mu, ku, nu) = (m as usize, k as usize, n as usize);
        if a.len() != mu * ku || b.len() != ku * nu || c.len() != mu * nu {
            return Err(Error::invalid("slice lengths do not match the shape"));
        }
        let mut stats = sys::MetalMatmulStats::default();
        // SAFETY: a, b and c hold exactly m·k, k·n and m·n elements (checked above);
        // `self.ptr` is live; `stats` is writable and `call` passes a buffer writable for
        // its length. The bridge reads a and b and writes c only during the call
        // (buffers that wrap them without copying are released before it returns).
        call(|err, len| unsafe {
            sys::metal_matmul(
                self.ptr.as_ptr(),
                a.as_ptr(),
                b.as_ptr(),
                c.as_mut_ptr(),
                m,
                k,
                n,
                method,
                &mut stats,
                err,
                len,
            )
        })?;
        Ok(Outcome {
            gpu_seconds: stats.gpu_seconds,
            zero_copy_inputs: stats.zero_copy_inputs != 0,
            zero_copy_output: stats.zero_copy_output != 0,
        })
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the context came from metal_init and is released exactly once, here.
        unsafe { sys::metal_cleanup(self.ptr.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NativeCode;

    #[test]
    fn a_status_becomes_a_result_with_the_bridges_message() {
        assert_eq!(call(|_, _| sys::METAL_SUCCESS), Ok(()));
        assert_eq!(
            call(|_, _| sys::METAL_ERROR_UNSUPPORTED),
            Err(Error::Native {
                code: NativeCode::Unsupported,
                message: "Method not supported on this device".to_owned()
            })
        );
        let written = call(|err, len| {
            assert_eq!(len, sys::METAL_ERROR_MESSAGE_LEN as usize);
            // SAFETY: `call` passes a buffer writable for `len` (> 2) bytes.
            unsafe { err.write(b'x' as c_char) };
            sys::METAL_ERROR_GPU_FAULT
        });
        assert_eq!(
            written,
            Err(Error::Native {
                code: NativeCode::GpuFault,
                message: "x".to_owned()
            })
        );
        assert_eq!(message(-100, &error_buffer()), "Unknown error");
    }
}
