//! A cache-blocked f32 GEMM with an AVX-512 micro-kernel, for x86-64 CPUs that have
//! AVX-512F.
//!
//! Why our own: on an Intel Xeon with AVX-512 (2 vCPUs under KVM), faer 0.24's
//! AVX-512 path (its `private-gemm-x86` dependency, whose blocking follows the cache
//! sizes the CPU reports) loses 30–45% on a band of shapes, 1000³ among them: 52–65
//! GFLOPS on one thread where OpenBLAS 0.3.21's SkylakeX kernel reaches 107–118, and
//! trails OpenBLAS by 5–10% on large products (4096³). This kernel reaches OpenBLAS's
//! level there, so on Intel CPUs with AVX-512 the backend sends it every product with
//! k ≥ 256, n ≥ 640 and m ≥ 16 (see `use_blocked` in `cpu::rules`); smaller and thinner
//! products stay with faer, which was as fast or faster on them.
//!
//! The algorithm is the five loops of BLIS (Van Zee and van de Geijn, "BLIS: A
//! Framework for Rapidly Instantiating BLAS Functionality", 2015), written for
//! row-major C, where the vector direction is along the rows of B and C:
//!
//! ```text
//! for each block of KC columns of A / rows of B:        (pc)
//!     pack A[.., pc] into MR-row micro-panels            (all rows: at most m × KC)
//!     for each block of NC columns of B and C:           (jc)
//!         pack B[pc, jc] into NR-column micro-panels     (KC × NC: stays in L2)
//!         for each MR rows of C:                         (ir: A's micro-panel in L1)
//!             for each NR columns of the block:          (jr: B's micro-panel from L2)
//!                 C[ir, jr] (+)= A-panel · B-panel       (the micro-kernel, MR × NR)
//! ```
//!
//! One thread runs it. A multi-threaded product runs it once per thread on a block of
//! rows of C, each thread packing B for itself (`split_tall` in `cpu::rules`):
//! two versions that shared packed B between the threads behind a barrier (a parked
//! and a spinning one) were slower, 0.75–0.90 of OpenBLAS against 0.96–0.99, as each
//! thread then reads half of every B block from the other core's cache.

#[cfg(target_arch = "x86_64")]
mod avx512;

/// Rows of C per micro-tile: the micro-kernel broadcasts this many values of A per step.
///
/// MR × NR = 8 × 48 (three loads of B and eight broadcasts of A per 24 multiply-adds)
/// against the first version's 12 × 32 (two loads, twelve broadcasts), on 2 Intel Xeon
/// vCPUs, median of paired rounds against OpenBLAS in the same round, mean over runs:
/// 1000³ 0.96 → 1.01 on one thread (2 and 4 runs) and 0.95 → 1.01 on two (2 runs
/// each); 4096³ the same within the noise on one thread (1.01 and 1.00, 4 and 6 runs)
/// and 1.01 → 1.04 on two (2 runs each). Its A micro-panel is smaller (12 KiB), so
/// more of it stays in L1 while B streams past.
pub(super) const MR: usize = 8;

/// Columns of C per micro-tile: three 16-float vectors.
const NR: usize = 48;

/// Floats per AVX-512 vector.
const W: usize = 16;

/// Inner-dimension block for products of fewer than [`TALL_ROWS`] rows: an A
/// micro-panel is MR × KC floats (12 KiB), read again for every B micro-panel (KC × NR,
/// 72 KiB) that streams from L2. 384 against the first version's 256 (with the 12 × 32
/// kernel): fewer passes over C, and on 2 Intel Xeon vCPUs (`perf-compare`-style
/// interleaved runs, median of 21 paired rounds against OpenBLAS in the same round)
/// 2048³ on one thread went from 0.92 to 0.97 of OpenBLAS, 4096³ on two threads (one
/// row block each) from 0.95 to 0.98. With the 8 × 48 kernel, 256 measured the same as
/// 384 within the machine's noise.
const KC: usize = 384;

/// Inner-dimension block for products of at least [`TALL_ROWS`] rows: half as many
/// passes over C (which, at 4096³, streams from memory on every pass), an A micro-panel
/// of 24 KiB that still stays in L1, and a packed B block of 1.4 MiB, still in a 2 MiB
/// L2. Measured on 2 Intel Xeon vCPUs (2026-11-26) with the kernel alone, calls
/// alternating between the two blocks in one process, median ratio of 15–41 paired
/// calls: 768 against 384 gave 1.014–1.033 at 1000³, 1024³, 2048³ and 4096³ (two
/// runs each, one at 1024³), 1.020 at 1000×700×1000 and 1.026 at 4096×700×4096;
/// but 0.94 with 16 rows, 0.986 with 64 and 0.99–1.02 with 128–512 (packed B then serves
/// few A micro-panels, and a larger block of it spills from L2). 1024 (a 1.9 MiB B
/// block) lost: 0.90 at 4096³, 0.95 at 1000³; so did NC = 240 or 960 with KC = 768
/// (0.97 and 0.82 at 4096³).
const KC_TALL: usize = 768;

/// The fewest rows of C (of the call, or of a thread's row block) that take [`KC_TALL`].
const TALL_ROWS: usize = 512;

/// Columns of B per packed block, ten micro-panels: KC × NC floats (720 KiB; 1.4 MiB
/// with KC_TALL) stay in L2 while every A micro-panel of the call passes over them.
/// 720 and 960 (each A micro-panel read from L3 half as often) measured the same
/// within the noise: 4096³ on one thread, paired against OpenBLAS in two alternating
/// runs each, 98% and 96% (480), 103% and 113% (720), 99% and 106% (960); 2048³
/// 94–106% across the three.
const NC: usize = 480;

/// Whether this CPU runs the blocked kernel (x86-64 with AVX-512F, detected at run time).
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `C = A·B` for row-major `a` (m×k), `b` (k×n) and `c` (m×n) on the calling thread.
///
/// # Panics
/// If the CPU lacks AVX-512F (check [`available`] first) or the lengths do not match
/// the shape.
pub(super) fn gemm(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    assert!(available(), "the blocked GEMM needs AVX-512F");
    assert!(
        a.len() == m * k && b.len() == k * n && c.len() == m * n,
        "blocked GEMM lengths"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(0.0);
        return;
    }
    BUFFERS.with_borrow_mut(|buffers| {
        // k in equal blocks of at most KC (or KC_TALL): k = 1000 in blocks of 500 + 500
        // rather than 768 + 232, or of 334 + 333 + 333 rather than 384 + 384 + 232.
        let kc = if m >= TALL_ROWS { KC_TALL } else { KC };
        let k_step = k.div_ceil(k.div_ceil(kc));
        let (a_pack, b_pack) = buffers.take(
            m.next_multiple_of(MR) * k_step,
            k_step * n.min(NC).next_multiple_of(NR),
        );
        for p0 in (0..k).step_by(k_step) {
            let kb = k_step.min(k - p0);
            let a_pack = &mut a_pack[..m.next_multiple_of(MR) * kb];
            pack_a(a, k, p0, kb, a_pack);
            for j0 in (0..n).step_by(NC) {
                let nb = NC.min(n - j0);
                pack_b(b, n, p0, kb, j0, nb, b_pack);
                block(a_pack, b_pack, c, n, j0, m, nb, kb, p0 > 0);
            }
        }
    });
}

/// Runs the micro-kernel over every MR × NR tile of `C[.., j0..j0 + nb]` (`mb` rows).
#[allow(clippy::too_many_arguments)]
fn block(
    a_pack: &[f32],
    b_pack: &[f32],
    c: &mut [f32],
    ldc: usize,
    j0: usize,
    mb: usize,
    nb: usize,
    kb: usize,
    accumulate: bool,
) {
    for (ip, i) in (0..mb).step_by(MR).enumerate() {
        let rows = MR.min(mb - i);
        let a_panel = &a_pack[ip * MR * kb..(ip + 1) * MR * kb];
        for (jp, j) in (0..nb).step_by(NR).enumerate() {
            let cols = NR.min(nb - j);
            let b_panel = &b_pack[jp * NR * kb..(jp + 1) * NR * kb];
            let tile_start = i * ldc + j0 + j;
            let tile = &mut c[tile_start..tile_start + (rows - 1) * ldc + cols];
            tile_kernel(a_panel, b_panel, tile, ldc, rows, cols, kb, accumulate);
        }
    }
}

/// One MR × NR tile (`rows` × `cols` of it inside C): the micro-kernel straight into C
/// when the tile is whole, through a local tile when it sticks out of C.
#[allow(clippy::too_many_arguments)]
fn tile_kernel(
    a_panel: &[f32],
    b_panel: &[f32],
    tile: &mut [f32],
    ldc: usize,
    rows: usize,
    cols: usize,
    kb: usize,
    accumulate: bool,
) {
    if rows == MR && cols == NR {
        micro(a_panel, b_panel, tile, ldc, kb, accumulate, MR, 3);
        return;
    }
    // A partial tile goes through a local one, computed by a kernel of 4 or 8 rows and
    // 16, 32 or 48 columns, the least that covers it (n = 1000 leaves a last block of
    // 40 columns, m = 1003 a last panel of 3 rows).
    let mut local = [0.0f32; MR * NR];
    micro(
        a_panel,
        b_panel,
        &mut local,
        NR,
        kb,
        false,
        rows.next_multiple_of(4),
        cols.div_ceil(W),
    );
    for (r, from) in local.chunks_exact(NR).take(rows).enumerate() {
        let to = &mut tile[r * ldc..r * ldc + cols];
        if accumulate {
            to.iter_mut().zip(from).for_each(|(c, &v)| *c += v);
        } else {
            to.copy_from_slice(&from[..cols]);
        }
    }
}

/// The micro-kernel on a tile of `c` (row stride `ldc`) of `rows` rows (4 or MR) and
/// `vectors` × 16 columns (`vectors` is 1, 2 or 3).
#[allow(clippy::too_many_arguments)]
fn micro(
    a_panel: &[f32],
    b_panel: &[f32],
    c: &mut [f32],
    ldc: usize,
    kb: usize,
    acc: bool,
    rows: usize,
    vectors: usize,
) {
    assert!(
        a_panel.len() == MR * kb
            && kb <= KC_TALL
            && b_panel.len() == NR * kb
            && matches!(rows, 4 | MR)
            && (1..=3).contains(&vectors)
            && c.len() >= (rows - 1) * ldc + vectors * W,
        "micro-kernel lengths"
    );
    assert!(
        (b_panel.as_ptr() as usize).is_multiple_of(64),
        "packed B is 64-byte aligned"
    );
    #[cfg(target_arch = "x86_64")]
    {
        use avx512::kernel;
        assert!(available(), "the micro-kernel needs AVX-512F");
        let (a, b, c) = (a_panel.as_ptr(), b_panel.as_ptr(), c.as_mut_ptr());
        // SAFETY: the CPU has AVX-512F (asserted just above), each instance's rows and
        // vectors are the `rows` and `vectors` asserted above, and the panels and the
        // tile have the lengths the kernel reads and writes (asserted above).
        unsafe {
            match (rows, vectors) {
                (MR, 3) => kernel::<MR, 3>(kb, a, b, c, ldc, acc),
                (MR, 2) => kernel::<MR, 2>(kb, a, b, c, ldc, acc),
                (MR, _) => kernel::<MR, 1>(kb, a, b, c, ldc, acc),
                (_, 3) => kernel::<4, 3>(kb, a, b, c, ldc, acc),
                (_, 2) => kernel::<4, 2>(kb, a, b, c, ldc, acc),
                (_, _) => kernel::<4, 1>(kb, a, b, c, ldc, acc),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // `available()` is false here, so `gemm` asserted before reaching this.
        let _ = (acc, ldc);
        unreachable!("the blocked GEMM runs on x86-64 only")
    }
}

/// Packs `A[.., p0..p0 + kb]` (all rows of `a`, row stride `lda`) into MR-row
/// micro-panels of MR·kb floats, column by column: panel `ip` holds
/// `a[ip·MR + r, p0 + p]` at `ip·MR·kb + p·MR + r`, with rows past the end of A as
/// zeros. Each step of the micro-kernel then broadcasts MR consecutive floats (one or
/// two cache lines) instead of one float from each of MR lines; the first version,
/// which kept A's rows whole (`r·KC + p`), was 2–5% slower at 1000³–4096³.
fn pack_a(a: &[f32], lda: usize, p0: usize, kb: usize, out: &mut [f32]) {
    let rows = a.len() / lda;
    #[cfg(target_arch = "x86_64")]
    let simd = available();
    for (ip, panel) in out.chunks_exact_mut(MR * kb).enumerate() {
        let i0 = ip * MR;
        if i0 >= rows {
            break;
        }
        #[cfg(target_arch = "x86_64")]
        if simd && i0 + MR <= rows {
            let src = &a[i0 * lda + p0..(i0 + MR - 1) * lda + p0 + kb];
            // SAFETY: the CPU has AVX-512F (`simd`, checked above); `src` holds MR rows of
            // kb floats at stride lda (row MR − 1 ends at its end), and `panel` is
            // MR·kb floats, borrowed mutably.
            unsafe { avx512::pack_a_panel(src.as_ptr(), lda, kb, panel.as_mut_ptr()) };
            continue;
        }
        for r in 0..MR {
            let i = i0 + r;
            let column = panel.iter_mut().skip(r).step_by(MR);
            if i < rows {
                column
                    .zip(&a[i * lda + p0..i * lda + p0 + kb])
                    .for_each(|(d, &v)| *d = v);
            } else {
                column.for_each(|d| *d = 0.0);
            }
        }
    }
}

/// Packs the block `B[p0..p0 + kb, j0..j0 + nb]` (row stride `ldb`) into NR-column
/// micro-panels of `kb` rows of NR floats: panel `jp` holds `b[p0 + p, j0 + jp·NR + j]`
/// at `jp·NR·kb + p·NR + j`, the columns past `nb` zero. It walks B row by row, so the
/// reads are sequential. Packed panel by panel (with the earlier 32-column panels, each
/// read 128 bytes of a different row), two threads each packing their own copy of B
/// were 3–4% slower on 1000³ and 1024³ (median of 21 paired rounds against OpenBLAS).
fn pack_b(b: &[f32], ldb: usize, p0: usize, kb: usize, j0: usize, nb: usize, out: &mut [f32]) {
    let panels = nb.div_ceil(NR);
    for p in 0..kb {
        let row = &b[(p0 + p) * ldb + j0..][..nb];
        for jp in 0..panels {
            let j = jp * NR;
            let cols = NR.min(nb - j);
            let dst = &mut out[(jp * kb + p) * NR..][..NR];
            if let (Ok(dst), Some(Ok(src))) = (
                <&mut [f32; NR]>::try_from(&mut *dst),
                row.get(j..j + NR).map(<&[f32; NR]>::try_from),
            ) {
                // A whole panel row: a copy of known length, inlined as three vector
                // moves, where `copy_from_slice` of a run-time length calls `memcpy`.
                *dst = *src;
                continue;
            }
            dst[..cols].copy_from_slice(&row[j..j + cols]);
            dst[cols..].fill(0.0);
        }
    }
}

thread_local! {
    /// Each thread's packing buffers, kept between calls: allocating (and faulting in)
    /// fresh ones costs as much as a 256³ product. At most `m × KC_TALL` floats of
    /// packed A (24 MiB for 8192 rows, the default largest dimension) and
    /// `KC_TALL × NC` of packed B (1.4 MiB).
    static BUFFERS: std::cell::RefCell<Buffers> = const { std::cell::RefCell::new(Buffers(Vec::new())) };
}

/// One reusable allocation holding both packing buffers, each starting on a 64-byte
/// boundary so the micro-kernel's loads of packed B never straddle two cache lines.
struct Buffers(Vec<f32>);

impl Buffers {
    /// Floats in one cache line.
    const LINE: usize = 16;

    /// Buffers of `a_len` and `b_len` floats (contents unspecified: packing writes
    /// every element the kernel reads), growing the allocation if needed.
    fn take(&mut self, a_len: usize, b_len: usize) -> (&mut [f32], &mut [f32]) {
        let a_room = a_len.next_multiple_of(Self::LINE);
        let need = a_room + b_len + Self::LINE;
        if self.0.len() < need {
            self.0 = vec![0.0; need];
        }
        let misalign = (self.0.as_ptr() as usize / std::mem::size_of::<f32>()) % Self::LINE;
        let start = (Self::LINE - misalign) % Self::LINE;
        let (a, rest) = self.0[start..].split_at_mut(a_room);
        (&mut a[..a_len], &mut rest[..b_len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::kernel_tests::{check_product, has_avx512, patterned};

    #[test]
    fn every_edge_matches_the_reference() {
        if !has_avx512() {
            return;
        }
        // Whole tiles, partial tiles in each direction (last panels of 1–7 rows, which
        // take the 4- and 8-row kernels, and of 1–47 columns, the 16-, 32- and 48-column
        // ones), several k and n blocks.
        let shapes = [
            (20, 400, 50),
            (7, 385, 17),
            (30, 100, 16),
            (1, 1, 1),
            (12, 256, 32),
            (13, 257, 33),
            (11, 5, 31),
            (25, 600, 70),
            (40, 513, 1100),
            (50, 3, 40),
            (130, 300, 1030),
            (20, 1700, 50),
            (9, 769, 100),
            (17, 1537, 60),
            // Tall: KC_TALL, one block of k, then k in equal blocks (769 = 385 + 384).
            (512, 700, 60),
            (515, 769, 50),
        ];
        for (m, k, n) in shapes {
            let (a, b) = patterned(m, k, n);
            check_product((&a, &b), (m, k, n), |a, b, c| gemm(a, b, c, m, k, n))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
