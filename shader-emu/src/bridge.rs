//! Reads what `native/metal_matmul.m` asks of the shaders, by the bridge's convention:
//!
//! - buffer indices as `static const NSUInteger kBufferA = 0;` ... one per line, the letter
//!   being the kernel parameter's name (A, B, C, M, K, N);
//! - kernel names as string literals `@"matmul_..."`;
//! - dispatches as `[enc dispatchThreads:... threadsPerThreadgroup:X]` or
//!   `dispatchThreadgroups:`, where X is `MTLSizeMake(a, b, c)` or a variable assigned one,
//!   and a, b, c are integer expressions over `matmul_geometry.h`'s macros.
//!
//! Code that does not follow the convention is reported as such, so that a change in the
//! bridge fails loudly here instead of silently skipping the check.

use std::collections::BTreeMap;
use std::path::Path;

use crate::geometry::{Geometry, Mode};
use crate::msl::find_word;
use crate::text::{balanced, is_ident_char, line_of, split_top_level, strip_comments};

/// A dispatch the bridge encodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    /// `dispatchThreads:` or `dispatchThreadgroups:`.
    pub mode: Mode,
    /// `threadsPerThreadgroup`, evaluated with the header's macros.
    pub group: [u32; 3],
    /// 1-based line of the call.
    pub line: usize,
}

/// What the bridge source says.
#[derive(Debug, Clone, Default)]
pub struct Bridge {
    /// `kBufferX = n`: parameter name → index.
    pub buffers: BTreeMap<String, u32>,
    /// Kernel names it asks the library for, in order of appearance.
    pub kernels: Vec<String>,
    /// Its dispatch calls.
    pub dispatches: Vec<Dispatch>,
}

impl Bridge {
    /// Reads the bridge at `path`, evaluating dispatch sizes with `geometry`.
    pub fn load(path: &Path, geometry: &Geometry) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        Self::parse(&text, geometry).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses bridge source text.
    pub fn parse(source: &str, geometry: &Geometry) -> Result<Self, String> {
        let text = strip_comments(source);
        let mut bridge = Bridge::default();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            let Some(rest) = line.strip_prefix("static const NSUInteger kBuffer") else {
                continue;
            };
            let parsed = rest.split_once('=').and_then(|(name, value)| {
                let value = value.trim().strip_suffix(';')?.trim();
                Some((name.trim(), value.parse::<u32>().ok()?))
            });
            let Some((name, index)) =
                parsed.filter(|(n, _)| !n.is_empty() && n.chars().all(is_ident_char))
            else {
                return Err(format!(
                    "line {}: `{line}` does not read `static const NSUInteger kBufferX = <integer>;`",
                    number + 1
                ));
            };
            if bridge.buffers.insert(name.to_string(), index).is_some() {
                return Err(format!(
                    "line {}: kBuffer{name} is declared twice",
                    number + 1
                ));
            }
        }
        let mut at = 0;
        while let Some(found) = text[at..].find("@\"matmul_").map(|f| at + f) {
            let name: String = text[found + 2..]
                .chars()
                .take_while(|&c| is_ident_char(c))
                .collect();
            if !bridge.kernels.contains(&name) {
                bridge.kernels.push(name);
            }
            at = found + 2;
        }
        for mode in [Mode::Threads, Mode::Threadgroups] {
            let mut at = 0;
            while let Some(found) = find_selector(&text, mode.selector(), at) {
                at = found + 1;
                bridge
                    .dispatches
                    .push(parse_dispatch(&text, found, mode, geometry)?);
            }
        }
        bridge.dispatches.sort_by_key(|d| d.line);
        Ok(bridge)
    }
}

fn find_selector(text: &str, selector: &str, from: usize) -> Option<usize> {
    let word = selector.trim_end_matches(':');
    let mut at = from;
    while let Some(found) = find_word(text, word, at) {
        if text[found + word.len()..].starts_with(':') {
            return Some(found);
        }
        at = found + word.len();
    }
    None
}

fn parse_dispatch(
    text: &str,
    at: usize,
    mode: Mode,
    geometry: &Geometry,
) -> Result<Dispatch, String> {
    let line = line_of(text, at);
    let statement_end = text[at..].find(';').map_or(text.len(), |e| at + e);
    let statement = &text[at..statement_end];
    let err = |msg: String| format!("line {line}: {}: {msg}", mode.selector());
    let key = "threadsPerThreadgroup:";
    let arg_start = statement
        .find(key)
        .map(|k| k + key.len())
        .ok_or_else(|| err("no threadsPerThreadgroup: in the same statement".into()))?;
    let arg = statement[arg_start..].trim_start();
    let args = if arg.starts_with("MTLSizeMake") {
        size_make_args(arg).ok_or_else(|| err(format!("cannot read `{arg}`")))?
    } else {
        // A variable: find its last `name = MTLSizeMake(...)` before the call.
        let name: String = arg.chars().take_while(|&c| is_ident_char(c)).collect();
        if name.is_empty() {
            return Err(err(format!(
                "cannot read the threadsPerThreadgroup argument `{arg}`"
            )));
        }
        let assignment = text[..at]
            .rmatch_indices(&name)
            .map(|(i, _)| i)
            .find_map(|i| {
                let rest = text[i + name.len()..].trim_start().strip_prefix('=')?;
                let rest = rest.trim_start();
                rest.starts_with("MTLSizeMake")
                    .then(|| size_make_args(rest))
                    .flatten()
            });
        assignment.ok_or_else(|| {
            err(format!(
                "`{name}` is not assigned an MTLSizeMake(...) before the call"
            ))
        })?
    };
    let mut group = [0u32; 3];
    for (slot, expr) in group.iter_mut().zip(&args) {
        *slot = geometry
            .eval(expr)
            .map_err(|e| err(format!("threadsPerThreadgroup {e}")))?;
    }
    Ok(Dispatch { mode, group, line })
}

/// The three argument texts of `MTLSizeMake(a, b, c)` at the start of `text`.
fn size_make_args(text: &str) -> Option<Vec<String>> {
    let open = text.find('(')?;
    let (inner, _) = balanced(text, open)?;
    let args: Vec<String> = split_top_level(inner)
        .into_iter()
        .map(str::to_string)
        .collect();
    (args.len() == 3).then_some(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry() -> Geometry {
        Geometry::parse("#define MM_TILED_TILE 16\n#define MM_SIMD_GROUPS 4\n")
    }

    #[test]
    fn reads_the_convention() {
        let src = "static const NSUInteger kBufferA = 0;\n static const NSUInteger kBufferN = 5;\n\
                   x = @\"matmul_tiled\"; // @\"matmul_commented\"\n\
                   MTLSize tg = MTLSizeMake(MM_SIMD_GROUPS * 32, 1, 1);\n\
                   [enc dispatchThreadgroups:g threadsPerThreadgroup:tg];\n\
                   [enc dispatchThreads:MTLSizeMake(n, m, 1)\n  threadsPerThreadgroup:MTLSizeMake(MM_TILED_TILE, MM_TILED_TILE / 2, 1)];";
        let b = Bridge::parse(src, &geometry()).unwrap();
        assert_eq!(b.buffers.get("A"), Some(&0));
        assert_eq!(b.buffers.get("N"), Some(&5));
        assert_eq!(b.kernels, ["matmul_tiled"]);
        assert_eq!(b.dispatches.len(), 2);
        assert_eq!(
            (b.dispatches[0].mode, b.dispatches[0].group),
            (Mode::Threadgroups, [128, 1, 1])
        );
        assert_eq!(
            (b.dispatches[1].mode, b.dispatches[1].group),
            (Mode::Threads, [16, 8, 1])
        );
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let bad = "static const NSUInteger kBufferA = zero;";
        assert!(
            Bridge::parse(bad, &geometry())
                .unwrap_err()
                .contains("kBufferX")
        );
        let unknown = "[enc dispatchThreads:g threadsPerThreadgroup:MTLSizeMake(TG, 1, 1)];";
        assert!(
            Bridge::parse(unknown, &geometry())
                .unwrap_err()
                .contains("`TG`")
        );
    }
}
