//! What the fuzz targets check, as a library so that the regression test in
//! `fxn-challenge/tests/fuzz_regressions.rs` replays the seeds and every saved crash
//! through exactly the same code (it includes this file as a module).
//!
//! [`check`] treats any bytes as the body of `POST /challenge` and asserts what the
//! server relies on: the parser and validation never panic; every refusal is the
//! client's fault (status 400) with a message; an envelope parses the same through
//! both entry points; tighter limits never accept what looser ones refuse; and an
//! accepted challenge is within its limits, runs, and is answered with the right
//! product (checked against an f64 reference) in well-formed JSON.

use std::sync::OnceLock;

use fxn_challenge::{
    Challenge, ChallengeError, Engine, EngineConfig, Limits, Operands, parse_challenge,
    parse_envelope, random_matrix, seeded_rng,
};

/// The largest dimension the fuzzed parser allows: small, so that accepted inputs run
/// in microseconds and the fuzzer spends its time in the parser.
pub const FUZZ_MAX_DIM: usize = 24;

/// A memory budget below what `FUZZ_MAX_DIM` needs, so the budget check is reached too.
pub const FUZZ_TIGHT_BUDGET: u64 = 1000;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::new(EngineConfig {
            limits: Limits::with_max_dim(FUZZ_MAX_DIM),
            threads: Some(1),
            use_gpu: false,
            ..EngineConfig::default()
        })
        .expect("the CPU backend opens")
    })
}

/// Runs every check on one input; panics (a fuzzer crash) when one fails.
pub fn check(data: &[u8]) {
    let limits = Limits::with_max_dim(FUZZ_MAX_DIM);
    let tight = Limits {
        memory_budget: FUZZ_TIGHT_BUDGET,
        ..limits
    };
    let envelope = parse_envelope(data, &limits);
    let any = parse_challenge(data, &limits);
    if let Ok(challenge) = &envelope {
        assert_eq!(
            any.as_ref().ok(),
            Some(challenge),
            "an envelope parses differently through parse_challenge"
        );
    }
    for (strict, loose) in [
        (parse_envelope(data, &tight), &envelope),
        (parse_challenge(data, &tight), &any),
    ] {
        if let Ok(challenge) = &strict {
            assert_eq!(
                loose.as_ref().ok(),
                Some(challenge),
                "tighter limits accepted what looser ones did not"
            );
            within(challenge, &tight);
        } else if let Err(e) = &strict {
            refusal(e);
        }
    }
    for result in [envelope, any] {
        match result {
            Ok(challenge) => {
                within(&challenge, &limits);
                answer(challenge);
            }
            Err(e) => refusal(&e),
        }
    }
}

/// A parse error is the client's: 400, with a message.
fn refusal(e: &ChallengeError) {
    assert_eq!(e.status(), 400, "a parse error that is not 400: {e:?}");
    assert!(!e.to_string().is_empty(), "an error with no message: {e:?}");
}

/// An accepted challenge fits `limits` and its shapes agree.
fn within(challenge: &Challenge, limits: &Limits) {
    let shape = challenge.shape();
    for dim in [shape.m, shape.k, shape.n] {
        assert!(
            (1..=limits.max_dim).contains(&dim),
            "accepted shape {shape:?} outside 1..={}",
            limits.max_dim
        );
    }
    let elements = (shape.m * shape.k + shape.k * shape.n + shape.m * shape.n) as u64;
    assert!(
        elements * 4 <= limits.memory_budget,
        "accepted {shape:?} over the budget of {} bytes",
        limits.memory_budget
    );
    if let Operands::Given { a, b } = &challenge.operands {
        assert_eq!(a.data.len(), a.rows * a.cols, "A's values and shape differ");
        assert_eq!(b.data.len(), b.rows * b.cols, "B's values and shape differ");
        assert_eq!(a.cols, b.rows, "accepted incompatible shapes");
        assert!(
            a.data.iter().chain(&b.data).all(|v| v.is_finite()),
            "accepted a non-finite value"
        );
    }
}

/// Runs an accepted challenge and checks the product and the response.
fn answer(challenge: Challenge) {
    let shape = challenge.shape();
    let operands = match &challenge.operands {
        Operands::Given { a, b } => Some((a.data.clone(), b.data.clone())),
        Operands::Random {
            size,
            seed: Some(seed),
        } => {
            let mut rng = seeded_rng(*seed);
            let a = random_matrix(&mut rng, *size, *size);
            Some((a, random_matrix(&mut rng, *size, *size)))
        }
        Operands::Random { seed: None, .. } => None,
    };
    let outcome = match engine().run(challenge) {
        Ok(outcome) => outcome,
        // Finite inputs can still overflow f32 in the product: the client's fault.
        Err(e) => {
            assert_eq!(e.status(), 400, "a valid challenge failed: {e:?}");
            assert!(e.to_string().contains("overflows"), "{e}");
            return;
        }
    };
    assert_eq!(outcome.c.len(), shape.m * shape.n, "C has the wrong length");
    assert!(outcome.c.iter().all(|v| v.is_finite()), "C is not finite");
    if let Some((a, b)) = operands {
        for i in 0..shape.m {
            for j in 0..shape.n {
                let (mut exact, mut magnitude) = (0.0f64, 0.0f64);
                for p in 0..shape.k {
                    let term = f64::from(a[i * shape.k + p]) * f64::from(b[p * shape.n + j]);
                    exact += term;
                    magnitude += term.abs();
                }
                let got = f64::from(outcome.c[i * shape.n + j]);
                // f32 accumulation over k terms, plus room for values below f32's
                // normal range.
                let bound = 2.0 * shape.k as f64 * f64::from(f32::EPSILON) * magnitude
                    + shape.k as f64 * 1e-37;
                assert!(
                    (got - exact).abs() <= bound,
                    "C[{i}][{j}] = {got}, exact {exact}, bound {bound}"
                );
            }
        }
    }
    let json: serde_json::Value =
        serde_json::from_slice(&outcome.to_json()).expect("the response is JSON");
    assert_eq!(json["matrixSize"].as_u64(), Some(shape.m as u64));
    let flops = 2 * (shape.m * shape.k * shape.n) as u64;
    assert_eq!(json["flops"].as_u64(), Some(flops));
    let root = json["merkleRoot"].as_str().expect("a merkleRoot");
    assert!(root.len() == 66 && root.starts_with("0x"), "{root}");
    let rows = json["C"].as_array().expect("C is sent at these sizes");
    assert_eq!(rows.len(), shape.m);
    for (i, row) in rows.iter().enumerate() {
        let row = row.as_array().expect("a row of C");
        assert_eq!(row.len(), shape.n);
        for (j, value) in row.iter().enumerate() {
            let value = value.as_f64().expect("a number") as f32;
            assert_eq!(
                value,
                outcome.c[i * shape.n + j],
                "C[{i}][{j}] printed wrong"
            );
        }
    }
}
