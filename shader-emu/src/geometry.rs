//! The dispatch geometry of each kernel, computed from `native/matmul_geometry.h`, the one
//! file that `native/metal_matmul.m` also reads: threads per threadgroup, grid size, and
//! whether the bridge uses `dispatchThreads:` or `dispatchThreadgroups:`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::text::{eval, strip_comments};

/// How the bridge encodes a dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// `dispatchThreads:`: the grid counts threads; Metal trims the edge threadgroups to
    /// the grid (non-uniform threadgroups), so threads past the edge do not exist.
    Threads,
    /// `dispatchThreadgroups:`: the grid counts whole threadgroups; every thread of every
    /// group exists, also past the edge of the matrix.
    Threadgroups,
}

impl Mode {
    /// The Objective-C selector that encodes it.
    pub const fn selector(self) -> &'static str {
        match self {
            Mode::Threads => "dispatchThreads:",
            Mode::Threadgroups => "dispatchThreadgroups:",
        }
    }

    /// The word the harness executable takes on its command line.
    pub const fn arg(self) -> &'static str {
        match self {
            Mode::Threads => "threads",
            Mode::Threadgroups => "threadgroups",
        }
    }
}

/// One dispatch: what a compute command encoder is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    /// `dispatchThreads:` or `dispatchThreadgroups:`.
    pub mode: Mode,
    /// Threads ([`Mode::Threads`]) or threadgroups ([`Mode::Threadgroups`]) per dimension.
    pub grid: [u32; 3],
    /// `threadsPerThreadgroup`.
    pub group: [u32; 3],
}

impl fmt::Display for Launch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [gx, gy, gz] = self.grid;
        let [tx, ty, tz] = self.group;
        write!(
            f,
            "{} ({gx}, {gy}, {gz}) threadsPerThreadgroup ({tx}, {ty}, {tz})",
            self.mode.selector()
        )
    }
}

/// The matmul kernels the bridge can dispatch, by kernel name.
pub const MATMUL_KERNELS: [&str; 3] = ["matmul_simple", "matmul_tiled", "matmul_simdgroup"];

/// The `#define`s of `matmul_geometry.h`.
#[derive(Debug, Clone)]
pub struct Geometry {
    defines: BTreeMap<String, String>,
}

impl Geometry {
    /// Reads the header at `path`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        Ok(Self::parse(&text))
    }

    /// Collects `#define NAME value` lines (function-like macros are skipped).
    pub fn parse(text: &str) -> Self {
        let mut defines = BTreeMap::new();
        for line in strip_comments(text).lines() {
            let Some(rest) = line.trim().strip_prefix('#') else {
                continue;
            };
            let Some(rest) = rest.trim_start().strip_prefix("define") else {
                continue;
            };
            let rest = rest.trim_start();
            let name_len = rest
                .find(|c: char| !crate::text::is_ident_char(c))
                .unwrap_or(rest.len());
            if rest[name_len..].starts_with('(') {
                continue;
            }
            defines.insert(
                rest[..name_len].to_string(),
                rest[name_len..].trim().to_string(),
            );
        }
        Self { defines }
    }

    /// The macros, for evaluating expressions that use them.
    pub fn defines(&self) -> &BTreeMap<String, String> {
        &self.defines
    }

    /// The value of an integer expression over the header's macros.
    pub fn eval(&self, expr: &str) -> Result<u32, String> {
        let value = eval(expr, &self.defines)?;
        u32::try_from(value)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| format!("`{expr}` = {value}, not a positive 32-bit size"))
    }

    /// How the bridge dispatches `kernel`: the mode and threads per threadgroup.
    ///
    /// This table is the harness's reading of the header's comments; the static check
    /// (`check::bridge_dispatches`) verifies that the bridge encodes exactly these.
    pub fn group(&self, kernel: &str) -> Result<(Mode, [u32; 3]), String> {
        match kernel {
            "matmul_simple" => Ok((
                Mode::Threads,
                [
                    self.eval("MM_SIMPLE_TG_X")?,
                    self.eval("MM_SIMPLE_TG_Y")?,
                    1,
                ],
            )),
            "matmul_tiled" => {
                let tile = self.eval("MM_TILED_TILE")?;
                Ok((Mode::Threadgroups, [tile, tile, 1]))
            }
            "matmul_simdgroup" => Ok((
                Mode::Threadgroups,
                [self.eval("MM_SIMD_GROUPS * 32")?, 1, 1],
            )),
            other => Err(format!(
                "shader-emu does not know how the bridge dispatches `{other}`: add it to \
                 Geometry::group and Geometry::launch (shader-emu/src/geometry.rs)"
            )),
        }
    }

    /// The dispatch the bridge encodes for `kernel` computing an `m`×`n` result.
    pub fn launch(&self, kernel: &str, m: u32, n: u32) -> Result<Launch, String> {
        let (mode, group) = self.group(kernel)?;
        let grid = match kernel {
            "matmul_simple" => [n, m, 1],
            "matmul_tiled" => {
                let tile = self.eval("MM_TILED_TILE")?;
                [n.div_ceil(tile), m.div_ceil(tile), 1]
            }
            _ => [
                n.div_ceil(self.eval("MM_SIMD_TILE_N")?),
                m.div_ceil(self.eval("MM_SIMD_TILE_M")?),
                1,
            ],
        };
        Ok(Launch { mode, grid, group })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launches_follow_the_header() {
        let g = Geometry::parse(
            "#define MM_SIMPLE_TG_X 16\n#define MM_SIMPLE_TG_Y 8 /* rows */\n\
             #define MM_TILED_TILE 16\n#define MM_SIMD_GROUPS 4\n#define F(x) x\n\
             #define MM_SIMD_TILE_M 64\n#define MM_SIMD_TILE_N 32\n",
        );
        let simple = g.launch("matmul_simple", 17, 33).unwrap();
        assert_eq!(
            (simple.mode, simple.grid, simple.group),
            (Mode::Threads, [33, 17, 1], [16, 8, 1])
        );
        let tiled = g.launch("matmul_tiled", 17, 33).unwrap();
        assert_eq!((tiled.grid, tiled.group), ([3, 2, 1], [16, 16, 1]));
        let simd = g.launch("matmul_simdgroup", 65, 33).unwrap();
        assert_eq!((simd.grid, simd.group), ([2, 2, 1], [128, 1, 1]));
        assert!(g.launch("matmul_other", 1, 1).is_err());
    }
}
