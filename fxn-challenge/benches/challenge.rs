//! The three stages of answering a given-matrix challenge, each alone: parse the body,
//! multiply (on the CPU, the backend every machine has), write the response (the
//! `merkleRoot` over all of C dominates it). `cargo bench -p fxn-challenge`.
//!
//! End-to-end latency through the HTTP server is in fxn-cli's `serve` benchmark.

use std::hint::black_box;
use std::io::Write;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fxn_challenge::{Engine, EngineConfig, Limits, parse_envelope, random_matrix, seeded_rng};

const SIZES: [usize; 3] = [256, 512, 1024];

/// A given-matrix envelope of two random `size×size` matrices, printed as Go prints
/// float64 values (about 18 significant digits), the heaviest JSON callers send.
fn body(size: usize) -> Vec<u8> {
    let mut rng = seeded_rng(1);
    let mut out = Vec::new();
    out.extend_from_slice(br#"{"type":"MATRIX_MULTIPLICATION","payload":{"#);
    for (name, last) in [("matrixA", false), ("matrixB", true)] {
        let m = random_matrix(&mut rng, size, size);
        write!(out, r#""{name}":["#).unwrap();
        for (i, row) in m.chunks_exact(size).enumerate() {
            out.push(if i == 0 { b'[' } else { b',' });
            if i > 0 {
                out.push(b'[');
            }
            for (j, v) in row.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                // Widened to f64 and perturbed below f32 precision, as a float64 source would be.
                write!(out, "{}", f64::from(*v) + 1e-12 * j as f64).unwrap();
            }
            out.push(b']');
        }
        out.push(b']');
        out.push(if last { b'}' } else { b',' });
    }
    out.push(b'}');
    out
}

fn stages(c: &mut Criterion) {
    let engine = Engine::new(EngineConfig {
        use_gpu: false,
        ..EngineConfig::default()
    })
    .expect("the CPU backend opens");
    let limits = Limits::default();
    let mut group = c.benchmark_group("challenge");
    group.sample_size(10);
    for size in SIZES {
        let body = body(size);
        let challenge = parse_envelope(&body, &limits).expect("the body parses");
        let outcome = engine.run(challenge.clone()).expect("the challenge runs");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("parse", size), &body, |b, body| {
            b.iter(|| parse_envelope(black_box(body), &limits).expect("parses"));
        });
        group.throughput(Throughput::Elements((2 * size * size * size) as u64));
        group.bench_with_input(BenchmarkId::new("multiply", size), &challenge, |b, ch| {
            b.iter(|| engine.run(black_box(ch.clone())).expect("runs"));
        });
        group.throughput(Throughput::Elements((size * size) as u64));
        group.bench_with_input(BenchmarkId::new("answer", size), &outcome, |b, o| {
            b.iter(|| black_box(o.to_json()));
        });
    }
    group.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
