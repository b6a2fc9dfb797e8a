//! The vector kernels in AVX2+FMA intrinsics: 256-bit loads, two accumulators per row
//! of A (matrix × vector), eight rows of B per pass over a block of C (vector × matrix).
//! With `PREFETCH`, each pass asks for the rows of the next one into L2, a line per row
//! per step, as it goes: for a matrix larger than the last-level cache, where the
//! hardware prefetcher alone leaves the loop waiting on DRAM.
//!
//! Every function here requires a CPU with AVX2 and FMA; the callers check that with
//! `is_x86_feature_detected!` before calling.
//!
//! The public entry points are thin `#[target_feature]` wrappers around
//! `#[inline(always)]` bodies, which then compile with AVX2 and FMA. The bodies are
//! `unsafe fn`s without the attribute, so their intrinsics sit in `unsafe` blocks that
//! no compiler flags as unneeded.

use std::arch::x86_64::{
    __m256, _MM_HINT_T1, _mm_add_ps, _mm_add_ss, _mm_cvtss_f32, _mm_movehl_ps, _mm_prefetch,
    _mm_shuffle_ps, _mm256_add_ps, _mm256_castps256_ps128, _mm256_extractf128_ps, _mm256_fmadd_ps,
    _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps,
};

use super::ROWS;

/// Rows of B added into the block of C per pass: eight halves the loads and stores of
/// C per element of B against four.
const VM_ROWS: usize = 8;

/// Floats in one 256-bit register.
const W: usize = 8;

/// The sum of the eight lanes of `v`.
///
/// # Safety
/// The CPU must have AVX2.
#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    // SAFETY: the caller guarantees AVX2; these intrinsics touch registers only.
    unsafe {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
        _mm_cvtss_f32(s)
    }
}

/// `c[i] = a[i, :] · x` for every row of `a` (`c.len()` rows of `k`), asking for the
/// next rows ahead where `prefetch`.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn mv_rows(a: &[f32], x: &[f32], c: &mut [f32], k: usize, prefetch: bool) {
    // SAFETY: this function's own contract: the CPU has AVX2 and FMA.
    unsafe {
        if prefetch {
            mv_rows_body::<true>(a, x, c, k);
        } else {
            mv_rows_body::<false>(a, x, c, k);
        }
    }
}

/// Asks for the cache line at `p` into L2 (and L3); the line is only fetched.
///
/// # Safety
/// The CPU must have SSE (every x86-64 CPU does).
#[inline(always)]
unsafe fn prefetch_l2(p: *const f32) {
    // SAFETY: a prefetch never faults, whatever the address, and writes nothing; the
    // callers pass addresses inside their slices anyway.
    unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
}

/// The body of [`mv_rows`], inlined into it: rows in groups of [`ROWS`], the next
/// group asked for ahead where `PREFETCH`.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[inline(always)]
unsafe fn mv_rows_body<const PREFETCH: bool>(a: &[f32], x: &[f32], c: &mut [f32], k: usize) {
    let m = c.len();
    assert!(a.len() == m * k && x.len() == k, "matrix × vector lengths");
    let body = k - k % (2 * W);
    let xp = x.as_ptr();
    let mut i = 0;
    while i + ROWS <= m {
        let r = a[i * k..].as_ptr();
        // The next group's rows, where there is a whole one.
        let ahead = PREFETCH && i + 2 * ROWS <= m;
        // SAFETY: the caller guarantees AVX2 and FMA; register-only intrinsics.
        let mut acc = unsafe { [_mm256_setzero_ps(); 2 * ROWS] };
        let mut p = 0;
        while p < body {
            // SAFETY: p + 16 ≤ body ≤ k, so x[p..p + 16] is in bounds, and for each of
            // the ROWS rows (i + ROWS ≤ m) so is a[(i + row)·k + p ..][..16], since
            // a.len() == m·k (asserted above); where `ahead`, i + 2·ROWS ≤ m, so the
            // next group's a[(i + ROWS + row)·k + p] is in bounds too.
            unsafe {
                if ahead {
                    for row in 0..ROWS {
                        prefetch_l2(r.add((ROWS + row) * k + p));
                    }
                }
                let x0 = _mm256_loadu_ps(xp.add(p));
                let x1 = _mm256_loadu_ps(xp.add(p + W));
                for row in 0..ROWS {
                    let rp = r.add(row * k + p);
                    acc[2 * row] = _mm256_fmadd_ps(_mm256_loadu_ps(rp), x0, acc[2 * row]);
                    acc[2 * row + 1] =
                        _mm256_fmadd_ps(_mm256_loadu_ps(rp.add(W)), x1, acc[2 * row + 1]);
                }
            }
            p += 2 * W;
        }
        for row in 0..ROWS {
            // SAFETY: the caller guarantees AVX2 and FMA; register-only intrinsics.
            let mut sum = unsafe { hsum(_mm256_add_ps(acc[2 * row], acc[2 * row + 1])) };
            let a_row = &a[(i + row) * k..(i + row + 1) * k];
            for (&av, &xv) in a_row[body..].iter().zip(&x[body..]) {
                sum = av.mul_add(xv, sum);
            }
            c[i + row] = sum;
        }
        i += ROWS;
    }
    while i < m {
        let a_row = &a[i * k..(i + 1) * k];
        // SAFETY: the caller guarantees AVX2 and FMA; register-only intrinsics.
        let (mut acc0, mut acc1) = unsafe { (_mm256_setzero_ps(), _mm256_setzero_ps()) };
        let mut p = 0;
        while p < body {
            // SAFETY: p + 16 ≤ body ≤ k = a_row.len() = x.len().
            unsafe {
                let rp = a_row.as_ptr().add(p);
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(rp), _mm256_loadu_ps(xp.add(p)), acc0);
                acc1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(rp.add(W)),
                    _mm256_loadu_ps(xp.add(p + W)),
                    acc1,
                );
            }
            p += 2 * W;
        }
        // SAFETY: the caller guarantees AVX2 and FMA; register-only intrinsics.
        let mut sum = unsafe { hsum(_mm256_add_ps(acc0, acc1)) };
        for (&av, &xv) in a_row[body..].iter().zip(&x[body..]) {
            sum = av.mul_add(xv, sum);
        }
        c[i] = sum;
        i += 1;
    }
}

/// `c[j] = Σ_p x[p]·b[p, j]` for the columns `0..c.len()` of `b`, whose `k = x.len()`
/// rows are `ldb` floats apart, asking for the next pass's rows ahead where `prefetch`.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn vm_cols(x: &[f32], b: &[f32], ldb: usize, c: &mut [f32], prefetch: bool) {
    // SAFETY: this function's own contract: the CPU has AVX2 and FMA.
    unsafe {
        if prefetch {
            vm_cols_body::<true>(x, b, ldb, c);
        } else {
            vm_cols_body::<false>(x, b, ldb, c);
        }
    }
}

/// The body of [`vm_cols`], inlined into it: passes of [`VM_ROWS`] rows of B over the
/// block of C, the next pass's rows asked for ahead where `PREFETCH`.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[inline(always)]
unsafe fn vm_cols_body<const PREFETCH: bool>(x: &[f32], b: &[f32], n: usize, c: &mut [f32]) {
    let k = x.len();
    let width = c.len();
    assert!(
        k > 0 && width <= n && b.len() >= (k - 1) * n + width,
        "vector × matrix lengths"
    );
    let body = width - width % (2 * W);
    let cp = c.as_mut_ptr();
    c.fill(0.0);
    let mut p = 0;
    while p + VM_ROWS <= k {
        let xs: [__m256; VM_ROWS] = std::array::from_fn(|r| {
            // SAFETY: the caller guarantees AVX2 and FMA; register-only intrinsics.
            unsafe { _mm256_set1_ps(x[p + r]) }
        });
        let base = b[p * n..].as_ptr();
        // The next pass's rows, where there is a whole one.
        let ahead = PREFETCH && p + 2 * VM_ROWS <= k;
        let mut j = 0;
        while j < body {
            // SAFETY: j + 16 ≤ body ≤ width, so c[j..j + 16] is in bounds; for each of
            // the VM_ROWS rows p + r < k, b[(p + r)·n + j ..][..16] ends before
            // (p + r)·n + width ≤ (k - 1)·n + width ≤ b.len() (asserted above); where
            // `ahead`, the rows p + VM_ROWS + r < k are in bounds the same way.
            unsafe {
                if ahead {
                    for r in 0..VM_ROWS {
                        prefetch_l2(base.add((VM_ROWS + r) * n + j));
                    }
                }
                let mut c0 = _mm256_loadu_ps(cp.add(j));
                let mut c1 = _mm256_loadu_ps(cp.add(j + W));
                for (r, xr) in xs.iter().enumerate() {
                    let bp = base.add(r * n + j);
                    c0 = _mm256_fmadd_ps(*xr, _mm256_loadu_ps(bp), c0);
                    c1 = _mm256_fmadd_ps(*xr, _mm256_loadu_ps(bp.add(W)), c1);
                }
                _mm256_storeu_ps(cp.add(j), c0);
                _mm256_storeu_ps(cp.add(j + W), c1);
            }
            j += 2 * W;
        }
        for r in 0..VM_ROWS {
            let row = &b[(p + r) * n..(p + r) * n + width];
            for (cv, &bv) in c[body..].iter_mut().zip(&row[body..]) {
                *cv = x[p + r].mul_add(bv, *cv);
            }
        }
        p += VM_ROWS;
    }
    while p < k {
        let row = &b[p * n..p * n + width];
        for (cv, &bv) in c.iter_mut().zip(row) {
            *cv = x[p].mul_add(bv, *cv);
        }
        p += 1;
    }
}
