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
    assert_eq!(doc["settings"]["host_memory"], "heap");
    let results = doc["results"].as_array().unwrap();
    // 4 shapes × 2 thread counts.
    assert_eq!(results.len(), 8);
    for r in results {
        assert!(r["best_gflops"].as_f64().unwrap() > 0.0);
        assert!(r["median_gflops"].as_f64().unwrap() <= r["best_gflops"].as_f64().unwrap());
        assert!(r["max_scaled_error"].as_f64().unwrap() < 1e-5);
        let k = &r["concurrent"];
        assert_eq!(k["callers"], 3);
        // Both throughputs are measured, and each ratio is its own quotient.
        let (many, one) = (
            k["gflops"].as_f64().unwrap(),
            k["one_caller_gflops"].as_f64().unwrap(),
        );
        assert!(many > 0.0 && one > 0.0);
        let rounds = k["ratio_to_one_caller_rounds"].as_f64().unwrap();
        assert!((rounds - many / one).abs() <= 1e-9 * rounds);
        let best_call = k["ratio_to_one_caller"].as_f64().unwrap();
        let expected = many / r["best_gflops"].as_f64().unwrap();
        assert!((best_call - expected).abs() <= 1e-9 * expected);
    }
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("cpu (2 threads)"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rounds_pool_every_call_of_a_case() {
    let out = fxn(&[
        "bench",
        "--backend",
        "cpu",
        "--threads",
        "1",
        "--sizes",
        "8,16",
        "--reps",
        "3",
        "--rounds",
        "3",
        "--callers",
        "2",
        "--host-memory",
        "backend",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["settings"]["rounds"], 3);
    // The CPU backend lends heap memory; the cases run and check the same.
    assert_eq!(doc["settings"]["host_memory"], "backend");
    let results = doc["results"].as_array().unwrap();
    // One result per case, not per round, each over the three rounds' calls.
    assert_eq!(results.len(), 2);
    for r in results {
        assert_eq!(r["reps"], 9);
        let (best, median) = (
            r["best_gflops"].as_f64().unwrap(),
            r["median_gflops"].as_f64().unwrap(),
        );
        assert!(best >= median && median > 0.0);
        let k = &r["concurrent"];
        let ratio = k["ratio_to_one_caller"].as_f64().unwrap();
        assert!((ratio - k["gflops"].as_f64().unwrap() / best).abs() <= 1e-9 * ratio);
    }
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

#[test]
fn a_plot_that_cannot_be_written_fails_before_the_timing() {
    let dir = std::env::temp_dir().join(format!("fxn-plot-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bench_plotting_to = |plot: &std::path::Path| {
        let plot = plot.to_str().unwrap();
        fxn(&["bench", "--backend", "cpu", "--sizes", "8", "--plot", plot])
    };
    // Only SVG is drawn: a PNG name is refused, and no file is left.
    let png = dir.join("plot.png");
    let out = bench_plotting_to(&png);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(".svg"), "{err}");
    assert!(!err.contains("8³"), "timed before refusing: {err}");
    assert!(!png.exists());
    // A directory that does not exist fails at once, before any case is timed.
    let missing = dir.join("no-such-dir").join("plot.svg");
    let out = bench_plotting_to(&missing);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-dir"), "{err}");
    assert!(!err.contains("8³"), "timed before failing: {err}");
    assert!(out.stdout.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
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
