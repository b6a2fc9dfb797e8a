//! `cargo xtask shader-check`: the static check, then every kernel of `shaders/` under
//! ThreadSanitizer and under AddressSanitizer + UndefinedBehaviorSanitizer, then the
//! self-tests that show each sanitizer catching a bug of its kind planted in a test-only
//! kernel (`tests/kernels/planted_*.metal`).

use std::time::Instant;

use crate::check::check;
use crate::geometry::MATMUL_KERNELS;
use crate::matmul::{BridgeSetup, Rng, verify};
use crate::{BuildOptions, Emulator, RunError, Sanitizer, Sources, crate_dir};

/// Shapes every kernel runs on under each sanitizer: 1×1×1, edges of every tile, several
/// groups and several steps along K (a missing barrier needs a second step to race).
pub const SHAPES: [(u32, u32, u32); 4] = [(1, 1, 1), (17, 33, 15), (33, 20, 35), (70, 37, 67)];

/// Runs everything, printing progress through `say`; an error names what failed.
pub fn run(sources: &Sources, say: &mut dyn FnMut(&str)) -> Result<(), String> {
    let started = Instant::now();
    let report = check(sources)?;
    for note in &report.notes {
        say(&format!("note: {note}"));
    }
    report.into_result()?;
    say("static check: kernel names, buffer indices and dispatch geometry agree with the bridge");

    let setup = BridgeSetup::load(sources)?;
    let seed = Rng::seed_from_env();
    say(&format!(
        "inputs from seed {seed} (SHADER_EMU_SEED={seed} repeats them)"
    ));
    for sanitizer in [Sanitizer::Thread, Sanitizer::Address] {
        let emu = build(sources, sanitizer, Vec::new(), say)?;
        for kernel in MATMUL_KERNELS {
            let t = Instant::now();
            let mut rng = Rng::new(seed);
            for (m, k, n) in SHAPES {
                let (a, b) = (rng.matrix((m * k) as usize), rng.matrix((k * n) as usize));
                let c = setup.run(&emu, kernel, &a, &b, (m, k, n))?;
                verify(&c, &a, &b, m as usize, k as usize, n as usize)
                    .map_err(|e| format!("{kernel} {m}×{k}×{n} under {}: {e}", sanitizer.name()))?;
            }
            say(&format!(
                "{}: {kernel} clean and correct on {} shapes ({:.1} s)",
                sanitizer.name(),
                SHAPES.len(),
                t.elapsed().as_secs_f64()
            ));
        }
    }

    planted(
        sources,
        &setup,
        Sanitizer::Thread,
        "planted_race",
        "ThreadSanitizer: data race",
        say,
    )?;
    planted(
        sources,
        &setup,
        Sanitizer::Address,
        "planted_overflow",
        "AddressSanitizer: heap-buffer-overflow",
        say,
    )?;
    say(&format!(
        "shader-check passed in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn build(
    sources: &Sources,
    sanitizer: Sanitizer,
    only: Vec<std::path::PathBuf>,
    say: &mut dyn FnMut(&str),
) -> Result<Emulator, String> {
    let t = Instant::now();
    let options = BuildOptions {
        sanitizer,
        only_kernels: (!only.is_empty()).then_some(only),
        ..BuildOptions::default()
    };
    let emu = Emulator::build(sources, &options).map_err(|e| {
        format!(
            "{e}\n(building with {} needs its runtime: libtsan2/libasan8/libubsan1 for g++, \
             libclang-rt-<version>-dev for clang; see docs/SHADERS.md)",
            sanitizer.name()
        )
    })?;
    say(&format!(
        "built under {} ({:.1} s)",
        sanitizer.name(),
        t.elapsed().as_secs_f64()
    ));
    Ok(emu)
}

/// Self-test: the sanitizer must report `expected` for the planted bug in `kernel`
/// (launched with matmul_tiled's geometry, whose bug it carries).
fn planted(
    sources: &Sources,
    setup: &BridgeSetup,
    sanitizer: Sanitizer,
    kernel: &str,
    expected: &str,
    say: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let file = crate_dir()
        .join("tests/kernels")
        .join(format!("{kernel}.metal"));
    let emu = build(sources, sanitizer, vec![file], say)?;
    let (m, k, n) = (33, 40, 35);
    let mut rng = Rng::new(1);
    let (a, b) = (rng.matrix((m * k) as usize), rng.matrix((k * n) as usize));
    let launch = setup.geometry.launch("matmul_tiled", m, n)?;
    let t = Instant::now();
    match emu.run(kernel, &launch, &setup.args(&a, &b, m, k, n)?) {
        Err(RunError::Failed { stderr, .. }) if stderr.contains(expected) => {
            let at = stderr
                .lines()
                .find(|l| l.contains(&format!("{kernel}.metal:")))
                .map(str::trim)
                .unwrap_or("(no kernel line in the report)");
            say(&format!(
                "self-test: {} catches the planted bug in {kernel} ({:.1} s): `{expected}` {at}",
                sanitizer.name(),
                t.elapsed().as_secs_f64()
            ));
            Ok(())
        }
        Ok(_) => Err(format!(
            "self-test failed: {} did not report the planted bug in {kernel} (the run succeeded)",
            sanitizer.name()
        )),
        Err(e) => Err(format!(
            "self-test failed: {} was expected to report `{expected}` for {kernel}, but: {e}",
            sanitizer.name()
        )),
    }
}
