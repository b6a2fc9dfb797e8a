//! The memory-bound vector shapes: matrix × vector (`n == 1`) and vector × matrix
//! (`m == 1`).
//!
//! A GEMM library packs B (or A) into panels before its micro-kernel runs; when one side
//! is a vector, packing costs as much memory traffic as the whole product and
//! throughput collapses (matrixmultiply 0.3 reaches about 3 GFLOPS on 1×4096×4096,
//! where streaming the matrix once reaches 16 per core). These kernels read the matrix
//! exactly once, in storage order, with several independent FMA chains, and split the
//! *output* between threads so no two threads write the same element and no reduction
//! is needed.
//!
//! On x86-64 the kernels are AVX2+FMA intrinsics ([`avx2`]), chosen at run time when
//! the CPU has them (AVX-512 gains nothing here: the loops wait on memory, not
//! arithmetic). Elsewhere a portable copy over fixed-width lane arrays runs.

use super::tasks;

#[cfg(target_arch = "x86_64")]
mod avx2;

/// Lanes per accumulator: two 256-bit vectors.
const LANES: usize = 16;

/// Rows (of A for `n == 1`, of B for `m == 1`) handled together, so each load of the
/// vector (or of the output block) serves this many rows.
const ROWS: usize = 4;

/// Vector × matrix tasks per thread: more than one, so a worker that wakes late (its
/// core busy, or a virtual CPU halted) takes a share of the work instead of leaving its
/// whole half to the first worker. Few, because each task past the first adds into a
/// partial row of its own (16 per thread measured 0.97–0.98 of OpenBLAS, like 4; 64
/// fell to 0.86–0.92).
const TASKS_PER_THREAD: usize = 4;

/// Matrix × vector tasks per thread: many, because a task's rows are whole outputs (no
/// partial sums), so the only cost of a task is claiming it, and the last task of a
/// call is what one thread waits on while the other finishes. On 2 Intel Xeon vCPUs,
/// 4096×4096×1 on two threads, median of 30 rounds each against OpenBLAS's `sgemv` in
/// the same round: 0.945 with 4 tasks per thread, 0.99–1.02 with 16, 1.03–1.04 with 64.
const MV_TASKS_PER_THREAD: usize = 64;

/// The fewest elements of A in a matrix × vector task (64 KiB): claiming a task costs
/// an atomic add and an uncontended lock, nothing against streaming this much.
const MV_MIN_TASK_ELEMENTS: usize = 16_384;

/// `c (m) = a (m×k, row-major) · x (k)`, with the rows of `c` split among `threads`
/// threads (the caller and `threads - 1` of `pool`'s workers) when `threads > 1`.
pub(crate) fn matrix_vector(
    pool: &rayon::ThreadPool,
    a: &[f32],
    x: &[f32],
    c: &mut [f32],
    k: usize,
    threads: usize,
) {
    debug_assert_eq!(a.len(), c.len() * k);
    debug_assert_eq!(x.len(), k);
    let m = c.len();
    if threads <= 1 || m < 2 * ROWS {
        mv_rows(a, x, c, k);
        return;
    }
    let rows_per_task = m
        .div_ceil(threads * MV_TASKS_PER_THREAD)
        .max(MV_MIN_TASK_ELEMENTS.div_ceil(k.max(1)))
        .next_multiple_of(ROWS);
    let tasks = c.chunks_mut(rows_per_task).zip(a.chunks(rows_per_task * k));
    tasks::run(pool, threads, true, tasks, |(c, a)| mv_rows(a, x, c, k));
}

/// `c (n) = x (k) · b (k×n, row-major)`, split among `threads` threads (the caller and
/// `threads - 1` of `pool`'s workers) when `threads > 1`.
///
/// Each thread streams whole rows of B, contiguous in memory (reading a column block
/// instead, rows cut into pieces, starves the hardware prefetcher: measured at a third of
/// the speed on 1×4096×4096). So the threads split the *rows* of B, the first adding
/// into `c` and each other one into a partial row of its own (workspace:
/// `(4·threads - 1)·n` floats at most), summed at the end. When B has too few rows to split, the
/// threads split the columns of `c` instead.
pub(crate) fn vector_matrix(
    pool: &rayon::ThreadPool,
    x: &[f32],
    b: &[f32],
    c: &mut [f32],
    n: usize,
    threads: usize,
) {
    debug_assert_eq!(b.len(), x.len() * n);
    debug_assert_eq!(c.len(), n);
    let k = x.len();
    if threads <= 1 {
        vm_cols(x, b, c, n, 0);
        return;
    }
    if k >= threads * TASKS_PER_THREAD * 4 * ROWS {
        let rows_per_task = k
            .div_ceil(threads * TASKS_PER_THREAD)
            .next_multiple_of(ROWS);
        let tasks = k.div_ceil(rows_per_task);
        let mut partials = vec![0.0f32; (tasks - 1) * n];
        let outs: Vec<&mut [f32]> = std::iter::once(&mut *c)
            .chain(partials.chunks_exact_mut(n))
            .collect();
        let tasks = outs
            .into_iter()
            .zip(x.chunks(rows_per_task))
            .zip(b.chunks(rows_per_task * n));
        tasks::run(pool, threads, true, tasks, |((out, x), b)| {
            vm_cols(x, b, out, n, 0);
        });
        for partial in partials.chunks_exact(n) {
            for (cv, &pv) in c.iter_mut().zip(partial) {
                *cv += pv;
            }
        }
        return;
    }
    let cols_per_task = n.div_ceil(threads).next_multiple_of(LANES);
    let tasks = c.chunks_mut(cols_per_task).enumerate();
    tasks::run(pool, threads, true, tasks, |(block, c)| {
        vm_cols(x, b, c, n, block * cols_per_task);
    });
}

/// Matrix × vector on one thread, with the widest kernel the CPU runs.
fn mv_rows(a: &[f32], x: &[f32], c: &mut [f32], k: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked just above), the only requirement
        // of a `target_feature` function; its body is safe code.
        unsafe { avx2::mv_rows(a, x, c, k) };
        return;
    }
    mv_rows_generic::<{ HAS_FMA }>(a, x, c, k);
}

/// Vector × matrix into the columns `j0..j0 + c.len()` on one thread.
fn vm_cols(x: &[f32], b: &[f32], c: &mut [f32], n: usize, j0: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked just above), the only requirement
        // of a `target_feature` function; its body is safe code.
        unsafe { avx2::vm_cols(x, b, c, n, j0) };
        return;
    }
    vm_cols_generic::<{ HAS_FMA }>(x, b, c, n, j0);
}

/// Whether `f32::mul_add` is one instruction without run-time detection: aarch64 always
/// has a fused multiply-add; elsewhere the portable copy multiplies then adds, because
/// `mul_add` without hardware support is a slow library call.
const HAS_FMA: bool = cfg!(target_arch = "aarch64");

/// `acc + a·b`, fused when `FMA`.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, acc: f32) -> f32 {
    if FMA { a.mul_add(b, acc) } else { acc + a * b }
}

/// Sums the lanes of an accumulator.
#[inline(always)]
fn hsum(acc: &[f32; LANES]) -> f32 {
    // Pairwise, so the result does not depend on one long serial chain.
    let mut v = *acc;
    let mut width = LANES / 2;
    while width > 0 {
        for l in 0..width {
            v[l] += v[l + width];
        }
        width /= 2;
    }
    v[0]
}

/// A chunk of exactly [`LANES`] elements as an array reference, so the kernels index it
/// without bounds checks. The callers pass `chunks_exact(LANES)` items.
#[inline(always)]
fn lanes(chunk: &[f32]) -> &[f32; LANES] {
    chunk.try_into().expect("a chunk of LANES elements")
}

/// The mutable form of [`lanes`].
#[inline(always)]
fn lanes_mut(chunk: &mut [f32]) -> &mut [f32; LANES] {
    chunk.try_into().expect("a chunk of LANES elements")
}

/// `c[i] = a[i, :] · x` for every row of `a`, four rows at a time so each load of `x`
/// feeds four independent accumulators.
#[inline(always)]
fn mv_rows_generic<const FMA: bool>(a: &[f32], x: &[f32], c: &mut [f32], k: usize) {
    debug_assert!(k > 0);
    let body = k - k % LANES;
    let (x_body, x_tail) = x.split_at(body);
    let mut quads = a.chunks_exact(ROWS * k);
    let mut out = c.chunks_exact_mut(ROWS);
    for (c4, rows) in (&mut out).zip(&mut quads) {
        let (r0, rest) = rows.split_at(k);
        let (r1, rest) = rest.split_at(k);
        let (r2, r3) = rest.split_at(k);
        let mut acc = [[0.0f32; LANES]; ROWS];
        for ((((xs, a0), a1), a2), a3) in x_body
            .chunks_exact(LANES)
            .zip(r0.chunks_exact(LANES))
            .zip(r1.chunks_exact(LANES))
            .zip(r2.chunks_exact(LANES))
            .zip(r3.chunks_exact(LANES))
        {
            let xs = lanes(xs);
            for (acc, av) in acc.iter_mut().zip([a0, a1, a2, a3]) {
                let av = lanes(av);
                for l in 0..LANES {
                    acc[l] = madd::<FMA>(av[l], xs[l], acc[l]);
                }
            }
        }
        for ((ci, row), acc) in c4.iter_mut().zip([r0, r1, r2, r3]).zip(&acc) {
            let mut sum = hsum(acc);
            for (&av, &xv) in row[body..].iter().zip(x_tail) {
                sum = madd::<FMA>(av, xv, sum);
            }
            *ci = sum;
        }
    }
    let rest = quads.remainder();
    for (ci, row) in out.into_remainder().iter_mut().zip(rest.chunks_exact(k)) {
        let mut acc = [0.0f32; LANES];
        for (av, xs) in row.chunks_exact(LANES).zip(x_body.chunks_exact(LANES)) {
            let (av, xs) = (lanes(av), lanes(xs));
            for l in 0..LANES {
                acc[l] = madd::<FMA>(av[l], xs[l], acc[l]);
            }
        }
        let mut sum = hsum(&acc);
        for (&av, &xv) in row[body..].iter().zip(x_tail) {
            sum = madd::<FMA>(av, xv, sum);
        }
        *ci = sum;
    }
}

/// `c[j - j0] = Σ_p x[p]·b[p, j]` for the columns `j0..j0 + c.len()`: the block of `c`
/// stays in L1 while four rows of B at a time stream through it.
#[inline(always)]
fn vm_cols_generic<const FMA: bool>(x: &[f32], b: &[f32], c: &mut [f32], n: usize, j0: usize) {
    let width = c.len();
    let row = |p: usize| &b[p * n + j0..p * n + j0 + width];
    let k = x.len();
    let groups = k / ROWS;
    c.fill(0.0);
    for g in 0..groups {
        let p = g * ROWS;
        let (r0, r1, r2, r3) = (row(p), row(p + 1), row(p + 2), row(p + 3));
        let (x0, x1, x2, x3) = (x[p], x[p + 1], x[p + 2], x[p + 3]);
        let mut cs = c.chunks_exact_mut(LANES);
        for ((((cv, b0), b1), b2), b3) in (&mut cs)
            .zip(r0.chunks_exact(LANES))
            .zip(r1.chunks_exact(LANES))
            .zip(r2.chunks_exact(LANES))
            .zip(r3.chunks_exact(LANES))
        {
            let cv = lanes_mut(cv);
            let (b0, b1, b2, b3) = (lanes(b0), lanes(b1), lanes(b2), lanes(b3));
            for l in 0..LANES {
                let s = madd::<FMA>(x0, b0[l], cv[l]);
                let s = madd::<FMA>(x1, b1[l], s);
                let s = madd::<FMA>(x2, b2[l], s);
                cv[l] = madd::<FMA>(x3, b3[l], s);
            }
        }
        let done = width - width % LANES;
        for (t, cv) in cs.into_remainder().iter_mut().enumerate() {
            let j = done + t;
            let s = madd::<FMA>(x0, r0[j], *cv);
            let s = madd::<FMA>(x1, r1[j], s);
            let s = madd::<FMA>(x2, r2[j], s);
            *cv = madd::<FMA>(x3, r3[j], s);
        }
    }
    for (p, &xp) in x.iter().enumerate().skip(groups * ROWS) {
        for (cv, &bv) in c.iter_mut().zip(row(p)) {
            *cv = madd::<FMA>(xp, bv, *cv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Shape;
    use crate::numeric::{DEFAULT_TOLERANCE, verify_product};

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
                (h % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// A pool of three workers, the most threads the tests ask for.
    fn pool() -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap()
    }

    #[test]
    fn matrix_vector_matches_the_reference() {
        let pool = pool();
        for (m, k) in [
            (1, 1),
            (3, 5),
            (4, 16),
            (7, 33),
            (9, 100),
            (64, 17),
            (130, 257),
            // Several tasks of at least 64 KiB each on two and three threads, the last
            // one short and not a multiple of ROWS.
            (301, 199),
            (1000, 70),
        ] {
            let a = values(m * k, 1);
            let x = values(k, 2);
            for threads in [1, 2, 3] {
                let mut c = vec![f32::NAN; m];
                matrix_vector(&pool, &a, &x, &mut c, k, threads);
                verify_product(&a, &x, &c, Shape::new(m, k, 1), DEFAULT_TOLERANCE)
                    .unwrap_or_else(|e| panic!("{m}×{k}, {threads} threads: {e}"));
            }
        }
    }

    #[test]
    fn vector_matrix_matches_the_reference() {
        let pool = pool();
        for (k, n) in [
            (1, 1),
            (5, 3),
            (4, 16),
            (7, 33),
            (9, 100),
            (17, 64),
            (3, 2049),
            (6, 4500),
            (64, 40),
            (203, 77),
        ] {
            let x = values(k, 3);
            let b = values(k * n, 4);
            for threads in [1, 2, 3] {
                let mut c = vec![f32::NAN; n];
                vector_matrix(&pool, &x, &b, &mut c, n, threads);
                verify_product(&x, &b, &c, Shape::new(1, k, n), DEFAULT_TOLERANCE)
                    .unwrap_or_else(|e| panic!("{k}×{n}, {threads} threads: {e}"));
            }
        }
    }

    #[test]
    fn the_portable_kernels_agree_with_the_reference() {
        let (m, k, n) = (5, 37, 41);
        let a = values(m * k, 5);
        let x = values(k, 6);
        let mut c = vec![f32::NAN; m];
        mv_rows_generic::<false>(&a, &x, &mut c, k);
        verify_product(&a, &x, &c, Shape::new(m, k, 1), DEFAULT_TOLERANCE).unwrap();
        let b = values(k * n, 7);
        let mut c = vec![f32::NAN; n];
        vm_cols_generic::<false>(&x, &b, &mut c, n, 0);
        verify_product(&x, &b, &c, Shape::new(1, k, n), DEFAULT_TOLERANCE).unwrap();
    }
}
