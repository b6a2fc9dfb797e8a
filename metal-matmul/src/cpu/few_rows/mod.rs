//! Products with few rows of C (2 to [`MAX_M`]) with AVX-512, for x86-64 CPUs that
//! have AVX-512F: B is read once, row after row, and never packed.
//!
//! Why: with few rows, each element of B takes part in only `m` multiply-adds, so the
//! product is bound by reading B, and a GEMM library's packing of B (reading and
//! writing all of it once more, in panels whose rows are far apart) costs more than
//! the arithmetic. On 2 Intel Xeon vCPUs, one thread, 8×4096×4096 reached 10–14 GFLOPS
//! through faer 0.24 and 8–9 through OpenBLAS 0.3.21 (best of interleaved runs). This
//! path instead streams B in storage order, [`R_MAX`] whole rows at a time (streams
//! the hardware prefetcher follows), and adds them into every row of C, like the
//! vector × matrix kernel in `gemv` does for one row: 32–44 GFLOPS on the same shape in
//! the same runs (see `use_few_rows` in `cpu::rules` for the region and the other
//! shapes measured).
//!
//! C is built in a scratch copy whose rows are an odd number of 64-byte lines apart
//! (see [`scratch_stride`]): when n is a multiple of 1024, C's own rows (like B's) lie a
//! multiple of 4 KiB apart, so every row's chunk at the same column falls in the same
//! L1 set and each load of C must be checked against the stores to the rows before it
//! (8×4096×4096 went from 31 to 35 GFLOPS with the scratch, 16×4096×4096 from 26 to
//! 42–50 with it and A's block copied out, below). The first version padded the rows
//! by one line past a whole number of lines, which for n = 1000 made the stride 1024
//! floats, the very case it meant to avoid: 15×1000×1000 read 32 GFLOPS, and 71 with
//! the odd stride. The R_MAX columns of A a pass uses are copied into a small block
//! first, for the same reason (A's rows are k floats apart).

use super::tasks;

#[cfg(target_arch = "x86_64")]
mod avx512;

/// The most rows of C this path takes. From 16 rows on it needs a larger B than below
/// (see `use_few_rows`), where the blocked kernel is the alternative; at 32 rows the two
/// were level (32×4096×4096: 52 and 51 GFLOPS in a harness), so the border is 24.
pub(super) const MAX_M: usize = 24;

/// Rows of B added into C per pass: each pass reads and writes C once, so more rows per
/// pass mean less traffic on C; 8 loaded vectors leave registers for the rest.
const R_MAX: usize = 8;

/// Floats per AVX-512 vector.
const W: usize = 16;

/// The fewest rows of B (the inner dimension) a thread's task gets: a task costs a
/// scratch copy of C and its sum at the end.
const MIN_TASK_ROWS: usize = 256;

/// Tasks per thread on several threads: more than one, so a thread that falls behind
/// leaves less of the work to the other.
const TASKS_PER_THREAD: usize = 4;

/// Whether this CPU runs the few-rows kernel (x86-64 with AVX-512F, detected at run
/// time).
pub(super) fn available() -> bool {
    super::blocked::available()
}

/// `C = A·B` for row-major `a` (m×k), `b` (k×n) and `c` (m×n) with `m ≤ MAX_M`, the
/// inner dimension split into tasks run by `threads` threads (the caller and
/// `threads - 1` of `pool`'s workers), each adding into a scratch copy of C of its
/// own; the copies are summed into C at the end (workspace: one scratch of at most
/// `m × (n + 31)` floats per task, at most `4·threads` of them).
///
/// # Panics
/// If the CPU lacks AVX-512F (check [`available`] first), `m > MAX_M`, or the lengths
/// do not match the shape.
pub(super) fn gemm(
    pool: &rayon::ThreadPool,
    threads: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    (m, k, n): (usize, usize, usize),
) {
    assert!(available(), "the few-rows GEMM needs AVX-512F");
    assert!(m <= MAX_M, "the few-rows GEMM takes at most {MAX_M} rows");
    assert!(
        a.len() == m * k && b.len() == k * n && c.len() == m * n,
        "few-rows GEMM lengths"
    );
    if m == 0 || n == 0 {
        return;
    }
    let ldc = scratch_stride(n);
    let tasks = if threads > 1 {
        (threads * TASKS_PER_THREAD).min(k / MIN_TASK_ROWS).max(1)
    } else {
        1
    };
    let rows_per_task = k.div_ceil(tasks).next_multiple_of(R_MAX);
    let ranges: Vec<(usize, usize)> = (0..k)
        .step_by(rows_per_task.max(1))
        .map(|p0| (p0, (p0 + rows_per_task).min(k)))
        .collect();
    let mut scratch = vec![0.0f32; ranges.len().max(1) * m * ldc];
    if ranges.len() > 1 {
        let items = scratch.chunks_mut(m * ldc).zip(&ranges);
        tasks::run(pool, threads, true, items, |(acc, &range)| {
            add_product(a, b, acc, ldc, (m, k, n), range);
        });
    } else if let Some(&range) = ranges.first() {
        add_product(a, b, &mut scratch, ldc, (m, k, n), range);
    }
    let (first, rest) = scratch.split_at(m * ldc);
    for (i, row) in c.chunks_exact_mut(n).enumerate() {
        row.copy_from_slice(&first[i * ldc..i * ldc + n]);
        for other in rest.chunks_exact(m * ldc) {
            for (cv, &v) in row.iter_mut().zip(&other[i * ldc..i * ldc + n]) {
                *cv += v;
            }
        }
    }
}

/// The row stride of C's scratch copy: whole 64-byte lines, an odd number of them, so
/// that the rows' lines at one column fall in different L1 sets (64 sets of 64 bytes:
/// an odd stride in lines visits all of them before it repeats).
fn scratch_stride(n: usize) -> usize {
    let lines = n.div_ceil(W);
    (lines | 1) * W
}

/// `acc[0..m, 0..n] += A[.., p0..p1] · B[p0..p1, ..]`, where `acc`'s rows are `ldc`
/// floats apart: [`R_MAX`] rows of B per pass, then the last ones one at a time.
fn add_product(
    a: &[f32],
    b: &[f32],
    acc: &mut [f32],
    ldc: usize,
    (m, k, n): (usize, usize, usize),
    (p0, p1): (usize, usize),
) {
    assert!(
        m <= MAX_M && p1 <= k && acc.len() >= (m - 1) * ldc + n && ldc >= n && n > 0,
        "few-rows pass"
    );
    let mut a_block = [0.0f32; MAX_M * R_MAX];
    let mut p = p0;
    while p < p1 {
        let rows = R_MAX.min(p1 - p);
        for i in 0..m {
            a_block[i * R_MAX..i * R_MAX + rows].copy_from_slice(&a[i * k + p..i * k + p + rows]);
        }
        let b_rows = &b[p * n..(p + rows) * n];
        pass(&a_block, b_rows, acc, ldc, m, n, rows);
        p += rows;
    }
}

/// One pass: `acc += a_block[.., 0..rows] · b_rows`, through the kernel of `R_MAX` rows
/// when `rows == R_MAX`, else one row at a time.
fn pass(
    a_block: &[f32; MAX_M * R_MAX],
    b_rows: &[f32],
    acc: &mut [f32],
    ldc: usize,
    m: usize,
    n: usize,
    rows: usize,
) {
    assert!(
        b_rows.len() == rows * n && (1..=R_MAX).contains(&rows) && m <= MAX_M,
        "few-rows pass lengths"
    );
    assert!(acc.len() >= (m - 1) * ldc + n, "few-rows scratch");
    #[cfg(target_arch = "x86_64")]
    {
        use avx512::kernel;
        assert!(available(), "the few-rows kernel needs AVX-512F");
        let cols = n - (n.div_ceil(W) - 1) * W;
        let last = ((1u32 << cols) - 1) as u16;
        let (ap, bp, cp) = (a_block.as_ptr(), b_rows.as_ptr(), acc.as_mut_ptr());
        // SAFETY: the CPU has AVX-512F (asserted just above). `a_block` holds
        // MAX_M·R_MAX ≥ m·R_MAX floats, so a_block[i·R_MAX + r] is readable for i < m
        // and r < R_MAX (the one-row calls start r floats in and read column 0 only);
        // `b_rows` holds `rows` rows of `n` floats, `n` apart, of which each call reads
        // R_MAX (or 1, row r); `acc` holds m rows of n floats `ldc` apart (asserted
        // above), borrowed mutably here alone; n > 0 and `last` has exactly the low
        // `cols` bits set, the columns of the last 16-float chunk.
        unsafe {
            if rows == R_MAX {
                kernel::<R_MAX>(m, ap, bp, n, cp, ldc, n, last);
            } else {
                for r in 0..rows {
                    kernel::<1>(m, ap.add(r), bp.add(r * n), n, cp, ldc, n, last);
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // `available()` is false here, so `gemm` asserted before reaching this.
        let _ = (a_block, b_rows, acc, ldc, m, n, rows);
        unreachable!("the few-rows GEMM runs on x86-64 only")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::kernel_tests::{check_product, has_avx512, patterned, random};
    use proptest::prelude::*;

    fn pool() -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any count of rows up to MAX_M, any inner dimension (none, a few rows left
        /// after the last pass of eight, several tasks) and any width (whole and
        /// masked chunks), on one and two threads, with random values.
        #[test]
        fn any_shape_matches_the_reference(
            m in 1usize..=MAX_M,
            k in 0usize..1100,
            n in 1usize..90,
            threads in 1usize..=2,
            seed in any::<u64>(),
        ) {
            if !has_avx512() {
                return Ok(());
            }
            let pool = pool();
            let (a, b) = random(seed, m, k, n);
            let checked = check_product((&a, &b), (m, k, n), |a, b, c| {
                gemm(&pool, threads, a, b, c, (m, k, n));
            });
            prop_assert!(checked.is_ok(), "on {threads}: {checked:?}");
        }
    }

    #[test]
    fn every_edge_matches_the_reference() {
        if !has_avx512() {
            return;
        }
        let pool = pool();
        // 1 to 24 rows; n whole chunks and a masked last chunk (1–15 columns); k a
        // multiple of 8, with 1–7 rows left over, and long enough for several tasks;
        // n = 1000, whose scratch stride is 1008, and n = 4096 (4112).
        let shapes = [
            (2, 8, 16),
            (15, 19, 33),
            (1, 5, 1),
            (7, 300, 1000),
            (3, 1100, 47),
            (8, 2051, 64),
            (13, 7, 3),
            (24, 40, 4096),
        ];
        for threads in [1, 2] {
            for (m, k, n) in shapes {
                let (a, b) = patterned(m, k, n);
                check_product((&a, &b), (m, k, n), |a, b, c| {
                    gemm(&pool, threads, a, b, c, (m, k, n));
                })
                .unwrap_or_else(|e| panic!("on {threads}: {e}"));
            }
        }
    }

    #[test]
    fn the_scratch_stride_is_an_odd_number_of_lines() {
        for (n, stride) in [
            (1, 16),
            (16, 16),
            (17, 48),
            (1000, 1008),
            (1024, 1040),
            (4096, 4112),
        ] {
            assert_eq!(scratch_stride(n), stride, "n = {n}");
        }
    }
}
