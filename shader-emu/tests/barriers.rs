//! Barriers that MSL forbids fail with a clear message instead of hanging or passing: a
//! barrier in divergent control flow deadlocks and the launcher's watchdog reports it;
//! threads waiting in different barriers are reported when the phase completes.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use shader_emu::geometry::{Launch, Mode};
use shader_emu::{Arg, BuildOptions, Emulator, Limits, RunError, Sources};

fn emulator() -> &'static Emulator {
    static EMU: OnceLock<Emulator> = OnceLock::new();
    EMU.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kernels");
        let only = vec![
            dir.join("divergent_barrier.metal"),
            dir.join("split_barrier.metal"),
        ];
        let options = BuildOptions {
            only_kernels: Some(only),
            ..BuildOptions::default()
        };
        Emulator::build(&Sources::workspace(), &options).unwrap_or_else(|e| panic!("{e}"))
    })
}

fn run(kernel: &str) -> RunError {
    let launch = Launch {
        mode: Mode::Threadgroups,
        grid: [1, 1, 1],
        group: [64, 1, 1],
    };
    let limits = Limits {
        watchdog: Duration::from_millis(500),
        hard: Duration::from_secs(60),
    };
    let err = emulator()
        .run_with(kernel, &launch, &[Arg::F32(2, vec![f32::NAN; 64])], limits)
        .expect_err("the kernel must not succeed");
    println!("{err}");
    err
}

#[test]
fn a_barrier_in_divergent_control_flow_is_reported_as_a_deadlock() {
    let err = run("divergent_barrier");
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

#[test]
fn threads_in_different_barriers_are_reported() {
    let err = run("split_barrier");
    let RunError::Failed {
        code: Some(6),
        stderr,
    } = &err
    else {
        panic!("expected the divergent-barrier report, got: {err}");
    };
    assert!(stderr.contains("split_barrier"), "{stderr}");
    assert!(
        stderr.contains("line 12") && stderr.contains("line 14"),
        "{stderr}"
    );
}
