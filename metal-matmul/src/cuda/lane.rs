//! A lane: what one call needs on the device, owned by one caller at a time, and the
//! pool that hands lanes out.
//!
//! Each lane has three streams (copies in, compute, copies out, so that the DMA engines
//! and the multiprocessors work at once), its own cuBLAS handle (handles are not
//! thread-safe) and grow-only device and pinned buffers for A, B and C.

use std::sync::{Arc, Condvar, Mutex};

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaStream};

use super::errors;
use super::memory::{DeviceBuffer, PinnedBuffer};
use crate::{Result, Shape};

/// Device memory left free beyond our buffers (cuBLAS's workspace, the context).
const HEADROOM: u64 = 256 << 20;

/// `CUDA_ERROR_OUT_OF_MEMORY` unless `needed` bytes plus headroom fit the device's
/// free memory and the `replaced` bytes that allocating them would release.
pub(super) fn check_free(ctx: &Arc<CudaContext>, needed: u64, replaced: u64) -> Result<()> {
    let (free, _total) = ctx
        .mem_get_info()
        .map_err(|e| errors::driver("reading free device memory", e))?;
    let free = (free as u64).saturating_add(replaced);
    if needed.saturating_add(HEADROOM) > free {
        return Err(errors::out_of_memory(needed, free));
    }
    Ok(())
}

/// One caller's streams, handle and buffers.
#[derive(Debug)]
pub(super) struct Lane {
    pub copy_in: Arc<CudaStream>,
    pub compute: Arc<CudaStream>,
    pub copy_out: Arc<CudaStream>,
    pub blas: CudaBlas,
    /// Device A, B, C.
    pub device: [Option<DeviceBuffer>; 3],
    /// Pinned staging for A, B (write-combined) and C (cached: the CPU reads it).
    pub pinned: [Option<PinnedBuffer>; 3],
}

impl Lane {
    fn new(ctx: &Arc<CudaContext>) -> Result<Self> {
        let stream = || {
            ctx.new_stream()
                .map_err(|e| errors::driver("creating a stream", e))
        };
        let compute = stream()?;
        let blas = CudaBlas::new(compute.clone())
            .map_err(|e| errors::cublas("creating a cuBLAS handle", e))?;
        Ok(Self {
            copy_in: stream()?,
            compute,
            copy_out: stream()?,
            blas,
            device: [None, None, None],
            pinned: [None, None, None],
        })
    }

    /// Makes the device buffers (and the staging buffers of the operands `staged` names,
    /// A, B, C) large enough for `shape`. Device memory is checked first: when the buffers to grow would not
    /// fit the free memory (what they replace counted as free), nothing is allocated
    /// and the error is `CUDA_ERROR_OUT_OF_MEMORY`.
    pub(super) fn reserve(
        &mut self,
        ctx: &Arc<CudaContext>,
        shape: Shape,
        staged: [bool; 3],
    ) -> Result<()> {
        let (la, lb, lc) = shape.lens()?;
        let lens = [la, lb, lc];
        let mut needed = 0u64;
        let mut replaced = 0u64;
        for (buf, &len) in self.device.iter().zip(&lens) {
            let have = buf.as_ref().map_or(0, DeviceBuffer::len);
            if have < len {
                needed += 4 * len as u64;
                replaced += 4 * have as u64;
            }
        }
        if needed > 0 {
            check_free(ctx, needed, replaced)?;
            for (buf, &len) in self.device.iter_mut().zip(&lens) {
                if buf.as_ref().map_or(0, DeviceBuffer::len) < len {
                    *buf = None;
                    *buf = Some(DeviceBuffer::alloc(ctx, len)?);
                }
            }
        }
        for (i, (buf, &len)) in self.pinned.iter_mut().zip(&lens).enumerate() {
            if staged[i] && buf.as_ref().map_or(0, PinnedBuffer::len) < len {
                *buf = None;
                *buf = Some(PinnedBuffer::alloc(ctx, len, i < 2)?);
            }
        }
        Ok(())
    }

    /// Device bytes held.
    fn device_bytes(&self) -> u64 {
        self.device
            .iter()
            .flatten()
            .map(|b| 4 * b.len() as u64)
            .sum()
    }

    /// Waits for all of the lane's work; errors are dropped (used before freeing).
    pub(super) fn quiesce(&self) {
        for s in [&self.copy_in, &self.compute, &self.copy_out] {
            let _ = s.synchronize();
        }
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        // No queued copy or kernel may outlive the buffers freed after this.
        self.quiesce();
    }
}

/// The lanes of one backend: idle ones kept for reuse, at most `max` alive.
#[derive(Debug)]
pub(super) struct Lanes {
    state: Mutex<State>,
    freed: Condvar,
    max: usize,
}

#[derive(Debug, Default)]
struct State {
    idle: Vec<Lane>,
    alive: usize,
}

/// A lane out of the pool; goes back on [`Taken::keep`], else is dropped (its call
/// failed, so its state is not trusted).
pub(super) struct Taken<'a> {
    pool: &'a Lanes,
    lane: Option<Lane>,
}

impl Taken<'_> {
    pub(super) fn lane(&mut self) -> &mut Lane {
        // The lane is only taken out in `keep` or `drop`, both of which consume self.
        self.lane
            .as_mut()
            .expect("a taken lane is present until kept or dropped")
    }

    /// Returns the lane to the pool for the next caller.
    pub(super) fn keep(mut self) {
        if let Some(lane) = self.lane.take() {
            let mut state = self.pool.lock();
            state.idle.push(lane);
            drop(state);
            self.pool.freed.notify_one();
        }
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if let Some(lane) = self.lane.take() {
            drop(lane);
            let mut state = self.pool.lock();
            state.alive -= 1;
            drop(state);
            self.pool.freed.notify_one();
        }
    }
}

impl Lanes {
    pub(super) fn new(max: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle lane, a new one when fewer than `max` are alive, else waits for one.
    pub(super) fn take(&self, ctx: &Arc<CudaContext>) -> Result<Taken<'_>> {
        let mut state = self.lock();
        loop {
            if let Some(lane) = state.idle.pop() {
                return Ok(Taken {
                    pool: self,
                    lane: Some(lane),
                });
            }
            if state.alive < self.max {
                state.alive += 1;
                drop(state);
                return match Lane::new(ctx) {
                    Ok(lane) => Ok(Taken {
                        pool: self,
                        lane: Some(lane),
                    }),
                    Err(e) => {
                        self.lock().alive -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            state = self.freed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Drops every idle lane; returns the device bytes they held.
    pub(super) fn drain(&self) -> u64 {
        let idle = {
            let mut state = self.lock();
            let idle = std::mem::take(&mut state.idle);
            state.alive -= idle.len();
            idle
        };
        let bytes = idle.iter().map(Lane::device_bytes).sum();
        drop(idle);
        self.freed.notify_all();
        bytes
    }
}
