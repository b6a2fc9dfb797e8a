//! The challenge library: pinned examples, validation, backend rules, the response.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fxn_challenge::{
    BackendRequest, Challenge, ChallengeError, Engine, EngineConfig, Limits, MISSING_OPERANDS,
    Matrix, Operands, merkle_root, parse_challenge, parse_envelope,
};
use metal_matmul::{
    Backend, BackendKind, CpuBackend, DeviceInfo, Error, MatmulOptions, MatmulReport, Method, Shape,
};
use serde_json::Value;

fn cpu_engine() -> Engine {
    Engine::new(EngineConfig {
        use_gpu: false,
        threads: Some(1),
        ..EngineConfig::default()
    })
    .unwrap()
}

fn envelope(payload: &str) -> Vec<u8> {
    format!(r#"{{"type":"MATRIX_MULTIPLICATION","payload":{payload}}}"#).into_bytes()
}

fn answer(engine: &Engine, payload: &str) -> Value {
    let outcome = engine.answer(&envelope(payload)).unwrap();
    serde_json::from_slice(&outcome.to_json()).unwrap()
}

fn error(payload: &str) -> ChallengeError {
    cpu_engine().answer(&envelope(payload)).unwrap_err()
}

#[test]
fn pinned_square_example() {
    let r = answer(
        &cpu_engine(),
        r#"{"matrixA":[[1,2],[3,4]],"matrixB":[[5,6],[7,8]]}"#,
    );
    assert_eq!(r["C"], serde_json::json!([[19.0, 22.0], [43.0, 50.0]]));
    assert_eq!(r["matrixSize"], 2);
    assert_eq!(r["flops"], 16);
    assert_eq!(
        r["merkleRoot"],
        "0x93eea43e7660399dd3e4ac5e27a71f94486e4b646623f95d437ba7d75175a3b4"
    );
    assert_eq!(
        r["resultSamples"],
        serde_json::json!([{"row":0,"col":0,"value":19.0},{"row":1,"col":1,"value":50.0}])
    );
}

#[test]
fn pinned_rectangular_example_with_the_older_names() {
    let r = answer(
        &cpu_engine(),
        r#"{"A":[[1,2,3],[4,5,6]],"B":[[7,8],[9,10],[11,12]]}"#,
    );
    assert_eq!(r["C"], serde_json::json!([[58.0, 64.0], [139.0, 154.0]]));
    // 2·m·k·n, not upstream's 2·size³.
    assert_eq!(r["flops"], 24);
    assert_eq!(
        r["merkleRoot"],
        "0xcd866ca5a4f28dc992ddb25137cd28f4e3f2cd427673566c0516d8cff09c17f1"
    );
}

#[test]
fn whitespace_signs_and_exponents_are_read() {
    let r = answer(
        &cpu_engine(),
        "{ \"matrixA\" : [ [ -1.5e0 , 2 ] ,\n\t[ 3 , 4E-0 ] ] , \"matrixB\":[[ 2,0],[0 ,-0.5e+1 ]] }",
    );
    assert_eq!(r["C"], serde_json::json!([[-3.0, -10.0], [6.0, -20.0]]));
}

#[test]
fn new_names_win_over_old_ones() {
    let r = answer(
        &cpu_engine(),
        r#"{"A":[[9]],"matrixA":[[1,2],[3,4]],"matrixB":[[5,6],[7,8]],"B":[[9]]}"#,
    );
    assert_eq!(r["C"], serde_json::json!([[19.0, 22.0], [43.0, 50.0]]));
}

#[test]
fn size_10_and_size_200() {
    let engine = cpu_engine();
    let r = answer(&engine, r#"{"size":10}"#);
    assert_eq!(r["flops"], 2000);
    assert_eq!(r["matrixSize"], 10);
    let c = r["C"].as_array().unwrap();
    assert_eq!(c.len(), 10);
    assert!(c.iter().all(|row| row.as_array().unwrap().len() == 10));
    let r = answer(&engine, r#"{"size":200}"#);
    assert!(r.get("C").is_none());
    assert_eq!(r["flops"], 16_000_000);
    assert_eq!(r["resultSamples"][1]["row"], 100);
}

#[test]
fn every_upstream_key_is_there_with_its_type() {
    let r = answer(&cpu_engine(), r#"{"size":3,"seed":1,"selfCheck":true}"#);
    assert!(r["computationTimeMs"].is_number());
    assert!(r["gflops"].is_number());
    assert_eq!(r["backend"], "cpu");
    assert_eq!(r["device"], "CPU");
    assert_eq!(
        r["deviceInfo"],
        serde_json::json!({"name":"CPU","computeCapability":"N/A","memoryGB":0.0,"cudaCores":0})
    );
    assert!(r["matrixSize"].is_u64());
    let root = r["merkleRoot"].as_str().unwrap();
    assert!(root.starts_with("0x") && root.len() == 66, "{root}");
    assert!(r["flops"].is_u64());
    assert_eq!(r["device_info"]["device_type"], "CPU");
    assert!(r["device_info"]["device_name"].is_string());
    assert_eq!(r["selfCheck"]["passed"], true);
    assert_eq!(r["selfCheck"]["method"], "freivalds");
    assert_eq!(r["seed"], 1);
}

#[test]
fn the_merkle_root_is_of_the_c_that_was_sent() {
    let r = answer(&cpu_engine(), r#"{"size":7,"seed":3}"#);
    let c: Vec<f32> = r["C"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter())
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(c.len(), 49);
    assert_eq!(r["merkleRoot"], merkle_root(&c));
}

#[test]
fn zero_products_answer_positive_zeros_as_the_go_node_does() {
    // Every product here is -3·0 = -0.0; the Go node sums from +0 and answers +0.
    let engine = cpu_engine();
    for (m, k, n) in [
        (1, 1, 1),
        (4, 1, 4),
        (2, 3, 5),
        (8, 2, 8),
        (15, 2, 16),
        (70, 9, 65),
    ] {
        let a = format!(
            "[{}]",
            vec![format!("[{}]", vec!["-3"; k].join(",")); m].join(",")
        );
        let b = format!(
            "[{}]",
            vec![format!("[{}]", vec!["0"; n].join(",")); k].join(",")
        );
        let r = answer(&engine, &format!(r#"{{"matrixA":{a},"matrixB":{b}}}"#));
        let text = serde_json::to_string(&r["C"]).unwrap();
        assert!(!text.contains('-'), "{m}×{k}×{n}: {text}");
        assert_eq!(
            r["merkleRoot"],
            merkle_root(&vec![0.0; m * n]),
            "{m}×{k}×{n}"
        );
    }
}

#[test]
fn seeds_reproduce_size_matrices() {
    let engine = cpu_engine();
    let one = answer(&engine, r#"{"size":20,"seed":42}"#);
    let again = answer(&engine, r#"{"size":20,"seed":42}"#);
    let other = answer(&engine, r#"{"size":20,"seed":43}"#);
    assert_eq!(one["merkleRoot"], again["merkleRoot"]);
    assert_ne!(one["merkleRoot"], other["merkleRoot"]);
    // Values uniform in [0, 1): every element of C lies in [0, 20).
    for row in one["C"].as_array().unwrap() {
        for v in row.as_array().unwrap() {
            let v = v.as_f64().unwrap();
            assert!((0.0..20.0).contains(&v), "{v}");
        }
    }
    // Without a seed, one is drawn and reported.
    let drawn = answer(&engine, r#"{"size":5}"#);
    let seed = drawn["seed"].as_u64().unwrap();
    let replay = answer(&engine, &format!(r#"{{"size":5,"seed":{seed}}}"#));
    assert_eq!(drawn["merkleRoot"], replay["merkleRoot"]);
}

#[test]
fn size_wins_over_matrices_and_zero_size_defers_to_them() {
    let engine = cpu_engine();
    let r = answer(
        &engine,
        r#"{"size":3,"matrixA":[[1,2],[3,4]],"matrixB":[[5,6],[7,8]]}"#,
    );
    assert_eq!(r["matrixSize"], 3);
    let r = answer(
        &engine,
        r#"{"size":0,"matrixA":[[1,2],[3,4]],"matrixB":[[5,6],[7,8]]}"#,
    );
    assert_eq!(r["C"], serde_json::json!([[19.0, 22.0], [43.0, 50.0]]));
}

#[test]
fn unknown_fields_and_precision_are_ignored_and_keys_match_ignoring_case() {
    let r = answer(
        &cpu_engine(),
        r#"{"precision":"float64","extra":{"deep":[1,[2,{"x":null}]]},"MatrixA":[[2]],"matrixb":[[3]]}"#,
    );
    assert_eq!(r["C"], serde_json::json!([[6.0]]));
}

#[test]
fn a_bare_payload_is_accepted_by_parse_challenge_only() {
    let limits = Limits::default();
    let c = parse_challenge(br#"{"matrixA":[[1]],"matrixB":[[2]]}"#, &limits).unwrap();
    assert_eq!(c.shape(), Shape::square(1));
    let err = parse_envelope(br#"{"matrixA":[[1]],"matrixB":[[2]]}"#, &limits).unwrap_err();
    assert!(err.to_string().contains("no `type`"), "{err}");
    assert_eq!(err.status(), 400);
}

/// (payload, words the message must contain)
const INVALID: &[(&str, &str)] = &[
    (
        r#"{"matrixA":[[1,2],[3]],"matrixB":[[1],[2]]}"#,
        "matrixA: row 1 has 1 values but row 0 has 2",
    ),
    (
        r#"{"matrixA":[[1],[2,3]],"matrixB":[[1]]}"#,
        "matrixA: row 1 has more than 1 values",
    ),
    (r#"{"matrixA":[],"matrixB":[[1]]}"#, "matrixA: is empty"),
    (
        r#"{"matrixA":[[]],"matrixB":[[1]]}"#,
        "matrixA: has empty rows",
    ),
    (
        r#"{"matrixA":[[1,2]],"matrixB":[[1,2]]}"#,
        "matrix dimensions are not compatible for multiplication",
    ),
    (
        r#"{"matrixA":[[1,"x"]],"matrixB":[[1],[2]]}"#,
        "matrixA: invalid type: string \"x\", expected a number at [0][1]",
    ),
    (
        r#"{"matrixA":[[1,null]],"matrixB":[[1],[2]]}"#,
        "matrixA: invalid type: null, expected a number at [0][1]",
    ),
    (
        r#"{"matrixA":[[1e39]],"matrixB":[[1]]}"#,
        "matrixA: the value at [0][0], 1e39, is not a finite f32",
    ),
    (
        r#"{"matrixA":[[1e400]],"matrixB":[[1]]}"#,
        "matrixA: number out of range",
    ),
    (
        r#"{"matrixA":[[1]],"matrixB":[[{"x":1}]]}"#,
        "matrixB: invalid type: map, expected a number at [0][0]",
    ),
    (
        r#"{"matrixA":[[1]],"matrixB":[[[1]]]}"#,
        "matrixB: invalid type: sequence, expected a number at [0][0]",
    ),
    (
        r#"{"matrixA":[[true]],"matrixB":[[1]]}"#,
        "matrixA: invalid type: boolean `true`, expected a number at [0][0]",
    ),
    (
        r#"{"matrixA":[[1]],"B":[1,2]}"#,
        "B: invalid type: integer `1`, expected row 0 as an array of numbers",
    ),
    (
        r#"{"matrixA":"abc","matrixB":[[1]]}"#,
        "matrixA: invalid type: string",
    ),
    (r#"{"matrixA":[[1]]}"#, MISSING_OPERANDS),
    (r#"{}"#, MISSING_OPERANDS),
    (r#"{"size":0}"#, "size: must be a positive integer, got 0"),
    (r#"{"size":-4}"#, "size: must be a positive integer, got -4"),
    (
        r#"{"size":10.5}"#,
        "size: must be a positive integer, got 10.5",
    ),
    (
        r#"{"size":"10"}"#,
        "size: invalid type: string \"10\", expected a positive integer",
    ),
    (
        r#"{"size":9000}"#,
        "size: 9000 is over the largest dimension allowed, 8192",
    ),
    (
        r#"{"size":3,"backend":"tpu"}"#,
        "backend: unknown backend `tpu`",
    ),
    (
        r#"{"size":3,"backend":7}"#,
        "backend: invalid type: integer `7`",
    ),
    (
        r#"{"size":3,"seed":-1}"#,
        "seed: invalid value: integer `-1`",
    ),
    (
        r#"{"size":3,"selfCheck":"yes"}"#,
        "selfCheck: invalid type: string",
    ),
];

#[test]
fn every_invalid_payload_gets_a_400_naming_its_field() {
    for (payload, want) in INVALID {
        let err = error(payload);
        assert_eq!(err.status(), 400, "{payload}: {err}");
        assert!(
            err.to_string().contains(want),
            "{payload}: got `{err}`, want `{want}`"
        );
    }
}

#[test]
fn envelope_errors() {
    let engine = cpu_engine();
    for (body, want) in [
        (&b"hello"[..], "expected value"),
        (b"", "EOF"),
        (b"[1,2]", "expected a challenge object"),
        (
            br#"{"type":"IDENTITY","payload":{}}"#,
            "unknown challenge type `IDENTITY`",
        ),
        (br#"{"type":"MATRIX_MULTIPLICATION"}"#, MISSING_OPERANDS),
        (
            br#"{"type":"MATRIX_MULTIPLICATION","payload":null}"#,
            MISSING_OPERANDS,
        ),
        (
            br#"{"type":"MATRIX_MULTIPLICATION","payload":{"size":2}} x"#,
            "trailing characters",
        ),
        (
            br#"{"type":"MATRIX_MULTIPLICATION","payload":{"size":2},"#,
            "EOF",
        ),
    ] {
        let err = engine.answer(body).unwrap_err();
        assert_eq!(err.status(), 400, "{err}");
        assert!(err.to_string().contains(want), "got `{err}`, want `{want}`");
    }
}

#[test]
fn limits_stop_the_parse_early() {
    let limits = Limits::with_max_dim(4);
    let rows = "[1,2,3,4,5]";
    let body = envelope(&format!(r#"{{"matrixA":[{rows}],"matrixB":[[1]]}}"#));
    let err = parse_envelope(&body, &limits).unwrap_err();
    assert!(
        err.to_string().contains("row 0 has more than 4 values"),
        "{err}"
    );
    let body = envelope(r#"{"matrixA":[[1],[1],[1],[1],[1]],"matrixB":[[1]]}"#);
    let err = parse_envelope(&body, &limits).unwrap_err();
    assert!(err.to_string().contains("more than 4 rows"), "{err}");

    // A budget of 5 values: A (2×2) fits, B (2×2) does not.
    let small = Limits {
        max_dim: 100,
        memory_budget: 20,
    };
    let body = envelope(r#"{"matrixA":[[1,2],[3,4]],"matrixB":[[5,6],[7,8]]}"#);
    let err = parse_envelope(&body, &small).unwrap_err();
    assert!(
        err.to_string().contains("memory budget of 20 bytes"),
        "{err}"
    );
    // A and B fit (8 values) but C does not.
    let small = Limits {
        max_dim: 100,
        memory_budget: 40,
    };
    let err = parse_envelope(&body, &small).unwrap_err();
    assert!(
        err.to_string()
            .contains("over the memory budget of 40 bytes"),
        "{err}"
    );
    let err = Challenge::random(4, None, &small).unwrap_err();
    assert!(
        err.to_string()
            .contains("size: A, B and C would take 192 bytes"),
        "{err}"
    );
}

#[test]
fn the_library_constructors_validate_too() {
    let limits = Limits::default();
    let a = Matrix {
        rows: 1,
        cols: 2,
        data: vec![1.0, f32::NAN],
    };
    let b = Matrix {
        rows: 2,
        cols: 1,
        data: vec![1.0, 2.0],
    };
    let err = Challenge::given(a, b.clone(), &limits).unwrap_err();
    assert!(
        err.to_string()
            .contains("matrixA: the value at [0][1] is not finite"),
        "{err}"
    );
    let short = Matrix {
        rows: 2,
        cols: 2,
        data: vec![1.0],
    };
    assert!(Challenge::given(short, b, &limits).is_err());
    assert!(Challenge::random(0, None, &limits).is_err());
}

#[test]
fn an_overflowing_product_is_the_clients_error() {
    let err = error(r#"{"matrixA":[[3e38,3e38]],"matrixB":[[3e38],[3e38]]}"#);
    assert_eq!(err.status(), 400);
    assert!(
        err.to_string()
            .contains("the product overflows f32: C[0][0] is inf"),
        "{err}"
    );
}

/// A GPU double: fails, returns garbage, or computes correctly via the CPU.
#[derive(Debug)]
struct FakeGpu {
    mode: Mode,
    calls: AtomicUsize,
    cpu: CpuBackend,
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Fails,
    Garbage,
    NaN,
    Correct,
}

impl FakeGpu {
    fn boxed(mode: Mode) -> Box<Self> {
        Box::new(Self {
            mode,
            calls: AtomicUsize::new(0),
            cpu: CpuBackend::with_threads(1).unwrap(),
        })
    }
}

impl Backend for FakeGpu {
    fn kind(&self) -> BackendKind {
        BackendKind::Metal
    }
    fn device_info(&self) -> DeviceInfo {
        DeviceInfo {
            device_type: DeviceInfo::METAL_DEVICE_TYPE.to_owned(),
            name: "Fake M1".to_owned(),
            compute_capability: "Apple7".to_owned(),
            memory_total: 8 << 30,
            unified_memory: true,
            ..DeviceInfo::default()
        }
    }
    fn methods(&self) -> Vec<Method> {
        Vec::new()
    }
    fn matmul_with(
        &self,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        shape: Shape,
        options: &MatmulOptions,
    ) -> Result<MatmulReport, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.mode {
            Mode::Fails => Err(Error::InvalidArgument("simulated GPU fault".to_owned())),
            Mode::Garbage | Mode::NaN | Mode::Correct => {
                let mut report = self.cpu.matmul_with(a, b, c, shape, options)?;
                match self.mode {
                    Mode::Garbage => c[c.len() / 2] += 1.0,
                    Mode::NaN => c[0] = f32::NAN,
                    _ => {}
                }
                report.backend = BackendKind::Metal;
                report.total = Duration::from_micros(10);
                Ok(report)
            }
        }
    }
}

fn engine_with(mode: Mode, self_check: bool) -> Engine {
    Engine::with_backends(
        Box::new(CpuBackend::with_threads(1).unwrap()),
        Some(FakeGpu::boxed(mode)),
        EngineConfig {
            self_check,
            ..EngineConfig::default()
        },
    )
}

fn run(engine: &Engine, payload: &str) -> Value {
    answer(engine, payload)
}

#[test]
fn upstreams_backend_rules() {
    let engine = engine_with(Mode::Correct, false);
    // auto: the CPU below 100 rows, the GPU from 100 on.
    assert_eq!(run(&engine, r#"{"size":99}"#)["backend"], "cpu");
    let r = run(&engine, r#"{"size":100}"#);
    assert_eq!(r["backend"], "metal");
    assert_eq!(r["device"], "Fake M1");
    assert_eq!(
        r["deviceInfo"],
        serde_json::json!({"name":"Fake M1","computeCapability":"Apple7 (Unified Memory)","memoryGB":8.0,"cudaCores":0})
    );
    assert_eq!(r["device_info"]["device_type"], "Apple Metal GPU");
    for name in ["gpu", "metal", "cuda", "GPU"] {
        let r = run(&engine, &format!(r#"{{"size":2,"backend":"{name}"}}"#));
        assert_eq!(r["backend"], "metal", "{name}");
    }
    assert_eq!(
        run(&engine, r#"{"size":150,"backend":"cpu"}"#)["backend"],
        "cpu"
    );
}

#[test]
fn a_gpu_request_without_a_gpu_runs_on_the_cpu() {
    let r = run(&cpu_engine(), r#"{"size":4,"backend":"metal"}"#);
    assert_eq!(r["backend"], "cpu");
}

#[test]
fn a_gpu_error_falls_back_to_the_cpu() {
    let engine = engine_with(Mode::Fails, false);
    let outcome = engine
        .answer(&envelope(
            r#"{"matrixA":[[1,2],[3,4]],"matrixB":[[5,6],[7,8]],"backend":"gpu"}"#,
        ))
        .unwrap();
    assert_eq!(outcome.backend, BackendKind::Cpu);
    assert_eq!(&outcome.c[..], [19.0, 22.0, 43.0, 50.0]);
    assert!(
        outcome
            .gpu_fallback
            .unwrap()
            .contains("simulated GPU fault")
    );
}

#[test]
fn a_non_finite_gpu_result_is_recomputed_on_the_cpu() {
    let engine = engine_with(Mode::NaN, false);
    let r = run(
        &engine,
        r#"{"matrixA":[[1,2],[3,4]],"matrixB":[[5,6],[7,8]],"backend":"gpu"}"#,
    );
    assert_eq!(r["backend"], "cpu");
    assert_eq!(r["C"], serde_json::json!([[19.0, 22.0], [43.0, 50.0]]));
}

#[test]
fn the_self_check_catches_a_wrong_gpu_answer() {
    // Without the check, the faulty device's answer goes out.
    let unchecked = run(
        &engine_with(Mode::Garbage, false),
        r#"{"size":120,"seed":5}"#,
    );
    assert_eq!(unchecked["backend"], "metal");
    // With it (configured or asked for), the product is recomputed on the CPU.
    let checked = run(
        &engine_with(Mode::Garbage, true),
        r#"{"size":120,"seed":5}"#,
    );
    assert_eq!(checked["backend"], "cpu");
    assert_eq!(checked["selfCheck"]["passed"], true);
    let asked = run(
        &engine_with(Mode::Garbage, false),
        r#"{"size":120,"seed":5,"selfCheck":true}"#,
    );
    assert_eq!(asked["backend"], "cpu");
    assert_eq!(asked["merkleRoot"], checked["merkleRoot"]);
    assert_ne!(unchecked["merkleRoot"], checked["merkleRoot"]);
}

#[test]
fn challenge_requests_carry_their_backend() {
    let c = parse_envelope(
        &envelope(r#"{"size":3,"backend":" Metal "}"#),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(c.backend, BackendRequest::Gpu);
    assert_eq!(
        c.operands,
        Operands::Random {
            size: 3,
            seed: None
        }
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

    /// Arbitrary bytes never panic the parser.
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        let _ = parse_envelope(&body, &Limits::default());
        let _ = parse_challenge(&body, &Limits::default());
    }

    /// Random JSON built from the payload's own vocabulary never panics the engine:
    /// it answers or gives an error.
    #[test]
    fn random_payloads_never_panic(body in payload_strategy()) {
        let engine = cpu_engine_cached();
        match engine.answer(body.as_bytes()) {
            Ok(outcome) => { proptest::prop_assert!(!outcome.to_json().is_empty()); }
            Err(err) => { proptest::prop_assert!(!err.to_string().is_empty()); }
        }
    }
}

fn cpu_engine_cached() -> &'static Engine {
    static ENGINE: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::new(EngineConfig {
            use_gpu: false,
            threads: Some(1),
            limits: Limits::with_max_dim(16),
            ..EngineConfig::default()
        })
        .unwrap()
    })
}

fn payload_strategy() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("\"x\"".to_owned()),
        (-3i64..20).prop_map(|v| v.to_string()),
        (-1e3f64..1e3).prop_map(|v| v.to_string()),
        Just("1e39".to_owned()),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        proptest::collection::vec(inner, 0..4).prop_map(|v| format!("[{}]", v.join(",")))
    });
    let key = prop_oneof![
        Just("size"),
        Just("matrixA"),
        Just("matrixB"),
        Just("A"),
        Just("B"),
        Just("backend"),
        Just("seed"),
        Just("precision"),
        Just("selfCheck"),
        Just("other"),
    ];
    proptest::collection::vec((key, value), 0..5).prop_map(|fields| {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!(
            r#"{{"type":"MATRIX_MULTIPLICATION","payload":{{{}}}}}"#,
            body.join(",")
        )
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// Any finite f32 matrix, printed in either notation with arbitrary whitespace, is
    /// read back exactly.
    #[test]
    fn matrices_round_trip_through_the_scanner(
        rows in 1usize..5,
        cols in 1usize..5,
        bits in proptest::collection::vec(proptest::num::u32::ANY, 16),
        exponent_form in proptest::bool::ANY,
        spaces in proptest::collection::vec(0usize..3, 64),
    ) {
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| f32::from_bits(bits[i % bits.len()]))
            .map(|v| if v.is_finite() { v } else { 1.5 })
            .collect();
        let ws = |i: usize| [" ", "\n\t", ""][spaces[i % spaces.len()]];
        let mut text = String::from("[");
        for (r, row) in values.chunks(cols).enumerate() {
            if r > 0 { text.push(','); }
            text.push_str(ws(r));
            text.push('[');
            for (c, v) in row.iter().enumerate() {
                if c > 0 { text.push(','); }
                text.push_str(ws(r + c + 1));
                text.push_str(&if exponent_form { format!("{v:e}") } else { format!("{v}") });
                text.push_str(ws(r * c + 2));
            }
            text.push(']');
        }
        text.push_str(" ]");
        let body = format!(r#"{{"matrixA":{text},"matrixB":[[1]]}}"#);
        let limits = Limits::default();
        let parsed = parse_challenge(body.as_bytes(), &limits);
        // B is 1×1, so only a 1-column A is compatible; decode either way.
        match parsed {
            Ok(challenge) => match challenge.operands {
                Operands::Given { a, .. } => {
                    let got: Vec<u32> = a.data.iter().map(|v| v.to_bits()).collect();
                    let want: Vec<u32> = values.iter().map(|v| v.to_bits()).collect();
                    proptest::prop_assert_eq!(got, want);
                    proptest::prop_assert_eq!((a.rows, a.cols), (rows, cols));
                }
                Operands::Random { .. } => proptest::prop_assert!(false, "not random"),
            },
            Err(err) => {
                proptest::prop_assert!(cols != 1, "{err}");
                proptest::prop_assert!(err.to_string().contains("not compatible"), "{err}");
            }
        }
    }
}
