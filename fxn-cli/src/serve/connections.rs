//! Accepting and serving connections: the cap on open connections, the per-address
//! cap, the header and idle timeouts, and graceful shutdown.
//!
//! Each accepted connection is served by hyper's HTTP/1 server in a task of its own,
//! beside a watchdog that closes it when, with no request in progress, it has sat
//! idle longer than the idle timeout or has been sending a request head for longer
//! than the header timeout. A connection over either cap is answered a canned 503
//! (best effort, without waiting for the client) and closed before hyper sees it.
//! On shutdown the listener is dropped, idle connections close at once, requests in
//! progress finish (their connections then close), and [`serve`] returns when every
//! connection has ended or the shutdown bound has passed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;
use tower_service::Service;

use super::metrics::{Metrics, Refusal, route_label};

/// How connections are limited.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// The most connections served at once.
    pub max_connections: usize,
    /// The most connections served at once from one client address (an IPv4 address,
    /// or an IPv6 /64).
    pub per_address: usize,
    /// Whether the per-address cap applies to loopback clients too. Off by default: a
    /// reverse proxy on the same machine makes every client look like 127.0.0.1.
    pub limit_loopback: bool,
    /// How long a client may take to send a request head, from its first byte.
    pub header_timeout: Duration,
    /// How long a connection may sit with no request in progress and no bytes of a
    /// new one (from its opening, or from the previous answer).
    pub idle_timeout: Duration,
    /// How long shutdown waits for requests in progress.
    pub shutdown_timeout: Duration,
}

/// What is written to a connection refused at accept time.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 40\r\nConnection: close\r\nRetry-After: 1\r\n\r\nbusy: too many connections; retry later\n";

/// Serves `router` on `listener` until `shutdown` resolves, then shuts down gracefully
/// within `limits.shutdown_timeout`. Returns how many connections were still open when
/// the bound passed (0 after a clean shutdown).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> usize {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let addresses = Arc::new(Addresses::new(limits.per_address));
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was
                    // accepted: wait a little rather than spin.
                    log::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            refuse(&stream, &metrics, Refusal::Connections);
            continue;
        };
        let ip = peer.ip().to_canonical();
        let address = if ip.is_loopback() && !limits.limit_loopback {
            None
        } else {
            match addresses.enter(ip) {
                Some(guard) => Some(guard),
                None => {
                    refuse(&stream, &metrics, Refusal::PerAddress);
                    continue;
                }
            }
        };
        let connection = Connection {
            stream,
            peer,
            router: router.clone(),
            limits,
            metrics: Arc::clone(&metrics),
            stopping: stopping.clone(),
        };
        tokio::spawn(async move {
            let _held = (permit, address);
            connection.run().await;
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let in_flight = limits.max_connections - open.available_permits();
    log::info!(
        "shutting down: {in_flight} connections open, waiting up to {:?} for their requests",
        limits.shutdown_timeout
    );
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    match tokio::time::timeout(limits.shutdown_timeout, open.acquire_many(all)).await {
        Ok(_) => 0,
        Err(_) => limits.max_connections - open.available_permits(),
    }
}

/// Writes the canned 503 if the socket takes it at once, and closes the connection.
fn refuse(stream: &TcpStream, metrics: &Metrics, reason: Refusal) {
    metrics.refusal(reason);
    let _ = stream.try_write(REFUSED);
    log::debug!("refused a connection: {}", reason.label());
}

/// Open connections per client address.
#[derive(Debug)]
struct Addresses {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl Addresses {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The key an address is counted under: IPv6 clients usually hold a whole /64.
    fn key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        }
    }

    /// Counts one more connection from `ip`, or `None` when it has `limit` open.
    fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<AddressGuard> {
        let key = Self::key(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(AddressGuard {
            addresses: Arc::clone(self),
            key,
        })
    }
}

/// One connection counted against its address; uncounted when dropped.
#[derive(Debug)]
struct AddressGuard {
    addresses: Arc<Addresses>,
    key: IpAddr,
}

impl Drop for AddressGuard {
    fn drop(&mut self) {
        let mut open = self
            .addresses
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// What a connection's watchdog watches: whether a request is in progress, and since
/// when the connection has been idle or sending a head. Times are milliseconds since
/// `base`, plus one (0 means "not yet").
#[derive(Debug)]
struct Activity {
    base: Instant,
    in_flight: AtomicUsize,
    head_started: AtomicU64,
    idle_since: AtomicU64,
    /// Wakes the watchdog when the phase changes (a head begins, a request ends).
    changed: Notify,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            in_flight: AtomicUsize::new(0),
            head_started: AtomicU64::new(0),
            idle_since: AtomicU64::new(1),
            changed: Notify::new(),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Bytes arrived: between requests, they begin a head.
    fn read_some(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == 0
        {
            self.head_started.store(self.now(), Ordering::Relaxed);
            self.changed.notify_one();
        }
    }
}

/// A request in progress on a connection; the connection is idle again when dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.head_started.store(0, Ordering::Relaxed);
            self.0.idle_since.store(self.0.now(), Ordering::Relaxed);
            self.0.changed.notify_one();
        }
    }
}

/// Why a watchdog closed its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    Header,
    Idle,
}

/// Resolves when the connection has been idle, or sending a head, for too long.
async fn watchdog(activity: &Activity, limits: &ConnectionLimits) -> Expired {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2);
    loop {
        let now = activity.now();
        let (deadline, why) = if activity.in_flight.load(Ordering::Relaxed) > 0 {
            // The handler bounds a request in progress; its end wakes us.
            (now + 60_000, None)
        } else {
            match activity.head_started.load(Ordering::Relaxed) {
                0 => (
                    activity.idle_since.load(Ordering::Relaxed) + ms(limits.idle_timeout),
                    Some(Expired::Idle),
                ),
                started => (started + ms(limits.header_timeout), Some(Expired::Header)),
            }
        };
        if let Some(why) = why.filter(|_| now >= deadline) {
            return why;
        }
        let wake = activity.base + Duration::from_millis(deadline - 1);
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            () = activity.changed.notified() => {}
        }
    }
}

/// A TCP stream that tells its [`Activity`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read_some();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One accepted connection and what serving it needs.
struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    stopping: watch::Receiver<bool>,
}

impl Connection {
    async fn run(self) {
        let Self {
            stream,
            peer,
            router,
            limits,
            metrics,
            mut stopping,
        } = self;
        let _ = stream.set_nodelay(true);
        metrics.connection_opened();
        let activity = Activity::new();
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: Arc::clone(&activity),
        });
        let service = {
            let activity = Arc::clone(&activity);
            let metrics = Arc::clone(&metrics);
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let in_flight = InFlight::enter(&activity);
                let route = route_label(request.uri().path());
                let metrics = Arc::clone(&metrics);
                let mut router = router.clone();
                async move {
                    let _in_flight = in_flight;
                    let response = match router.call(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    metrics.request(route, response.status().as_u16());
                    Ok::<_, Infallible>(response)
                }
            })
        };
        let connection = http1::Builder::new()
            .keep_alive(true)
            .header_read_timeout(None::<Duration>)
            .serve_connection(io, service);
        let mut connection = std::pin::pin!(connection);
        let mut shutting_down = *stopping.borrow();
        if shutting_down {
            connection.as_mut().graceful_shutdown();
        }
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        log::debug!("connection from {peer}: {e}");
                    }
                    break;
                }
                expired = watchdog(&activity, &limits) => {
                    match expired {
                        Expired::Header => {
                            metrics.refusal(Refusal::HeaderTimeout);
                            log::debug!("connection from {peer}: no request head within {:?}; closed", limits.header_timeout);
                        }
                        Expired::Idle => {
                            metrics.idle_closed();
                            log::debug!("connection from {peer}: idle for {:?}; closed", limits.idle_timeout);
                        }
                    }
                    break;
                }
                _ = stopping.changed(), if !shutting_down => {
                    shutting_down = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
        metrics.connection_closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_per_address_cap_counts_ipv4_hosts_and_ipv6_prefixes() {
        let addresses = Arc::new(Addresses::new(2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = addresses.enter(a).expect("one");
        let second = addresses.enter(a).expect("two");
        assert!(addresses.enter(a).is_none(), "a third from one address");
        assert!(
            addresses.enter(b).is_some(),
            "another address has its own count"
        );
        drop(first);
        let again = addresses.enter(a).expect("a slot came back");
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        let _x = addresses.enter(v6a).expect("one");
        let _y = addresses.enter(v6b).expect("two, same /64");
        assert!(addresses.enter(v6a).is_none(), "one /64 shares the cap");
        drop((second, again));
        let open = addresses.open.lock().unwrap();
        assert!(!open.contains_key(&a), "a count at zero is removed");
    }

    #[test]
    fn the_canned_refusal_is_a_whole_http_response() {
        let text = std::str::from_utf8(REFUSED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert_eq!(body.len(), length, "{text:?}");
        assert!(head.starts_with("HTTP/1.1 503 "));
    }
}
