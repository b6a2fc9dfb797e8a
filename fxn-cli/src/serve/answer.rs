//! `POST /challenge`: refuse an oversized declared body, read the body (see
//! [`body`](super::body::read)), then take a processing slot and parse, multiply and answer
//! on the blocking pool under `--timeout-secs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fxn_challenge::{ChallengeError, Engine, parse_envelope};

use super::AppState;
use super::body::{self, Buffered};
use super::metrics::Refusal;

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

impl Done {
    fn refused(status: StatusCode, message: String) -> Self {
        Self {
            status,
            response: text(status, &message),
            summary: message,
        }
    }

    /// The answer to a request whose body was not read to its end: the connection
    /// cannot carry another request, so it is closed after this answer.
    fn closing(mut self) -> Self {
        self.response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        self
    }
}

/// The handler: logs one line and records the latency of every request.
pub async fn challenge(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let done = handle(&state, &headers, body).await;
    let elapsed = started.elapsed();
    state.metrics.latency(elapsed);
    log::info!(
        "POST /challenge {} {} total={:.1}ms",
        done.status.as_u16(),
        done.summary,
        ms(elapsed)
    );
    done.response
}

/// The body of a 200 and what it logs.
struct Answered {
    json: Vec<u8>,
    timings: Timings,
    summary: String,
    backend: String,
}

async fn handle(state: &Arc<AppState>, headers: &HeaderMap, body: Body) -> Done {
    let metrics = &state.metrics;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared.filter(|&l| l > state.body.max_bytes) {
        metrics.refusal(Refusal::BodyTooLarge);
        return Done::refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is {length} bytes, over the limit of {} bytes",
                state.body.max_bytes
            ),
        )
        .closing();
    }
    let read_started = Instant::now();
    let body = match body::read(body, declared, &state.body, &state.budget, metrics).await {
        Ok(body) => body,
        Err(e) => {
            if let Some(reason) = e.refusal() {
                metrics.refusal(reason);
            }
            return Done::refused(e.status(), e.message(&state.body)).closing();
        }
    };
    let read = ms(read_started.elapsed());
    let Ok(slot) = Arc::clone(&state.slots).try_acquire_owned() else {
        metrics.refusal(Refusal::Busy);
        return Done::refused(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "busy: {} challenges are being processed; retry later",
                state.max_concurrent
            ),
        );
    };
    let engine = Arc::clone(&state.engine);
    let work = tokio::task::spawn_blocking(move || {
        // The slot and the body's budget are held until the multiplication ends, even
        // past a timeout.
        let _slot = slot;
        process(&engine, body, read)
    });
    let answered = match tokio::time::timeout(state.timeout, work).await {
        Err(_) => {
            metrics.refusal(Refusal::Timeout);
            return Done::refused(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("timed out after {:?}", state.timeout),
            );
        }
        Ok(Err(e)) => {
            return Done::refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the challenge task failed: {e}"),
            );
        }
        Ok(Ok(Err((status, message)))) => return Done::refused(status, message),
        Ok(Ok(Ok(answered))) => answered,
    };
    metrics.challenge(&answered.backend);
    let t = answered.timings;
    let server_timing = format!(
        "read;dur={:.3}, parse;dur={:.3}, multiply;dur={:.3}, answer;dur={:.3}",
        t.read, t.parse, t.multiply, t.answer
    );
    let mut response = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        answered.json,
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&server_timing) {
        response.headers_mut().insert("server-timing", value);
    }
    Done {
        status: StatusCode::OK,
        response,
        summary: format!(
            "{} read={:.1}ms parse={:.1}ms multiply={:.1}ms answer={:.1}ms",
            answered.summary, t.read, t.parse, t.multiply, t.answer
        ),
    }
}

type Failure = (StatusCode, String);

/// Parses, runs and answers one body on a blocking thread.
fn process(engine: &Engine, body: Buffered, read: f64) -> Result<Answered, Failure> {
    let status = |e: &ChallengeError| {
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    };
    let mut timings = Timings {
        read,
        ..Timings::default()
    };
    let started = Instant::now();
    let parsed = parse_envelope(&body.bytes, engine.limits());
    // The matrices are parsed out of it: give its budget back before multiplying.
    drop(body);
    let challenge = parsed.map_err(|e| (status(&e), e.to_string()))?;
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
    let backend = outcome.backend.to_string();
    let summary = format!(
        "size={}x{}x{} backend={backend} compute={:.1}ms",
        shape.m,
        shape.k,
        shape.n,
        ms(outcome.computation_time)
    );
    Ok(Answered {
        json,
        timings,
        summary,
        backend,
    })
}
