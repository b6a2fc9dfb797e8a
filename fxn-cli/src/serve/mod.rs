//! `fxn-cli serve`: the challenge responder over HTTP, wire-compatible with the Go
//! Function Node (`POST /challenge`, `GET /health`), plus `GET /metrics`.
//!
//! Built on hyper (HTTP/1), axum (routing) and tokio. The engine (CPU pool, Metal
//! device) is opened once and shared. The server is meant to face the open network:
//!
//! - [`connections`]: a cap on open connections and on connections per client
//!   address, a header read timeout, an idle keep-alive timeout, graceful shutdown.
//! - [`body`]: each body is read whole *before* a processing slot is taken, under a
//!   size limit, a deadline, a minimum rate and a global budget of buffered bytes, so
//!   a slow client holds only its connection, never a slot.
//! - [`answer`]: a read body takes one of `--max-concurrent` slots (503 at once when
//!   none is free) for its parse, multiplication and response, on the blocking pool.
//! - [`metrics`]: counters served at `GET /metrics` in the Prometheus text format.

mod answer;
mod body;
mod connections;
mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use fxn_challenge::Engine;
use tokio::sync::Semaphore;

use crate::args::{EngineArgs, parse_positive};
use crate::error::{CliError, CliResult};
use body::{BodyLimits, Budget};
use connections::ConnectionLimits;
use metrics::{Gauges, Metrics};

/// Bytes of JSON per matrix value the default body limit allows for: Go prints a
/// float64 in [0, 1) with up to 17 significant digits, ~20 bytes with `0.` and the comma.
const BYTES_PER_VALUE: u64 = 20;

fn seconds(s: &str) -> Result<Duration, String> {
    let value: u64 = s.trim().parse().map_err(|e| format!("{e}"))?;
    if value == 0 {
        return Err("must be at least 1".to_owned());
    }
    Ok(Duration::from_secs(value))
}

fn seconds_or_zero(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|e| e.to_string())
}

/// `fxn-cli serve` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The address to listen on (port 0 picks a free port; the bound address is printed
    /// on stdout as `listening on http://ADDR`).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    #[command(flatten)]
    engine: EngineArgs,
    /// The largest request body in bytes (default: two max-dim×max-dim matrices at 20
    /// bytes a value, plus 1 MiB; about 2.7 GB at 8192).
    #[arg(long)]
    max_body_bytes: Option<u64>,
    /// The most bytes of request bodies buffered at once, across all clients (default:
    /// --max-concurrent × --max-body-bytes). A body that would pass it gets 503.
    #[arg(long)]
    body_budget_bytes: Option<u64>,
    /// Seconds a client has to send its whole body; later, it gets 408.
    #[arg(long, default_value = "60", value_parser = seconds)]
    body_timeout_secs: Duration,
    /// Bytes per second a body must average once --body-grace-secs have passed;
    /// slower, it gets 408 (0: no minimum).
    #[arg(long, default_value_t = 65536)]
    min_body_rate: u64,
    /// Seconds a body may take before --min-body-rate applies.
    #[arg(long, default_value = "5", value_parser = seconds_or_zero)]
    body_grace_secs: Duration,
    /// Challenges processed at once (parse, multiply, answer), once their bodies are
    /// read; a request beyond that is answered 503 at once.
    #[arg(long, default_value_t = 2, value_parser = parse_positive)]
    max_concurrent: usize,
    /// Seconds a challenge may take from taking its slot to its answer, before it is
    /// answered 503 (a multiplication already running finishes and keeps its slot).
    #[arg(long, default_value = "300", value_parser = seconds)]
    timeout_secs: Duration,
    /// Connections served at once; more are answered 503 and closed.
    #[arg(long, default_value_t = 256, value_parser = parse_positive)]
    max_connections: usize,
    /// Connections served at once from one client address (an IPv4 address or an IPv6
    /// /64); more are answered 503 and closed. Loopback clients are exempt unless
    /// --limit-loopback is given.
    #[arg(long, default_value_t = 32, value_parser = parse_positive)]
    max_connections_per_ip: usize,
    /// Apply --max-connections-per-ip to loopback clients too (by default they are
    /// exempt: behind a reverse proxy on this machine every client is 127.0.0.1).
    #[arg(long)]
    limit_loopback: bool,
    /// Seconds a client has to send a request head, from its first byte; later, the
    /// connection is closed.
    #[arg(long, default_value = "10", value_parser = seconds)]
    header_timeout_secs: Duration,
    /// Seconds a connection may stay open with no request in progress; then it is
    /// closed.
    #[arg(long, default_value = "30", value_parser = seconds)]
    idle_timeout_secs: Duration,
    /// Seconds SIGINT or SIGTERM waits for requests in progress before exiting.
    #[arg(long, default_value = "30", value_parser = seconds)]
    shutdown_timeout_secs: Duration,
}

/// What every request shares.
struct AppState {
    engine: Arc<Engine>,
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    body: BodyLimits,
    budget: Arc<Budget>,
    timeout: Duration,
    metrics: Arc<Metrics>,
    max_connections: usize,
}

/// Runs `fxn-cli serve` until SIGINT or SIGTERM, then shuts down gracefully.
pub fn run(args: &Args) -> CliResult {
    let engine = args.engine.open()?;
    match engine.gpu() {
        Some(gpu) => log::info!("GPU: {}", gpu.device_info().name),
        None => log::info!(
            "no GPU ({}): every challenge runs on the CPU",
            engine.gpu_unavailable_reason().unwrap_or("unknown reason")
        ),
    }
    let max_dim = engine.limits().max_dim as u64;
    let max_body = args.max_body_bytes.unwrap_or_else(|| {
        (2 * max_dim * max_dim)
            .saturating_mul(BYTES_PER_VALUE)
            .saturating_add(1 << 20)
    });
    let budget = args
        .body_budget_bytes
        .unwrap_or_else(|| max_body.saturating_mul(args.max_concurrent as u64));
    let state = Arc::new(AppState {
        engine: Arc::new(engine),
        slots: Arc::new(Semaphore::new(args.max_concurrent)),
        max_concurrent: args.max_concurrent,
        body: BodyLimits {
            max_bytes: max_body,
            deadline: args.body_timeout_secs,
            min_rate: args.min_body_rate,
            grace: args.body_grace_secs,
        },
        budget: Budget::new(budget),
        timeout: args.timeout_secs,
        metrics: Arc::new(Metrics::default()),
        max_connections: args.max_connections,
    });
    let limits = ConnectionLimits {
        max_connections: args.max_connections,
        per_address: args.max_connections_per_ip,
        limit_loopback: args.limit_loopback,
        header_timeout: args.header_timeout_secs,
        idle_timeout: args.idle_timeout_secs,
        shutdown_timeout: args.shutdown_timeout_secs,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
    let result = runtime.block_on(serve(&args.listen, state, limits));
    // A multiplication still running past the bound cannot be interrupted: leave it.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn serve(listen: &str, state: Arc<AppState>, limits: ConnectionLimits) -> CliResult {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| CliError::usage(format!("cannot listen on {listen}: {e}")))?;
    let addr: SocketAddr = listener.local_addr()?;
    log::info!(
        "serving POST /challenge, GET /health and GET /metrics on http://{addr} (body limit {} bytes, budget {} bytes, {} at once; {} connections, {} per address)",
        state.body.max_bytes,
        state.budget.capacity(),
        state.max_concurrent,
        limits.max_connections,
        limits.per_address,
    );
    let shutdown = shutdown_signal();
    // Tests and scripts read the bound address from this line.
    crate::output::print_text(&format!("listening on http://{addr}\n"))?;
    let metrics = Arc::clone(&state.metrics);
    let left = connections::serve(listener, router(state), limits, metrics, shutdown).await;
    if left > 0 {
        log::warn!(
            "stopped after {:?} with {left} connections still open; they are closed unanswered",
            limits.shutdown_timeout
        );
    } else {
        log::info!("stopped");
    }
    Ok(())
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/challenge", post(answer::challenge))
        .route("/health", get(|| async { "OK" }))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> axum::response::Response {
    let gauges = Gauges {
        slots: state.max_concurrent,
        slots_in_use: state.max_concurrent - state.slots.available_permits(),
        body_budget: state.budget.capacity(),
        body_buffered: state.budget.used(),
        max_connections: state.max_connections,
    };
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(&gauges),
    )
        .into_response()
}

/// A future that resolves on SIGINT or SIGTERM. The handlers are installed before this
/// returns (so a signal sent once the address is printed is never missed).
#[cfg(unix)]
fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    async fn wait(signal: std::io::Result<Signal>) {
        match signal {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    }
    let interrupt = wait(signal(SignalKind::interrupt()));
    let terminate = wait(signal(SignalKind::terminate()));
    async move {
        tokio::select! {
            () = interrupt => {}
            () = terminate => {}
        }
    }
}

/// A future that resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> impl Future<Output = ()> {
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
