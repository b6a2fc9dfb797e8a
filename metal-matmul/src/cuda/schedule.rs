//! One product on a lane: the operands' trip to the device, the multiplication in row
//! blocks, and C's trip back, with CUDA events around each step.
//!
//! B goes first (every block needs all of it), in pieces so the CPU's staging copy of
//! one piece overlaps the DMA of the previous. Then, block by block: A's rows go in on
//! the copy-in stream, the compute stream waits for them and multiplies, and the
//! copy-out stream waits for that and brings the block of C back. The CPU stages the
//! next block of A meanwhile, and once all are queued it unstages the blocks of C as
//! they arrive. An operand that lies in pinned memory the backend lent is not staged:
//! the DMA engines read or write it in place. With one block and no pinned staging this
//! is the plain copy-multiply-copy.

use std::sync::Arc;
use std::time::Duration;

use cudarc::cublas::{CudaBlas, result as blas, sys as blas_sys};
use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaStream, LaunchConfig, PushKernelArg, result, sys,
};
use rayon::prelude::*;

use super::compile::Kernels;
use super::errors;
use super::lane::Lane;
use super::memory::PinnedBuffer;
use super::policy::Plan;
use super::report::Timing;
use crate::{Error, Method, Result, Shape};

/// Pieces B is uploaded in when staged.
const B_PIECES: usize = 4;
/// Elements per task of the CPU's staging copies.
const COPY_GRAIN: usize = 1 << 18;

/// A timed span on one stream.
struct Span {
    start: CudaEvent,
    end: CudaEvent,
}

impl Span {
    fn ms(&self) -> Result<f32> {
        self.start
            .elapsed_ms(&self.end)
            .map_err(|e| errors::driver("reading an event's time", e))
    }
}

fn event(ctx: &Arc<CudaContext>, stream: &CudaStream) -> Result<CudaEvent> {
    let ev = ctx
        .new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))
        .map_err(|e| errors::driver("creating an event", e))?;
    ev.record(stream)
        .map_err(|e| errors::driver("recording an event", e))?;
    Ok(ev)
}

fn wait(stream: &CudaStream, ev: &CudaEvent) -> Result<()> {
    stream
        .wait(ev)
        .map_err(|e| errors::driver("making a stream wait for an event", e))
}

/// Parallel copy, for staging into and out of pinned buffers.
fn par_copy(dst: &mut [f32], src: &[f32]) {
    dst.par_chunks_mut(COPY_GRAIN)
        .zip(src.par_chunks(COPY_GRAIN))
        .for_each(|(d, s)| d.copy_from_slice(s));
}

/// Queues the upload of `src` to `dst` on `stream`, staged through `pinned` (when
/// given) in `pieces`; returns the timed spans.
fn upload(
    ctx: &Arc<CudaContext>,
    stream: &CudaStream,
    src: &[f32],
    dst: sys::CUdeviceptr,
    mut pinned: Option<&mut [f32]>,
    pieces: usize,
) -> Result<Vec<Span>> {
    let mut spans = Vec::new();
    let piece = src.len().div_ceil(pieces.max(1)).max(1);
    for (i, part) in src.chunks(piece).enumerate() {
        let offset = i * piece;
        let from: &[f32] = match pinned.as_deref_mut() {
            Some(stage) => {
                let stage = &mut stage[offset..offset + part.len()];
                par_copy(stage, part);
                stage
            }
            None => part,
        };
        let start = event(ctx, stream)?;
        // SAFETY: `dst + offset` has room for `part.len()` elements (the lane reserved
        // the whole operand). A staged source is the lane's buffer, which outlives the
        // copy (the lane synchronises before it frees or reuses it); a pageable
        // source is read before the call returns (CUDA's pageable-copy rule); a
        // source in lent pinned memory is the caller's slice, borrowed until
        // `run_inner` has synchronised every stream (or `run` has quiesced them).
        unsafe { result::memcpy_htod_async(dst + 4 * offset as u64, from, stream.cu_stream()) }
            .map_err(|e| errors::driver("queueing a host-to-device copy", e))?;
        spans.push(Span {
            start,
            end: event(ctx, stream)?,
        });
    }
    Ok(spans)
}

/// Queues `C[rows] = A[rows]·B` with `method` on the lane's compute stream.
#[allow(clippy::too_many_arguments)]
fn multiply(
    compute: &Arc<CudaStream>,
    blas_handle: &CudaBlas,
    kernels: &Kernels,
    method: Method,
    pa: sys::CUdeviceptr,
    pb: sys::CUdeviceptr,
    pc: sys::CUdeviceptr,
    (m, k, n): (i32, i32, i32),
) -> Result<()> {
    let launch = |f: &CudaFunction, block: (u32, u32), tile: (u32, u32)| -> Result<()> {
        let grid_x = (n as u32).div_ceil(tile.0);
        let grid_y = (m as u32).div_ceil(tile.1);
        if grid_y > 65_535 {
            return Err(Error::invalid(format!(
                "{m} rows need {grid_y} blocks of {} rows, over CUDA's 65535 (use cublas)",
                tile.1
            )));
        }
        let cfg = LaunchConfig {
            grid_dim: (grid_x, grid_y, 1),
            block_dim: (block.0, block.1, 1),
            shared_mem_bytes: 0,
        };
        let mut args = compute.launch_builder(f);
        args.arg(&pa).arg(&pb).arg(&pc).arg(&m).arg(&k).arg(&n);
        // SAFETY: the kernel's parameters are (const float*, const float*, float*, int,
        // int, int), matched above; A, B and C hold m·k, k·n and m·n elements at these
        // addresses, and the kernel writes only inside C's m×n.
        unsafe { args.launch(cfg) }
            .map(|_| ())
            .map_err(|e| errors::driver("launching a kernel", e))
    };
    match method {
        Method::Simple => launch(&kernels.simple, (16, 16), (16, 16)),
        Method::Tiled => launch(&kernels.tiled, (32, 32), (32, 32)),
        Method::RegisterBlocked => launch(&kernels.register_blocked, (256, 1), (128, 128)),
        Method::Cublas | Method::CublasTf32 => {
            let mode = if method == Method::CublasTf32 {
                blas_sys::cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
            } else {
                blas_sys::cublasMath_t::CUBLAS_DEFAULT_MATH
            };
            let handle = *blas_handle.handle();
            // SAFETY: the handle belongs to this lane, which only this thread uses now.
            unsafe { blas_sys::cublasSetMathMode(handle, mode) }
                .result()
                .map_err(|e| errors::cublas("setting cuBLAS's math mode", e))?;
            let (alpha, beta) = (1.0f32, 0.0f32);
            // Column-major cuBLAS sees row-major C as Cᵀ (n×m): Cᵀ = Bᵀ·Aᵀ, with Bᵀ
            // n×k (ld n) and Aᵀ k×m (ld k), neither transposed.
            // SAFETY: the pointers are device buffers of k·n, m·k and m·n elements with
            // these leading dimensions; alpha and beta are host scalars (the default
            // pointer mode); the handle's stream is the lane's compute stream.
            unsafe {
                blas::sgemm(
                    handle,
                    blas_sys::cublasOperation_t::CUBLAS_OP_N,
                    blas_sys::cublasOperation_t::CUBLAS_OP_N,
                    n,
                    m,
                    k,
                    &alpha,
                    pb as *const f32,
                    n,
                    pa as *const f32,
                    k,
                    &beta,
                    pc as *mut f32,
                    n,
                )
            }
            .map_err(|e| errors::cublas("cublasSgemm", e))
        }
        other => Err(Error::invalid(format!("`{other}` is not a CUDA method"))),
    }
}

/// The staging buffer's elements when staging is `on`.
fn stage(buf: &mut Option<PinnedBuffer>, on: bool) -> Option<&mut [f32]> {
    if on {
        buf.as_mut().map(PinnedBuffer::as_mut_slice)
    } else {
        None
    }
}

fn dim(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::invalid(format!("{v} is over CUDA's 32-bit dimensions")))
}

/// One product for [`run`]: the operands (shape not degenerate, slices already
/// validated), what runs, how operands travel, and which of A, B and C lie in lent
/// pinned memory.
pub(super) struct Job<'a> {
    pub a: &'a [f32],
    pub b: &'a [f32],
    pub c: &'a mut [f32],
    pub shape: Shape,
    pub method: Method,
    pub plan: Plan,
    pub in_place: [bool; 3],
}

/// Runs `job` on `lane`; on an error, waits for whatever it queued before returning.
pub(super) fn run(
    ctx: &Arc<CudaContext>,
    lane: &mut Lane,
    kernels: &Kernels,
    job: Job<'_>,
) -> Result<Timing> {
    let result = run_inner(ctx, lane, kernels, job);
    if result.is_err() {
        // Nothing queued may still touch the lane's buffers when the caller drops it.
        lane.quiesce();
    }
    result
}

fn run_inner(
    ctx: &Arc<CudaContext>,
    lane: &mut Lane,
    kernels: &Kernels,
    job: Job<'_>,
) -> Result<Timing> {
    let Job {
        a,
        b,
        c,
        shape,
        method,
        plan,
        in_place,
    } = job;
    ctx.bind_to_thread()
        .map_err(|e| errors::driver("binding the context", e))?;
    let Shape { m, k, n } = shape;
    let (ki, ni) = (dim(k)?, dim(n)?);
    dim(m)?;
    let staged = in_place.map(|direct| plan.pinned && !direct);
    lane.reserve(ctx, shape, staged)?;
    let Lane {
        copy_in,
        compute,
        copy_out,
        blas,
        device,
        pinned,
    } = &mut *lane;
    let [Some(da), Some(db), Some(dc)] = &device else {
        return Err(Error::invalid("the lane's device buffers are missing"));
    };
    let (da, db, dc) = (da.at(0), db.at(0), dc.at(0));
    let [pa, pb, pc] = pinned;

    let mut to_device = upload(
        ctx,
        copy_in,
        b,
        db,
        stage(pb, staged[1]),
        if staged[1] { B_PIECES } else { 1 },
    )?;
    let b_ready = event(ctx, copy_in)?;
    wait(compute, &b_ready)?;

    let rows = plan.chunk_rows.clamp(1, m);
    let mut pa_stage = stage(pa, staged[0]);
    let mut pc_stage = stage(pc, staged[2]);
    let mut kernel_spans = Vec::new();
    let mut blocks = Vec::new();
    for r0 in (0..m).step_by(rows) {
        let r1 = (r0 + rows).min(m);
        let a_rows = &a[r0 * k..r1 * k];
        let a_stage = pa_stage.as_deref_mut().map(|s| &mut s[r0 * k..r1 * k]);
        to_device.extend(upload(
            ctx,
            copy_in,
            a_rows,
            da + 4 * (r0 * k) as u64,
            a_stage,
            1,
        )?);
        let a_ready = event(ctx, copy_in)?;
        wait(compute, &a_ready)?;
        let start = event(ctx, compute)?;
        multiply(
            compute,
            blas,
            kernels,
            method,
            da + 4 * (r0 * k) as u64,
            db,
            dc + 4 * (r0 * n) as u64,
            (dim(r1 - r0)?, ki, ni),
        )?;
        let done = event(ctx, compute)?;
        wait(copy_out, &done)?;
        kernel_spans.push(Span { start, end: done });
        let out_start = event(ctx, copy_out)?;
        let src = dc + 4 * (r0 * n) as u64;
        match pc_stage.as_deref_mut() {
            Some(stage) => {
                let stage = &mut stage[r0 * n..r1 * n];
                // SAFETY: `stage` is the lane's pinned C, which outlives the copy (it
                // is read below only after this copy's end event completes); the
                // device range holds `stage.len()` elements of C.
                unsafe { result::memcpy_dtoh_async(stage, src, copy_out.cu_stream()) }
            }
            None => {
                let dst = &mut c[r0 * n..r1 * n];
                // SAFETY: a pageable destination is written before the call returns
                // (CUDA's pageable-copy rule); one in lent pinned memory is the
                // caller's `c`, borrowed mutably until every stream is synchronised
                // below (or quiesced by `run` on an error).
                unsafe { result::memcpy_dtoh_async(dst, src, copy_out.cu_stream()) }
            }
        }
        .map_err(|e| errors::driver("queueing a device-to-host copy", e))?;
        let out_end = event(ctx, copy_out)?;
        blocks.push((
            r0,
            r1,
            Span {
                start: out_start,
                end: out_end,
            },
        ));
    }
    if let Some(stage) = pc_stage.as_deref() {
        for (r0, r1, span) in &blocks {
            span.end
                .synchronize()
                .map_err(|e| errors::driver("waiting for a block of C", e))?;
            par_copy(&mut c[r0 * n..r1 * n], &stage[r0 * n..r1 * n]);
        }
    }
    for s in [&*copy_in, &*compute, &*copy_out] {
        s.synchronize()
            .map_err(|e| errors::driver("waiting for the product", e))?;
    }
    let total = |spans: &mut dyn Iterator<Item = &Span>| -> Result<Duration> {
        let mut ms = 0.0f64;
        for s in spans {
            ms += f64::from(s.ms()?);
        }
        Ok(Duration::from_secs_f64(ms / 1e3))
    };
    Ok(Timing {
        to_device: total(&mut to_device.iter())?,
        kernel: total(&mut kernel_spans.iter())?,
        to_host: total(&mut blocks.iter().map(|(_, _, s)| s))?,
        pinned: staged.contains(&true),
        in_place: in_place.contains(&true),
        blocks: blocks.len() as u32,
    })
}
