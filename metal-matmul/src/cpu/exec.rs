//! Carrying out a [`Plan`]: its kernel over the blocks of its split, on the backend's
//! pool. Nothing here chooses; `cpu::plan` has chosen.

use super::kernels::{Dims, Isa, Kernel, blocked, faer_parallel, few_rows};
use super::plan::{Plan, Split};
use super::tasks::{self, Join};
use crate::Shape;

/// `C = A·B` for the dense row-major `shape` as `plan` says, on `pool` (and the calling
/// thread). Allocates only the scratch of an inner split (one C of `m` rows per range,
/// at most `4·threads` of them) and the kernels' own per-thread buffers.
///
/// # Panics
/// If the slices are not `shape`'s lengths or the plan's kernel is not available on
/// this CPU (the plan never chooses one that is not).
pub(super) fn run(
    pool: &rayon::ThreadPool,
    plan: Plan,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    shape: Shape,
) {
    let dims = Dims::packed(shape);
    dims.assert_fits(a, b, c);
    let kernel = plan.kernel;
    match plan.split {
        Split::One => kernel.run(a, b, c, dims),
        Split::Rows {
            threads,
            rows,
            join,
        } => {
            let (lda, ldc) = (dims.lda, dims.ldc);
            let blocks = c.chunks_mut(rows * ldc).zip(a.chunks(rows * lda));
            tasks::run(pool, threads, join, blocks, |(c, a)| {
                kernel.run(a, b, c, dims.with_rows(c.len() / ldc));
            });
        }
        Split::Columns {
            threads,
            cols,
            join,
        } => {
            assert_eq!(shape.m, 1, "a column split needs a one-row C");
            let blocks = c.chunks_mut(cols).enumerate();
            tasks::run(pool, threads, join, blocks, |(i, c)| {
                let block = Dims {
                    n: c.len(),
                    ldc: c.len(),
                    ..dims
                };
                kernel.run(a, &b[i * cols..], c, block);
            });
        }
        Split::Inner {
            threads,
            depth,
            join,
        } => inner(pool, kernel, (threads, depth, join), a, b, c, dims),
        Split::Shared { threads, chunks } => match kernel {
            Kernel::Blocked(Isa::Avx2) => {
                blocked::shared::gemm::<blocked::Avx2>(pool, (threads, chunks), a, b, c, dims);
            }
            Kernel::Blocked(Isa::Avx512) => {
                blocked::shared::gemm::<blocked::Avx512>(pool, (threads, chunks), a, b, c, dims);
            }
            _ => panic!("a shared-B split runs the blocked kernel, not {kernel:?}"),
        },
        Split::Faer { threads } => {
            let Kernel::Faer { avx2_only } = kernel else {
                panic!("faer's own split runs faer, not {kernel:?}");
            };
            pool.install(|| faer_parallel(avx2_only, a, b, c, dims, threads));
        }
    }
}

/// The inner dimension in ranges of `depth` steps, each range's product written into a
/// scratch C of its own whose rows are [`few_rows::scratch_stride`] apart (an odd number
/// of cache lines), then summed into C. One range runs on the calling thread.
fn inner(
    pool: &rayon::ThreadPool,
    kernel: Kernel,
    (threads, depth, join): (usize, usize, Join),
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    d: Dims,
) {
    let depth = depth.max(1);
    let ldc = few_rows::scratch_stride(d.n);
    let ranges: Vec<(usize, usize)> = (0..d.k)
        .step_by(depth)
        .map(|p0| (p0, depth.min(d.k - p0)))
        .collect();
    let part_len = d.m * ldc;
    let mut scratch = vec![0.0f32; ranges.len().max(1) * part_len];
    let part = |(p0, kb): (usize, usize), out: &mut [f32]| {
        let dims = Dims { k: kb, ldc, ..d };
        kernel.run(&a[p0..], &b[p0 * d.ldb..], out, dims);
    };
    if ranges.len() > 1 {
        let items = scratch.chunks_mut(part_len).zip(ranges.iter().copied());
        tasks::run(pool, threads, join, items, |(out, range)| part(range, out));
    } else {
        // k = 0 leaves the one scratch C zero: C = 0.
        if let Some(&range) = ranges.first() {
            part(range, &mut scratch);
        }
    }
    let (first, rest) = scratch.split_at(part_len);
    for (i, row) in c.chunks_exact_mut(d.n).enumerate() {
        row.copy_from_slice(&first[i * ldc..i * ldc + d.n]);
        for other in rest.chunks_exact(part_len) {
            for (cv, &v) in row.iter_mut().zip(&other[i * ldc..i * ldc + d.n]) {
                *cv += v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::features::CpuFeatures;
    use crate::cpu::kernels::Isa;
    use crate::cpu::kernels::tests::{check_product, random};

    /// faer with its own choice of SIMD.
    const FAER: Kernel = Kernel::Faer { avx2_only: false };

    fn pool() -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap()
    }

    /// Runs `plan` on `shape` with random operands and checks C against the reference.
    fn check(pool: &rayon::ThreadPool, plan: Plan, (m, k, n): (usize, usize, usize)) {
        let (a, b) = random((m * 31 + k * 7 + n) as u64, m, k, n);
        check_product((&a, &b), (m, k, n), |a, b, c| {
            run(pool, plan, a, b, c, Shape::new(m, k, n));
        })
        .unwrap_or_else(|e| panic!("{plan:?}: {e}"));
    }

    #[test]
    fn every_split_covers_every_element() {
        let pool = pool();
        let avx2 = CpuFeatures::detect().avx2_fma;
        let prefetch = avx2;
        let (mat_vec, vec_mat) = (
            Kernel::MatVec { avx2, prefetch },
            Kernel::VecMat { avx2, prefetch },
        );
        let plan = |kernel, split| Plan { kernel, split };
        let rows = |threads, rows, join| Split::Rows {
            threads,
            rows,
            join,
        };
        // Blocks that divide the rows and blocks that leave a short last one; more
        // blocks than threads; each way of joining.
        check(&pool, plan(FAER, rows(2, 16, Join::Caller)), (100, 30, 20));
        check(&pool, plan(FAER, rows(3, 7, Join::Workers)), (50, 9, 13));
        check(&pool, plan(FAER, rows(2, 64, Join::Workers)), (64, 5, 3));
        check(
            &pool,
            plan(mat_vec, rows(2, 8, Join::Caller)),
            (301, 199, 1),
        );
        for threads in [2, 3] {
            let split = rows(threads, 8, Join::CallerFirstArrivals);
            check(&pool, plan(FAER, split), (101, 30, 20));
            check(&pool, plan(mat_vec, split), (301, 199, 1));
        }
        check(&pool, plan(FAER, Split::Faer { threads: 3 }), (70, 80, 90));
        if avx2 {
            // faer held to its AVX2 code, in its own split and in row blocks.
            let faer_avx2 = Kernel::Faer { avx2_only: true };
            check(
                &pool,
                plan(faer_avx2, Split::Faer { threads: 3 }),
                (70, 80, 90),
            );
            check(
                &pool,
                plan(faer_avx2, rows(2, 16, Join::Caller)),
                (100, 30, 20),
            );
        }
        // Column blocks of a one-row C, the last short.
        let columns = |threads, cols, join| Split::Columns {
            threads,
            cols,
            join,
        };
        check(
            &pool,
            plan(vec_mat, columns(2, 16, Join::Caller)),
            (1, 40, 70),
        );
        let split = columns(3, 64, Join::CallerFirstArrivals);
        check(&pool, plan(vec_mat, split), (1, 9, 4500));
        // Inner ranges: one (on the caller), several, a short last one.
        let inner = |threads, depth| Split::Inner {
            threads,
            depth,
            join: Join::CallerFirstArrivals,
        };
        check(&pool, plan(vec_mat, inner(2, 32)), (1, 203, 77));
        check(&pool, plan(FAER, inner(3, 100)), (7, 1001, 33));
        check(&pool, plan(FAER, inner(1, 1000)), (5, 300, 1000));
        if let Some(isa) = Isa::best(&CpuFeatures::detect()) {
            for (m, k, n) in [
                (8, 2051, 64),
                (24, 1100, 47),
                (3, 7, 1000),
                (15, 4096, 1024),
            ] {
                check(&pool, plan(Kernel::FewRows(isa), inner(2, 256)), (m, k, n));
                check(
                    &pool,
                    plan(Kernel::FewRows(isa), inner(1, k.next_multiple_of(8))),
                    (m, k, n),
                );
            }
        } else {
            eprintln!("skipped the few-rows kernel: this CPU has neither AVX-512 nor AVX2");
        }
    }
}
