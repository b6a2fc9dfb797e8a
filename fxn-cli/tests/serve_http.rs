//! `fxn-cli serve`, run as a built binary and driven over loopback: by a real HTTP
//! client (ureq) and, where a misbehaving client is the point, by raw TCP.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

mod serve_support;
use serve_support::{Server, envelope, read_response};

/// Reads a raw response's status line and the rest of what the server sent.
fn raw_response(stream: &mut TcpStream) -> (u16, String) {
    read_response(stream).expect("the server answers before closing")
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
    let mut stream = server.partial_post(1 << 30, b"{\"type\":");
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
    // A large `size` challenge holds the only slot while it runs; if it ends before a
    // probe finds the server full (a fast machine), a larger one is tried. A probe can
    // also win the slot before the large one arrives (a loaded machine): then the
    // large one is the request refused, and the same size is tried again.
    let mut busy = None;
    let sizes = [384, 384, 768, 768, 1536, 1536, 3072, 3072];
    for size in sizes {
        let big = envelope(&format!(r#"{{"size":{size},"seed":1,"backend":"cpu"}}"#));
        let (found, (big_status, big_text)) = std::thread::scope(|s| {
            let holder = s.spawn(|| server.post(&big));
            let mut found = None;
            while !holder.is_finished() && found.is_none() {
                let (status, text) = server.post(&envelope(r#"{"size":2}"#));
                match status {
                    503 => found = Some(text),
                    200 => std::thread::sleep(Duration::from_millis(10)),
                    other => panic!("status {other}: {text}"),
                }
            }
            (found, holder.join().expect("the large request ends"))
        });
        if big_status == 503 {
            assert!(big_text.contains("busy"), "{big_text}");
            continue;
        }
        // The large one was answered too, whatever the probes saw.
        assert_eq!(big_status, 200, "size {size}: {big_text}");
        if found.is_some() {
            busy = found;
            break;
        }
    }
    let text = busy.expect("a request finds the server full");
    assert!(
        text.contains("busy: 1 challenges are being processed"),
        "{text}"
    );
    // The slot came back with the large request's answer.
    server.ok(&envelope(r#"{"size":2}"#));
    server.healthy();
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
    let server = Server::start(&["--timeout-secs", "1", "--max-concurrent", "4"]);
    // Larger and larger products until one takes longer than a second (the first
    // does on any machine running this debug build; the loop is for faster ones).
    let mut timed_out = None;
    for size in [1024, 2048, 4096, 8192] {
        let (status, text) = server.post(&envelope(&format!(
            r#"{{"size":{size},"seed":1,"backend":"cpu"}}"#
        )));
        match status {
            503 => {
                timed_out = Some(text);
                break;
            }
            200 => {}
            other => panic!("status {other}: {text}"),
        }
    }
    let text = timed_out.expect("a product took over a second");
    assert!(text.contains("timed out after 1s"), "{text}");
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
    let mut server = Server::start(&[]);
    server.ok(&envelope(r#"{"size":2}"#));
    server.signal_term();
    let status = server
        .wait_exit(Duration::from_secs(60))
        .expect("the server exits");
    assert!(
        status.success(),
        "the server did not exit successfully: {status:?}"
    );
}
