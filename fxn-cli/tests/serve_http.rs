//! `fxn-cli serve`, run as a built binary and driven over loopback: by a real HTTP
//! client (ureq) and, where a misbehaving client is the point, by raw TCP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A server on a free port, stopped (SIGTERM, then kill) when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fxn-cli"))
            .args(["serve", "--listen", "127.0.0.1:0", "--threads", "1"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("fxn-cli serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout is piped"))
            .read_line(&mut line)
            .expect("the server prints its address");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line `{line}`"))
            .to_owned();
        Self { child, base }
    }

    fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    fn post(&self, body: &str) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = agent
            .post(format!("{}/challenge", self.base))
            .header("Content-Type", "application/json")
            .send(body)
            .expect("the server answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("a text body");
        (status, text)
    }

    fn ok(&self, body: &str) -> Value {
        let (status, text) = self.post(body);
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).expect("the answer is JSON")
    }

    fn healthy(&self) {
        let mut response = ureq::get(format!("{}/health", self.base))
            .call()
            .expect("health answers");
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.body_mut().read_to_string().unwrap(), "OK");
    }

    /// Sends SIGTERM and waits; true when the server exited successfully.
    #[cfg(unix)]
    fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()));
        let status = self.child.wait().expect("the server ends");
        std::mem::forget(self);
        status.success()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn envelope(payload: &str) -> String {
    format!(r#"{{"type":"MATRIX_MULTIPLICATION","payload":{payload}}}"#)
}

/// Opens a raw connection and sends a request head plus `partial` body bytes.
fn raw_partial(server: &Server, content_length: u64, partial: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr()).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "POST /challenge HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n",
        server.addr()
    )
    .unwrap();
    stream.write_all(partial).unwrap();
    stream.flush().unwrap();
    stream
}

/// Whether the server has already sent something on `stream` (without consuming it).
fn answered_already(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let answered = matches!(stream.peek(&mut [0u8; 1]), Ok(n) if n > 0);
    stream.set_nonblocking(false).unwrap();
    answered
}

/// Reads a raw response's status line and the rest of what the server sent.
fn raw_response(stream: &mut TcpStream) -> (u16, String) {
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in `{text}`"));
    (status, text)
}

#[test]
fn pinned_examples_over_http() {
    let server = Server::start(&[]);
    server.healthy();
    let r = server.ok(&envelope(
        r#"{"matrixA":[[1,2],[3,4]],"matrixB":[[5,6],[7,8]]}"#,
    ));
    assert_eq!(r["C"], serde_json::json!([[19.0, 22.0], [43.0, 50.0]]));
    assert_eq!(r["matrixSize"], 2);
    assert_eq!(r["flops"], 16);
    assert_eq!(
        r["merkleRoot"],
        "0x93eea43e7660399dd3e4ac5e27a71f94486e4b646623f95d437ba7d75175a3b4"
    );
    let r = server.ok(&envelope(
        r#"{"A":[[1,2,3],[4,5,6]],"B":[[7,8],[9,10],[11,12]]}"#,
    ));
    assert_eq!(r["C"], serde_json::json!([[58.0, 64.0], [139.0, 154.0]]));
    assert_eq!(
        r["merkleRoot"],
        "0xcd866ca5a4f28dc992ddb25137cd28f4e3f2cd427673566c0516d8cff09c17f1"
    );
    let r = server.ok(&envelope(r#"{"size":10}"#));
    assert_eq!(r["flops"], 2000);
    assert_eq!(r["C"].as_array().map(Vec::len), Some(10));
    let r = server.ok(&envelope(
        r#"{"size":200,"backend":"gpu","precision":"float64"}"#,
    ));
    assert!(r.get("C").is_none());
    for key in [
        "computationTimeMs",
        "gflops",
        "backend",
        "device",
        "deviceInfo",
        "matrixSize",
        "merkleRoot",
        "resultSamples",
        "flops",
        "device_info",
    ] {
        assert!(r.get(key).is_some(), "missing {key}");
    }
}

#[test]
fn every_invalid_request_gets_its_status_and_message_and_the_server_goes_on() {
    let server = Server::start(&["--max-dim", "64"]);
    let cases: &[(&str, u16, &str)] = &[
        ("not json", 400, "expected"),
        ("", 400, "EOF"),
        (
            r#"{"type":"IDENTITY","payload":{}}"#,
            400,
            "unknown challenge type `IDENTITY`",
        ),
        (r#"{"payload":{"size":2}}"#, 400, "no `type`"),
        (
            &envelope(r#"{"matrixA":[[1,2],[3]],"matrixB":[[1],[2]]}"#),
            400,
            "matrixA: row 1 has 1 values but row 0 has 2",
        ),
        (
            &envelope(r#"{"matrixA":[],"matrixB":[[1]]}"#),
            400,
            "matrixA: is empty",
        ),
        (
            &envelope(r#"{"matrixA":[[]],"matrixB":[[1]]}"#),
            400,
            "matrixA: has empty rows",
        ),
        (
            &envelope(r#"{"matrixA":[[1,2]],"matrixB":[[1,2]]}"#),
            400,
            "matrix dimensions are not compatible for multiplication",
        ),
        (
            &envelope(r#"{"matrixA":[[1,"2"]],"matrixB":[[1],[2]]}"#),
            400,
            "matrixA: invalid type: string",
        ),
        (
            &envelope(r#"{"matrixA":[[1e39]],"matrixB":[[1]]}"#),
            400,
            "is not a finite f32",
        ),
        (
            &envelope(r#"{"size":0}"#),
            400,
            "size: must be a positive integer, got 0",
        ),
        (
            &envelope(r#"{"size":-5}"#),
            400,
            "size: must be a positive integer, got -5",
        ),
        (
            &envelope(r#"{"size":2.5}"#),
            400,
            "size: must be a positive integer, got 2.5",
        ),
        (
            &envelope(r#"{"size":65}"#),
            400,
            "size: 65 is over the largest dimension allowed, 64",
        ),
        (
            &envelope(r#"{"size":2,"backend":"tpu"}"#),
            400,
            "backend: unknown backend `tpu`",
        ),
        (
            &envelope(r#"{}"#),
            400,
            "either 'size' or both 'A' and 'B' matrices must be provided",
        ),
    ];
    for (body, status, want) in cases {
        let (got, text) = server.post(body);
        assert_eq!(got, *status, "{body}: {text}");
        assert!(text.contains(want), "{body}: got `{text}`, want `{want}`");
        server.healthy();
    }
    let wide = format!("[[{}]]", vec!["1"; 65].join(","));
    let (got, text) = server.post(&envelope(&format!(
        r#"{{"matrixA":{wide},"matrixB":[[1]]}}"#
    )));
    assert_eq!(got, 400);
    assert!(text.contains("row 0 has more than 64 values"), "{text}");
    // Still serving.
    let r = server.ok(&envelope(r#"{"matrixA":[[2]],"matrixB":[[3]]}"#));
    assert_eq!(r["C"], serde_json::json!([[6.0]]));
}

#[test]
fn bodies_over_the_limit_are_refused() {
    let server = Server::start(&["--max-body-bytes", "1000"]);
    // Declared too large: refused from the head alone, long before 1 GB arrives.
    let mut stream = raw_partial(&server, 1 << 30, b"{\"type\":");
    let (status, text) = raw_response(&mut stream);
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("over the limit of 1000 bytes"), "{text}");
    let big = envelope(&format!(r#"{{"size":2,"pad":"{}"}}"#, "x".repeat(2000)));
    let (status, text) = server.post(&big);
    assert_eq!(status, 413, "{text}");
    // A chunked body declares no length: it is counted as it arrives.
    let mut stream = TcpStream::connect(server.addr()).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "POST /challenge HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n",
        server.addr(),
        big.len()
    )
    .unwrap();
    let (status, text) = raw_response(&mut stream);
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("over the limit of 1000 bytes"), "{text}");
    server.healthy();
    server.ok(&envelope(r#"{"size":2}"#));
}

#[test]
fn a_full_server_answers_503_and_recovers() {
    let server = Server::start(&["--max-concurrent", "1"]);
    // A slow client holds the only slot: its body never finishes arriving.
    let mut holder = raw_partial(&server, 100, b"{\"type\":");
    // Wait until the server has taken the slot for it (it answers 503 to others).
    let mut busy = None;
    for _ in 0..200 {
        let (status, text) = server.post(&envelope(r#"{"size":2}"#));
        if status == 503 {
            busy = Some(text);
            break;
        }
        assert_eq!(status, 200, "{text}");
        // On a loaded machine the server may have seen the holder's head while one of
        // these requests held the slot, and refused the holder instead: then it has
        // an answer waiting, and a new holder takes its place.
        if answered_already(&holder) {
            holder = raw_partial(&server, 100, b"{\"type\":");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let text = busy.expect("a request finds the server full");
    assert!(text.contains("busy"), "{text}");
    server.healthy();
    // The slow client leaves; its slot comes back.
    drop(holder);
    let mut answered = false;
    for _ in 0..200 {
        let (status, _) = server.post(&envelope(r#"{"size":2}"#));
        if status == 200 {
            answered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(answered, "the slot was never released");
}

#[test]
fn concurrent_requests_beyond_the_bound_all_end_with_200_or_503() {
    let server = Server::start(&["--max-concurrent", "2"]);
    let requests = 12;
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..requests)
            .map(|i| {
                let server = &server;
                s.spawn(move || {
                    let (status, text) =
                        server.post(&envelope(&format!(r#"{{"size":160,"seed":{i}}}"#)));
                    match status {
                        200 => assert!(text.contains("merkleRoot"), "{text}"),
                        503 => assert!(text.contains("busy"), "{text}"),
                        other => panic!("status {other}: {text}"),
                    }
                    status
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no request is lost"))
            .collect()
    });
    assert_eq!(statuses.len(), requests);
    assert!(statuses.contains(&200), "{statuses:?}");
    server.healthy();
}

#[test]
fn a_request_over_the_timeout_gets_503() {
    let server = Server::start(&["--timeout-secs", "1"]);
    let mut stream = raw_partial(&server, 100, b"{\"type\":");
    let (status, text) = raw_response(&mut stream);
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("timed out"), "{text}");
    server.healthy();
}

#[test]
fn other_methods_and_paths() {
    let server = Server::start(&[]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let r = agent
        .get(format!("{}/challenge", server.base))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let r = agent
        .get(format!("{}/nothing", server.base))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[cfg(unix)]
#[test]
fn sigterm_stops_the_server_cleanly() {
    let server = Server::start(&[]);
    server.ok(&envelope(r#"{"size":2}"#));
    assert!(server.terminate(), "the server did not exit successfully");
}
