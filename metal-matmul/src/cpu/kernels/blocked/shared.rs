//! The blocked GEMM on several threads that share one packed B, BLIS's parallel "ic"
//! loop:
//!
//! ```text
//! for each block of KC rows of B:                        (pc)
//!     pack B[pc, ..] into NC-column blocks               (all threads, one block each in turn)
//!     for each of `chunks` chunks of C's rows, claimed by whichever thread is free:
//!         pack A[chunk, pc] into micro-panels            (this thread's own: stays in L2)
//!         for each NC block:  C[chunk, block] (+)= A-chunk · B-block  (`run_block`)
//! ```
//!
//! Against one row block per thread, each packing all of B for itself, B is packed
//! once, and the chunks balance the threads: a thread slowed for a while (a busy
//! neighbour on its physical core) takes fewer chunks instead of holding up the call.
//! Each of the two phases of a KC block is one fork-join of the pool, which is what
//! makes the second wait for the first.

use super::{BUFFERS, Buffers, Micro, k_step, pack_a, pack_b, run_block, settled};
use crate::cpu::kernels::Dims;
use crate::cpu::tasks::{self, Join};
use std::cell::Cell;

thread_local! {
    /// The calling thread's buffer for the shared packed B (at most `KC_TALL × n`
    /// floats: 8 MiB for 4096 columns), kept between calls like [`BUFFERS`]. A call
    /// takes it out and puts it back, so a nested call would only allocate its own.
    static SHARED_B: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// `C = A·B` for `d` through the micro-kernel `K`, on `threads` threads of `pool` (the
/// calling thread among them), in `chunks` chunks of rows (at most one per micro-panel
/// of MR rows), as even as whole micro-panels allow: 2048 rows in 18 chunks are 342
/// micro-panels, 19 a chunk. Allocates only the kept buffers (this thread's packed B,
/// each thread's packed A).
///
/// # Panics
/// If the CPU lacks `K`'s ISA or the slices do not hold `d`.
pub(in crate::cpu) fn gemm<K: Micro>(
    pool: &rayon::ThreadPool,
    (threads, chunks): (usize, usize),
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    d: Dims,
) {
    if settled::<K>(a, b, c, d) {
        return;
    }
    let (m, k, n) = (d.m, d.k, d.n);
    let k_step = k_step::<K>(m, k);
    let n_padded = n.next_multiple_of(K::NR);
    let mut kept = Buffers(SHARED_B.take());
    let (_, b_pack) = kept.take(0, k_step * n_padded);
    for p0 in (0..k).step_by(k_step) {
        let kb = k_step.min(k - p0);
        // Packed B is NC-column blocks of kb × NC floats (the last one's columns
        // rounded up to NR), each NR-column micro-panel contiguous; so a run of
        // `group` micro-panels is one slice, packed by whichever thread claims it.
        let b_pack = &mut b_pack[..kb * n_padded];
        let group = pack_group::<K>(n_padded, threads);
        let groups = b_pack.chunks_mut(kb * group).enumerate();
        tasks::run(
            pool,
            threads,
            Join::CallerFirstArrivals,
            groups,
            |(g, out)| {
                let j0 = g * group;
                pack_b::<K>(b, d.ldb, (p0, kb), (j0, group.min(n - j0)), out);
            },
        );
        let b_pack = &*b_pack;
        let parts = row_chunks(&mut *c, d, K::MR, chunks);
        tasks::run(
            pool,
            threads,
            Join::CallerFirstArrivals,
            parts,
            |(i0, c)| {
                let chunk = d.with_rows(c.len().div_ceil(d.ldc));
                let a = &a[i0 * d.lda..];
                BUFFERS.with_borrow_mut(|buffers| {
                    let (a_pack, _) = buffers.take(chunk.m.next_multiple_of(K::MR) * kb, 0);
                    pack_a::<K>(a, chunk, p0, kb, a_pack);
                    for (j, b_block) in b_pack.chunks(kb * K::NC).enumerate() {
                        let j0 = j * K::NC;
                        let block = Dims {
                            k: kb,
                            n: K::NC.min(n - j0),
                            ..chunk
                        };
                        run_block::<K>(a_pack, b_block, &mut c[j0..], block, p0 > 0);
                    }
                });
            },
        );
    }
    SHARED_B.set(kept.0);
}

/// Columns of B per packing task: one NC block, or where B has fewer NC blocks than
/// there are threads (n ≤ 512 on two threads), whole micro-panels that tile a block,
/// about one task a thread. One 512-column block was packed by one thread while the
/// other waited; finer tasks where every thread already has a block lost 2% (768³,
/// docs/PERFORMANCE.md, "The shared-B split").
fn pack_group<K: Micro>(n_padded: usize, threads: usize) -> usize {
    if n_padded.div_ceil(K::NC) >= threads {
        return K::NC;
    }
    let panels_per_block = K::NC / K::NR;
    let wanted = (n_padded / K::NR).div_ceil(threads.max(1));
    // The largest divisor of the block's micro-panels not above `wanted` (1 at least).
    let panels = (1..=wanted.clamp(1, panels_per_block))
        .rev()
        .find(|p| panels_per_block.is_multiple_of(*p))
        .unwrap_or(1);
    panels * K::NR
}

/// C cut into `chunks` (at least 1, at most one per micro-panel) disjoint blocks of
/// whole `mr`-row micro-panels, the first `panels % chunks` one panel longer, each
/// with its first row; the last ends at C's last element.
fn row_chunks(mut c: &mut [f32], d: Dims, mr: usize, chunks: usize) -> Vec<(usize, &mut [f32])> {
    let panels = d.m.div_ceil(mr);
    let chunks = chunks.clamp(1, panels.max(1));
    let (base, extra) = (panels / chunks, panels % chunks);
    let mut parts = Vec::with_capacity(chunks);
    let mut i0 = 0;
    for i in 0..chunks {
        let rows = ((base + usize::from(i < extra)) * mr).min(d.m - i0);
        let end = if i + 1 == chunks {
            c.len()
        } else {
            rows * d.ldc
        };
        let (part, rest) = std::mem::take(&mut c).split_at_mut(end);
        parts.push((i0, part));
        c = rest;
        i0 += rows;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::kernels::blocked::Avx2;

    /// Each group is whole micro-panels that tile an NC block; B of fewer NC blocks
    /// than threads is cut into about one group a thread, other B into whole blocks.
    #[test]
    fn packing_groups_tile_the_blocks() {
        let (nr, nc) = (Avx2::NR, Avx2::NC);
        let cases = [
            (512, 2, 256),
            (512, 3, 128),
            (496, 2, 256),
            (768, 2, 512),
            (1008, 2, 512),
            (4096, 2, 512),
            (1040, 3, 512),
            (16, 2, 16),
            (48, 3, 16),
            (512, 1, 512),
        ];
        for (n_padded, threads, want) in cases {
            let group = pack_group::<Avx2>(n_padded, threads);
            assert_eq!(group, want, "{n_padded} columns, {threads} threads");
            assert!(group.is_multiple_of(nr) && nc.is_multiple_of(group));
        }
    }
}
