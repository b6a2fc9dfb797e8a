//! The shaders and the bridge agree (names, buffer indices, dispatch geometry), and a
//! change on only one side fails: each drift test mutates a copy of the sources in a
//! temporary directory and shows the static check or the emulated run rejecting it.

use shader_emu::check::check;
use shader_emu::matmul::{BridgeSetup, Rng, verify};
use shader_emu::{BuildOptions, Emulator, ScratchDir, Sources};

#[test]
fn the_bridge_and_the_shaders_agree() {
    let report = check(&Sources::workspace()).unwrap_or_else(|e| panic!("{e}"));
    for note in &report.notes {
        println!("note: {note}");
    }
    if let Err(e) = report.into_result() {
        panic!("{e}");
    }
}

/// A copy of the workspace's shaders/ and native/ with `from` replaced by `to` (every
/// occurrence) in `file`; `from` must occur, so the test cannot pass vacuously.
fn mutated(file: &str, from: &str, to: &str) -> (ScratchDir, Sources) {
    let dir = ScratchDir::new("drift").unwrap();
    let sources = Sources::workspace().copy_to(dir.path()).unwrap();
    let path = sources.root().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(from),
        "{file} no longer contains `{from}`: update this test"
    );
    std::fs::write(&path, text.replace(from, to)).unwrap();
    (dir, sources)
}

/// Like [`mutated`], for the line of `file` that starts with `prefix` (after indentation).
fn mutated_line(file: &str, prefix: &str, line: &str) -> (ScratchDir, Sources) {
    let text = std::fs::read_to_string(Sources::workspace().root().join(file)).unwrap();
    let old = text
        .lines()
        .find(|l| l.trim_start().starts_with(prefix))
        .unwrap_or_else(|| panic!("{file} has no line starting with `{prefix}`: update this test"));
    mutated(file, old, line)
}

fn assert_check_fails(sources: &Sources, expected: &str) {
    let report = check(sources).unwrap_or_else(|e| panic!("{e}"));
    match report.into_result() {
        Ok(_) => panic!("the check passed, but the sources drifted ({expected})"),
        Err(e) => {
            println!("{e}");
            assert!(e.contains(expected), "expected `{expected}` in: {e}");
        }
    }
}

#[test]
fn a_buffer_index_changed_in_a_shader_fails() {
    let (_dir, sources) = mutated("shaders/matmul.metal", "B [[buffer(1)]]", "B [[buffer(6)]]");
    assert_check_fails(
        &sources,
        "B [[buffer(6)]], but the bridge binds kBufferB = 1",
    );
    // The emulated run, which binds buffers where the bridge does, refuses it too.
    let emu = Emulator::build(&sources, &BuildOptions::default()).unwrap();
    let setup = BridgeSetup::load(&sources).unwrap();
    let err = setup
        .run(&emu, "matmul_simple", &[1.0], &[1.0], (1, 1, 1))
        .unwrap_err();
    assert!(err.contains("nothing is bound at index 6"), "{err}");
}

#[test]
fn a_buffer_index_changed_in_the_bridge_fails() {
    let (_dir, sources) = mutated_line(
        "native/metal_matmul.m",
        "static const NSUInteger kBufferB",
        "static const NSUInteger kBufferB = 6;",
    );
    assert_check_fails(&sources, "but the bridge binds kBufferB = 6");
}

#[test]
fn a_kernel_renamed_in_a_shader_fails() {
    let (_dir, sources) = mutated(
        "shaders/matmul.metal",
        "void matmul_tiled(",
        "void matmul_tiled_v2(",
    );
    assert_check_fails(
        &sources,
        "the bridge asks for kernel matmul_tiled, which no file in shaders/ declares",
    );
}

#[test]
fn a_kernel_renamed_in_the_bridge_fails() {
    let (_dir, sources) = mutated(
        "native/metal_matmul.m",
        "@\"matmul_tiled\"",
        "@\"matmul_tile\"",
    );
    assert_check_fails(&sources, "the bridge asks for kernel matmul_tile,");
}

#[test]
fn a_threadgroup_size_changed_in_the_bridge_fails() {
    let (_dir, sources) = mutated(
        "native/metal_matmul.m",
        "MM_TILED_TILE",
        "(MM_TILED_TILE / 2)",
    );
    assert_check_fails(
        &sources,
        "threadsPerThreadgroup [8, 8, 1], which matches no kernel's geometry",
    );
}

#[test]
fn a_dispatch_mode_changed_in_the_bridge_fails() {
    let (_dir, sources) = mutated(
        "native/metal_matmul.m",
        "dispatchThreadgroups:",
        "dispatchThreads:",
    );
    assert_check_fails(
        &sources,
        "the bridge has no dispatchThreadgroups: with threadsPerThreadgroup [16, 16, 1]",
    );
}

/// Runs `kernel` of `sources` on an m×k×n shape; true when the product is right.
fn kernel_is_right(sources: &Sources, kernel: &str, (m, k, n): (u32, u32, u32)) -> bool {
    let emu = Emulator::build(sources, &BuildOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let setup = BridgeSetup::load(sources).unwrap();
    let mut rng = Rng::new(Rng::seed_from_env());
    let (a, b) = (rng.matrix((m * k) as usize), rng.matrix((k * n) as usize));
    match setup.run(&emu, kernel, &a, &b, (m, k, n)) {
        Ok(c) => match verify(&c, &a, &b, m as usize, k as usize, n as usize) {
            Ok(()) => true,
            Err(e) => {
                println!("{kernel}: {e}");
                false
            }
        },
        Err(e) => {
            println!("{kernel}: {e}");
            false
        }
    }
}

#[test]
fn a_tile_size_changed_in_the_tiled_shader_only_fails() {
    // The shader stops following matmul_geometry.h; the harness still dispatches what the
    // header (and so the bridge) says.
    let include = "#include \"matmul_geometry.h\"";
    let (_dir, sources) = mutated(
        "shaders/matmul.metal",
        include,
        &format!("{include}\n#undef MM_TILED_TILE\n#define MM_TILED_TILE 8"),
    );
    assert!(!kernel_is_right(&sources, "matmul_tiled", (70, 37, 67)));
}

#[test]
fn a_tile_size_changed_in_the_simdgroup_shader_only_fails() {
    let include = "#include \"matmul_geometry.h\"";
    let (_dir, sources) = mutated(
        "shaders/matmul_simdgroup.metal",
        include,
        &format!("{include}\n#undef MM_SIMD_TILE_M\n#define MM_SIMD_TILE_M 32"),
    );
    assert!(!kernel_is_right(&sources, "matmul_simdgroup", (70, 37, 67)));
}

#[test]
fn threadgroup_memory_is_poisoned_between_groups() {
    // Without the zero padding, edge tiles keep whatever threadgroup memory held; the
    // launcher sets it to NaN before every group, so the product must come out wrong
    // (K < MM_SIMD_TILE_K: the first slice along K is already partial).
    let (_dir, sources) = mutated(
        "shaders/matmul_simdgroup.metal",
        "tileA[e] = (row < M && col < K) ? A[row * K + col] : 0.0f;",
        "if (row < M && col < K) { tileA[e] = A[row * K + col]; }",
    );
    assert!(!kernel_is_right(&sources, "matmul_simdgroup", (70, 5, 67)));
}

#[test]
fn a_kernel_that_diverges_on_simdgroup_operations_fails() {
    // Lane 0 skips one simdgroup store: MSL requires every lane to take part.
    let (_dir, sources) = mutated(
        "shaders/matmul_simdgroup.metal",
        "simdgroup_store(acc[i][j], C + row0 * N + col0, N);",
        "if (lane != 0) { simdgroup_store(acc[i][j], C + row0 * N + col0, N); }",
    );
    let emu = Emulator::build(&sources, &BuildOptions::default()).unwrap();
    let setup = BridgeSetup::load(&sources).unwrap();
    let err = setup
        .run(
            &emu,
            "matmul_simdgroup",
            &vec![1.0; 64 * 8],
            &vec![1.0; 8 * 64],
            (64, 8, 64),
        )
        .unwrap_err();
    assert!(err.contains("simdgroup-matrix operations"), "{err}");
}
