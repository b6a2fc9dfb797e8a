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
//! On x86-64 the kernels are AVX2+FMA intrinsics ([`avx2`]), which the plan chooses
//! where the CPU has them and `FXN_CPU_SIMD` allows them (AVX-512 gains nothing here:
//! the loops wait on memory, not arithmetic), with software prefetch where the plan
//! asks for it (a matrix larger than the last-level cache). Elsewhere a portable copy
//! over fixed-width lane arrays runs.

use super::Dims;

#[cfg(target_arch = "x86_64")]
mod avx2;

/// Lanes per accumulator: two 256-bit vectors.
const LANES: usize = 16;

/// Rows (of A for `n == 1`, of B for `m == 1`) handled together, so each load of the
/// vector (or of the output block) serves this many rows.
pub(in crate::cpu) const ROWS: usize = 4;

/// `C (m×1) = A (m×k) · B (k×1)` on the calling thread, in AVX2+FMA where `avx2`,
/// which asks for A's next rows ahead where `prefetch` (the portable copy ignores it).
///
/// # Panics
/// If `dims.n != 1`, the slices do not hold `dims`, or `avx2` on a CPU without AVX2
/// and FMA.
pub(super) fn matrix_vector(
    (avx2, prefetch): (bool, bool),
    a: &[f32],
    x: &[f32],
    c: &mut [f32],
    d: Dims,
) {
    assert_eq!(d.n, 1, "matrix × vector needs n = 1");
    d.assert_fits(a, x, c);
    if d.m == 0 {
        return;
    }
    // B is one column: its k floats are `ldb` apart.
    let strided;
    let x = if d.ldb == 1 {
        &x[..d.k]
    } else {
        strided = x
            .iter()
            .step_by(d.ldb)
            .take(d.k)
            .copied()
            .collect::<Vec<_>>();
        &strided[..]
    };
    if d.lda == d.k && d.ldc == 1 {
        mv_rows((avx2, prefetch), &a[..d.m * d.k], x, &mut c[..d.m], d.k);
    } else {
        for i in 0..d.m {
            let row = &a[i * d.lda..i * d.lda + d.k];
            let out = std::slice::from_mut(&mut c[i * d.ldc]);
            mv_rows((avx2, false), row, x, out, d.k);
        }
    }
}

/// `C (1×n) = A (1×k) · B (k×n)` on the calling thread: the rows of B streamed whole,
/// in storage order, four at a time into a block of C that stays in L1 (reading a
/// column block of B instead, its rows cut into pieces, starves the hardware
/// prefetcher). In AVX2+FMA where `avx2`, which asks for the next rows of B ahead
/// where `prefetch` (the portable copy ignores it).
///
/// # Panics
/// If `dims.m != 1`, the slices do not hold `dims`, or `avx2` on a CPU without AVX2
/// and FMA.
pub(super) fn vector_matrix(
    (avx2, prefetch): (bool, bool),
    x: &[f32],
    b: &[f32],
    c: &mut [f32],
    d: Dims,
) {
    assert_eq!(d.m, 1, "vector × matrix needs m = 1");
    d.assert_fits(x, b, c);
    if d.n == 0 {
        return;
    }
    vm_cols((avx2, prefetch), &x[..d.k], b, d.ldb, &mut c[..d.n]);
}

/// Whether the AVX2+FMA copy runs: where `avx2` asks for it. Panics where it asks on a
/// CPU without AVX2 and FMA (the plan never does).
fn use_avx2(avx2: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    let has =
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    let has = false;
    assert!(
        !avx2 || has,
        "the AVX2 vector kernels on a CPU without AVX2 and FMA"
    );
    avx2
}

/// Matrix × vector on one thread, in AVX2+FMA where `avx2` (prefetching where
/// `prefetch`).
fn mv_rows((avx2, prefetch): (bool, bool), a: &[f32], x: &[f32], c: &mut [f32], k: usize) {
    #[cfg(target_arch = "x86_64")]
    if use_avx2(avx2) {
        // SAFETY: the CPU has AVX2 and FMA (`use_avx2` checked), the only requirement
        // of a `target_feature` function; its body is safe code.
        unsafe { avx2::mv_rows(a, x, c, k, prefetch) };
        return;
    }
    // Elsewhere only the check runs (a plan asking for AVX2 there panics), and the
    // portable copy has no prefetch to ask for.
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (use_avx2(avx2), prefetch);
    mv_rows_generic::<{ HAS_FMA }>(a, x, c, k);
}

/// Vector × matrix into the columns `0..c.len()` of `b` (rows `ldb` apart) on one
/// thread, in AVX2+FMA where `avx2` (prefetching where `prefetch`).
fn vm_cols((avx2, prefetch): (bool, bool), x: &[f32], b: &[f32], ldb: usize, c: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if use_avx2(avx2) {
        // SAFETY: the CPU has AVX2 and FMA (`use_avx2` checked), the only requirement
        // of a `target_feature` function; its body is safe code.
        unsafe { avx2::vm_cols(x, b, ldb, c, prefetch) };
        return;
    }
    // Elsewhere only the check runs (a plan asking for AVX2 there panics), and the
    // portable copy has no prefetch to ask for.
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (use_avx2(avx2), prefetch);
    vm_cols_generic::<{ HAS_FMA }>(x, b, ldb, c);
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

/// `c[j] = Σ_p x[p]·b[p, j]` for the columns `0..c.len()`: the block of `c`
/// stays in L1 while four rows of B at a time stream through it.
#[inline(always)]
fn vm_cols_generic<const FMA: bool>(x: &[f32], b: &[f32], ldb: usize, c: &mut [f32]) {
    let width = c.len();
    let row = |p: usize| &b[p * ldb..p * ldb + width];
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
    use crate::cpu::kernels::tests::{check_product, random};
    use crate::numeric::DEFAULT_TOLERANCE;
    use crate::verify::full as verify_product;

    /// The copies this CPU runs, as `(avx2, prefetch)`: portable always, AVX2 with and
    /// without prefetch where it has AVX2 and FMA.
    fn copies() -> Vec<(bool, bool)> {
        let features = crate::cpu::features::CpuFeatures::detect();
        if !features.avx2_fma {
            eprintln!("skipped the AVX2 vector kernels: this CPU lacks AVX2 and FMA");
        }
        [(false, false), (true, false), (true, true)]
            .into_iter()
            .filter(|&(avx2, _)| !avx2 || features.avx2_fma)
            .collect()
    }

    #[test]
    fn matrix_vector_matches_the_reference() {
        // Whole groups of four rows and the rows after them, whole and partial lanes.
        for (m, k) in [
            (1, 1),
            (3, 5),
            (4, 16),
            (7, 33),
            (9, 100),
            (64, 17),
            (301, 199),
        ] {
            let (a, x) = random(m as u64, m, k, 1);
            let dims = Dims::packed(Shape::new(m, k, 1));
            for copy in copies() {
                let run = |a: &[f32], x: &[f32], c: &mut [f32]| matrix_vector(copy, a, x, c, dims);
                check_product((&a, &x), (m, k, 1), run)
                    .unwrap_or_else(|e| panic!("(avx2, prefetch) {copy:?}: {e}"));
            }
        }
    }

    #[test]
    fn vector_matrix_matches_the_reference() {
        for (k, n) in [
            (1, 1),
            (5, 3),
            (4, 16),
            (7, 33),
            (9, 100),
            (3, 2049),
            (203, 77),
        ] {
            let (x, b) = random(n as u64, 1, k, n);
            let dims = Dims::packed(Shape::new(1, k, n));
            for copy in copies() {
                let run = |x: &[f32], b: &[f32], c: &mut [f32]| vector_matrix(copy, x, b, c, dims);
                check_product((&x, &b), (1, k, n), run)
                    .unwrap_or_else(|e| panic!("(avx2, prefetch) {copy:?}: {e}"));
            }
        }
    }

    #[test]
    fn strided_operands_match_the_reference() {
        for copy in copies() {
            strided_operands(copy);
        }
    }

    fn strided_operands(copy: (bool, bool)) {
        // A's rows 3 floats longer than k, B's column 2 apart, C's 5: matrix × vector.
        let (m, k) = (9, 37);
        let (a, x) = random(1, m, k, 1);
        let a_wide: Vec<f32> = a
            .chunks(k)
            .flat_map(|r| r.iter().copied().chain([9.0; 3]))
            .collect();
        let x_wide: Vec<f32> = x.iter().flat_map(|&v| [v, f32::NAN]).collect();
        let mut c = vec![f32::NAN; (m - 1) * 5 + 1];
        let dims = Dims {
            m,
            k,
            n: 1,
            lda: k + 3,
            ldb: 2,
            ldc: 5,
        };
        matrix_vector(copy, &a_wide, &x_wide, &mut c, dims);
        let c: Vec<f32> = c.iter().step_by(5).copied().collect();
        verify_product(&a, &x, &c, Shape::new(m, k, 1), DEFAULT_TOLERANCE).unwrap();
        // Vector × matrix on columns 3..40 of a 50-column B.
        let (k, n) = (21, 50);
        let (x, b) = random(2, 1, k, n);
        let mut c = vec![f32::NAN; 37];
        let dims = Dims {
            m: 1,
            k,
            n: 37,
            lda: k,
            ldb: n,
            ldc: 37,
        };
        vector_matrix(copy, &x, &b[3..], &mut c, dims);
        let b_cols: Vec<f32> = b.chunks(n).flat_map(|r| r[3..40].to_vec()).collect();
        verify_product(&x, &b_cols, &c, Shape::new(1, k, 37), DEFAULT_TOLERANCE).unwrap();
    }

    #[test]
    fn the_portable_kernels_agree_with_the_reference() {
        let (m, k, n) = (5, 37, 41);
        let (a, x) = random(5, m, k, 1);
        let mut c = vec![f32::NAN; m];
        mv_rows_generic::<false>(&a, &x, &mut c, k);
        verify_product(&a, &x, &c, Shape::new(m, k, 1), DEFAULT_TOLERANCE).unwrap();
        let (x, b) = random(6, 1, k, n);
        let mut c = vec![f32::NAN; n];
        vm_cols_generic::<false>(&x, &b, n, &mut c);
        verify_product(&x, &b, &c, Shape::new(1, k, n), DEFAULT_TOLERANCE).unwrap();
    }
}
