//! `fxn-cli bench` end to end: the JSON document, CSV, the plot and its errors.

use std::process::Command;

fn fxn(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fxn-cli"))
        .args(args)
        .env_remove("FXN_BACKEND")
        .output()
        .expect("fxn-cli runs")
}

#[test]
fn json_lists_every_case_checked() {
    let dir = std::env::temp_dir().join(format!("fxn-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plot = dir.join("plot.svg");
    let out = fxn(&[
        "bench",
        "--backend",
        "cpu",
        "--sizes",
        "8,24",
        "--shapes",
        "1x20x30,17x5x1",
        "--threads",
        "1,2",
        "--reps",
        "3",
        "--callers",
        "3",
        "--json",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["format_version"], 1);
    let results = doc["results"].as_array().unwrap();
    // 4 shapes × 2 thread counts.
    assert_eq!(results.len(), 8);
    for r in results {
        assert!(r["best_gflops"].as_f64().unwrap() > 0.0);
        assert!(r["median_gflops"].as_f64().unwrap() <= r["best_gflops"].as_f64().unwrap());
        assert!(r["max_scaled_error"].as_f64().unwrap() < 1e-5);
        assert_eq!(r["concurrent"]["callers"], 3);
    }
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("cpu (2 threads)"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn csv_has_a_header_and_a_line_per_case() {
    let out = fxn(&[
        "bench",
        "--backend",
        "cpu",
        "--sizes",
        "8,9",
        "--reps",
        "3",
        "--csv",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("m,k,n,backend,threads,method"));
    assert!(lines[1].starts_with("8,8,8,cpu,"));
}

#[test]
fn bad_requests_are_usage_errors() {
    // The CPU backend has no Metal method to force.
    let out = fxn(&[
        "bench",
        "--backend",
        "cpu",
        "--methods",
        "tiled",
        "--sizes",
        "8",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = fxn(&["bench", "--backend", "cpu", "--shapes", "0x4x4"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("zero dimension"));
    let out = fxn(&["bench", "--backend", "gpu2", "--sizes", "8"]);
    assert_eq!(out.status.code(), Some(2));
    let out = fxn(&["bench", "--backend", "cpu", "--shapes", "2x3"]);
    assert_eq!(out.status.code(), Some(2));
}

#[cfg(not(target_os = "macos"))]
#[test]
fn an_explicit_metal_backend_without_a_device_is_unavailable() {
    let out = fxn(&["bench", "--backend", "metal", "--sizes", "8"]);
    assert_eq!(out.status.code(), Some(3));
    // `all` skips Metal with a note and still times the CPU.
    let out = fxn(&["bench", "--backend", "all", "--sizes", "8", "--reps", "3"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipping the metal backend"));
}
