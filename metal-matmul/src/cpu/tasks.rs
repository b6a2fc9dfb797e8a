//! Running a list of independent tasks on a backend's pool, each thread claiming the
//! next task from a shared counter.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Runs `f` on every item of `items` with `threads` threads of `pool`.
///
/// With `caller_joins` the calling thread starts on the items at once and `threads - 1`
/// pool workers join as they wake: a worker that wakes late (a sleeping rayon worker, a
/// halted virtual CPU) then costs its wake-up time at most, not a whole share of the
/// work. Without it, `threads` pool workers do all the work while the caller waits,
/// which serves concurrent callers of long products better (see
/// [`CALLER_JOINS_MAX_FLOPS`](super::plan::CALLER_JOINS_MAX_FLOPS)).
pub(super) fn run<T: Send>(
    pool: &rayon::ThreadPool,
    threads: usize,
    caller_joins: bool,
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
    if caller_joins {
        pool.in_place_scope(|scope| {
            for _ in 1..threads {
                scope.spawn(|_| work());
            }
            work();
        });
    } else {
        pool.scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|_| work());
            }
        });
    }
}
