//! End-to-end latency of challenges through `fxn-cli serve` over loopback, for `size`
//! requests and given-matrix requests at 256, 512 and 1024, with the server's own split
//! of each request (read the body, parse, multiply, answer) from its `Server-Timing`
//! header, printed after each group.
//!
//! `cargo bench -p fxn-cli --bench serve`. Runs the server as built (debug builds of the
//! binary are much slower; `cargo bench` builds it with the bench profile). On a Mac the
//! `auto` backend sends these sizes (≥ 100 rows) to Metal.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fxn_challenge::{random_matrix, seeded_rng};

const SIZES: [usize; 3] = [256, 512, 1024];

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fxn-cli"))
            .args(["serve", "--listen", "127.0.0.1:0", "--max-concurrent", "1"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("fxn-cli serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the server prints its address");
        let base = line.trim().trim_start_matches("listening on ").to_owned();
        Self { child, base }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A given-matrix envelope of two random matrices, printed as a float64 source
/// (Go) prints them: about 18 significant digits a value, ~20 MB at 1024.
fn given_body(size: usize) -> Vec<u8> {
    let mut rng = seeded_rng(1);
    let mut out = Vec::new();
    out.extend_from_slice(br#"{"type":"MATRIX_MULTIPLICATION","payload":{"#);
    for name in ["matrixA", "matrixB"] {
        let m = random_matrix(&mut rng, size, size);
        write!(out, r#""{name}":["#).unwrap();
        for (i, row) in m.chunks_exact(size).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'[');
            for (j, v) in row.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                write!(out, "{}", f64::from(*v) + 1e-12 * j as f64).unwrap();
            }
            out.push(b']');
        }
        out.extend_from_slice(b"],");
    }
    out.extend_from_slice(br#""backend":"auto"}}"#);
    out
}

/// Sums of the server's split, in ms, and the request count.
#[derive(Default)]
struct Split {
    read: f64,
    parse: f64,
    multiply: f64,
    answer: f64,
    count: u32,
}

impl Split {
    fn add(&mut self, header: &str) {
        for part in header.split(',') {
            let mut it = part.trim().split(";dur=");
            let (Some(name), Some(value)) = (it.next(), it.next()) else {
                continue;
            };
            let value: f64 = value.parse().unwrap_or(0.0);
            match name {
                "read" => self.read += value,
                "parse" => self.parse += value,
                "multiply" => self.multiply += value,
                "answer" => self.answer += value,
                _ => {}
            }
        }
        self.count += 1;
    }

    fn print(&self, label: &str) {
        let n = f64::from(self.count.max(1));
        println!(
            "{label}: server split over {} requests, mean ms: read {:.2}, parse {:.2}, multiply {:.2}, answer {:.2}",
            self.count,
            self.read / n,
            self.parse / n,
            self.multiply / n,
            self.answer / n
        );
    }
}

fn post(agent: &ureq::Agent, url: &str, body: &[u8], split: &Mutex<Split>) {
    let mut response = agent.post(url).send(body).expect("the server answers");
    assert_eq!(response.status().as_u16(), 200);
    if let Some(timing) = response
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
    {
        split.lock().expect("not poisoned").add(timing);
    }
    let text = response.body_mut().read_to_string().expect("a body");
    assert!(text.contains("merkleRoot"));
}

fn through_the_server(c: &mut Criterion) {
    let server = Server::start();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}/challenge", server.base);
    let mut group = c.benchmark_group("serve");
    group.sample_size(10);
    for size in SIZES {
        let bodies = [
            (
                "size",
                format!(
                    r#"{{"type":"MATRIX_MULTIPLICATION","payload":{{"size":{size},"seed":1}}}}"#
                )
                .into_bytes(),
            ),
            ("given", given_body(size)),
        ];
        for (kind, body) in bodies {
            let split = Mutex::new(Split::default());
            group.bench_with_input(BenchmarkId::new(kind, size), &body, |b, body| {
                b.iter(|| post(&agent, &url, body, &split));
            });
            let label = format!("serve/{kind}/{size} ({} byte body)", body.len());
            split.lock().expect("not poisoned").print(&label);
        }
    }
    group.finish();
}

criterion_group!(benches, through_the_server);
criterion_main!(benches);
