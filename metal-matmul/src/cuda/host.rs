//! Pinned host memory the backend lends to callers ([`HostBuffer`](crate::HostBuffer)),
//! and the record of what is lent, so that a product can tell its operands lie in it.
//!
//! Page-locking memory is slow (the driver pins every page), so buffers given back are
//! kept for the next loan, up to [`MAX_FREE`] of them.

use std::sync::{Arc, Mutex, MutexGuard};

use cudarc::driver::CudaContext;

use super::memory::PinnedBuffer;
use crate::Result;

/// Buffers kept for reuse once given back; beyond this they are freed.
const MAX_FREE: usize = 3 * super::MAX_LANES;

/// The backend's pinned host buffers: free ones, and the address ranges lent out.
#[derive(Debug)]
pub(super) struct HostPool {
    ctx: Arc<CudaContext>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    free: Vec<PinnedBuffer>,
    /// (first byte, bytes) of each lent buffer's whole capacity.
    lent: Vec<(usize, usize)>,
}

/// One loan: a pinned buffer of at least `len` elements, given back on drop.
#[derive(Debug)]
pub(crate) struct Lent {
    buf: Option<PinnedBuffer>,
    len: usize,
    pool: Arc<HostPool>,
}

impl HostPool {
    pub(super) fn new(ctx: &Arc<CudaContext>) -> Arc<Self> {
        Arc::new(Self {
            ctx: ctx.clone(),
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lends `len` elements: the smallest free buffer that holds them, else a new one.
    pub(super) fn lend(self: &Arc<Self>, len: usize) -> Result<Lent> {
        let reused = {
            let mut state = self.lock();
            let best = (0..state.free.len())
                .filter(|&i| state.free[i].len() >= len)
                .min_by_key(|&i| state.free[i].len());
            best.map(|i| state.free.swap_remove(i))
        };
        let buf = match reused {
            Some(buf) => buf,
            None => PinnedBuffer::alloc(&self.ctx, len, false)?,
        };
        self.lock().lent.push(range(&buf));
        Ok(Lent {
            buf: Some(buf),
            len,
            pool: self.clone(),
        })
    }

    /// Whether all of `s` lies inside one lent buffer (then DMA can reach it directly).
    pub(super) fn holds(&self, s: &[f32]) -> bool {
        let (start, bytes) = (s.as_ptr() as usize, std::mem::size_of_val(s));
        !s.is_empty()
            && self
                .lock()
                .lent
                .iter()
                .any(|&(at, size)| start >= at && start + bytes <= at + size)
    }

    /// Frees every buffer not lent.
    pub(super) fn drain(&self) {
        let free = std::mem::take(&mut self.lock().free);
        drop(free); // Unpinned outside the lock.
    }

    fn give_back(&self, buf: PinnedBuffer) {
        let mut state = self.lock();
        let r = range(&buf);
        if let Some(i) = state.lent.iter().position(|&x| x == r) {
            state.lent.swap_remove(i);
        }
        if state.free.len() < MAX_FREE {
            state.free.push(buf);
        } else {
            drop(state);
            drop(buf);
        }
    }
}

fn range(buf: &PinnedBuffer) -> (usize, usize) {
    let s = buf.as_slice();
    (s.as_ptr() as usize, std::mem::size_of_val(s))
}

impl Lent {
    pub(crate) fn as_slice(&self) -> &[f32] {
        self.buf
            .as_ref()
            .map_or(&[][..], |b| &b.as_slice()[..self.len])
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [f32] {
        let len = self.len;
        self.buf
            .as_mut()
            .map_or(&mut [][..], |b| &mut b.as_mut_slice()[..len])
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            self.pool.give_back(buf);
        }
    }
}
