//! Compiles kernels, the MSL emulation and the launcher into one executable.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::msl::{Binding, Kernel, find_word, metal_files, parse_kernels};
use crate::{ScratchDir, Sources, crate_dir};

/// Which sanitizer the kernels are compiled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sanitizer {
    /// None: the fast build every `cargo test` uses.
    #[default]
    None,
    /// ThreadSanitizer: a missing barrier shows as a data race.
    Thread,
    /// AddressSanitizer with UndefinedBehaviorSanitizer: an unguarded load shows as an
    /// overflow.
    Address,
}

impl Sanitizer {
    /// The compiler flags that enable it.
    fn flags(self) -> &'static [&'static str] {
        match self {
            Sanitizer::None => &[],
            Sanitizer::Thread => &["-fsanitize=thread"],
            Sanitizer::Address => &[
                "-fsanitize=address,undefined",
                "-fno-sanitize-recover=undefined",
            ],
        }
    }

    /// Its name, as printed.
    pub const fn name(self) -> &'static str {
        match self {
            Sanitizer::None => "none",
            Sanitizer::Thread => "ThreadSanitizer",
            Sanitizer::Address => "AddressSanitizer+UBSan",
        }
    }
}

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// A sanitizer to compile with.
    pub sanitizer: Sanitizer,
    /// `.metal` files to compile besides `shaders/*.metal` (test-only kernels).
    pub extra_kernels: Vec<PathBuf>,
    /// Compile only these files instead of `shaders/*.metal` (plus `extra_kernels`).
    pub only_kernels: Option<Vec<PathBuf>>,
}

/// A compiled emulator: an executable that runs any of its kernels on request.
#[derive(Debug)]
pub struct Emulator {
    dir: ScratchDir,
    exe: PathBuf,
    kernels: Vec<Kernel>,
    sanitizer: Sanitizer,
    warnings: String,
}

/// The C++ compiler: `SHADER_EMU_CXX`, else the one `cc` found when this crate was built.
pub fn compiler() -> PathBuf {
    std::env::var_os("SHADER_EMU_CXX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("SHADER_EMU_DEFAULT_CXX")))
}

impl Emulator {
    /// Compiles the kernels of `sources` (see [`BuildOptions`]).
    pub fn build(sources: &Sources, options: &BuildOptions) -> Result<Self, String> {
        let mut files = match &options.only_kernels {
            Some(only) => only.clone(),
            None => metal_files(&sources.shaders_dir())?,
        };
        files.extend(options.extra_kernels.iter().cloned());
        let mut kernels = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("reading {}: {e}", file.display()))?;
            kernels.extend(parse_kernels(&text, file)?);
            unsupported_threadgroup_pointers(&text, file)?;
        }
        let dir = ScratchDir::new("build")?;
        let unit = dir.path().join("emulator.cpp");
        std::fs::write(&unit, translation_unit(&files, &kernels)?)
            .map_err(|e| format!("writing {}: {e}", unit.display()))?;
        let exe = dir.path().join("emulator");
        let cxx = compiler();
        let mut cmd = Command::new(&cxx);
        cmd.args([
            "-std=c++20",
            "-O1",
            "-g",
            "-pthread",
            "-fno-omit-frame-pointer",
        ])
        .args(["-Wall", "-Wextra", "-Wno-unused-parameter"])
        // Unknown [[...]] attributes: g++ spells it one way, clang the other; each
        // ignores the other's -Wno- spelling (clang needs the third flag for that).
        .args(["-Wno-attributes", "-Wno-unknown-attributes"])
        .args(if is_clang(&cxx) {
            &["-Wno-unknown-warning-option"][..]
        } else {
            &[][..]
        })
        .args(options.sanitizer.flags())
        .arg("-I")
        .arg(crate_dir().join("msl"))
        .arg("-I")
        .arg(crate_dir().join("harness"))
        .arg("-I")
        .arg(sources.native_dir())
        .arg(&unit)
        .arg("-o")
        .arg(&exe);
        let output = cmd.output().map_err(|e| {
            format!(
                "running the C++ compiler {}: {e} (set SHADER_EMU_CXX)",
                cxx.display()
            )
        })?;
        if !output.status.success() {
            return Err(format!(
                "compiling the kernels with {} failed ({}):\n{}",
                cxx.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(Self {
            dir,
            exe,
            kernels,
            sanitizer: options.sanitizer,
            warnings: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// The kernels it can run.
    pub fn kernels(&self) -> &[Kernel] {
        &self.kernels
    }

    /// What the compiler printed (warnings) while building it; empty when nothing.
    pub fn warnings(&self) -> &str {
        &self.warnings
    }

    /// The sanitizer it was built with.
    pub fn sanitizer(&self) -> Sanitizer {
        self.sanitizer
    }

    /// The executable.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// The scratch directory holding the build.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The emulation turns `threadgroup` into a function-local `static`: right for arrays
/// declared in a kernel body, wrong for a local *pointer or reference* to threadgroup
/// memory (one shared variable instead of one per thread). Refuse those rather than run
/// them wrongly.
fn unsupported_threadgroup_pointers(source: &str, file: &Path) -> Result<(), String> {
    let text = crate::text::strip_comments(source);
    let mut at = 0;
    while let Some(found) = find_word(&text, "threadgroup", at) {
        at = found + "threadgroup".len();
        let rest = &text[at..];
        let end = rest
            .find([';', '(', ')', '=', '[', ','])
            .unwrap_or(rest.len());
        if rest[..end].contains(['*', '&']) {
            return Err(format!(
                "{}:{}: a local pointer or reference to threadgroup memory is not supported by \
                 the CPU emulation (it would become one static shared by all threads); index \
                 the threadgroup array instead",
                file.display(),
                crate::text::line_of(&text, found)
            ));
        }
    }
    Ok(())
}

fn is_clang(cxx: &Path) -> bool {
    Command::new(cxx)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("clang"))
}

/// The generated C++: the emulation, every kernel file, the launcher, and for each kernel
/// the glue that checks and binds its parameters in declaration order.
fn translation_unit(files: &[PathBuf], kernels: &[Kernel]) -> Result<String, String> {
    let mut unit = String::from(
        "// Generated by shader-emu (src/compile.rs). Do not edit.\n#include <metal_stdlib>\n",
    );
    for file in files {
        let path = file
            .canonicalize()
            .map_err(|e| format!("{}: {e}", file.display()))?;
        let path = path.to_str().ok_or("a kernel path is not UTF-8")?;
        if path.contains(['"', '\\', '\n']) {
            return Err(format!("cannot #include the path {path}"));
        }
        writeln!(unit, "#include \"{path}\"").unwrap();
    }
    unit.push_str("#include \"emu_runtime.hpp\"\n\nnamespace shader_emu {\n");
    for k in kernels {
        let name = &k.name;
        let mut checks = Vec::new();
        let mut args = Vec::new();
        for p in &k.params {
            let ty = cxx_type(&p.ty);
            match p.binding {
                Binding::Buffer(i) => {
                    checks.push(format!(
                        "check_bind<{ty}>(b, {i}, \"{name}\", \"{}\")",
                        p.name
                    ));
                    args.push(format!("bind<{ty}>(b, {i})"));
                }
                Binding::BuiltIn(attr) => args.push(format!("pos<{ty}>(p.{attr})")),
            }
        }
        let checks = if checks.is_empty() {
            "true".to_string()
        } else {
            checks.join("\n        && ")
        };
        writeln!(
            unit,
            "static bool check_{name}(const Bindings &b) {{\n    return {checks};\n}}\n\
             static void run_{name}(Bindings &b, const ThreadPos &p) {{\n    ::{name}({});\n}}",
            args.join(",\n        ")
        )
        .unwrap();
    }
    unit.push_str("const KernelEntry kKernels[] = {\n");
    for k in kernels {
        writeln!(unit, "    {{\"{0}\", check_{0}, run_{0}}},", k.name).unwrap();
    }
    if kernels.is_empty() {
        unit.push_str("    {\"\", nullptr, nullptr},\n");
    }
    writeln!(
        unit,
        "}};\nconst unsigned kKernelCount = {};\n}} // namespace shader_emu",
        kernels.len()
    )
    .unwrap();
    Ok(unit)
}

/// A parameter type with the MSL address spaces removed (the launcher is plain C++).
fn cxx_type(ty: &str) -> String {
    let mut out = ty.to_string();
    for (word, replacement) in [
        ("device", ""),
        ("thread", ""),
        ("threadgroup", ""),
        ("constant", "const"),
    ] {
        while let Some(at) = find_word(&out, word, 0) {
            out.replace_range(at..at + word.len(), replacement);
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::{cxx_type, unsupported_threadgroup_pointers};
    use std::path::Path;

    #[test]
    fn threadgroup_pointers_are_refused() {
        let ok = "threadgroup float t[16][16]; threadgroup_barrier(mem_flags::mem_threadgroup);";
        assert!(unsupported_threadgroup_pointers(ok, Path::new("k.metal")).is_ok());
        let bad = "threadgroup float t[4];\nthreadgroup float* p = t;";
        let err = unsupported_threadgroup_pointers(bad, Path::new("k.metal")).unwrap_err();
        assert!(err.contains("k.metal:2"), "{err}");
    }

    #[test]
    fn address_spaces_are_erased() {
        assert_eq!(cxx_type("device const float*"), "const float*");
        assert_eq!(cxx_type("constant uint&"), "const uint&");
        assert_eq!(cxx_type("uint2"), "uint2");
    }
}
