//! Admission of concurrent calls to the backend's pool: at most as many threads
//! computing there as the backend has workers, whoever calls.
//!
//! Without admission, concurrent callers interleave their jobs on the same workers, so
//! one call's threads wait on another's (measured: 8 callers of 4096×64×4096 on 2
//! cores reached about half of one caller's throughput). Each call takes as many
//! permits as threads it uses, from `threads` permits in all, first come first served,
//! so a call asking for every thread is never overtaken forever by smaller ones.
//!
//! Products worth one thread do not come here: they run on the caller's thread, since
//! parking and waking a caller (several microseconds) costs more than a 64³ product.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

#[derive(Debug)]
struct State {
    free: usize,
    next_ticket: u64,
    serving: u64,
}

/// A first-come-first-served counting semaphore.
#[derive(Debug)]
pub(super) struct Permits {
    state: Mutex<State>,
    changed: Condvar,
}

/// Permits held by one call, given back on drop (also when the call unwinds).
#[derive(Debug)]
pub(super) struct Held<'a> {
    permits: &'a Permits,
    count: usize,
}

impl Permits {
    /// `total` permits, all free.
    pub(super) fn new(total: usize) -> Self {
        Self {
            state: Mutex::new(State {
                free: total,
                next_ticket: 0,
                serving: 0,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few counters updated atomically under the lock: a panic
        // elsewhere cannot leave it half-written, so a poisoned lock is still sound.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for this caller's turn and `count` free permits (`count` must not exceed
    /// the total), then takes them.
    pub(super) fn acquire(&self, count: usize) -> Held<'_> {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        while state.serving != ticket || state.free < count {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.serving += 1;
        state.free -= count;
        drop(state);
        // The next ticket may already fit in what is left.
        self.changed.notify_all();
        Held {
            permits: self,
            count,
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.permits.lock().free += self.count;
        self.permits.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn never_more_in_use_than_the_total() {
        let permits = Permits::new(2);
        let in_use = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for i in 0..8 {
                let (permits, in_use, peak) = (&permits, &in_use, &peak);
                s.spawn(move || {
                    for _ in 0..50 {
                        let want = 1 + (i % 2);
                        let _held = permits.acquire(want);
                        let now = in_use.fetch_add(want, Ordering::SeqCst) + want;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        in_use.fetch_sub(want, Ordering::SeqCst);
                    }
                });
            }
        });
        assert!(peak.load(Ordering::SeqCst) <= 2);
        assert!(peak.load(Ordering::SeqCst) >= 1);
        assert_eq!(permits.lock().free, 2);
    }
}
