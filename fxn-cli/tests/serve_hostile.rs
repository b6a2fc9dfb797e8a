//! `fxn-cli serve` against hostile clients: slow bodies and slow heads, the caps on
//! connections, idle connections, the body budget, shutdown while requests are in
//! progress, and `GET /metrics`. Deadlines here are seconds long and generous: the
//! tests run on loaded two-core machines and assert what happens, never how fast.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

mod serve_support;
use serve_support::{Server, answered_already, envelope, eventually, read_response};

/// Sends `bytes` one at a time, `gap` apart, until the server stops taking them or
/// `bound` passes; returns how many it took.
fn trickle(mut stream: &TcpStream, bytes: &[u8], gap: Duration, bound: Duration) -> usize {
    let deadline = Instant::now() + bound;
    let mut sent = 0;
    for byte in bytes.iter().cycle() {
        if Instant::now() >= deadline || answered_already(stream) {
            break;
        }
        if stream.write_all(&[*byte]).is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(gap);
    }
    sent
}

/// True when the server has closed `stream` (EOF or reset) with or without an answer;
/// the answer's status, if any.
fn cut_off(stream: &mut TcpStream) -> Option<u16> {
    read_response(stream).map(|(status, _)| status)
}

#[test]
fn slow_clients_cannot_keep_a_valid_challenge_from_being_answered() {
    let server = Server::start(&[
        "--max-concurrent",
        "2",
        "--body-grace-secs",
        "1",
        "--min-body-rate",
        "1000",
        "--header-timeout-secs",
        "2",
        "--limit-loopback",
        "--max-connections-per-ip",
        "64",
    ]);
    let body = envelope(r#"{"matrixA":[[1,2],[3,4]],"matrixB":[[5,6],[7,8]]}"#);
    let head = format!(
        "POST /challenge HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        server.addr(),
        body.len()
    );
    // Twice --max-concurrent of each kind: slow bodies and slow heads, all trickling.
    let outcomes = std::thread::scope(|s| {
        let slow_bodies: Vec<_> = (0..4)
            .map(|_| {
                let (server, head, body) = (&server, &head, &body);
                s.spawn(move || {
                    let mut stream = server.connect();
                    stream.write_all(head.as_bytes()).unwrap();
                    trickle(
                        &stream,
                        body.as_bytes(),
                        Duration::from_millis(200),
                        Duration::from_secs(60),
                    );
                    cut_off(&mut stream)
                })
            })
            .collect();
        let slow_heads: Vec<_> = (0..4)
            .map(|_| {
                let (server, head) = (&server, &head);
                s.spawn(move || {
                    let mut stream = server.connect();
                    trickle(
                        &stream,
                        head.as_bytes(),
                        Duration::from_millis(200),
                        Duration::from_secs(60),
                    );
                    cut_off(&mut stream)
                })
            })
            .collect();
        // Meanwhile, a real challenge: answered in seconds, not after the slow ones.
        std::thread::sleep(Duration::from_millis(500));
        let (status, text) = server.post_with_timeout(&body, Duration::from_secs(10));
        assert_eq!(status, 200, "{text}");
        let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["C"], serde_json::json!([[19.0, 22.0], [43.0, 50.0]]));
        let bodies: Vec<_> = slow_bodies.into_iter().map(|h| h.join().unwrap()).collect();
        let heads: Vec<_> = slow_heads.into_iter().map(|h| h.join().unwrap()).collect();
        (bodies, heads)
    });
    // Cut off, each: a slow body with 408 (which a client still writing may see as a
    // reset), a slow head by closing the connection; the counts below tell which.
    assert!(
        outcomes.0.iter().all(|s| matches!(s, Some(408) | None)),
        "slow bodies: {:?}",
        outcomes.0
    );
    assert!(
        outcomes.1.iter().all(Option::is_none),
        "slow heads: {:?}",
        outcomes.1
    );
    assert_eq!(
        server.metric(r#"fxn_refusals_total{reason="body_too_slow"}"#),
        4.0
    );
    assert_eq!(
        server.metric(r#"fxn_refusals_total{reason="header_timeout"}"#),
        4.0
    );
    assert_eq!(server.metric("fxn_body_bytes_buffered"), 0.0);
    server.healthy();
}

#[test]
fn a_body_that_misses_its_deadline_gets_408() {
    let server = Server::start(&["--body-timeout-secs", "1", "--min-body-rate", "0"]);
    let mut stream = server.partial_post(100, b"{\"type\":");
    let (status, text) = read_response(&mut stream).expect("an answer");
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("did not arrive within 1s"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert_eq!(
        server.metric(r#"fxn_refusals_total{reason="body_deadline"}"#),
        1.0
    );
}

#[test]
fn the_connection_cap_refuses_the_connection_over_it_and_recovers() {
    let server = Server::start(&["--max-connections", "3"]);
    let holders: Vec<TcpStream> = (0..3).map(|_| server.connect()).collect();
    // Connections are accepted in order, so the fourth finds the three counted.
    match server.get("/health") {
        None => {}
        Some((status, text)) => {
            assert_eq!(status, 503, "{text}");
            assert!(text.contains("too many connections"), "{text}");
        }
    }
    drop(holders);
    assert!(
        eventually(Duration::from_secs(20), || {
            matches!(server.get("/health"), Some((200, _)))
        }),
        "the closed connections were never given back"
    );
    assert!(server.metric(r#"fxn_refusals_total{reason="connections"}"#) >= 1.0);
    assert_eq!(server.metric("fxn_connections_max"), 3.0);
}

#[test]
fn the_per_address_cap_holds_for_loopback_only_when_asked() {
    let limited = Server::start(&["--max-connections-per-ip", "2", "--limit-loopback"]);
    let holders: Vec<TcpStream> = (0..2).map(|_| limited.connect()).collect();
    if let Some((status, text)) = limited.get("/health") {
        assert_eq!(status, 503, "{text}");
    }
    drop(holders);
    assert!(
        eventually(Duration::from_secs(20), || {
            matches!(limited.get("/health"), Some((200, _)))
        }),
        "the address's connections were never given back"
    );
    assert!(limited.metric(r#"fxn_refusals_total{reason="per_address"}"#) >= 1.0);
    // Without --limit-loopback a loopback client is exempt.
    let exempt = Server::start(&["--max-connections-per-ip", "1"]);
    let _holders: Vec<TcpStream> = (0..3).map(|_| exempt.connect()).collect();
    exempt.healthy();
    assert_eq!(
        exempt.metric(r#"fxn_refusals_total{reason="per_address"}"#),
        0.0
    );
}

#[test]
fn idle_connections_are_closed() {
    let server = Server::start(&["--idle-timeout-secs", "1"]);
    // Never sends a byte.
    let mut silent = server.connect();
    // Sends one request, keeps the connection, then sends nothing.
    let mut kept = server.connect();
    write!(
        kept,
        "GET /health HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr()
    )
    .unwrap();
    let mut bytes = Vec::new();
    let _ = silent.read_to_end(&mut bytes);
    assert!(bytes.is_empty(), "{}", String::from_utf8_lossy(&bytes));
    let (status, text) = read_response(&mut kept).expect("the request was answered");
    assert_eq!(status, 200, "{text}");
    assert!(server.metric("fxn_connections_idle_closed_total") >= 2.0);
}

#[test]
fn the_body_budget_refuses_a_body_that_would_pass_it() {
    let server = Server::start(&[
        "--max-body-bytes",
        "900",
        "--body-budget-bytes",
        "950",
        "--min-body-rate",
        "0",
    ]);
    // Holds 900 bytes of the budget: its declared length is reserved up front.
    let holder = server.partial_post(900, b"{\"type\":");
    let body = envelope(r#"{"matrixA":[[1,2],[3,4]],"matrixB":[[5,6],[7,8]]}"#);
    assert!(body.len() > 50, "900 + this body is over the budget");
    assert!(
        eventually(Duration::from_secs(20), || {
            server.metric("fxn_body_bytes_buffered") >= 900.0
        }),
        "the holder's body was never reserved"
    );
    let (status, text) = server.post(&body);
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("bytes allowed for bodies"), "{text}");
    drop(holder);
    assert!(
        eventually(Duration::from_secs(20), || server.post(&body).0 == 200),
        "the budget was never given back"
    );
    assert!(server.metric(r#"fxn_refusals_total{reason="body_budget"}"#) >= 1.0);
}

#[cfg(unix)]
#[test]
fn sigterm_finishes_a_request_in_progress_then_exits_0() {
    let mut server = Server::start(&["--min-body-rate", "0"]);
    let body = envelope(r#"{"matrixA":[[1,2],[3,4]],"matrixB":[[5,6],[7,8]]}"#);
    let (first, rest) = body.as_bytes().split_at(20);
    let mut stream = server.partial_post(body.len() as u64, first);
    let idle = server.connect();
    // The server has the head before the signal: wait until it counts the body bytes.
    assert!(eventually(Duration::from_secs(20), || {
        server.metric("fxn_body_bytes_read_total") >= 20.0
    }));
    server.signal_term();
    // New connections are refused once the listener is closed.
    assert!(
        eventually(Duration::from_secs(20), || TcpStream::connect(
            server.addr()
        )
        .is_err()),
        "still accepting after SIGTERM"
    );
    stream.write_all(rest).unwrap();
    let (status, text) = read_response(&mut stream).expect("the request in progress is answered");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(r#""C":[[19.0,22.0],[43.0,50.0]]"#), "{text}");
    drop(idle);
    let exit = server.wait_exit(Duration::from_secs(30)).expect("exits");
    assert!(exit.success(), "{exit:?}");
}

#[cfg(unix)]
#[test]
fn shutdown_is_bounded_when_a_client_never_finishes() {
    let mut server = Server::start(&[
        "--min-body-rate",
        "0",
        "--body-timeout-secs",
        "600",
        "--shutdown-timeout-secs",
        "1",
    ]);
    let _stuck = server.partial_post(100, b"{\"type\":");
    assert!(eventually(Duration::from_secs(20), || {
        server.metric("fxn_body_bytes_read_total") >= 8.0
    }));
    server.signal_term();
    let exit = server
        .wait_exit(Duration::from_secs(30))
        .expect("exits within the bound, not after the body deadline");
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn metrics_count_requests_challenges_latency_and_bytes() {
    let server = Server::start(&["--max-concurrent", "3"]);
    let good = envelope(r#"{"matrixA":[[1,2],[3,4]],"matrixB":[[5,6],[7,8]]}"#);
    let bad = envelope(r#"{"size":0}"#);
    server.ok(&good);
    server.ok(&envelope(r#"{"size":3,"backend":"cpu"}"#));
    assert_eq!(server.post(&bad).0, 400);
    assert_eq!(server.get("/nothing").map(|r| r.0), Some(404));
    let (status, text) = server.get("/metrics").expect("metrics answer");
    assert_eq!(status, 200);
    assert!(
        text.contains("Content-Type: text/plain; version=0.0.4")
            || text.contains("content-type: text/plain; version=0.0.4"),
        "{text}"
    );
    let v = |series: &str| {
        serve_support::metric_value(&text, series).unwrap_or_else(|| panic!("no {series}"))
    };
    assert_eq!(
        v(r#"fxn_http_requests_total{route="/challenge",code="200"}"#),
        2.0
    );
    assert_eq!(
        v(r#"fxn_http_requests_total{route="/challenge",code="400"}"#),
        1.0
    );
    assert_eq!(
        v(r#"fxn_http_requests_total{route="other",code="404"}"#),
        1.0
    );
    assert_eq!(v(r#"fxn_challenges_total{backend="cpu"}"#), 2.0);
    assert_eq!(v("fxn_challenge_duration_seconds_count"), 3.0);
    assert_eq!(
        v(r#"fxn_challenge_duration_seconds_bucket{le="+Inf"}"#),
        3.0
    );
    let bytes = good.len() + bad.len() + envelope(r#"{"size":3,"backend":"cpu"}"#).len();
    assert_eq!(v("fxn_body_bytes_read_total"), bytes as f64);
    assert_eq!(v("fxn_challenge_slots"), 3.0);
    assert_eq!(v("fxn_challenge_slots_in_use"), 0.0);
    assert_eq!(v(r#"fxn_refusals_total{reason="busy"}"#), 0.0);
    // This request's own connection is open while it is answered.
    assert!(v("fxn_connections_open") >= 1.0);
}
