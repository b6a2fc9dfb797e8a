//! The Metal backend over the Objective-C bridge (macOS builds).

use std::ffi::{CStr, c_char};
use std::ptr::NonNull;

use metal_matmul_sys as sys;

use crate::{BackendKind, DeviceInfo, Error, GpuDetails, Method, NativeCode, Result, Shape};

use super::MetalStatus;

/// Owns one `MetalContext` (device, queue, pipelines, buffer pool); releases it on drop.
#[derive(Debug)]
pub(super) struct Context {
    ptr: NonNull<sys::MetalContext>,
    supports_mps: bool,
}

// SAFETY: the bridge's contract (native/metal_matmul.h) is that every function may be
// called from any thread and that a context serialises its own mutable state (the
// buffer pool and pipelines) under its lock; MTLDevice and MTLCommandQueue are
// thread-safe and each call encodes its own command buffer. The pointer is only freed by
// `Drop`, which needs exclusive ownership.
unsafe impl Send for Context {}
// SAFETY: as above: concurrent `metal_matmul` and `metal_device_info` calls on one
// context are allowed by the bridge, which locks what they share.
unsafe impl Sync for Context {}

fn message(buf: &[c_char]) -> String {
    // SAFETY: the buffer is zero-initialised and the bridge writes at most len - 1 bytes
    // followed by a NUL, so it always holds a NUL-terminated string.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn native_error(code: i32, buf: &[c_char]) -> Error {
    let code = NativeCode::from_raw(code);
    let text = message(buf);
    Error::Native {
        message: if text.is_empty() {
            code.description().to_owned()
        } else {
            text
        },
        code,
    }
}

fn c_text(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
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
            max_threadgroup_memory: info.max_threadgroup_memory,
            current_allocated: info.current_allocated,
            low_power: info.is_low_power != 0,
            removable: info.is_removable != 0,
            supports_mps: info.supports_mps != 0,
            supports_simdgroup_matrix: info.supports_simdgroup_matrix != 0,
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
    }
}

impl Context {
    pub(super) fn open() -> Result<Self> {
        let mut ptr: *mut sys::MetalContext = std::ptr::null_mut();
        let mut info = sys::MetalDeviceInfo::default();
        let mut err = [0 as c_char; sys::METAL_ERROR_MESSAGE_LEN as usize];
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
        match NonNull::new(ptr) {
            Some(ptr) if rc == sys::METAL_SUCCESS => Ok(Self {
                ptr,
                supports_mps: info.supports_mps != 0,
            }),
            _ if rc == sys::METAL_ERROR_NO_DEVICE => Err(Error::Unavailable {
                backend: BackendKind::Metal,
                reason: message(&err),
            }),
            _ => Err(native_error(
                if rc == sys::METAL_SUCCESS {
                    sys::METAL_ERROR_NO_DEVICE
                } else {
                    rc
                },
                &err,
            )),
        }
    }

    pub(super) fn supports_mps(&self) -> bool {
        self.supports_mps
    }

    pub(super) fn device_info(&self) -> DeviceInfo {
        let mut info = sys::MetalDeviceInfo::default();
        // SAFETY: `self.ptr` is a live context (released only in Drop); `info` is valid
        // for writes.
        unsafe { sys::metal_device_info(self.ptr.as_ptr(), &mut info) };
        convert(&info)
    }

    /// Runs one product; returns the GPU execution time in seconds.
    pub(super) fn matmul(
        &self,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        shape: Shape,
        method: Method,
    ) -> Result<f64> {
        let dim = |v: usize| {
            u32::try_from(v).map_err(|_| {
                Error::invalid(format!("{v} does not fit the bridge's 32-bit interface"))
            })
        };
        let (m, k, n) = (dim(shape.m)?, dim(shape.k)?, dim(shape.n)?);
        let method = raw_method(method)?;
        let mut stats = sys::MetalMatmulStats::default();
        let mut err = [0 as c_char; sys::METAL_ERROR_MESSAGE_LEN as usize];
        // SAFETY: the caller checked that a, b and c hold m·k, k·n and m·n elements and
        // that no dimension is zero; `self.ptr` is live; `stats` and `err` are writable
        // (err for the length passed). The bridge reads a and b and writes c only during
        // the call.
        let rc = unsafe {
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
                err.as_mut_ptr(),
                err.len(),
            )
        };
        if rc == sys::METAL_SUCCESS {
            Ok(stats.gpu_seconds)
        } else {
            Err(native_error(rc, &err))
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the context came from metal_init and is released exactly once, here.
        unsafe { sys::metal_cleanup(self.ptr.as_ptr()) };
    }
}
