//! Which kernel and which split between threads a product gets: the rules, each with
//! the measurements that set it. The backend (the parent module) asks them in order:
//! vector shapes, few rows, one thread's kernel, narrow row blocks, short-k row blocks,
//! tall row blocks, faer's own split.

use super::{blocked, few_rows, narrow};
use crate::Shape;

/// Whether a multi-threaded GEMM should run as independent one-thread products over
/// row blocks of C instead of one faer call sharing its packed panels. With a short
/// inner dimension each block's packing of B is cheap and the threads never wait on
/// each other. Measured on 2 Zen 4 cores, best of 20, split against faer's own split:
/// 4096×64×4096 203 against 181 GFLOPS, 256³ 210 against 179, 127×257×513 192
/// against 174, 512³ 224 against 222; from k = 768 up faer's is as fast or faster
/// (1000³: 218 against 208), hence [`SPLIT_MAX_K`].
pub(super) fn split_rows(shape: Shape, threads: usize) -> bool {
    shape.k <= SPLIT_MAX_K && shape.m >= threads * SPLIT_MIN_ROWS
}

/// Whether a multi-threaded GEMM with a long inner dimension (k > [`SPLIT_MAX_K`])
/// should run as one row block per thread, each a one-thread product with its own
/// packing, instead of faer's own split: when every thread gets at least
/// [`SPLIT_TALL_MIN_ROWS`] rows, or when the blocks go to the blocked kernel.
///
/// Measured on 2 Intel Xeon vCPUs, blocks through faer, with `perf-compare --threads
/// 2`, best (median): 2048³ 216 (173) against faer's split 187 (168), 4096³ 206 (200)
/// against 188 (156); OpenBLAS 233 and 243–252 in the same runs. Blocks through the
/// blocked kernel (KC = 384), median of 21 rounds, each against OpenBLAS in the same
/// round: 1024³ 0.99 (faer's split 0.95), 2048³ 0.99 (0.94), 4096³ 0.98 (0.92),
/// 1000³ 0.96 (1.00).
pub(super) fn split_tall(shape: Shape, threads: usize, cpu_intel: bool) -> bool {
    let rows = shape.m / threads;
    let block = Shape::new(rows, shape.k, shape.n);
    shape.k > SPLIT_MAX_K
        && (rows >= SPLIT_TALL_MIN_ROWS
            || (rows >= SPLIT_BLOCKED_MIN_ROWS && use_blocked(block, cpu_intel)))
}

/// The fewest rows of C per thread [`split_tall`] gives the blocked kernel. Each block
/// packs all of B for itself, which few rows do not pay for: on two Intel Xeon vCPUs,
/// best GFLOPS, 16×1000×1000 reached 65 in two 8-row blocks against 87 through faer's
/// own split; 64×1000×1000 133 against 134.
const SPLIT_BLOCKED_MIN_ROWS: usize = 64;

/// The fewest rows of C per thread [`split_tall`] accepts.
const SPLIT_TALL_MIN_ROWS: usize = 1024;

/// Below this many floating-point operations (about 1 ms on one core) the calling
/// thread works on a row-split product itself; see [`CpuBackend::gemm_row_blocks`].
pub(super) const CALLER_JOINS_MAX_FLOPS: f64 = 1.0e8;

/// The longest inner dimension [`split_rows`] accepts.
const SPLIT_MAX_K: usize = 512;

/// Row blocks per thread: more than one, so a worker that wakes late takes a share of
/// the blocks instead of leaving its half to the first worker.
pub(super) const SPLIT_BLOCKS_PER_THREAD: usize = 4;

/// Row blocks per thread for a product [`split_rows`] takes: [`SPLIT_BLOCKS_PER_THREAD`],
/// except on Intel CPUs, where every block keeps at least [`SPLIT_MIN_BLOCK_ROWS`] rows
/// (between one block per thread and [`SPLIT_BLOCKS_PER_THREAD`]).
///
/// Each block is a one-thread product that packs all of B for itself, so small blocks
/// pack B over and over: 127×257×513 in 16-row blocks packed its 0.5 MiB B eight times
/// for 4 MFLOP a block. On 2 Intel Xeon vCPUs, `perf-compare --threads 2`, best (median)
/// GFLOPS, two alternating runs of each (2026-11-26):
/// - 127×257×513: 1 block per thread 220 and 219 (142, 130), 4 per thread 157 and 152
///   (109, 105); OpenBLAS 162–165 in the same runs;
/// - 256³: 1 per thread 246 and 235, 4 per thread 192 and 196;
/// - 300×400×800: 1 per thread 228 and 201, 2 per thread 198 and 197, 4 per thread
///   166 and 153 (OpenBLAS 191–193);
/// - 512³: 1 per thread 239 and 196, 4 per thread 148 and 189;
/// - 1024×300×1024: 4 per thread (128 rows) 208 and 201, 2 (256 rows) 233 and 215, 1
///   (512 rows) 236 and 192; 2048×512×2048: 4 per thread (256 rows) 213 and 197, 2 223
///   and 187, 1 186 and 186; 4096×64×4096 level across the three (158–200).
///
/// On AMD Zen 4 four blocks per thread were measured (127×257×513 192 GFLOPS against
/// faer's own split's 174) and fewer were not, so other vendors keep four.
pub(super) fn split_rows_blocks_per_thread(shape: Shape, threads: usize, cpu_intel: bool) -> usize {
    if cpu_intel {
        (shape.m / (threads * SPLIT_MIN_BLOCK_ROWS)).clamp(1, SPLIT_BLOCKS_PER_THREAD)
    } else {
        SPLIT_BLOCKS_PER_THREAD
    }
}

/// The fewest rows of a block [`split_rows_blocks_per_thread`] cuts on Intel CPUs.
const SPLIT_MIN_BLOCK_ROWS: usize = 256;

/// The fewest rows of C per thread [`split_rows`] accepts (127×257×513 qualifies).
const SPLIT_MIN_ROWS: usize = 60;

/// Whether a one-thread GEMM takes the [`blocked`] AVX-512 kernel instead of faer: on
/// Intel CPUs with AVX-512, for C rows of 640 columns or more, an inner dimension of
/// 256 or more, and 16 rows or more. `cpu_intel` is whether the CPU's vendor is Intel.
///
/// Measured on 2 Intel Xeon vCPUs under KVM, one thread:
/// - faer 0.24's AVX-512 path (its `private-gemm-x86` blocking) loses 30–45% on rows of
///   768 to 1023 columns with fewer than 1024 rows (1000³: 52–65 GFLOPS through faer,
///   80–100 through the first version of the blocked kernel, OpenBLAS 107–118).
/// - With KC = 384 (see [`blocked`]), median of 21 paired rounds against OpenBLAS in
///   the same round: 2048³ 0.97 (faer 0.95), 4096³ 0.98 (faer 0.90), 1024³ and
///   768×1024×1024 the same as faer (1.02).
/// - The band reaches below k = 512, where the first version of this rule left faer:
///   1000×500×1000 through faer 55–73 GFLOPS on one thread and 103–132 on two
///   (OpenBLAS 110–113 and 186–209 in the same runs), through the 8 × 48 kernel 111 and
///   174–206; 1000×384×1000 70–83 (one thread) and 140 (two) through faer, 103–121 and
///   200–207 through the kernel. Hence k ≥ 256 since 2026-11-26: at k = 256–300
///   (1000×256×1000, 768×300×800, 2048×256×2048) both were level.
/// - The n and m edges, measured again with the 8 × 48 kernel on 2026-11-26
///   (`perf-compare --threads 1`, the rule widened so that the `ours` column ran the
///   kernel; best GFLOPS, kernel against faer): the band reaches below n = 768
///   (1000×1000×640 91 / 86, ×700 103 / 80, ×760 91 / 81, 2048×1000×640 88 / 80,
///   500×1000×700 91 / 79), not below 640 (1000×1000×576 86 / 89, ×512 110 / 116,
///   ×256 105 / 120, 2048×2048×512 106 / 115). Few rows are a band of their own, where
///   faer falls further: 16×1000×1000 53 / 39, 32×1000×1000 69 / 44, 64×1000×1000
///   77 / 43, 128×1000×1000 82 / 44, 16×4096×4096 34 / 23, 64×4096×4096 67 / 50,
///   12×2000×2000 42 / 19, 16×300×2000 60 / 45, 16×256×1000 65 / 62; with 8 rows or
///   fewer faer was level or ahead (8×1000×1000 34 / 34, 8×256×1000 43 / 86, 4×1000×1000
///   20 / 28). Hence n ≥ 640 and m ≥ 16 since then (n ≥ 768 and m ≥ 64 before).
/// - Outside this region faer stays: on narrower products (n = 576 or less) and small
///   ones it was as fast or faster. On AMD Zen 4 faer showed no such loss (1000³ at
///   105 GFLOPS, OpenBLAS 101), so other vendors keep faer everywhere.
pub(super) fn use_blocked(shape: Shape, cpu_intel: bool) -> bool {
    cpu_intel && blocked::available() && shape.m >= 16 && shape.k >= 256 && shape.n >= 640
}

/// Whether a one-thread GEMM takes the [`narrow`] AVX-512 kernel (A and B unpacked)
/// instead of faer: on Intel CPUs with AVX-512, for C of at most 64 columns, 512 rows or
/// more and an inner dimension of 256 or more. (The vector shapes, `n == 1`, never get
/// here.) On several threads such products run as row blocks of at least 512 rows, each
/// through the narrow kernel (see [`narrow_blocks_per_thread`]).
///
/// Measured on 2 Intel Xeon vCPUs under KVM, one thread, median of 7–15 interleaved
/// rounds, narrow kernel / faer / OpenBLAS in GFLOPS (the machine in a slow phase for
/// some rows: compare within a row):
/// - 4096×4096×64: 111–123 / 80–90 / 61–76; ×32: 76–78 / 55 / 50; ×16: 58 / 35 / 30;
/// - 1000×1000×64: 90–106 / 80 / 65; 512×4096×64: 101–104 / 95 / 76;
///   4096×256×64: 97 / 71 / 64; 500×1000×48: 86–88 / 80 / 68;
/// - where faer kept up: 256×4096×64 88 / 102, 256×1000×64 100 / 100, 64×4096×64 77 /
///   98, 4096×64×64 119 / 121. Hence 512 rows and k ≥ 256.
///
/// On AMD Zen 4 it was not measured, so other vendors keep faer.
pub(super) fn use_narrow(shape: Shape, cpu_intel: bool) -> bool {
    cpu_intel
        && narrow::available()
        && shape.n <= narrow::MAX_N
        && shape.m >= NARROW_MIN_ROWS
        && shape.k >= 256
}

/// Row blocks per thread for a product [`use_narrow`] takes, on several threads: as
/// many as [`SPLIT_BLOCKS_PER_THREAD`] while each keeps [`NARROW_MIN_ROWS`] rows (so it
/// still goes to the narrow kernel), or `None` when the product is not narrow or
/// cannot give every thread that many rows.
///
/// Several blocks per thread, claimed as threads come free, because the narrow kernel
/// packs nothing, so a block costs nothing to start, and a thread that falls behind
/// (a worker woken late, a busy host core) then leaves fewer rows to the other.
/// 4096×4096×64 on 2 Intel Xeon vCPUs, median of 15 interleaved rounds: 175–185 GFLOPS
/// with 4 blocks per thread against 136–151 with one (faer's own split: 142–149, in the
/// same rounds).
pub(super) fn narrow_blocks_per_thread(
    shape: Shape,
    threads: usize,
    cpu_intel: bool,
) -> Option<usize> {
    let per_thread = (shape.m / (threads * NARROW_MIN_ROWS)).min(SPLIT_BLOCKS_PER_THREAD);
    (per_thread >= 1 && use_narrow(shape, cpu_intel)).then_some(per_thread)
}

/// The fewest rows of C [`use_narrow`] sends to the narrow kernel.
const NARROW_MIN_ROWS: usize = 512;

/// Whether a GEMM on `threads` threads takes the [`few_rows`] AVX-512 kernel (B
/// streamed once, unpacked) instead of faer or the blocked kernel: on Intel CPUs with
/// AVX-512, for C of 2 to 15 rows when B has at least 2^19 elements (2 MiB, more than
/// the Xeon's L2), of 16 to 24 rows when it has at least 2^21 (8 MiB); on several
/// threads, when B has at least 2^22 (16 MiB).
///
/// Measured on 2 Intel Xeon vCPUs, 2026-11-26, `perf-compare --threads 1` with this rule
/// widened so that `ours` ran the kernel, best GFLOPS, kernel / faer / OpenBLAS:
/// - B beyond L2: 2×4096×4096 15 / 4 / 2, 8×4096×4096 32 / 14 / 8, 15×4096×4096
///   50 / 23 / 13, 12×2048×2048 52 / 19 / 14, 15×1500×1500 72 / 46 / 42, 15×1000×1000
///   71 / 41 / 42, 12×1000×1000 63 / 43 / 50, 2×1000×1000 21 / 17 / 10, 4×1000×1000
///   43 / 32 / 20, 8×1000×1000 46 / 37 / 33, 8×500×1000 57 / 42 / 39, 12×512×1024
///   61 / 53 / 48, 4×512×2048 39 / 31 / 15, 8×2048×512 52 / 42 / 26;
/// - B in L2, where the libraries' packed kernels win: 8×256×1000 65 / 90 / 52,
///   8×1000×64 69 / 60 / 138, 15×256×256 83 / 71 / 115, 8×64×4096 40 / 59 / 45;
/// - 16 to 24 rows, where the blocked kernel is the alternative (its figure, from a run
///   with this path limited to 15 rows, after the slash): 24×4096×4096 54 / 39 (faer;
///   a harness with this kernel's loop put the blocked kernel at 45 against 52),
///   16×4096×4096 48 / 25 (faer; the harness: 35 against 52), 24×2048×2048 63 / 34
///   (faer; the harness: 60 against 71), 24×1000×2000 80 / 69, 16×1000×1000
///   61–70 / 57, 20×512×1024 61–73 / 64, 24×700×749 72–74 / 71: ahead from B of 2^21
///   elements, level below.
///
/// The first version padded its scratch copy of C to a stride of 1024 floats for
/// n = 1000 (see `few_rows`), which put 15×1000×1000 at 32 GFLOPS, behind the
/// libraries; the figures above are with the stride fixed.
///
/// Two threads (`--threads 2`, the inner dimension split between them), kernel / faer's
/// own split: 2×4096×4096 26–32 / 8, 8×4096×4096 66–67 / 22–23, 15×2048×2048 76–106 /
/// 49–54, 16×4096×4096 83 / 31, 24×2048×2048 95 / 35; but 8×500×1000 102 / 104,
/// 4×512×2048 41 / 58, 15×1500×1500 78 / 93, where faer's split scaled as well or
/// better. Measured again with the scratch stride fixed, two runs, the rule lowered to
/// 2^18 on two threads: 8×500×1000 57–68 / 98–105, 8×1000×1000 61–64 / 77–80,
/// 12×1000×1000 58–67 / 95–105, 20×1000×2000 80–88 / 114, 15×1500×1500 71–80 / 78–86,
/// 4×1000×2048 45–51 / 46–48: below 2^22 elements faer's split stays ahead or level.
pub(super) fn use_few_rows(shape: Shape, threads: usize, cpu_intel: bool) -> bool {
    let b_elements = shape.k * shape.n;
    let min_b = if threads > 1 {
        1 << 22
    } else if shape.m <= 15 {
        1 << 19
    } else {
        1 << 21
    };
    cpu_intel
        && few_rows::available()
        && (2..=few_rows::MAX_M).contains(&shape.m)
        && b_elements >= min_b
}

/// True for matrix × vector (`n == 1`) and vector × matrix (`m == 1`), which take the
/// streaming kernels instead of the GEMM.
pub(super) fn is_vector_shape(shape: Shape) -> bool {
    shape.m == 1 || shape.n == 1
}
