//! The built `fxn-cli` binary: output streams, JSON documents and exit codes.

use std::process::{Command, Output, Stdio};

fn fxn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fxn-cli"))
        .args(args)
        .env_remove("FXN_BACKEND")
        .output()
        .expect("running fxn-cli")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("UTF-8 stderr")
}

fn metal_available() -> bool {
    metal_matmul::MetalStatus::probe().available()
}

#[test]
fn version_tells_compile_time_and_run_time_metal_apart() {
    for flag in ["--version", "-V"] {
        let out = fxn(&[flag]);
        assert!(out.status.success());
        let text = stdout(&out);
        assert!(
            text.contains("metal(compile)") && text.contains("metal(runtime)"),
            "{flag}: {text}"
        );
        assert!(text.contains("cuda(compile)"), "{flag}: {text}");
        if !cfg!(target_os = "macos") {
            assert!(text.contains("-metal(compile)"), "{flag}: {text}");
        }
    }
}

#[test]
fn gpu_info_json_is_one_versioned_document() {
    let out = fxn(&["gpu", "info", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    assert_eq!(doc["format_version"], 1);
    assert!(doc["cpu"]["cores"].as_u64().unwrap() >= 1);
    assert!(!doc["cpu"]["model"].as_str().unwrap().is_empty());
    // Bytes, 0 where CPUID does not tell: never absent.
    assert!(doc["cpu"]["last_level_cache"].is_u64());
    assert!(doc["cpu"]["l2_cache"].is_u64());
    let cuda = metal_matmul::CudaStatus::probe().available();
    assert_eq!(doc["cuda"]["device"], cuda);
    if cuda {
        assert!(doc["cuda"]["facts"]["sm_count"].as_u64().unwrap() > 0);
    } else {
        assert!(doc["cuda"]["reason"].as_str().unwrap().len() > 10);
    }
    if metal_available() {
        assert_eq!(doc["selected_backend"], "metal");
        assert_eq!(doc["device"]["device_type"], "Apple Metal GPU");
    } else if cuda {
        assert_eq!(doc["selected_backend"], "cuda");
        assert_eq!(doc["device"]["device_type"], "NVIDIA CUDA GPU");
    } else {
        // The Linux case the workspace issue names: not available, why, and the CPU.
        assert_eq!(doc["metal"]["device"], false);
        assert!(doc["metal"]["reason"].as_str().unwrap().len() > 10);
        assert_eq!(doc["selected_backend"], "cpu");
        assert_eq!(doc["device"]["device_type"], "CPU");
        assert!(doc["fallback_reason"].is_string());
    }
}

#[test]
fn gpu_info_text_names_the_cpu() {
    let out = fxn(&["gpu", "info", "--backend", "cpu"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Selected backend:  cpu"), "{text}");
    assert!(text.contains("CPU") && text.contains("cores:"), "{text}");
}

#[test]
fn matmul_checks_its_result_and_reports_gflops() {
    let out = fxn(&[
        "matmul",
        "-m",
        "65",
        "-k",
        "33",
        "-n",
        "17",
        "--backend",
        "cpu",
        "--seed",
        "3",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["shape"]["m"], 65);
    assert_eq!(doc["shape"]["k"], 33);
    assert_eq!(doc["backend"], "cpu");
    assert_eq!(doc["checked_against"], "f64 reference");
    assert!(doc["max_scaled_error"].as_f64().unwrap() < 1e-5);
    assert!(doc["gflops"].as_f64().unwrap() > 0.0);
    assert!(doc["warm"].is_null(), "one call has no warm calls");
}

#[test]
fn matmul_repeat_times_the_warm_calls() {
    let out = fxn(&[
        "matmul",
        "-m",
        "40",
        "--backend",
        "cpu",
        "--repeat",
        "4",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let warm = &doc["warm"];
    assert_eq!(warm["calls"], 3);
    let (best, median) = (
        warm["best_ms"].as_f64().unwrap(),
        warm["median_ms"].as_f64().unwrap(),
    );
    assert!(
        best > 0.0 && best <= median,
        "best {best} ms, median {median} ms"
    );
    assert!(warm["best_gflops"].as_f64().unwrap() >= warm["median_gflops"].as_f64().unwrap());
    assert_eq!(doc["checked_against"], "f64 reference");

    let out = fxn(&["matmul", "-m", "40", "--backend", "cpu", "--repeat", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("(the first call)") && text.contains("warm:     2 more calls"),
        "{text}"
    );

    let out = fxn(&["matmul", "--repeat", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn explicit_metal_without_a_device_exits_3_with_a_prefixed_message() {
    if metal_available() {
        eprintln!("skipping: Metal is available here");
        return;
    }
    let out = fxn(&["matmul", "-m", "8", "--backend", "metal"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(
        err.starts_with("fxn-cli: ") && err.contains("unavailable"),
        "{err}"
    );
}

#[test]
fn invalid_input_exits_2() {
    let out = fxn(&["matmul", "-m", "9000", "--backend", "cpu"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("largest dimension"),
        "{}",
        stderr(&out)
    );
    let out = fxn(&["matmul", "--method", "turbo"]);
    assert_eq!(out.status.code(), Some(2));
    let out = fxn(&["matmul", "-m", "4", "--backend", "cpu", "--method", "tiled"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = fxn(&["matmul", "--threads", "0"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_bad_fxn_backend_is_reported() {
    let out = Command::new(env!("CARGO_BIN_EXE_fxn-cli"))
        .args(["gpu", "info"])
        .env("FXN_BACKEND", "tpu")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("FXN_BACKEND"), "{}", stderr(&out));
}

#[test]
fn a_closed_stdout_ends_quietly() {
    // The read end is closed before the child starts, so its first write fails with
    // EPIPE, deterministically.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_fxn-cli"))
        .args(["gpu", "info", "--json", "--backend", "cpu"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "exit {:?}, stderr {}",
        out.status,
        stderr(&out)
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}
