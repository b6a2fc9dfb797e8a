//! `cargo xtask fuzz [--seconds N] [--dev] [--skip-if-unavailable]`: runs the libFuzzer
//! target `challenge` (the challenge parser and its validation, `fuzz/`) for N seconds.
//!
//! The target builds optimized with debug assertions (cargo-fuzz's default, the most
//! executions a second); `--dev` builds it without optimizations (cargo-fuzz's `--dev`),
//! which CI takes: on a slow 2-core host the optimized sanitizer build of the whole
//! dependency tree (faer included) took 7.5 of CI's 20 minutes.
//!
//! cargo-fuzz passes nightly-only flags to rustc (`-Zsanitizer=address`); on a stable
//! toolchain this sets `RUSTC_BOOTSTRAP=1` so that the same flags are accepted. The
//! corpus grows in `fuzz/corpus/challenge` (not committed), seeded from the committed
//! `fuzz/seeds/challenge`; a crash is written to `fuzz/artifacts/challenge/` and fails
//! the task. With `--skip-if-unavailable`, a missing cargo-fuzz or a toolchain that
//! cannot build the target prints why and succeeds (CI on machines without it).

use std::path::Path;
use std::process::Command;

const TARGET: &str = "challenge";

pub fn run(root: &Path, rest: &[String]) -> Result<(), String> {
    let mut seconds: u64 = 60;
    let mut skip_if_unavailable = false;
    let mut dev = false;
    let mut args = rest.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&s| s > 0)
                    .ok_or("--seconds takes a positive number")?;
            }
            "--skip-if-unavailable" => skip_if_unavailable = true,
            "--dev" => dev = true,
            other => return Err(format!("fuzz: unknown argument `{other}`")),
        }
    }
    let skip = |reason: String| {
        if skip_if_unavailable {
            println!("xtask fuzz: skipped: {reason}");
            Ok(())
        } else {
            Err(reason)
        }
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let fuzz_dir = root.join("fuzz");
    let probe = Command::new(&cargo)
        .args(["fuzz", "--version"])
        .current_dir(&fuzz_dir)
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        _ => {
            return skip(
                "cargo-fuzz is not installed (`cargo install cargo-fuzz --locked`)".to_owned(),
            );
        }
    }
    let corpus = fuzz_dir.join("corpus").join(TARGET);
    std::fs::create_dir_all(&corpus)
        .map_err(|e| format!("cannot create {}: {e}", corpus.display()))?;
    // cargo-fuzz's default (no flag): optimized, with debug assertions.
    let profile: &[&str] = if dev { &["--dev"] } else { &[] };
    let mut build = Command::new(&cargo);
    build
        .args(["fuzz", "build"])
        .args(profile)
        .arg(TARGET)
        .current_dir(&fuzz_dir)
        .env("RUSTC_BOOTSTRAP", "1");
    let built = build
        .status()
        .map_err(|e| format!("running cargo fuzz: {e}"))?;
    if !built.success() {
        return skip(format!(
            "the fuzz target does not build on this toolchain ({built}): libFuzzer needs a \
             C++ compiler and rustc's -Zsanitizer"
        ));
    }
    let status = Command::new(&cargo)
        .args(["fuzz", "run"])
        .args(profile)
        .arg(TARGET)
        .arg(&corpus)
        .arg(fuzz_dir.join("seeds").join(TARGET))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!(
            "-dict={}",
            fuzz_dir.join("challenge.dict").display()
        ))
        .arg("-max_len=4096")
        .arg("-print_final_stats=1")
        .current_dir(&fuzz_dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .status()
        .map_err(|e| format!("running cargo fuzz: {e}"))?;
    if status.success() {
        println!("xtask fuzz: {TARGET}: {seconds} s, no crash");
        Ok(())
    } else {
        Err(format!(
            "fuzz target `{TARGET}` failed ({status}); the input is in fuzz/artifacts/{TARGET}/: \
             add it to fuzz/regressions/{TARGET}/ once fixed"
        ))
    }
}
