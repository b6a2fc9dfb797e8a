//! A cache-blocked f32 GEMM on the calling thread, with an AVX-512F micro-kernel
//! (8 × 48 tiles) or an AVX2+FMA one (6 × 16 tiles).
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
//! A multi-threaded product runs it either once per thread on a block of rows of C,
//! each thread packing B for itself (AVX-512), or as [`shared`]'s loops, where the
//! threads pack each block of B once between them and claim chunks of rows (AVX2);
//! `cpu::plan` chooses. Why each block size is what it is, and
//! what was tried instead: docs/PERFORMANCE.md, "The blocked kernel".

mod avx2;
mod avx512;
pub(in crate::cpu) mod shared;
#[cfg(target_arch = "x86_64")]
mod transpose;

use super::Dims;

/// One ISA's micro-kernel and block sizes.
pub(in crate::cpu) trait Micro {
    /// Rows of C per micro-tile (floats of A broadcast per step).
    const MR: usize;
    /// Columns of C per micro-tile.
    const NR: usize;
    /// Floats per vector register.
    const W: usize;
    /// Inner-dimension block for products of fewer than [`Self::TALL_ROWS`] rows.
    const KC: usize;
    /// Inner-dimension block for products of at least [`Self::TALL_ROWS`] rows.
    const KC_TALL: usize;
    /// The fewest rows of C that take [`Self::KC_TALL`].
    const TALL_ROWS: usize;
    /// Columns of B per packed block.
    const NC: usize;
    /// Rows of C whose A micro-panels stay in L2 while B's pass (BLIS's order), or
    /// `None` for the order that keeps one A micro-panel in L1 (see [`run_block`]).
    const MC: Option<usize>;
    /// In BLIS's order, the first tiles of each B micro-panel's pass that share out
    /// the prefetch of the next B micro-panel into L2, each asking for its part
    /// during its own steps; 0 where the kernel prefetches no B.
    const NEXT_B_TILES: usize;

    /// Whether this CPU runs the micro-kernel (detected at run time).
    fn available() -> bool;

    /// The tile `c` (row stride `ldc`, `rows` × `vectors·W` floats) `(+)=` the product of
    /// an A micro-panel (`MR·kb` floats) and a B micro-panel (`NR·kb` floats, 64-byte
    /// aligned) over `kb ≤ KC_TALL` steps; `rows` is one of [`Self::edge_rows`]'s answers
    /// or MR, `vectors·W ≤ NR`. Added to C when `accumulate`. `next_b` is this tile's
    /// share of the next B micro-panel (`NR·kb / NEXT_B_TILES` floats), asked into L2
    /// during the call and never read, or empty.
    ///
    /// # Panics
    /// If a length, alignment or count above does not hold, or the CPU lacks the ISA.
    #[allow(clippy::too_many_arguments)]
    fn micro(
        a_panel: &[f32],
        b_panel: &[f32],
        next_b: &[f32],
        c: &mut [f32],
        ldc: usize,
        kb: usize,
        accumulate: bool,
        rows: usize,
        vectors: usize,
    );

    /// The rows of the kernel instance that covers a partial tile of `rows < MR` rows.
    fn edge_rows(rows: usize) -> usize;

    /// Packs one whole micro-panel (MR rows of `kb` floats at stride `lda`) with SIMD if
    /// the ISA has a routine for it; false when the caller must pack it itself.
    fn pack_a_panel(a: &[f32], lda: usize, kb: usize, out: &mut [f32]) -> bool;
}

/// The AVX-512F micro-kernel: 8 × 48 (three 16-float vectors).
pub(in crate::cpu) struct Avx512;

/// The AVX2+FMA micro-kernel: 6 × 16 (two 8-float vectors, 12 accumulators).
pub(in crate::cpu) struct Avx2;

/// The largest MR × NR of any ISA, the size of the local tile for partial tiles.
const TILE_MAX: usize = 8 * 48;

/// Rows of C per micro-tile of the AVX-512 kernel; row blocks of a split are cut in
/// whole multiples of it.
pub(in crate::cpu) const MR_AVX512: usize = 8;

/// Rows of C per micro-tile of the AVX2 kernel.
pub(in crate::cpu) const MR_AVX2: usize = 6;

/// `C = A·B` for `dims` on the calling thread through the micro-kernel `K`.
///
/// # Panics
/// If the CPU lacks `K`'s ISA or the slices do not hold `dims`.
pub(super) fn gemm<K: Micro>(a: &[f32], b: &[f32], c: &mut [f32], d: Dims) {
    if settled::<K>(a, b, c, d) {
        return;
    }
    let (m, k, n) = (d.m, d.k, d.n);
    BUFFERS.with_borrow_mut(|buffers| {
        let k_step = k_step::<K>(m, k);
        let (a_pack, b_pack) = buffers.take(
            m.next_multiple_of(K::MR) * k_step,
            k_step * n.min(K::NC).next_multiple_of(K::NR),
        );
        for p0 in (0..k).step_by(k_step) {
            let kb = k_step.min(k - p0);
            let a_pack = &mut a_pack[..m.next_multiple_of(K::MR) * kb];
            pack_a::<K>(a, d, p0, kb, a_pack);
            for j0 in (0..n).step_by(K::NC) {
                let nb = K::NC.min(n - j0);
                pack_b::<K>(b, d.ldb, (p0, kb), (j0, nb), b_pack);
                let block = Dims {
                    m,
                    k: kb,
                    n: nb,
                    ..d
                };
                run_block::<K>(a_pack, b_pack, &mut c[j0..], block, p0 > 0);
            }
        }
    });
}

/// The checks every entry point makes, and the products with nothing to multiply:
/// panics if the CPU lacks `K`'s ISA or the slices do not hold `d`; true when C is
/// already the product (no rows or columns, or zeroed here for k = 0).
fn settled<K: Micro>(a: &[f32], b: &[f32], c: &mut [f32], d: Dims) -> bool {
    assert!(K::available(), "the blocked GEMM needs its ISA");
    d.assert_fits(a, b, c);
    if d.m == 0 || d.n == 0 {
        return true;
    }
    if d.k == 0 {
        d.zero_c(c);
        return true;
    }
    false
}

/// The step of the inner dimension for a product of `m` rows: k in equal blocks of at
/// most KC (KC_TALL from TALL_ROWS rows), k = 1000 as 500 + 500 rather than 768 + 232.
fn k_step<K: Micro>(m: usize, k: usize) -> usize {
    let kc = if m >= K::TALL_ROWS { K::KC_TALL } else { K::KC };
    k.div_ceil(k.div_ceil(kc))
}

/// Runs the micro-kernel over every MR × NR tile of the block of C that starts at
/// `c[0]` (`d.m` rows, `d.n` columns, `d.k` packed steps).
///
/// Without [`Micro::MC`], each A micro-panel stays in L1 while the B micro-panels of
/// the block stream past it from L2. With it, BLIS's order: the A micro-panels of MC
/// rows stay in L2 while one B micro-panel at a time stays in L1 and they stream past,
/// the first [`Micro::NEXT_B_TILES`] of them asking for the next B micro-panel.
fn run_block<K: Micro>(a_pack: &[f32], b_pack: &[f32], c: &mut [f32], d: Dims, acc: bool) {
    let kb = d.k;
    let (panels_a, panels_b) = (d.m.div_ceil(K::MR), d.n.div_ceil(K::NR));
    let mut tile = |ip: usize, jp: usize, next_b: &[f32]| {
        let (i, j) = (ip * K::MR, jp * K::NR);
        let (rows, cols) = (K::MR.min(d.m - i), K::NR.min(d.n - j));
        let a_panel = &a_pack[ip * K::MR * kb..(ip + 1) * K::MR * kb];
        let b_panel = &b_pack[jp * K::NR * kb..(jp + 1) * K::NR * kb];
        let start = i * d.ldc + j;
        let tile = &mut c[start..start + (rows - 1) * d.ldc + cols];
        let panels = (a_panel, b_panel, next_b);
        tile_kernel::<K>(panels, tile, (d.ldc, kb), (rows, cols), acc);
    };
    match K::MC {
        None => {
            for ip in 0..panels_a {
                for jp in 0..panels_b {
                    tile(ip, jp, &[]);
                }
            }
        }
        Some(mc) => {
            let per_chunk = (mc / K::MR).max(1);
            for first in (0..panels_a).step_by(per_chunk) {
                for jp in 0..panels_b {
                    for ip in first..(first + per_chunk).min(panels_a) {
                        tile(
                            ip,
                            jp,
                            next_b_share::<K>(b_pack, (kb, panels_b), ip - first, jp),
                        );
                    }
                }
            }
        }
    }
}

/// The share of B micro-panel `jp + 1` (of the block `b_pack`: `panels` micro-panels
/// of `kb` steps) that the `t`-th tile of micro-panel `jp`'s pass asks into L2: empty
/// past the first [`Micro::NEXT_B_TILES`] tiles or after the block's last micro-panel.
fn next_b_share<K: Micro>(
    b_pack: &[f32],
    (kb, panels): (usize, usize),
    t: usize,
    jp: usize,
) -> &[f32] {
    let panel = K::NR * kb;
    if t >= K::NEXT_B_TILES || jp + 1 >= panels {
        return &[];
    }
    let part = panel / K::NEXT_B_TILES;
    &b_pack[(jp + 1) * panel..][t * part..(t + 1) * part]
}

/// One MR × NR tile (`rows` × `cols` of it inside C): the micro-kernel straight into C
/// when the tile is whole, through a local tile when it sticks out of C.
fn tile_kernel<K: Micro>(
    (a_panel, b_panel, next_b): (&[f32], &[f32], &[f32]),
    tile: &mut [f32],
    (ldc, kb): (usize, usize),
    (rows, cols): (usize, usize),
    accumulate: bool,
) {
    if rows == K::MR && cols == K::NR {
        K::micro(
            a_panel,
            b_panel,
            next_b,
            tile,
            ldc,
            kb,
            accumulate,
            K::MR,
            K::NR / K::W,
        );
        return;
    }
    // A partial tile goes through a local one, computed by the smallest kernel
    // instance that covers it (n = 1000 leaves a last block of 40 columns, m = 1003 a
    // last panel of 3 rows).
    let mut local = [0.0f32; TILE_MAX];
    let edge_rows = if rows == K::MR {
        K::MR
    } else {
        K::edge_rows(rows)
    };
    let vectors = cols.div_ceil(K::W);
    K::micro(
        a_panel,
        b_panel,
        &[],
        &mut local,
        K::NR,
        kb,
        false,
        edge_rows,
        vectors,
    );
    for (r, from) in local.chunks_exact(K::NR).take(rows).enumerate() {
        let to = &mut tile[r * ldc..r * ldc + cols];
        if accumulate {
            to.iter_mut().zip(from).for_each(|(c, &v)| *c += v);
        } else {
            to.copy_from_slice(&from[..cols]);
        }
    }
}

/// Packs `A[.., p0..p0 + kb]` (all `d.m` rows, row stride `d.lda`) into MR-row
/// micro-panels of MR·kb floats, column by column: panel `ip` holds
/// `a[ip·MR + r, p0 + p]` at `ip·MR·kb + p·MR + r`, with rows past the end of A as
/// zeros, so each step of the micro-kernel broadcasts MR consecutive floats.
fn pack_a<K: Micro>(a: &[f32], d: Dims, p0: usize, kb: usize, out: &mut [f32]) {
    let (rows, lda) = (d.m, d.lda);
    for (ip, panel) in out.chunks_exact_mut(K::MR * kb).enumerate() {
        let i0 = ip * K::MR;
        if i0 >= rows {
            break;
        }
        if i0 + K::MR <= rows {
            let src = &a[i0 * lda + p0..(i0 + K::MR - 1) * lda + p0 + kb];
            if K::pack_a_panel(src, lda, kb, panel) {
                continue;
            }
        }
        for r in 0..K::MR {
            let i = i0 + r;
            let column = panel.iter_mut().skip(r).step_by(K::MR);
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
/// reads are sequential.
fn pack_b<K: Micro>(
    b: &[f32],
    ldb: usize,
    (p0, kb): (usize, usize),
    (j0, nb): (usize, usize),
    out: &mut [f32],
) {
    let panels = nb.div_ceil(K::NR);
    for p in 0..kb {
        let row = &b[(p0 + p) * ldb + j0..][..nb];
        for jp in 0..panels {
            let j = jp * K::NR;
            let cols = K::NR.min(nb - j);
            let dst = &mut out[(jp * kb + p) * K::NR..][..K::NR];
            // A whole panel row is a copy of a length known at compile time (NR),
            // inlined as vector moves rather than a call to `memcpy`.
            dst[..cols].copy_from_slice(&row[j..j + cols]);
            dst[cols..].fill(0.0);
        }
    }
}

thread_local! {
    /// Each thread's packing buffers, kept between calls: allocating (and faulting in)
    /// fresh ones costs as much as a 256³ product. At most `m × KC_TALL` floats of
    /// packed A (24 MiB for 8192 rows, the default largest dimension) and
    /// `KC_TALL × NC` of packed B.
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

/// The checks every micro-kernel makes before its `unsafe` call: the panels' lengths,
/// the tile's extent, B's alignment, the instance's rows and vectors.
#[allow(clippy::too_many_arguments)]
fn assert_micro<K: Micro>(
    a_panel: &[f32],
    b_panel: &[f32],
    c: &[f32],
    ldc: usize,
    kb: usize,
    rows: usize,
    vectors: usize,
) {
    assert!(
        a_panel.len() == K::MR * kb
            && kb <= K::KC_TALL
            && b_panel.len() == K::NR * kb
            && (1..=K::MR).contains(&rows)
            && (1..=K::NR / K::W).contains(&vectors)
            && c.len() >= (rows - 1) * ldc + vectors * K::W,
        "micro-kernel lengths"
    );
    assert!(
        (b_panel.as_ptr() as usize).is_multiple_of(64),
        "packed B is 64-byte aligned"
    );
    assert!(K::available(), "the micro-kernel needs its ISA");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Shape;
    use crate::cpu::kernels::tests::{check_product, patterned};

    /// Whole tiles, partial tiles in each direction, several k and n blocks, the tall
    /// block, strided operands.
    fn every_edge<K: Micro>() {
        if !K::available() {
            eprintln!("skipped: this CPU lacks the kernel's ISA");
            return;
        }
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
            (512, 700, 60),
            (515, 769, 50),
        ];
        for (m, k, n) in shapes {
            let (a, b) = patterned(m, k, n);
            let dims = Dims::packed(Shape::new(m, k, n));
            check_product((&a, &b), (m, k, n), |a, b, c| gemm::<K>(a, b, c, dims))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// The first NEXT_B_TILES tiles of a pass ask for consecutive, equal parts that
    /// tile the next B micro-panel exactly; later tiles and the last micro-panel's
    /// pass ask for nothing; a kernel without the prefetch is never given a part.
    #[test]
    fn next_b_shares_tile_the_next_micro_panel() {
        let (kb, panels) = (500, 3);
        let b_pack: Vec<f32> = (0..Avx2::NR * kb * panels).map(|i| i as f32).collect();
        let panel = Avx2::NR * kb;
        for jp in 0..panels - 1 {
            let mut joined = Vec::new();
            for t in 0..Avx2::NEXT_B_TILES {
                let part = next_b_share::<Avx2>(&b_pack, (kb, panels), t, jp);
                assert_eq!(part.len(), panel / Avx2::NEXT_B_TILES);
                assert!(part.len() >= kb / 4 * Avx2::NR, "covers one line a trip");
                joined.extend_from_slice(part);
            }
            assert_eq!(joined, b_pack[(jp + 1) * panel..(jp + 2) * panel]);
            let later = Avx2::NEXT_B_TILES;
            assert!(next_b_share::<Avx2>(&b_pack, (kb, panels), later, jp).is_empty());
        }
        assert!(next_b_share::<Avx2>(&b_pack, (kb, panels), 0, panels - 1).is_empty());
        assert!(next_b_share::<Avx512>(&b_pack, (kb, panels), 0, 0).is_empty());
    }

    #[test]
    fn avx512_every_edge_matches_the_reference() {
        every_edge::<Avx512>();
    }

    #[test]
    fn avx2_every_edge_matches_the_reference() {
        every_edge::<Avx2>();
    }

    /// The shared-B split on 1 to 3 threads: chunks of equal and unequal panels, one
    /// chunk, more chunks than micro-panels, a last panel of fewer than MR rows,
    /// several k and NC blocks, the tall block, partial tiles, k = 0 (C zeroed).
    fn shared_every_edge<K: Micro>() {
        if !K::available() {
            eprintln!("skipped: this CPU lacks the kernel's ISA");
            return;
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let cases = [
            ((130, 600, 1030), 2, 5),
            ((300, 600, 530), 2, 16),
            ((7, 513, 17), 3, 1),
            ((7, 513, 17), 3, 9),
            ((150, 700, 530), 3, 6),
            ((61, 700, 40), 1, 2),
            ((520, 1030, 70), 2, 4),
            ((30, 0, 40), 2, 3),
        ];
        for ((m, k, n), threads, chunks) in cases {
            let (a, b) = patterned(m, k, n);
            let dims = Dims::packed(Shape::new(m, k, n));
            check_product((&a, &b), (m, k, n), |a, b, c| {
                shared::gemm::<K>(&pool, (threads, chunks), a, b, c, dims);
            })
            .unwrap_or_else(|e| panic!("{threads} threads, {chunks} chunks: {e}"));
        }
    }

    #[test]
    fn avx512_shared_b_split_matches_the_reference() {
        shared_every_edge::<Avx512>();
    }

    #[test]
    fn avx2_shared_b_split_matches_the_reference() {
        shared_every_edge::<Avx2>();
    }
}
