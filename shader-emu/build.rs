//! Finds the C++ compiler the way every `cc`-built crate does (`CXX`, `CXX_<target>`,
//! then the platform default) and hands its path to the crate as `SHADER_EMU_DEFAULT_CXX`:
//! the kernels are compiled at test time, not here, because tests compile them several
//! times (mutated copies, sanitizers, test-only kernels).

fn main() {
    let compiler = cc::Build::new().cpp(true).get_compiler();
    println!(
        "cargo::rustc-env=SHADER_EMU_DEFAULT_CXX={}",
        compiler.path().display()
    );
    println!("cargo::rerun-if-env-changed=CXX");
    println!("cargo::rerun-if-changed=build.rs");
}
