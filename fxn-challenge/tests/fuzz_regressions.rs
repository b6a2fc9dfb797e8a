//! Replays the fuzz target's seed corpus (`fuzz/seeds/challenge/`) and every input the
//! fuzzer ever crashed on (`fuzz/regressions/challenge/`) through the target's own
//! checks, so a fixed crash stays fixed without cargo-fuzz. `cargo xtask fuzz` runs the
//! fuzzer itself.

use std::path::Path;

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod fuzz_check;

fn replay(dir: &str) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(dir);
    let mut count = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    entries.sort();
    for path in entries {
        let data = std::fs::read(&path).expect("the input reads");
        eprintln!("replaying {}", path.display());
        fuzz_check::check(&data);
        count += 1;
    }
    count
}

#[test]
fn the_seed_corpus_passes_the_fuzz_checks() {
    assert!(
        replay("seeds/challenge") >= 10,
        "the seed corpus went missing"
    );
}

#[test]
fn every_saved_crash_passes_the_fuzz_checks() {
    // The directory holds a README at least; every other file is a fuzzer's input.
    replay("regressions/challenge");
}
