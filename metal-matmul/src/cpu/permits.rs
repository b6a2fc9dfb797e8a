//! Admission of concurrent calls to the backend's pool: never more threads of the pool
//! computing than it has workers, whoever calls.
//!
//! Each call that uses the pool holds permits for the threads it uses, from `total`
//! permits in all. A call takes what is free ([`Permits::try_acquire`]), up to every
//! thread it is worth, and never waits: when nothing is free it runs on its caller's
//! thread alone, at once. Products worth one thread do not come here: they run on the
//! caller's thread. Why admission, and why never waiting: docs/PERFORMANCE.md
//! (`Permits`).

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
