//! `cargo xtask`: the implementation plan's Makefile targets, in Rust.
//!
//! | task | what it does |
//! |---|---|
//! | `metal` | release build of `fxn-cli` with the Metal bridge (macOS) |
//! | `test-metal` | the Metal tests with `FXN_REQUIRE_METAL=1`: a skip is a failure |
//! | `check-metal` | Metal availability, through `fxn-cli gpu info` |
//! | `bench-metal` | the criterion benchmarks of the Metal backend |
//! | `bench-cpu` | the criterion benchmarks of the CPU backend |
//! | `test-cuda` | the CUDA tests with `FXN_REQUIRE_CUDA=1`: a skip is a failure |
//! | `bench-cuda` | `fxn-cli bench` of every CUDA method, release build |
//! | `bindgen [--check]` | regenerate the committed FFI bindings, or fail when stale |
//! | `shader-check` | the kernels on the CPU emulation under ThreadSanitizer and AddressSanitizer |
//! | `fuzz [--seconds N] [--dev]` | the libFuzzer target over the challenge parser and validation (`fuzz/`) |

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod bindings;
mod fuzz;
mod shader_check;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  metal            release build of fxn-cli with the Metal bridge (macOS)
  test-metal       run the Metal tests; FXN_REQUIRE_METAL=1 makes a missing device a failure
  check-metal      report Metal availability (fxn-cli gpu info)
  bench-metal      criterion benchmarks of the Metal backend
  bench-cpu        criterion benchmarks of the CPU backend
  test-cuda [--allow-skip]  run the CUDA tests; FXN_REQUIRE_CUDA=1 makes a missing
                   device a failure (--allow-skip: a skip)
  bench-cuda [ARGS]  fxn-cli bench --backend cuda --methods all (release), with ARGS
                   passed on (default sizes 256,512,1024,2048,4096,8192)
  bindgen [--check]  regenerate metal-matmul-sys/src/bindings.rs, or check it is current
  shader-check     run the kernels in shaders/ on the CPU under ThreadSanitizer and
                   AddressSanitizer+UBSan, with the sanitizers' self-tests (docs/SHADERS.md)
  fuzz [--seconds N] [--dev] [--skip-if-unavailable]
                   fuzz the challenge parser and validation with cargo-fuzz for N
                   seconds (default 60), built optimized or, with --dev, not; a crash
                   fails it (fuzz/, docs/CHALLENGE.md)";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some(task) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match task.as_str() {
        "metal" => cargo(&["build", "--release", "-p", "fxn-cli"], &[]),
        "test-metal" => test_metal(rest),
        "check-metal" => cargo(
            &["run", "--quiet", "-p", "fxn-cli", "--", "gpu", "info"],
            &[],
        ),
        "bench-metal" => bench("metal", rest),
        "bench-cpu" => bench("cpu", rest),
        "test-cuda" => test_cuda(rest),
        "bench-cuda" => bench_cuda(rest),
        "bindgen" => bindings::run(&workspace_root(), rest),
        "shader-check" => shader_check::run(&workspace_root(), rest),
        "fuzz" => fuzz::run(&workspace_root(), rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown task `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The Metal tests, with the fault-recovery test (feature `fault-injection`). On a Mac a missing device fails them (`FXN_REQUIRE_METAL=1`), unless
/// `--allow-skip` is given (hosted CI runners may have no usable GPU).
fn test_metal(rest: &[String]) -> Result<(), String> {
    let allow_skip = rest.iter().any(|a| a == "--allow-skip");
    let require = if allow_skip { "0" } else { "1" };
    cargo(
        &[
            "test",
            "-p",
            "metal-matmul",
            "--features",
            "fault-injection",
            "--test",
            "metal",
            "--test",
            "metal_faults",
            "--",
            "--nocapture",
        ],
        &[("FXN_REQUIRE_METAL", require)],
    )
}

/// The CUDA tests, release build (the large cases are slow unoptimised). A missing
/// device fails them (`FXN_REQUIRE_CUDA=1`) unless `--allow-skip` is given.
fn test_cuda(rest: &[String]) -> Result<(), String> {
    let allow_skip = rest.iter().any(|a| a == "--allow-skip");
    let require = if allow_skip { "0" } else { "1" };
    cargo(
        &[
            "test",
            "--release",
            "-p",
            "metal-matmul",
            "--test",
            "cuda",
            "--",
            "--nocapture",
        ],
        &[("FXN_REQUIRE_CUDA", require)],
    )
}

/// `fxn-cli bench` on CUDA, every method; a missing device is an error (an explicit
/// backend never falls back).
fn bench_cuda(rest: &[String]) -> Result<(), String> {
    let mut args = vec![
        "run",
        "--release",
        "--quiet",
        "-p",
        "fxn-cli",
        "--",
        "bench",
        "--backend",
        "cuda",
        "--methods",
        "all",
    ];
    if !rest
        .iter()
        .any(|a| a.starts_with("--sizes") || a.starts_with("--shapes"))
    {
        args.extend(["--sizes", "256,512,1024,2048,4096,8192"]);
    }
    args.extend(rest.iter().map(String::as_str));
    cargo(&args, &[])
}

fn bench(which: &str, rest: &[String]) -> Result<(), String> {
    let mut args = vec!["bench", "-p", "metal-matmul", "--bench", which];
    if !rest.is_empty() {
        args.push("--");
        args.extend(rest.iter().map(String::as_str));
    }
    cargo(&args, &[])
}

fn cargo(args: &[&str], envs: &[(&str, &str)]) -> Result<(), String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}
