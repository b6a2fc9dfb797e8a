//! Admission of concurrent calls to the backend's pool: never more threads of the pool
//! computing than it has workers, whoever calls.
//!
//! Without admission, concurrent callers interleave their jobs on the same workers, so
//! one call's threads wait on another's (measured: 8 callers of 4096×64×4096 on 2
//! cores reached about half of one caller's throughput). Each call that uses the pool
//! holds permits for the threads it uses, from `total` permits in all.
//!
//! - A GEMM takes what is free ([`Permits::try_acquire`]): every thread it is worth
//!   when it is alone, a share when vector products wait, and when nothing is free it
//!   runs on its caller's thread alone, at once. Under load every core is then busy
//!   with one-thread products, which need no hand-off and no synchronisation: 8
//!   callers of a 0.3 ms product reach as much as one caller on two threads or more,
//!   where queueing for a turn made every call a hand-off to a parked thread.
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
    next_ticket: u64,
    serving: u64,
    /// The callers waiting, in ticket order: the front is the next to be served.
    waiting: VecDeque<Waiter>,
}

/// A caller waiting for permits.
#[derive(Debug)]
struct Waiter {
    thread: Thread,
    /// When it started waiting.
    since: Instant,
    /// The fewest permits it can start with.
    least: usize,
}

/// A first-come-first-served counting semaphore that shares its permits out among the
/// callers waiting for them.
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
                next_ticket: 0,
                serving: 0,
                waiting: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is counters and a queue, each update finished under the lock: a
        // panic elsewhere cannot leave it half-written, so a poisoned lock is still sound.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes between 1 and `want` permits if one is free now: `want` when no caller
    /// waits, else this caller's share of the total among the waiting callers and
    /// itself, never more than are free. `None` when none is free, or when the caller
    /// at the front of the queue has waited [`HANDOFF_AFTER`] (it goes first).
    ///
    /// A GEMM that gets `None` runs on its caller's thread alone, at once, instead of
    /// waiting for a turn: under load every core is then busy with one-thread products,
    /// the most throughput the cores give, where waiting made every call a hand-off to
    /// a parked thread (a context switch and caches refilled per product: 8 callers of
    /// 1000³ on 2 cores reached 0.66 of one caller's throughput). The pool's workers
    /// still never serve more threads than they are.
    pub(super) fn try_acquire(&self, want: usize) -> Option<Held<'_>> {
        let want = want.clamp(1, self.total);
        let mut state = self.lock();
        if !may_take_now(&state, 1, Instant::now()) {
            return None;
        }
        let share = (self.total / (state.waiting.len() + 1)).max(1);
        let count = want.min(share).min(state.free);
        state.free -= count;
        wake_next(&state);
        Some(Held {
            permits: self,
            count,
        })
    }

    /// Takes between 1 and `want` permits, waiting for them if needed, shared out as
    /// by [`Permits::try_acquire`].
    #[cfg(test)]
    fn acquire(&self, want: usize) -> Held<'_> {
        self.take(want, 1)
    }

    /// Takes exactly `want` permits (at most the total), waiting for them: for
    /// memory-bound products, which gain nothing from being shared out (two one-thread
    /// vector products side by side stream no faster than one on two threads, and were
    /// measured slower).
    ///
    /// Waiting callers are served in turn. A caller finding permits free takes them at
    /// once, even with others queued, as long as the queue's head has waited less than
    /// [`HANDOFF_AFTER`]; after that, newcomers queue and the head is served next.
    pub(super) fn acquire_all(&self, want: usize) -> Held<'_> {
        let want = want.clamp(1, self.total);
        self.take(want, want)
    }

    /// Takes between `least` and `want` permits once at least `least` are free.
    fn take(&self, want: usize, least: usize) -> Held<'_> {
        let want = want.clamp(1, self.total);
        let least = least.clamp(1, want);
        let mut state = self.lock();
        let now = Instant::now();
        if !may_take_now(&state, least, now) {
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state.waiting.push_back(Waiter {
                thread: std::thread::current(),
                since: now,
                least,
            });
            while state.serving != ticket || state.free < least {
                drop(state);
                // Woken by `wake_next` whenever permits come back while this caller
                // is at the front; a spurious or stale wake-up, or permits taken
                // first by a newcomer, just loops.
                std::thread::park();
                state = self.lock();
            }
            // Tickets are handed out and queued under the same lock, so the front of
            // the queue is the caller being served: this one.
            state.waiting.pop_front();
            state.serving += 1;
        }
        let share = (self.total / (state.waiting.len() + 1)).max(least);
        let count = want.min(share).min(state.free);
        state.free -= count;
        wake_next(&state);
        Held {
            permits: self,
            count,
        }
    }
}

/// How long the caller at the front of the queue may be passed over by callers that
/// find permits free; see [`Permits::acquire_all`]. About three 256³ products on one
/// thread.
const HANDOFF_AFTER: Duration = Duration::from_millis(1);

/// Whether a caller arriving at `now` may take `least` permits without queueing: they
/// are free, and the queue's head (if any) has not yet waited [`HANDOFF_AFTER`].
fn may_take_now(state: &State, least: usize, now: Instant) -> bool {
    state.free >= least
        && state
            .waiting
            .front()
            .is_none_or(|head| now.duration_since(head.since) < HANDOFF_AFTER)
}

/// Wakes the caller at the front of the queue if enough permits are free for it.
fn wake_next(state: &State) {
    if let Some(next) = state.waiting.front()
        && state.free >= next.least
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
                    for _ in 0..200 {
                        let held = permits.acquire(1 + (i % 2));
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
        assert_eq!(permits.acquire(3).count(), 3);
        assert_eq!(permits.acquire(9).count(), 4);
        let first = permits.acquire(2);
        // Two are still free; a second caller while the first holds its permits is
        // alone in the queue and gets both.
        assert_eq!(permits.acquire(4).count(), 2);
        drop(first);
        assert_eq!(permits.lock().free, 4);
    }

    /// Holds every permit until `waiters` callers wanting `want` have queued, then
    /// releases them and returns what each was given, in queue order.
    fn queue_then_release(total: usize, waiters: usize, want: usize) -> Vec<usize> {
        let permits = Permits::new(total);
        let held = permits.acquire(total);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            for i in 0..waiters {
                let (permits, tx) = (&permits, tx.clone());
                s.spawn(move || {
                    let got = permits.acquire(want);
                    tx.send((i, got.count())).unwrap();
                    // Hold on until every waiter has been served.
                    while permits.lock().serving < waiters as u64 {
                        std::thread::yield_now();
                    }
                });
                // Queue them one by one, so waiter i holds ticket i (the holder took its
                // permits at once, without a ticket).
                while permits.lock().waiting.len() < i + 1 {
                    std::thread::yield_now();
                }
            }
            drop(held);
        });
        let mut got: Vec<(usize, usize)> = rx.try_iter().collect();
        got.sort_unstable();
        got.into_iter().map(|(_, count)| count).collect()
    }

    #[test]
    fn queued_callers_share_the_permits() {
        // Two callers queued behind a holder of both permits: the first is served
        // while the second waits behind it, so it takes its share, one; the second is
        // then alone and takes the one left.
        assert_eq!(queue_then_release(2, 2, 2), [1, 1]);
        // Eight permits among three queued callers wanting eight, each holding on
        // until all are served: 2 (8 / 3 queued), then 4 (8 / 2), then, alone, the
        // 2 left.
        assert_eq!(queue_then_release(8, 3, 8), [2, 4, 2]);
    }

    #[test]
    fn try_acquire_takes_what_is_free_or_nothing() {
        let permits = Permits::new(2);
        let first = permits.try_acquire(2).expect("both free");
        assert_eq!(first.count(), 2);
        assert!(permits.try_acquire(2).is_none());
        drop(first);
        let one = permits.acquire(1);
        assert_eq!(permits.try_acquire(2).map(|h| h.count()), Some(1));
        drop(one);
        assert_eq!(permits.lock().free, 2);
    }

    #[test]
    fn acquire_all_waits_for_every_permit_it_wants() {
        let permits = Permits::new(2);
        let one = permits.acquire(1);
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
        let held = permits.acquire(1);
        std::thread::scope(|s| {
            s.spawn(|| {
                let _got = permits.acquire(1);
                order.lock().unwrap().push("waiter");
            });
            while permits.lock().waiting.is_empty() {
                std::thread::yield_now();
            }
            // Past the hand-off delay, a permit given back and asked for again at
            // once goes to the caller that has been waiting.
            std::thread::sleep(HANDOFF_AFTER * 3);
            drop(held);
            let _again = permits.acquire(1);
            order.lock().unwrap().push("newcomer");
        });
        assert_eq!(*order.lock().unwrap(), ["waiter", "newcomer"]);
    }

    #[test]
    fn a_waiting_caller_is_woken_when_permits_return() {
        let permits = Permits::new(1);
        let held = permits.acquire(1);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| permits.acquire(1).count());
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
