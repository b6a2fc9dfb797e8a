//! Admission of concurrent calls to the backend's pool: never more threads of the pool
//! computing than it has workers, whoever calls.
//!
//! Without admission, concurrent callers interleave their jobs on the same workers, so
//! one call's threads wait on another's (measured: 8 callers of 4096×64×4096 on 2
//! cores reached about half of one caller's throughput). Each call that uses the pool
//! holds permits for the threads it uses, from `total` permits in all.
//!
//! - A GEMM takes what is free ([`Permits::try_acquire`]): up to every thread it is
//!   worth, and when nothing is free it runs on its caller's thread alone, at once.
//!   Under load every core is then busy with one-thread products, which need no
//!   hand-off and no synchronisation: 8 callers of a 0.3 ms product reach as much as
//!   one caller on two threads or more, where queueing for a turn made every call a
//!   hand-off to a parked thread.
//! - A vector product (memory-bound: two one-thread streams go no faster than one on
//!   two threads) waits for all its threads ([`Permits::acquire_all`]). Waiting
//!   callers are served in turn, park, and only the head of the queue is woken when
//!   permits come back (waking every waiter on every release costs each a context
//!   switch). A newcomer may take free permits ahead of the queue only until its head
//!   has waited [`HANDOFF_AFTER`], so no call is overtaken for long.
//!
//! Products worth one thread do not come here: they run on the caller's thread, since
//! parking and waking a caller (several microseconds) costs more than a 64³ product.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct State {
    free: usize,
    /// The callers waiting, in arrival order: the front is the next to be served.
    waiting: VecDeque<Waiter>,
}

/// A caller waiting for permits.
#[derive(Debug)]
struct Waiter {
    thread: Thread,
    /// When it started waiting.
    since: Instant,
    /// The permits it waits for.
    want: usize,
}

/// A counting semaphore: take what is free now, or wait in turn for a number of
/// permits.
#[derive(Debug)]
pub(super) struct Permits {
    total: usize,
    state: Mutex<State>,
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
            state: Mutex::new(State {
                free: total.max(1),
                waiting: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is counters and a queue, each update finished under the lock: a
        // panic elsewhere cannot leave it half-written, so a poisoned lock is still sound.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes between 1 and `want` permits if one is free now: `want`, or all that are
    /// free if fewer. `None` when none is free, or when the caller at the front of the
    /// queue has waited [`HANDOFF_AFTER`] (it goes first).
    ///
    /// A GEMM that gets `None` runs on its caller's thread alone, at once, instead of
    /// waiting for a turn: under load every core is then busy with one-thread products,
    /// the most throughput the cores give, where waiting made every call a hand-off to
    /// a parked thread (a context switch and caches refilled per product: 8 callers of
    /// 1000³ on 2 cores reached 0.66 of one caller's throughput). The pool's workers
    /// still never serve more threads than they are.
    pub(super) fn try_acquire(&self, want: usize) -> Option<Held<'_>> {
        let mut state = self.lock();
        if !may_take_now(&state, 1, Instant::now()) {
            return None;
        }
        let count = want.clamp(1, self.total).min(state.free);
        state.free -= count;
        Some(Held {
            permits: self,
            count,
        })
    }

    /// Takes exactly `want` permits (at most the total), waiting for them: for
    /// memory-bound products, which gain nothing from running on fewer threads side by
    /// side (two one-thread vector products stream no faster than one on two threads,
    /// and were measured slower).
    ///
    /// Waiting callers are served in turn. A caller finding permits free takes them at
    /// once, even with others queued, as long as the queue's head has waited less than
    /// [`HANDOFF_AFTER`]; after that, newcomers queue and the head is served next.
    pub(super) fn acquire_all(&self, want: usize) -> Held<'_> {
        let want = want.clamp(1, self.total);
        let mut state = self.lock();
        let now = Instant::now();
        if !may_take_now(&state, want, now) {
            let me = std::thread::current();
            state.waiting.push_back(Waiter {
                thread: me.clone(),
                since: now,
                want,
            });
            // A thread waits in one call at a time, so its id marks its place.
            while state.waiting.front().map(|w| w.thread.id()) != Some(me.id()) || state.free < want
            {
                drop(state);
                // Woken by `wake_next` whenever permits come back while this caller
                // is at the front; a spurious or stale wake-up, or permits taken
                // first by a newcomer, just loops.
                std::thread::park();
                state = self.lock();
            }
            state.waiting.pop_front();
        }
        state.free -= want;
        wake_next(&state);
        Held {
            permits: self,
            count: want,
        }
    }
}

/// How long the caller at the front of the queue may be passed over by callers that
/// find permits free; see [`Permits::acquire_all`]. About three 256³ products on one
/// thread.
const HANDOFF_AFTER: Duration = Duration::from_millis(1);

/// Whether a caller arriving at `now` may take `count` permits without queueing: they
/// are free, and the queue's head (if any) has not yet waited [`HANDOFF_AFTER`].
fn may_take_now(state: &State, count: usize, now: Instant) -> bool {
    state.free >= count
        && state
            .waiting
            .front()
            .is_none_or(|head| now.duration_since(head.since) < HANDOFF_AFTER)
}

/// Wakes the caller at the front of the queue if enough permits are free for it.
fn wake_next(state: &State) {
    if let Some(next) = state.waiting.front()
        && state.free >= next.want
    {
        next.thread.unpark();
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut state = self.permits.lock();
        state.free += self.count;
        wake_next(&state);
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
                    for round in 0..200 {
                        // Waiting and non-waiting callers, wanting one or two.
                        let want = 1 + (i % 2);
                        let held = if round % 2 == 0 {
                            Some(permits.acquire_all(want))
                        } else {
                            permits.try_acquire(want)
                        };
                        let Some(held) = held else { continue };
                        let got = held.count();
                        assert!((1..=2).contains(&got));
                        let now = in_use.fetch_add(got, Ordering::SeqCst) + got;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        in_use.fetch_sub(got, Ordering::SeqCst);
                    }
                });
            }
        });
        assert!(peak.load(Ordering::SeqCst) <= 2);
        assert!(peak.load(Ordering::SeqCst) >= 1);
        let state = permits.lock();
        assert_eq!(state.free, 2);
        assert!(state.waiting.is_empty());
    }

    #[test]
    fn a_caller_alone_gets_what_it_wants() {
        let permits = Permits::new(4);
        assert_eq!(permits.try_acquire(3).map(|h| h.count()), Some(3));
        assert_eq!(permits.try_acquire(9).map(|h| h.count()), Some(4));
        assert_eq!(permits.acquire_all(9).count(), 4);
        let first = permits.acquire_all(2);
        // Two are still free; a second caller while the first holds its permits gets
        // both.
        assert_eq!(permits.try_acquire(4).map(|h| h.count()), Some(2));
        drop(first);
        assert_eq!(permits.lock().free, 4);
    }

    #[test]
    fn try_acquire_takes_what_is_free_or_nothing() {
        let permits = Permits::new(2);
        let first = permits.try_acquire(2).expect("both free");
        assert_eq!(first.count(), 2);
        assert!(permits.try_acquire(2).is_none());
        drop(first);
        let one = permits.acquire_all(1);
        assert_eq!(permits.try_acquire(2).map(|h| h.count()), Some(1));
        drop(one);
        assert_eq!(permits.lock().free, 2);
    }

    #[test]
    fn acquire_all_waits_for_every_permit_it_wants() {
        let permits = Permits::new(2);
        let one = permits.acquire_all(1);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| permits.acquire_all(2).count());
            while permits.lock().waiting.is_empty() {
                std::thread::yield_now();
            }
            // One permit is free, but the waiter wants both.
            assert_eq!(permits.lock().free, 1);
            drop(one);
            assert_eq!(waiter.join().unwrap(), 2);
        });
        assert_eq!(permits.lock().free, 2);
    }

    #[test]
    fn a_long_waiting_caller_is_not_overtaken() {
        let permits = Permits::new(1);
        let order = Mutex::new(Vec::new());
        let held = permits.acquire_all(1);
        std::thread::scope(|s| {
            s.spawn(|| {
                let _got = permits.acquire_all(1);
                order.lock().unwrap().push("waiter");
            });
            while permits.lock().waiting.is_empty() {
                std::thread::yield_now();
            }
            // Past the hand-off delay, a permit given back and asked for again at
            // once goes to the caller that has been waiting.
            std::thread::sleep(HANDOFF_AFTER * 3);
            drop(held);
            let _again = permits.acquire_all(1);
            order.lock().unwrap().push("newcomer");
        });
        assert_eq!(*order.lock().unwrap(), ["waiter", "newcomer"]);
    }

    #[test]
    fn a_waiting_caller_is_woken_when_permits_return() {
        let permits = Permits::new(1);
        let held = permits.acquire_all(1);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| permits.acquire_all(1).count());
            // Let the waiter queue up, then give the permit back.
            while permits.lock().waiting.is_empty() {
                std::thread::yield_now();
            }
            drop(held);
            assert_eq!(waiter.join().unwrap(), 1);
        });
        assert_eq!(permits.lock().free, 1);
    }
}
