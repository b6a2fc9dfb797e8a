//! `fxn-cli serve`: the challenge responder over HTTP, wire-compatible with the Go
//! Function Node (`POST /challenge`, `GET /health`).
//!
//! Built on axum and tokio. The engine (CPU pool, Metal device) is opened once and
//! shared. Each request takes a slot of `--max-concurrent` before its body is read,
//! so at most that many bodies are buffered and multiplied at once; a request that
//! finds no slot is answered 503 at once. A body whose declared length is over the
//! limit is refused with 413 before any of it is read. Parsing, the multiplication
//! and the response are built on the blocking pool, never on the async workers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fxn_challenge::{ChallengeError, Engine, parse_envelope};
use http_body_util::BodyExt;
use tokio::sync::Semaphore;

use crate::challenge::EngineArgs;
use crate::error::{CliError, CliResult};

/// Bytes of JSON per matrix value the default body limit allows for: Go prints a
/// float64 in [0, 1) with up to 17 significant digits, ~20 bytes with `0.` and the comma.
const BYTES_PER_VALUE: u64 = 20;

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
    /// bytes a value, plus 1 MiB; about 2.7 GB at 8192). Bodies are buffered, up to
    /// --max-concurrent at once: lower this or --max-dim on small machines.
    #[arg(long)]
    max_body_bytes: Option<u64>,
    /// Challenges processed at once; a request beyond that is answered 503 at once.
    #[arg(long, default_value_t = 2, value_parser = crate::challenge::parse_positive)]
    max_concurrent: usize,
    /// Seconds a request may take, from reading its body to its answer, before it is
    /// answered 503 (a multiplication already running finishes and keeps its slot).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_secs: u64,
}

/// What every request shares.
struct AppState {
    engine: Arc<Engine>,
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    max_body: u64,
    timeout: Duration,
}

/// Runs `fxn-cli serve` until SIGINT or SIGTERM.
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
    let state = Arc::new(AppState {
        engine: Arc::new(engine),
        slots: Arc::new(Semaphore::new(args.max_concurrent)),
        max_concurrent: args.max_concurrent,
        max_body,
        timeout: Duration::from_secs(args.timeout_secs),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(serve(&args.listen, state))
}

async fn serve(listen: &str, state: Arc<AppState>) -> CliResult {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| CliError::usage(format!("cannot listen on {listen}: {e}")))?;
    let addr: SocketAddr = listener.local_addr()?;
    log::info!(
        "serving POST /challenge and GET /health on http://{addr} (body limit {} bytes, {} at once, timeout {:?})",
        state.max_body,
        state.max_concurrent,
        state.timeout
    );
    // Tests and scripts read the bound address from this line.
    crate::output::print_text(&format!("listening on http://{addr}\n"))?;
    let app = router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| CliError::failure(format!("server error: {e}")))?;
    log::info!("stopped");
    Ok(())
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/challenge", post(challenge))
        .route("/health", get(|| async { "OK" }))
        .with_state(state)
}

/// Resolves on SIGINT or SIGTERM; the server then stops accepting and lets requests
/// in flight finish.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    log::info!("shutting down: finishing the requests in flight");
}

/// Milliseconds of each stage of one request, sent as `Server-Timing`.
#[derive(Debug, Default, Clone, Copy)]
struct Timings {
    read: f64,
    parse: f64,
    multiply: f64,
    answer: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A plain-text error answer, as upstream's `http.Error` writes it.
fn text(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        format!("{message}\n"),
    )
        .into_response()
}

/// What a finished request logs.
struct Done {
    status: StatusCode,
    response: Response,
    summary: String,
}

async fn challenge(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let done = handle(&state, &headers, body).await;
    log::info!(
        "POST /challenge {} {} total={:.1}ms",
        done.status.as_u16(),
        done.summary,
        ms(started.elapsed())
    );
    done.response
}

async fn handle(state: &Arc<AppState>, headers: &HeaderMap, body: Body) -> Done {
    let refuse = |status: StatusCode, message: String| Done {
        status,
        response: text(status, &message),
        summary: message,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared.filter(|&l| l > state.max_body) {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is {length} bytes, over the limit of {} bytes",
                state.max_body
            ),
        );
    }
    let Ok(slot) = Arc::clone(&state.slots).try_acquire_owned() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "busy: {} challenges are being processed; retry later",
                state.max_concurrent
            ),
        );
    };
    let work = async {
        let read_started = Instant::now();
        let body = read_body(body, state.max_body, declared).await?;
        let read = ms(read_started.elapsed());
        let engine = Arc::clone(&state.engine);
        tokio::task::spawn_blocking(move || {
            // The slot is held until the multiplication ends, even past a timeout.
            let _slot = slot;
            process(&engine, &body, read)
        })
        .await
        .map_err(|e| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the challenge task failed: {e}"),
            )
        })?
    };
    match tokio::time::timeout(state.timeout, work).await {
        Err(_) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("timed out after {:?}", state.timeout),
        ),
        Ok(Err((status, message))) => refuse(status, message),
        Ok(Ok((json, timings, summary))) => {
            let server_timing = format!(
                "read;dur={:.3}, parse;dur={:.3}, multiply;dur={:.3}, answer;dur={:.3}",
                timings.read, timings.parse, timings.multiply, timings.answer
            );
            let mut response = (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                json,
            )
                .into_response();
            if let Ok(value) = HeaderValue::from_str(&server_timing) {
                response.headers_mut().insert("server-timing", value);
            }
            Done {
                status: StatusCode::OK,
                response,
                summary: format!(
                    "{summary} read={:.1}ms parse={:.1}ms multiply={:.1}ms answer={:.1}ms",
                    timings.read, timings.parse, timings.multiply, timings.answer
                ),
            }
        }
    }
}

type Failure = (StatusCode, String);

/// The most a declared Content-Length reserves up front; a longer body grows the buffer
/// as it arrives (so a client cannot make the server reserve the whole limit by
/// declaring it and sending nothing).
const MAX_PREALLOCATION: u64 = 64 << 20;

/// Reads the body into one buffer (sized from Content-Length when given), refusing it
/// with 413 as soon as it passes `limit`.
async fn read_body(body: Body, limit: u64, declared: Option<u64>) -> Result<Vec<u8>, Failure> {
    let capacity = declared.unwrap_or(0).min(limit).min(MAX_PREALLOCATION);
    let mut buffer = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() as u64 + data.len() as u64 > limit {
                return Err((
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is over the limit of {limit} bytes"),
                ));
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer)
}

/// Parses, runs and answers one body on a blocking thread.
fn process(engine: &Engine, body: &[u8], read: f64) -> Result<(Vec<u8>, Timings, String), Failure> {
    let status = |e: &ChallengeError| {
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    };
    let mut timings = Timings {
        read,
        ..Timings::default()
    };
    let started = Instant::now();
    let challenge =
        parse_envelope(body, engine.limits()).map_err(|e| (status(&e), e.to_string()))?;
    timings.parse = ms(started.elapsed());
    let shape = challenge.shape();
    let started = Instant::now();
    let outcome = engine
        .run(challenge)
        .map_err(|e| (status(&e), e.to_string()))?;
    timings.multiply = ms(started.elapsed());
    let started = Instant::now();
    let json = outcome.to_json();
    timings.answer = ms(started.elapsed());
    let summary = format!(
        "size={}x{}x{} backend={} compute={:.1}ms",
        shape.m,
        shape.k,
        shape.n,
        outcome.backend,
        ms(outcome.computation_time)
    );
    Ok((json, timings, summary))
}
