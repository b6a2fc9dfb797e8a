//! Running a matmul kernel exactly as the bridge dispatches it, and checking the product
//! against a reference computed in f64.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::bridge::Bridge;
use crate::geometry::Geometry;
use crate::{Arg, Emulator, Sources};

/// How the bridge binds and dispatches the matmul kernels: buffer indices from its
/// `kBufferX` constants, geometry from `matmul_geometry.h`.
#[derive(Debug, Clone)]
pub struct BridgeSetup {
    /// The geometry header.
    pub geometry: Geometry,
    /// Parameter name (A, B, C, M, K, N) → buffer index.
    pub buffers: BTreeMap<String, u32>,
}

impl BridgeSetup {
    /// Reads the bridge and the header of `sources`.
    pub fn load(sources: &Sources) -> Result<Self, String> {
        let geometry = Geometry::load(&sources.geometry_header())?;
        let bridge = Bridge::load(&sources.bridge(), &geometry)?;
        Ok(Self {
            geometry,
            buffers: bridge.buffers,
        })
    }

    fn index(&self, name: &str) -> Result<u32, String> {
        self.buffers
            .get(name)
            .copied()
            .ok_or_else(|| format!("the bridge declares no kBuffer{name}"))
    }

    /// The arguments the bridge binds for C (m×n) = A (m×k) · B (k×n); C is filled with NaN
    /// so that an element the kernel does not write cannot pass.
    pub fn args(&self, a: &[f32], b: &[f32], m: u32, k: u32, n: u32) -> Result<Vec<Arg>, String> {
        Ok(vec![
            Arg::F32(self.index("A")?, a.to_vec()),
            Arg::F32(self.index("B")?, b.to_vec()),
            Arg::F32(self.index("C")?, vec![f32::NAN; m as usize * n as usize]),
            Arg::U32(self.index("M")?, m),
            Arg::U32(self.index("K")?, k),
            Arg::U32(self.index("N")?, n),
        ])
    }

    /// Runs `kernel` on `emu` as the bridge would for C (m×n) = A (m×k) · B (k×n), and
    /// returns C.
    pub fn run(
        &self,
        emu: &Emulator,
        kernel: &str,
        a: &[f32],
        b: &[f32],
        (m, k, n): (u32, u32, u32),
    ) -> Result<Vec<f32>, String> {
        if a.len() != m as usize * k as usize || b.len() != k as usize * n as usize {
            return Err(format!(
                "A has {} elements and B {}, but the shape is {m}×{k}×{n}",
                a.len(),
                b.len()
            ));
        }
        let launch = self.geometry.launch(kernel, m, n)?;
        let args = self.args(a, b, m, k, n)?;
        let mut out = emu
            .run(kernel, &launch, &args)
            .map_err(|e| format!("{kernel} {m}×{k}×{n} ({launch}): {e}"))?;
        Ok(out.swap_remove(2))
    }
}

/// Checks C = A·B element by element against an f64 reference, each element within a
/// bound derived from f32 rounding: 2·k·ε·Σ|a·b| (a sum of k products, each rounded).
pub fn verify(c: &[f32], a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Result<(), String> {
    let mut bad = Vec::new();
    for i in 0..m {
        for j in 0..n {
            let (mut exact, mut magnitude) = (0f64, 0f64);
            for p in 0..k {
                let prod = f64::from(a[i * k + p]) * f64::from(b[p * n + j]);
                exact += prod;
                magnitude += prod.abs();
            }
            let got = f64::from(c[i * n + j]);
            let bound =
                2.0 * k as f64 * f64::from(f32::EPSILON) * magnitude + f64::from(f32::MIN_POSITIVE);
            // NaN compares as None: an unwritten (NaN) element is wrong.
            let within = matches!(
                (got - exact).abs().partial_cmp(&bound),
                Some(Ordering::Less | Ordering::Equal)
            );
            if !within {
                bad.push((i, j, got, exact));
            }
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    let unwritten = bad.iter().filter(|b| b.2.is_nan()).count();
    let shown: Vec<String> = bad
        .iter()
        .take(5)
        .map(|(i, j, got, exact)| format!("C[{i}][{j}] = {got} (expected {exact})"))
        .collect();
    Err(format!(
        "{} of {} elements wrong ({unwritten} NaN: never written, or computed from NaN): {}",
        bad.len(),
        m * n,
        shown.join(", ")
    ))
}

/// A small deterministic generator (SplitMix64): tests print the seed they use.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A seed from `SHADER_EMU_SEED`, else from the clock: fresh inputs on every run.
    pub fn seed_from_env() -> u64 {
        std::env::var("SHADER_EMU_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0x5eed, |d| d.as_nanos() as u64)
            })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi].
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next_u64() % u64::from(hi - lo + 1)) as u32
    }

    /// `len` values uniform in [-1, 1).
    pub fn matrix(&mut self, len: usize) -> Vec<f32> {
        (0..len)
            .map(|_| ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_catches_wrong_and_unwritten_elements() {
        let (a, b) = (vec![1.0, 2.0], vec![3.0, 4.0]);
        assert!(verify(&[11.0], &a, &b, 1, 2, 1).is_ok());
        assert!(
            verify(&[11.5], &a, &b, 1, 2, 1)
                .unwrap_err()
                .contains("1 of 1")
        );
        assert!(
            verify(&[f32::NAN], &a, &b, 1, 2, 1)
                .unwrap_err()
                .contains("1 NaN")
        );
    }
}
