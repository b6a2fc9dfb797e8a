//! Owned device and pinned host buffers of f32, released on drop.

use std::sync::Arc;

use cudarc::driver::{CudaContext, result, sys};

use super::errors;
use crate::Result;

/// `len` f32 of device memory (`cuMemAlloc`), freed on drop.
///
/// The owner must make sure no queued work still uses it when it drops (the lane
/// synchronises its streams first).
#[derive(Debug)]
pub(super) struct DeviceBuffer {
    ptr: sys::CUdeviceptr,
    len: usize,
    ctx: Arc<CudaContext>,
}

impl DeviceBuffer {
    /// Allocates `len` elements (uninitialised).
    pub(super) fn alloc(ctx: &Arc<CudaContext>, len: usize) -> Result<Self> {
        ctx.bind_to_thread()
            .map_err(|e| errors::driver("binding the context", e))?;
        // SAFETY: the context is current on this thread; the size is checked by the
        // caller's shape validation (at most isize::MAX bytes).
        let ptr = unsafe { result::malloc_sync(len * 4) }
            .map_err(|e| errors::driver("allocating device memory", e))?;
        Ok(Self {
            ptr,
            len,
            ctx: ctx.clone(),
        })
    }

    /// The device address of element `offset` (not checked: the schedule stays in
    /// bounds by construction and debug builds assert it).
    pub(super) fn at(&self, offset: usize) -> sys::CUdeviceptr {
        debug_assert!(offset <= self.len);
        self.ptr + 4 * offset as u64
    }

    /// Capacity in elements.
    pub(super) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        // Errors here cannot be returned; cudarc keeps the last one in the context.
        self.ctx.record_err(self.ctx.bind_to_thread());
        // SAFETY: `ptr` came from `malloc_sync` in this context and is freed once; the
        // lane synchronised every stream that used it before dropping it.
        self.ctx.record_err(unsafe { result::free_sync(self.ptr) });
    }
}

/// `len` f32 of page-locked host memory (`cuMemHostAlloc`), freed on drop.
#[derive(Debug)]
pub(super) struct PinnedBuffer {
    ptr: *mut f32,
    len: usize,
    ctx: Arc<CudaContext>,
}

// SAFETY: the buffer is a plain owned allocation: it is only reached through `&self`
// (shared reads) or `&mut self` (exclusive writes), like a `Vec<f32>`.
unsafe impl Send for PinnedBuffer {}
// SAFETY: as above; `&PinnedBuffer` gives only shared, read-only access.
unsafe impl Sync for PinnedBuffer {}

impl PinnedBuffer {
    /// Allocates `len` zeroed elements. `write_combined` suits buffers that the CPU
    /// only writes and the GPU reads (faster uploads; CPU reads of it are slow).
    pub(super) fn alloc(ctx: &Arc<CudaContext>, len: usize, write_combined: bool) -> Result<Self> {
        ctx.bind_to_thread()
            .map_err(|e| errors::driver("binding the context", e))?;
        let flags = if write_combined {
            sys::CU_MEMHOSTALLOC_WRITECOMBINED
        } else {
            0
        };
        // SAFETY: the context is current; the size is at most isize::MAX bytes (the
        // shape was validated).
        let raw = unsafe { result::malloc_host(len.max(1) * 4, flags) }
            .map_err(|e| errors::driver("allocating pinned host memory", e))?;
        let ptr = raw.cast::<f32>();
        // SAFETY: `ptr` points at `len` f32 just allocated (4-byte aligned: page
        // aligned); zeroing them makes every element initialised.
        unsafe { std::ptr::write_bytes(ptr, 0, len) };
        Ok(Self {
            ptr,
            len,
            ctx: ctx.clone(),
        })
    }

    /// The elements.
    pub(super) fn as_slice(&self) -> &[f32] {
        // SAFETY: `ptr` holds `len` initialised f32 (zeroed at allocation) that live as
        // long as `self`; `&self` gives shared access only.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The elements, writable.
    pub(super) fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as above, exclusive through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// Capacity in elements.
    pub(super) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for PinnedBuffer {
    fn drop(&mut self) {
        self.ctx.record_err(self.ctx.bind_to_thread());
        // SAFETY: `ptr` came from `malloc_host` and is freed once; the lane
        // synchronised its streams, so no copy still reads or writes it.
        self.ctx
            .record_err(unsafe { result::free_host(self.ptr.cast()) });
    }
}
