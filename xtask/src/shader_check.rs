//! `cargo xtask shader-check`: the kernels of `shaders/` under ThreadSanitizer and
//! AddressSanitizer + UBSan on the CPU emulation, plus the self-tests that show each
//! sanitizer catching its kind of planted bug. The work is in `shader_emu::sanitize`.

use std::path::Path;
use std::time::Instant;

use shader_emu::Sources;

/// Runs the check on the workspace at `root`; `--help` explains it.
pub fn run(root: &Path, rest: &[String]) -> Result<(), String> {
    if let Some(arg) = rest.first() {
        return match arg.as_str() {
            "-h" | "--help" => {
                println!(
                    "usage: cargo xtask shader-check\n\n\
                     Runs the static check, then every kernel in shaders/ under ThreadSanitizer and\n\
                     AddressSanitizer+UBSan, then the sanitizers' self-tests. SHADER_EMU_CXX picks\n\
                     the C++ compiler (default: the one `cc` finds); SHADER_EMU_SEED repeats inputs."
                );
                Ok(())
            }
            other => Err(format!("shader-check takes no argument `{other}`")),
        };
    }
    let start = Instant::now();
    let sources = Sources::at(root);
    shader_emu::sanitize::run(&sources, &mut |line| {
        println!("[{:>6.1} s] {line}", start.elapsed().as_secs_f64());
    })
}
