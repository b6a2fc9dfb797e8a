//! Host memory a backend lends for operands and results: [`HostBuffer`].

use std::fmt;
use std::ops::{Deref, DerefMut};

use crate::{Error, Result};

/// `len` f32 of host memory for A, B or C, from
/// [`Backend::host_buffer`](crate::Backend::host_buffer); derefs to `[f32]`.
///
/// The CUDA backend lends page-locked (pinned) memory from a pool it keeps: a product
/// whose operands lie in such buffers is copied by DMA straight from and into them,
/// with no staging copy by the CPU. Every other backend lends heap memory, which any
/// backend takes like a `Vec`. The elements are initialised, but a reused buffer keeps
/// what was written last: write every element before reading it. Dropping the buffer
/// gives pinned memory back to its backend's pool.
pub struct HostBuffer {
    repr: Repr,
}

enum Repr {
    Heap(Vec<f32>),
    #[cfg(not(target_os = "macos"))]
    Pinned(crate::cuda::Lent),
}

impl HostBuffer {
    /// `len` zeroed elements on the heap; [`Error::InvalidArgument`] when the allocator
    /// cannot give them (never an abort).
    ///
    /// Like `vec![0.0; len]`, the memory comes zeroed from the allocator (on Linux, pages
    /// the kernel zeroes when first touched), so allocating costs nothing per element.
    pub fn heap(len: usize) -> Result<Self> {
        use std::alloc::{Layout, alloc_zeroed};
        let refused = |why: &dyn fmt::Display| {
            Error::invalid(format!(
                "{len} f32 ({} bytes) of host memory could not be allocated: {why}",
                len.saturating_mul(4)
            ))
        };
        let layout = Layout::array::<f32>(len).map_err(|e| refused(&e))?;
        if layout.size() == 0 {
            return Ok(Self::from(Vec::new()));
        }
        // SAFETY: the layout's size is not zero (checked above).
        let ptr = unsafe { alloc_zeroed(layout) }.cast::<f32>();
        if ptr.is_null() {
            return Err(refused(&"the allocator has no memory left"));
        }
        // SAFETY: `ptr` was allocated by the global allocator with the layout of `len`
        // f32 (so capacity `len`), and all its bytes are zero, a valid f32 (0.0).
        let v = unsafe { Vec::from_raw_parts(ptr, len, len) };
        Ok(Self::from(v))
    }

    #[cfg(not(target_os = "macos"))]
    pub(crate) fn pinned(lent: crate::cuda::Lent) -> Self {
        Self {
            repr: Repr::Pinned(lent),
        }
    }

    /// Whether the memory is page-locked (lent by the CUDA backend).
    pub fn is_pinned(&self) -> bool {
        match &self.repr {
            Repr::Heap(_) => false,
            #[cfg(not(target_os = "macos"))]
            Repr::Pinned(_) => true,
        }
    }
}

impl From<Vec<f32>> for HostBuffer {
    /// A heap buffer that takes the vector as it is (no copy).
    fn from(v: Vec<f32>) -> Self {
        Self {
            repr: Repr::Heap(v),
        }
    }
}

impl Deref for HostBuffer {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match &self.repr {
            Repr::Heap(v) => v,
            #[cfg(not(target_os = "macos"))]
            Repr::Pinned(lent) => lent.as_slice(),
        }
    }
}

impl DerefMut for HostBuffer {
    fn deref_mut(&mut self) -> &mut [f32] {
        match &mut self.repr {
            Repr::Heap(v) => v,
            #[cfg(not(target_os = "macos"))]
            Repr::Pinned(lent) => lent.as_mut_slice(),
        }
    }
}

impl fmt::Debug for HostBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostBuffer")
            .field("len", &self.len())
            .field("pinned", &self.is_pinned())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_buffers_are_zeroed_writable_and_refuse_impossible_sizes() {
        let mut h = HostBuffer::heap(5).unwrap();
        assert_eq!(&*h, &[0.0; 5]);
        h[2] = 3.0;
        assert!(!h.is_pinned());
        assert_eq!(&*h, &[0.0, 0.0, 3.0, 0.0, 0.0]);
        let err = HostBuffer::heap(usize::MAX / 2).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    }
}
