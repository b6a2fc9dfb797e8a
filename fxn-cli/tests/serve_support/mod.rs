//! What the `serve` tests share: a server run as the built binary on a free loopback
//! port, and raw-TCP clients for the misbehaving cases.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A server on a free port, stopped (SIGTERM, then kill) when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    pub fn start(args: &[&str]) -> Self {
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

    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// POSTs `body` to /challenge on a fresh connection (closed afterwards).
    pub fn post(&self, body: &str) -> (u16, String) {
        self.post_with_timeout(body, Duration::from_secs(120))
    }

    /// As [`post`](Self::post), failing if no answer comes within `timeout`.
    pub fn post_with_timeout(&self, body: &str, timeout: Duration) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .max_idle_connections(0)
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

    pub fn ok(&self, body: &str) -> Value {
        let (status, text) = self.post(body);
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).expect("the answer is JSON")
    }

    pub fn healthy(&self) {
        let (status, text) = self.get("/health").expect("health answers");
        assert_eq!(status, 200, "{text}");
        assert!(text.ends_with("\r\n\r\nOK"), "{text}");
    }

    /// A GET on a fresh connection with `Connection: close`: the status and the whole
    /// response text, or `None` when the server closed the connection unanswered.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = self.connect();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr()
        )
        .ok()?;
        read_response(&mut stream)
    }

    /// The value of one sample of `GET /metrics`, e.g.
    /// `fxn_refusals_total{reason="busy"}`.
    pub fn metric(&self, series: &str) -> f64 {
        let (status, text) = self.get("/metrics").expect("metrics answer");
        assert_eq!(status, 200, "{text}");
        metric_value(&text, series).unwrap_or_else(|| panic!("no `{series}` in\n{text}"))
    }

    /// A raw connection with a generous read timeout.
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr()).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream
    }

    /// Opens a raw connection and sends a POST head plus `partial` body bytes.
    pub fn partial_post(&self, content_length: u64, partial: &[u8]) -> TcpStream {
        let mut stream = self.connect();
        write!(
            stream,
            "POST /challenge HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n",
            self.addr()
        )
        .unwrap();
        stream.write_all(partial).unwrap();
        stream.flush().unwrap();
        stream
    }

    /// Sends SIGTERM.
    #[cfg(unix)]
    pub fn signal_term(&self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()));
    }

    /// Waits up to `bound` for the server to exit; its status, or `None` if it did not.
    pub fn wait_exit(&mut self, bound: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("waits") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn envelope(payload: &str) -> String {
    format!(r#"{{"type":"MATRIX_MULTIPLICATION","payload":{payload}}}"#)
}

/// The value of the sample `series` in a Prometheus text exposition.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Reads what the server sends until it closes: the status and the whole text, or
/// `None` when it closed (or reset) the connection without an answer.
pub fn read_response(stream: &mut TcpStream) -> Option<(u16, String)> {
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text))
}

/// Whether the server has already sent something on `stream` (without consuming it).
pub fn answered_already(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let answered = matches!(stream.peek(&mut [0u8; 1]), Ok(n) if n > 0);
    stream.set_nonblocking(false).unwrap();
    answered
}

/// Waits up to `bound` for `condition`, checking every 50 ms.
pub fn eventually(bound: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
