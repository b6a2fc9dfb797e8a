//! A load generator for `fxn-cli serve`: thousands of requests over many keep-alive
//! connections against a server on loopback, mixed valid, invalid, oversized and slow.
//! It reports throughput, p50/p99 latency and the count by status, checks that every
//! valid answer is correct (C and `merkleRoot` against a local reference), and fails
//! if any valid request is lost (no answer) or answered wrongly. A benchmark, not a
//! test: it asserts correctness, never speed.
//!
//! `cargo bench -p fxn-cli --bench serve_load -- [--requests N] [--connections N]
//! [--slow N]` (defaults 5000, 64, 8). Runs the server as built by `cargo bench`
//! (the bench profile), on the CPU, with `--max-concurrent 2`.
//!
//! The mix, by request number: 1 in 20 an invalid JSON body, 1 in 20 an unknown
//! `type` (both must get 400), 1 in 20 a declared body over `--max-body-bytes` (413),
//! the rest valid: given integer matrices of 1 to 24 rows and columns, whose product
//! is exact in f32, and 3 in 20 a seeded `size` 48 challenge, checked against a
//! product computed here in f64. Any request answered 503 (all slots busy; invalid
//! ones too, as parsing takes a slot) is retried after a short pause, up to 50 times.
//! Besides, `--slow` connections send their bodies a byte at a time, over and over;
//! each must be cut off (408 or closed), and the run waits (up to 30 s) until each was.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fxn_challenge::{merkle_root, random_matrix, seeded_rng};
use rand::Rng;

const MAX_BODY: u64 = 64 * 1024;
const SIZE: usize = 48;
const RETRIES: usize = 50;

struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fxn-cli"))
            .args(["serve", "--listen", "127.0.0.1:0", "--no-gpu"])
            .args(["--max-concurrent", "2", "--max-body-bytes"])
            .arg(MAX_BODY.to_string())
            .args(["--body-grace-secs", "1", "--min-body-rate", "1000"])
            .args(["--max-connections", "512"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("fxn-cli serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the server prints its address");
        let addr = line
            .trim()
            .trim_start_matches("listening on http://")
            .to_owned();
        Self { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One answer: status, whether the server closes the connection, the body.
struct Answer {
    status: u16,
    close: bool,
    body: Vec<u8>,
}

/// A keep-alive HTTP/1.1 connection, reopened when the server closes it.
struct Connection {
    addr: String,
    stream: Option<BufReader<TcpStream>>,
}

impl Connection {
    fn new(addr: &str) -> Self {
        Self {
            addr: addr.to_owned(),
            stream: None,
        }
    }

    fn open(&mut self) -> std::io::Result<&mut BufReader<TcpStream>> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(&self.addr)?;
            stream.set_read_timeout(Some(Duration::from_secs(120)))?;
            stream.set_nodelay(true)?;
            self.stream = Some(BufReader::new(stream));
        }
        Ok(self.stream.as_mut().expect("just opened"))
    }

    /// POSTs `body` to /challenge, declaring `length` (the body's own by default).
    fn post(&mut self, body: &[u8], length: Option<u64>) -> std::io::Result<Answer> {
        let result = self.exchange(body, length);
        match &result {
            Ok(answer) if !answer.close => {}
            _ => self.stream = None,
        }
        result
    }

    fn exchange(&mut self, body: &[u8], length: Option<u64>) -> std::io::Result<Answer> {
        let addr = self.addr.clone();
        let stream = self.open()?;
        let length = length.unwrap_or(body.len() as u64);
        let head = format!(
            "POST /challenge HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        );
        let socket = stream.get_mut();
        socket.write_all(head.as_bytes())?;
        if length == body.len() as u64 {
            socket.write_all(body)?;
        }
        read_answer(stream)
    }
}

fn read_answer(stream: &mut BufReader<TcpStream>) -> std::io::Result<Answer> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    if stream.read_line(&mut line)? == 0 {
        return Err(bad("closed before an answer"));
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let (mut length, mut close) = (0usize, false);
    loop {
        line.clear();
        if stream.read_line(&mut line)? == 0 {
            return Err(bad("closed in the head"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((header, ""));
        if name.eq_ignore_ascii_case("content-length") {
            length = value
                .trim()
                .parse()
                .map_err(|_| bad("bad content-length"))?;
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.trim().eq_ignore_ascii_case("close");
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body)?;
    Ok(Answer {
        status,
        close,
        body,
    })
}

/// What a valid request must be answered with.
enum Expected {
    /// Exactly this C (integer products are exact in f32).
    Exact(Vec<f32>, usize),
    /// C within a tolerance of this f64 reference, `cols` wide.
    Close(Vec<f64>, usize),
}

/// Request `i` of the mix: its body, the declared length, the status wanted, and the
/// answer a valid one must carry.
fn request(i: usize) -> (Vec<u8>, Option<u64>, u16, Option<Expected>) {
    let mut rng = seeded_rng(i as u64);
    match i % 20 {
        0 => (
            br#"{"type":"MATRIX_MULTIPLICATION","payload":{"matrixA":[[1,2],[3]],"matrixB":[[1]]}}"#.to_vec(),
            None,
            400,
            None,
        ),
        1 => (br#"{"type":"IDENTITY","payload":{}}"#.to_vec(), None, 400, None),
        2 => (Vec::new(), Some(MAX_BODY + 1), 413, None),
        j if j % 5 == 0 => {
            let seed = i as u64;
            let mut gen_rng = seeded_rng(seed);
            let a = random_matrix(&mut gen_rng, SIZE, SIZE);
            let b = random_matrix(&mut gen_rng, SIZE, SIZE);
            let c = reference(&a, &b, SIZE, SIZE, SIZE);
            let body = format!(
                r#"{{"type":"MATRIX_MULTIPLICATION","payload":{{"size":{SIZE},"seed":{seed}}}}}"#
            );
            (body.into_bytes(), None, 200, Some(Expected::Close(c, SIZE)))
        }
        _ => {
            let (m, k, n) = (
                rng.random_range(1..=24),
                rng.random_range(1..=24),
                rng.random_range(1..=24),
            );
            let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-8..=8) as f32).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-8..=8) as f32).collect();
            let c: Vec<f32> = reference(&a, &b, m, k, n)
                .into_iter()
                .map(|v| v as f32)
                .collect();
            let rows = |x: &[f32], cols: usize| {
                let rows: Vec<String> = x
                    .chunks(cols)
                    .map(|r| {
                        let v: Vec<String> = r.iter().map(|v| format!("{v}")).collect();
                        format!("[{}]", v.join(","))
                    })
                    .collect();
                format!("[{}]", rows.join(","))
            };
            let body = format!(
                r#"{{"type":"MATRIX_MULTIPLICATION","payload":{{"matrixA":{},"matrixB":{},"backend":"cpu"}}}}"#,
                rows(&a, k),
                rows(&b, n)
            );
            (body.into_bytes(), None, 200, Some(Expected::Exact(c, n)))
        }
    }
}

fn reference(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0f64; m * n];
    for i in 0..m {
        for p in 0..k {
            let x = f64::from(a[i * k + p]);
            for j in 0..n {
                c[i * n + j] += x * f64::from(b[p * n + j]);
            }
        }
    }
    c
}

/// Checks a 200's JSON against what was expected; the reason when it is wrong.
fn check(body: &[u8], expected: &Expected) -> Result<(), String> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let rows = json["C"].as_array().ok_or("no C")?;
    let got: Vec<f32> = rows
        .iter()
        .flat_map(|r| r.as_array().cloned().unwrap_or_default())
        .map(|v| v.as_f64().unwrap_or(f64::NAN) as f32)
        .collect();
    let (cols, len) = match expected {
        Expected::Exact(c, cols) => {
            if got != *c {
                return Err("C differs from the exact product".to_owned());
            }
            let root = json["merkleRoot"].as_str().unwrap_or_default();
            if root != merkle_root(c) {
                return Err(format!("merkleRoot {root} is not {}", merkle_root(c)));
            }
            (*cols, c.len())
        }
        Expected::Close(c, cols) => {
            for (g, want) in got.iter().zip(c) {
                if (f64::from(*g) - want).abs() > 1e-4 * want.abs().max(1.0) {
                    return Err(format!("C holds {g}, the reference {want}"));
                }
            }
            if json["merkleRoot"].as_str() != Some(&merkle_root(&got)) {
                return Err("merkleRoot does not match the C sent".to_owned());
            }
            (*cols, c.len())
        }
    };
    if got.len() != len || rows.first().and_then(|r| r.as_array()).map(Vec::len) != Some(cols) {
        return Err(format!("C has {} values, want {len}", got.len()));
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    by_status: std::collections::BTreeMap<u16, usize>,
    latencies: Vec<Duration>,
    valid_ok: usize,
    retries: usize,
    lost: Vec<String>,
    wrong: Vec<String>,
    unexpected: Vec<String>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let total = arg("--requests", 5000);
    let connections = arg("--connections", 64).max(1);
    let slow = arg("--slow", 8);
    let server = Server::start();
    println!(
        "serve_load: {total} requests over {connections} connections, {slow} slow clients, server {}",
        server.addr
    );
    let next = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let tally = Mutex::new(Tally::default());
    let slow_cut = AtomicUsize::new(0);
    let slow_other = Mutex::new(Vec::new());
    let started = Instant::now();
    let elapsed = std::thread::scope(|s| {
        for _ in 0..slow {
            s.spawn(|| {
                let body = request(3).0;
                while !done.load(Ordering::Relaxed) {
                    let Ok(mut stream) = TcpStream::connect(&server.addr) else {
                        break;
                    };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
                    let head = format!(
                        "POST /challenge HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes());
                    for byte in &body {
                        if done.load(Ordering::Relaxed) || stream.write_all(&[*byte]).is_err() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    if done.load(Ordering::Relaxed) {
                        break;
                    }
                    let mut reader = BufReader::new(stream);
                    match read_answer(&mut reader) {
                        Ok(a) if a.status == 408 => slow_cut.fetch_add(1, Ordering::Relaxed),
                        Err(_) => slow_cut.fetch_add(1, Ordering::Relaxed),
                        Ok(a) => {
                            slow_other.lock().unwrap().push(a.status);
                            0
                        }
                    };
                }
            });
        }
        let workers: Vec<_> = (0..connections)
            .map(|_| {
                s.spawn(|| {
                    let mut connection = Connection::new(&server.addr);
                    let mut local = Tally::default();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            break;
                        }
                        let (body, length, want, expected) = request(i);
                        let mut attempt = 0;
                        loop {
                            let sent = Instant::now();
                            let answer = connection.post(&body, length);
                            let elapsed = sent.elapsed();
                            match answer {
                                Err(e) => {
                                    local.lost.push(format!("request {i}: {e}"));
                                    break;
                                }
                                Ok(a) => {
                                    *local.by_status.entry(a.status).or_default() += 1;
                                    local.latencies.push(elapsed);
                                    // Busy is a fair answer to any request, valid or not
                                    // (parsing takes a slot too): ask again.
                                    if a.status == 503 && want != 503 && attempt < RETRIES {
                                        attempt += 1;
                                        local.retries += 1;
                                        std::thread::sleep(Duration::from_millis(5));
                                        continue;
                                    }
                                    if a.status != want {
                                        local.unexpected.push(format!(
                                            "request {i}: {} wanted {want}: {}",
                                            a.status,
                                            String::from_utf8_lossy(&a.body).trim()
                                        ));
                                    } else if let Some(expected) = &expected {
                                        match check(&a.body, expected) {
                                            Ok(()) => local.valid_ok += 1,
                                            Err(why) => {
                                                local.wrong.push(format!("request {i}: {why}"))
                                            }
                                        }
                                    }
                                    break;
                                }
                            }
                        }
                    }
                    let mut tally = tally.lock().unwrap();
                    for (status, count) in local.by_status {
                        *tally.by_status.entry(status).or_default() += count;
                    }
                    tally.latencies.extend(local.latencies);
                    tally.valid_ok += local.valid_ok;
                    tally.retries += local.retries;
                    tally.lost.extend(local.lost);
                    tally.wrong.extend(local.wrong);
                    tally.unexpected.extend(local.unexpected);
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("a worker");
        }
        let elapsed = started.elapsed();
        // Every slow client must have been dealt with (cut off, or answered and so
        // reported) once before the run ends; 30 s is ample for a 1 s grace.
        let deadline = Instant::now() + Duration::from_secs(30);
        while slow_cut.load(Ordering::Relaxed) + slow_other.lock().unwrap().len() < slow
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        done.store(true, Ordering::Relaxed);
        elapsed
    });
    let mut tally = tally.into_inner().unwrap();
    tally.latencies.sort();
    let answered: usize = tally.by_status.values().sum();
    let valid = (0..total).filter(|i| request_is_valid(*i)).count();
    println!(
        "{answered} answers ({} retries of 503) in {:.2} s: {:.0} answers/s",
        tally.retries,
        elapsed.as_secs_f64(),
        answered as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency per answer: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&tally.latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&tally.latencies, 0.99).as_secs_f64() * 1e3,
        tally
            .latencies
            .last()
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3
    );
    let statuses: Vec<String> = tally
        .by_status
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    println!("by status: {}", statuses.join(", "));
    println!(
        "valid: {} of {valid} answered 200 and correct; lost {}, wrong {}, unexpected status {}",
        tally.valid_ok,
        tally.lost.len(),
        tally.wrong.len(),
        tally.unexpected.len()
    );
    let slow_other = slow_other.into_inner().unwrap();
    println!(
        "slow clients: {} cut off (408 or closed), {} answered otherwise {slow_other:?}",
        slow_cut.load(Ordering::Relaxed),
        slow_other.len()
    );
    let mut problems: Vec<&String> = tally.lost.iter().chain(&tally.wrong).collect();
    problems.extend(&tally.unexpected);
    for p in problems.iter().take(20) {
        eprintln!("  {p}");
    }
    let slow_unanswered = slow > slow_cut.load(Ordering::Relaxed) + slow_other.len();
    if slow_unanswered {
        println!("  a slow client was neither cut off nor answered within 30 s");
    }
    if !problems.is_empty() || tally.valid_ok != valid || !slow_other.is_empty() || slow_unanswered
    {
        eprintln!("serve_load: FAILED");
        std::process::exit(1);
    }
    println!("serve_load: every valid request answered correctly, none lost");
}

fn request_is_valid(i: usize) -> bool {
    !matches!(i % 20, 0..=2)
}
