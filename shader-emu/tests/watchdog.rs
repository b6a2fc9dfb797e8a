//! A kernel that deadlocks (a barrier in divergent control flow) fails with a clear
//! message from the launcher's watchdog, instead of hanging the test run.

use std::path::Path;
use std::time::Duration;

use shader_emu::geometry::{Launch, Mode};
use shader_emu::{Arg, BuildOptions, Emulator, Limits, RunError, Sources};

#[test]
fn a_barrier_in_divergent_control_flow_is_reported_as_a_deadlock() {
    let kernel =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kernels/divergent_barrier.metal");
    let options = BuildOptions {
        only_kernels: Some(vec![kernel]),
        ..BuildOptions::default()
    };
    let emu = Emulator::build(&Sources::workspace(), &options).unwrap_or_else(|e| panic!("{e}"));
    let launch = Launch {
        mode: Mode::Threadgroups,
        grid: [1, 1, 1],
        group: [64, 1, 1],
    };
    let limits = Limits {
        watchdog: Duration::from_millis(500),
        hard: Duration::from_secs(60),
    };
    let err = emu
        .run_with(
            "divergent_barrier",
            &launch,
            &[Arg::F32(2, vec![f32::NAN; 64])],
            limits,
        )
        .expect_err("a deadlocked kernel must not succeed");
    println!("{err}");
    let RunError::Deadlock(message) = &err else {
        panic!("expected the watchdog's deadlock report, got: {err}");
    };
    assert!(message.contains("divergent_barrier"), "{message}");
    assert!(
        message.contains("32 are waiting in threadgroup_barrier"),
        "{message}"
    );
    assert!(message.contains("32 have returned"), "{message}");
}
