//! Every kernel in shaders/, run on the CPU exactly as the bridge dispatches it, against an
//! f64 reference: random shapes plus the edge cases (1×1×1, K = 1, primes, sizes that are
//! not multiples of any tile, rectangular). C is poisoned with NaN before every run.

use std::sync::OnceLock;

use shader_emu::geometry::MATMUL_KERNELS;
use shader_emu::matmul::{BridgeSetup, Rng, verify};
use shader_emu::{BuildOptions, Emulator, Sources};

fn emulator() -> &'static (Emulator, BridgeSetup) {
    static EMU: OnceLock<(Emulator, BridgeSetup)> = OnceLock::new();
    EMU.get_or_init(|| {
        let sources = Sources::workspace();
        let emu =
            Emulator::build(&sources, &BuildOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let setup = BridgeSetup::load(&sources).unwrap_or_else(|e| panic!("{e}"));
        (emu, setup)
    })
}

/// Shapes (m, k, n) every kernel must get right.
const FIXED: [(u32, u32, u32); 14] = [
    (1, 1, 1),
    (1, 7, 1),
    (5, 1, 3), // K = 1
    (2, 3, 4),
    (16, 16, 16), // exactly one tiled tile
    (17, 17, 17), // one past it
    (13, 29, 7),  // primes
    (31, 5, 33),
    (64, 16, 64), // exactly one simdgroup tile
    (65, 17, 63), // around it
    (8, 9, 72),   // wide
    (70, 3, 9),   // tall
    (97, 41, 11), // primes, several groups
    (40, 100, 24),
];

fn run_case(kernel: &str, m: u32, k: u32, n: u32, rng: &mut Rng) {
    let (emu, setup) = emulator();
    let a = rng.matrix((m * k) as usize);
    let b = rng.matrix((k * n) as usize);
    let c = setup
        .run(emu, kernel, &a, &b, (m, k, n))
        .unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = verify(&c, &a, &b, m as usize, k as usize, n as usize) {
        panic!("{kernel} {m}×{k}×{n}: {e}");
    }
}

fn check_kernel(kernel: &str) {
    let seed = Rng::seed_from_env();
    println!("{kernel}: seed {seed} (SHADER_EMU_SEED={seed} repeats this run)");
    let mut rng = Rng::new(seed);
    for (m, k, n) in FIXED {
        run_case(kernel, m, k, n, &mut rng);
    }
    for _ in 0..6 {
        let (m, k, n) = (rng.range(1, 80), rng.range(1, 80), rng.range(1, 80));
        println!("{kernel}: random shape {m}×{k}×{n}");
        run_case(kernel, m, k, n, &mut rng);
    }
}

#[test]
fn matmul_simple_matches_the_reference() {
    check_kernel("matmul_simple");
}

#[test]
fn matmul_tiled_matches_the_reference() {
    check_kernel("matmul_tiled");
}

#[test]
fn matmul_simdgroup_matches_the_reference() {
    check_kernel("matmul_simdgroup");
}

#[test]
fn every_kernel_in_shaders_is_tested_here() {
    let (emu, _) = emulator();
    let compiled: Vec<&str> = emu.kernels().iter().map(|k| k.name.as_str()).collect();
    assert_eq!(
        compiled, MATMUL_KERNELS,
        "a kernel was added to shaders/: give it a test above"
    );
}

#[test]
fn an_unwritten_element_fails_the_check() {
    // The poisoning is what makes an unwritten element visible: prove it end to end with a
    // kernel run on a shape, then one element put back to the poison.
    let (emu, setup) = emulator();
    let mut rng = Rng::new(7);
    let (m, k, n) = (3, 4, 5);
    let (a, b) = (rng.matrix(12), rng.matrix(20));
    let mut c = setup.run(emu, "matmul_tiled", &a, &b, (m, k, n)).unwrap();
    verify(&c, &a, &b, 3, 4, 5).unwrap();
    c[7] = f32::NAN;
    assert!(verify(&c, &a, &b, 3, 4, 5).unwrap_err().contains("1 NaN"));
}

#[test]
fn the_tiled_kernel_needs_whole_threadgroups() {
    // The plan dispatched matmul_tiled with dispatchThreads:, whose trimmed edge groups
    // leave tile slots unloaded. The harness models those non-uniform groups, so that
    // dispatch must come out wrong at the edges, while the bridge's is right.
    use shader_emu::geometry::{Launch, Mode};
    let (emu, setup) = emulator();
    let (m, k, n) = (17u32, 29u32, 33u32);
    let mut rng = Rng::new(Rng::seed_from_env());
    let (a, b) = (rng.matrix((m * k) as usize), rng.matrix((k * n) as usize));
    let whole = setup.geometry.launch("matmul_tiled", m, n).unwrap();
    assert_eq!(whole.mode, Mode::Threadgroups);
    let trimmed = Launch {
        mode: Mode::Threads,
        grid: [n, m, 1],
        group: whole.group,
    };
    let args = setup.args(&a, &b, m, k, n).unwrap();
    let c = emu
        .run("matmul_tiled", &trimmed, &args)
        .unwrap()
        .swap_remove(2);
    let err = verify(&c, &a, &b, m as usize, k as usize, n as usize).unwrap_err();
    println!("matmul_tiled with {trimmed}: {err}");
    let c = emu
        .run("matmul_tiled", &whole, &args)
        .unwrap()
        .swap_remove(2);
    verify(&c, &a, &b, m as usize, k as usize, n as usize).unwrap();
}
