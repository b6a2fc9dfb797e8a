//! Admission of concurrent calls to the backend's pool: never more threads of the pool
//! computing than it has workers, whoever calls.
//!
//! Without admission, concurrent callers interleave their jobs on the same workers, so
//! one call's threads wait on another's (measured: 8 callers of 4096×64×4096 on 2
//! cores reached about half of one caller's throughput). Each call that uses the pool
//! holds permits for the threads it uses, from `total` permits in all.
//!
//! A call takes what is free ([`Permits::try_acquire`]): up to every thread it is
//! worth, and when nothing is free it runs on its caller's thread alone, at once. Under
//! load every core is then busy with one-thread products, which need no hand-off and
//! no synchronisation, where queueing for a turn made every call a hand-off to a parked
//! thread. On 2 Intel Xeon vCPUs, 8 callers against one caller on two threads
//! (`fxn-cli bench --threads 2 --callers 8`, four alternating runs each, 2026-11-26):
//! - GEMMs: 8 callers of a 0.3 ms product reach as much as one caller or more; with
//!   callers waiting in turn, 8 callers of 1000³ reached 0.66 of one caller, and a
//!   version in which a GEMM waited for one permit rather than compute without one,
//!   0.59–1.17 (256³: 0.62–0.79).
//! - Vector products: 1×4096×4096 and 4096×4096×1 at 1.01–1.27, 2048×2048×1 at
//!   1.30–1.43, 1×1024×1024 at 1.02–1.14, where the version before this one, which made
//!   a vector product wait in turn for all of its threads (on the belief that two
//!   one-thread streams go no faster than one two-thread stream), read 0.62–0.87,
//!   0.79–0.87, 0.88–0.93 and 0.61–0.94 in the same runs.
//!
//! Products worth one thread do not come here: they run on the caller's thread.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// A counting semaphore whose permits are taken as far as they are free, never waited
/// for.
#[derive(Debug)]
pub(super) struct Permits {
    total: usize,
    free: Mutex<usize>,
}

/// Permits held by one call, given back on drop (also when the call unwinds).
#[derive(Debug)]
pub(super) struct Held<'a> {
    permits: &'a Permits,
    count: usize,
}

impl Held<'_> {
    /// How many permits this call holds: the threads it may use.
    pub(super) fn count(&self) -> usize {
        self.count
    }
}

impl Permits {
    /// `total` permits (at least 1), all free.
    pub(super) fn new(total: usize) -> Self {
        Self {
            total: total.max(1),
            free: Mutex::new(total.max(1)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, usize> {
        // A counter, each update finished under the lock: a panic elsewhere cannot
        // leave it half-written, so a poisoned lock is still sound.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes between 1 and `want` permits if one is free now: `want`, or all that are
    /// free if fewer. `None` when none is free: the caller then runs its product on its
    /// own thread, at once.
    pub(super) fn try_acquire(&self, want: usize) -> Option<Held<'_>> {
        let mut free = self.lock();
        if *free == 0 {
            return None;
        }
        let count = want.clamp(1, self.total).min(*free);
        *free -= count;
        Some(Held {
            permits: self,
            count,
        })
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        *self.permits.lock() += self.count;
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
        let served = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for i in 0..8 {
                let (permits, in_use, peak, served) = (&permits, &in_use, &peak, &served);
                s.spawn(move || {
                    for _ in 0..200 {
                        // Callers wanting one or two.
                        let Some(held) = permits.try_acquire(1 + (i % 2)) else {
                            continue;
                        };
                        let got = held.count();
                        assert!((1..=2).contains(&got));
                        let now = in_use.fetch_add(got, Ordering::SeqCst) + got;
                        peak.fetch_max(now, Ordering::SeqCst);
                        served.fetch_add(1, Ordering::SeqCst);
                        std::thread::yield_now();
                        in_use.fetch_sub(got, Ordering::SeqCst);
                    }
                });
            }
        });
        assert!(peak.load(Ordering::SeqCst) <= 2);
        assert!(served.load(Ordering::SeqCst) >= 1);
        assert_eq!(*permits.lock(), 2);
    }

    #[test]
    fn a_caller_alone_gets_what_it_wants() {
        let permits = Permits::new(4);
        assert_eq!(permits.try_acquire(3).map(|h| h.count()), Some(3));
        assert_eq!(permits.try_acquire(9).map(|h| h.count()), Some(4));
        let first = permits.try_acquire(2).expect("all free");
        // Two are still free; a second caller while the first holds its permits gets
        // both.
        assert_eq!(permits.try_acquire(4).map(|h| h.count()), Some(2));
        drop(first);
        assert_eq!(*permits.lock(), 4);
    }

    #[test]
    fn try_acquire_takes_what_is_free_or_nothing() {
        let permits = Permits::new(2);
        let first = permits.try_acquire(2).expect("both free");
        assert_eq!(first.count(), 2);
        assert!(permits.try_acquire(1).is_none());
        drop(first);
        let one = permits.try_acquire(1).expect("both free");
        assert_eq!(permits.try_acquire(2).map(|h| h.count()), Some(1));
        drop(one);
        assert_eq!(*permits.lock(), 2);
    }

    #[test]
    fn permits_come_back_when_a_call_unwinds() {
        let permits = Permits::new(2);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _held = permits.try_acquire(2).expect("both free");
            panic!("a product that fails midway");
        }));
        assert!(unwound.is_err());
        assert_eq!(permits.try_acquire(2).map(|h| h.count()), Some(2));
    }
}
