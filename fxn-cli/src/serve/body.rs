//! Reading a request body whole, before any processing slot is taken, under a size
//! limit, a deadline, a minimum rate and a global budget of buffered bytes.
//!
//! A slow client therefore holds only its connection and the bytes it has actually
//! sent, never a slot: it is cut off (408) once it falls below the minimum rate after
//! the grace period, or when the deadline passes, whichever comes first. Bytes are
//! reserved from the [`Budget`] as the buffer grows (its capacity, not just its
//! length), so many uploads at once cannot buffer more than the budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use http_body_util::BodyExt;
use tokio::time::Instant;

use super::metrics::{Metrics, Refusal};

/// The most a declared Content-Length reserves before any of it has arrived; a longer
/// body grows the buffer as it comes (so declaring the limit and sending nothing
/// reserves little).
const MAX_PREALLOCATION: u64 = 64 << 20;

/// How often a stalled body is checked against the minimum rate.
const RATE_CHECK: Duration = Duration::from_millis(250);

/// What a body must satisfy while it is read.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// The most bytes a body may have.
    pub max_bytes: u64,
    /// The whole body must have arrived this long after its reading began.
    pub deadline: Duration,
    /// Bytes per second the body must keep up on average once `grace` has passed
    /// (0: no minimum).
    pub min_rate: u64,
    /// How long a body may take before the minimum rate applies.
    pub grace: Duration,
}

/// The bytes of all bodies buffered at once: reservations beyond `capacity` fail.
#[derive(Debug)]
pub struct Budget {
    capacity: u64,
    used: AtomicU64,
}

impl Budget {
    /// A budget of `capacity` bytes.
    pub fn new(capacity: u64) -> Arc<Self> {
        Arc::new(Self {
            capacity,
            used: AtomicU64::new(0),
        })
    }

    /// The budget's size in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn try_take(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|&total| total <= self.capacity)
            })
            .is_ok()
    }
}

/// Bytes held from a [`Budget`], given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Reservation {
    fn new(budget: &Arc<Budget>) -> Self {
        Self {
            budget: Arc::clone(budget),
            bytes: 0,
        }
    }

    /// Grows the reservation to `total` bytes; false (and unchanged) when the budget
    /// cannot spare the difference.
    fn grow_to(&mut self, total: u64) -> bool {
        let more = total.saturating_sub(self.bytes);
        if more == 0 || self.budget.try_take(more) {
            self.bytes = self.bytes.max(total);
            true
        } else {
            false
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// A body read whole, with the budget it holds until it is dropped.
#[derive(Debug)]
pub struct Buffered {
    /// The body.
    pub bytes: Vec<u8>,
    _reservation: Reservation,
}

/// Why a body was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Over `max_bytes` (413).
    TooLarge { limit: u64 },
    /// Not all there by the deadline (408).
    Deadline { after: Duration, received: u64 },
    /// Below the minimum rate (408).
    TooSlow { received: u64, after: Duration },
    /// The budget of buffered bytes is spent (503).
    Budget { capacity: u64 },
    /// The connection failed or the framing was wrong (400).
    Read(String),
}

impl BodyError {
    /// The status to answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Deadline { .. } | Self::TooSlow { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Budget { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Read(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The refusal it counts as, if any (a failed read is the network's, not a limit).
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Self::TooLarge { .. } => Some(Refusal::BodyTooLarge),
            Self::Deadline { .. } => Some(Refusal::BodyDeadline),
            Self::TooSlow { .. } => Some(Refusal::BodyTooSlow),
            Self::Budget { .. } => Some(Refusal::BodyBudget),
            Self::Read(_) => None,
        }
    }

    /// The message for the client.
    pub fn message(&self, limits: &BodyLimits) -> String {
        match self {
            Self::TooLarge { limit } => format!("the body is over the limit of {limit} bytes"),
            Self::Deadline { after, received } => {
                format!("the body did not arrive within {after:?} ({received} bytes received)")
            }
            Self::TooSlow { received, after } => format!(
                "the body arrived too slowly: {received} bytes in {:.1} s, under the minimum of {} bytes/s after {:?}",
                after.as_secs_f64(),
                limits.min_rate,
                limits.grace
            ),
            Self::Budget { capacity } => format!(
                "busy: the {capacity} bytes allowed for bodies being read are taken; retry later"
            ),
            Self::Read(e) => format!("cannot read the body: {e}"),
        }
    }
}

/// Reads `body` whole under `limits`, reserving its buffer from `budget`. `declared` is
/// its Content-Length, when given (and already checked against the limit). Costs one
/// copy of the bytes and, while a client stalls, one timer wake-up every 250 ms.
pub async fn read(
    mut body: Body,
    declared: Option<u64>,
    limits: &BodyLimits,
    budget: &Arc<Budget>,
    metrics: &Metrics,
) -> Result<Buffered, BodyError> {
    let started = Instant::now();
    let deadline = started + limits.deadline;
    let mut reservation = Reservation::new(budget);
    let initial = declared
        .unwrap_or(0)
        .min(limits.max_bytes)
        .min(MAX_PREALLOCATION);
    if !reservation.grow_to(initial) {
        return Err(BodyError::Budget {
            capacity: budget.capacity(),
        });
    }
    let mut buffer = Vec::with_capacity(usize::try_from(initial).unwrap_or(0));
    loop {
        let wake = deadline.min(Instant::now() + RATE_CHECK);
        match tokio::time::timeout_at(wake, body.frame()).await {
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(BodyError::Read(e.to_string())),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    metrics.body_bytes(data.len());
                    let needed = buffer.len() as u64 + data.len() as u64;
                    if needed > limits.max_bytes {
                        return Err(BodyError::TooLarge {
                            limit: limits.max_bytes,
                        });
                    }
                    if needed > buffer.capacity() as u64 {
                        // Straight to the declared length once the preallocation is
                        // used up; doubling (within the limit) for a chunked body.
                        let grown = match declared {
                            Some(length) => length.max(needed),
                            None => needed.max(2 * buffer.capacity() as u64),
                        }
                        .min(limits.max_bytes);
                        if !reservation.grow_to(grown) {
                            return Err(BodyError::Budget {
                                capacity: budget.capacity(),
                            });
                        }
                        let extra = usize::try_from(grown).unwrap_or(usize::MAX) - buffer.len();
                        buffer.reserve_exact(extra);
                    }
                    buffer.extend_from_slice(&data);
                    // `reserve_exact` may round up: keep the reservation honest.
                    if !reservation.grow_to(buffer.capacity() as u64) {
                        return Err(BodyError::Budget {
                            capacity: budget.capacity(),
                        });
                    }
                }
            }
            // No frame by the wake-up: judge the rate and the deadline below.
            Err(_) => {}
        }
        let now = Instant::now();
        let received = buffer.len() as u64;
        if now >= deadline {
            return Err(BodyError::Deadline {
                after: limits.deadline,
                received,
            });
        }
        let elapsed = now - started;
        if limits.min_rate > 0 && elapsed > limits.grace {
            let owed = (elapsed - limits.grace).as_secs_f64() * limits.min_rate as f64;
            if (received as f64) < owed {
                return Err(BodyError::TooSlow {
                    received,
                    after: elapsed,
                });
            }
        }
    }
    Ok(Buffered {
        bytes: buffer,
        _reservation: reservation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_never_hands_out_more_than_its_capacity() {
        let budget = Budget::new(100);
        let mut a = Reservation::new(&budget);
        let mut b = Reservation::new(&budget);
        assert!(a.grow_to(60));
        assert!(!b.grow_to(41), "100 bytes cannot cover 60 + 41");
        assert_eq!(budget.used(), 60);
        assert!(b.grow_to(40));
        assert!(a.grow_to(50), "shrinking requests keep what is held");
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    fn limits() -> BodyLimits {
        BodyLimits {
            max_bytes: 1000,
            deadline: Duration::from_secs(30),
            min_rate: 0,
            grace: Duration::from_secs(5),
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    }

    #[test]
    fn a_whole_body_is_read_and_its_reservation_released_with_it() {
        let budget = Budget::new(10_000);
        let metrics = Metrics::default();
        let text = "x".repeat(700);
        let read = runtime().block_on(read(
            Body::from(text.clone()),
            Some(700),
            &limits(),
            &budget,
            &metrics,
        ));
        let buffered = read.expect("the body fits");
        assert_eq!(buffered.bytes, text.as_bytes());
        assert!(budget.used() >= 700);
        drop(buffered);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn over_the_limit_or_the_budget_is_refused_and_nothing_stays_reserved() {
        let budget = Budget::new(10_000);
        let metrics = Metrics::default();
        let err = runtime()
            .block_on(read(
                Body::from("y".repeat(1001)),
                None,
                &limits(),
                &budget,
                &metrics,
            ))
            .expect_err("over the limit");
        assert_eq!(err, BodyError::TooLarge { limit: 1000 });
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let small = Budget::new(500);
        let err = runtime()
            .block_on(read(
                Body::from("z".repeat(600)),
                None,
                &limits(),
                &small,
                &metrics,
            ))
            .expect_err("over the budget");
        assert_eq!(err, BodyError::Budget { capacity: 500 });
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!((budget.used(), small.used()), (0, 0));
    }

    #[test]
    fn a_body_that_stalls_is_cut_off_by_the_rate_or_the_deadline() {
        let budget = Budget::new(10_000);
        let metrics = Metrics::default();
        // A body whose client has sent its head and then nothing.
        let stalled = || ((), Body::new(Stalled));
        let rt = runtime();
        let slow = BodyLimits {
            min_rate: 100,
            grace: Duration::from_millis(200),
            ..limits()
        };
        let (_tx, body) = stalled();
        let err = rt
            .block_on(read(body, Some(500), &slow, &budget, &metrics))
            .expect_err("too slow");
        assert!(
            matches!(err, BodyError::TooSlow { received: 0, .. }),
            "{err:?}"
        );
        assert_eq!(err.status(), StatusCode::REQUEST_TIMEOUT);
        let short = BodyLimits {
            deadline: Duration::from_millis(300),
            ..limits()
        };
        let (_tx, body) = stalled();
        let err = rt
            .block_on(read(body, None, &short, &budget, &metrics))
            .expect_err("past the deadline");
        assert!(
            matches!(err, BodyError::Deadline { received: 0, .. }),
            "{err:?}"
        );
        assert_eq!(budget.used(), 0);
    }

    /// A body that never yields a frame.
    struct Stalled;

    impl axum::body::HttpBody for Stalled {
        type Data = axum::body::Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
            std::task::Poll::Pending
        }
    }
}
