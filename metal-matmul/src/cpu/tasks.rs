//! Running a list of independent tasks on a backend's pool, each thread claiming the
//! next task from a shared counter.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Which threads compute a fork-join's tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Join {
    /// `threads` pool workers; the calling thread waits. Serves concurrent callers of
    /// long products best (see
    /// [`CALLER_JOINS_MAX_FLOPS`](super::plan::CALLER_JOINS_MAX_FLOPS)).
    Workers,
    /// The calling thread at once, with `threads - 1` pool workers woken to join it: a
    /// worker that wakes late (a sleeping rayon worker, a halted virtual CPU) costs its
    /// wake-up time at most, not a whole share of the work. For the shortest products.
    Caller,
    /// The calling thread at once, with all `threads` pool workers woken and the first
    /// `threads - 1` to arrive joining it; a later one finds its seat taken and returns.
    /// Never more than `threads` threads compute. A kernel that packs a woken thread
    /// onto the waker's CPU (seen on the sandbox's virtual machines:
    /// docs/PERFORMANCE.md, "Waking every worker") leaves [`Join::Caller`]'s one
    /// worker waiting until the caller is done; here another worker gets the seat.
    CallerFirstArrivals,
}

/// Runs `f` on every item of `items` with `threads` threads of `pool` (the calling
/// thread among them unless `join` is [`Join::Workers`]). Allocates one lock per item.
pub(super) fn run<T: Send>(
    pool: &rayon::ThreadPool,
    threads: usize,
    join: Join,
    items: impl IntoIterator<Item = T>,
    f: impl Fn(T) + Sync,
) {
    // Each item behind a lock taken exactly once, by the thread that claimed it:
    // uncontended, and safe code throughout.
    let slots: Vec<Mutex<Option<T>>> = items
        .into_iter()
        .map(|item| Mutex::new(Some(item)))
        .collect();
    let next = AtomicUsize::new(0);
    let work = || {
        while let Some(slot) = slots.get(next.fetch_add(1, Ordering::Relaxed)) {
            let taken = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(item) = taken {
                f(item);
            }
        }
    };
    match join {
        Join::Workers => pool.scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|_| work());
            }
        }),
        Join::Caller | Join::CallerFirstArrivals => {
            // The caller holds one seat; each worker woken takes the next as it
            // arrives, and finds none left only when all were woken.
            let woken = if join == Join::Caller {
                threads.saturating_sub(1)
            } else {
                threads
            };
            let seated = AtomicUsize::new(1);
            let arrive = || {
                if seated.fetch_add(1, Ordering::Relaxed) < threads {
                    work();
                }
            };
            pool.in_place_scope(|scope| {
                if threads > 1 {
                    for _ in 0..woken {
                        scope.spawn(|_| arrive());
                    }
                }
                work();
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::Duration;

    /// Every item runs exactly once, on at most `threads` distinct threads, in every
    /// way of joining; with all workers woken, the seats still hold it to `threads`.
    #[test]
    fn each_item_once_on_at_most_threads_threads() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        for join in [Join::Workers, Join::Caller, Join::CallerFirstArrivals] {
            for threads in [1, 2, 3] {
                let done: Vec<AtomicUsize> = (0..64).map(|_| AtomicUsize::new(0)).collect();
                let seen = Mutex::new(HashSet::new());
                run(&pool, threads, join, 0..done.len(), |i| {
                    seen.lock().unwrap().insert(std::thread::current().id());
                    done[i].fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_micros(200));
                });
                assert!(
                    done.iter().all(|d| d.load(Ordering::Relaxed) == 1),
                    "{join:?} on {threads}"
                );
                let seen = seen.into_inner().unwrap().len();
                assert!(
                    (1..=threads).contains(&seen),
                    "{join:?} on {threads}: {seen} threads"
                );
            }
        }
    }
}
