//! The CPU features the kernels are chosen by, detected at run time, and the limit
//! an operator may put on them ([`SimdLimit`], `FXN_CPU_SIMD`).

use std::fmt;
use std::str::FromStr;

/// The environment variable that limits the CPU backend's own kernels to an
/// instruction set ([`SimdLimit`]): `avx512`, `avx2` or `portable`.
pub const SIMD_ENV: &str = "FXN_CPU_SIMD";

/// The widest instruction set the CPU backend's own kernels may use: a limit, never a
/// request (a CPU without AVX-512 runs no AVX-512 code whatever the limit). It makes
/// one machine measure and test the paths of a smaller one, e.g. the AVX2 kernels and
/// plan on an AVX-512 CPU. faer, which the plan gives some shapes, follows `Avx2` too
/// (its AVX2+FMA code, what it runs on an AVX2-only CPU); under `Portable` it keeps its
/// own choice, having no portable path that can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimdLimit {
    /// Everything the CPU has (the default).
    Avx512,
    /// At most AVX2 with FMA: the plan and kernels of an AVX2-only x86-64 CPU.
    Avx2,
    /// None of our x86 kernels: faer (with its own choice of SIMD) and the portable
    /// vector kernels (and as on aarch64, where this limit changes nothing).
    Portable,
}

impl SimdLimit {
    /// Every limit, widest first.
    pub const ALL: [SimdLimit; 3] = [Self::Avx512, Self::Avx2, Self::Portable];

    /// The name `FXN_CPU_SIMD` and [`FromStr`] take.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512 => "avx512",
            Self::Avx2 => "avx2",
            Self::Portable => "portable",
        }
    }
}

impl fmt::Display for SimdLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SimdLimit {
    type Err = String;

    /// `avx512`, `avx2` or `portable`, in any case, surrounding spaces ignored.
    fn from_str(s: &str) -> Result<Self, String> {
        let wanted = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|l| l.name() == wanted)
            .ok_or_else(|| format!("`{s}` is not a SIMD limit: expected avx512, avx2 or portable"))
    }
}

/// What the plan knows of a CPU: the instruction-set extensions that decide which
/// kernels it runs, and the sizes of its L2 and last-level caches. Detected once per backend
/// ([`CpuFeatures::detect`]); the plan reads nothing else about the CPU (never its
/// vendor or model name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuFeatures {
    /// x86-64 with AVX-512F.
    pub avx512f: bool,
    /// x86-64 with AVX2 and FMA (every AVX-512F CPU has both too).
    pub avx2_fma: bool,
    /// aarch64 (NEON is part of the base architecture there).
    pub neon: bool,
    /// faer held to its AVX2+FMA code: the CPU has AVX-512F, which an AVX2 limit took
    /// away (faer would otherwise choose AVX-512 by itself).
    pub faer_avx2: bool,
    /// The last-level cache one core sees, in bytes: from CPUID, else
    /// [`DEFAULT_LLC_BYTES`].
    pub llc_bytes: usize,
    /// The L2 cache one core sees, in bytes: from CPUID, else [`DEFAULT_L2_BYTES`].
    pub l2_bytes: usize,
}

/// The last-level cache assumed where CPUID does not tell: 32 MiB, the L3 of every
/// x86-64 machine measured here (docs/PERFORMANCE.md, "The machines").
const DEFAULT_LLC_BYTES: usize = 32 << 20;

/// The L2 assumed where CPUID does not tell: 512 KiB, Zen 3's, the smallest measured
/// here (docs/PERFORMANCE.md, "The machines"); the plans it gives are Zen 3's.
const DEFAULT_L2_BYTES: usize = 512 << 10;

impl CpuFeatures {
    /// An x86-64 CPU with AVX-512F (and so AVX2 and FMA).
    #[cfg(test)]
    pub const AVX512: Self = Self {
        avx512f: true,
        avx2_fma: true,
        neon: false,
        faer_avx2: false,
        llc_bytes: DEFAULT_LLC_BYTES,
        l2_bytes: DEFAULT_L2_BYTES,
    };

    /// An x86-64 CPU with AVX2 and FMA but no AVX-512.
    #[cfg(test)]
    pub const AVX2: Self = Self {
        avx512f: false,
        avx2_fma: true,
        neon: false,
        faer_avx2: false,
        llc_bytes: DEFAULT_LLC_BYTES,
        l2_bytes: DEFAULT_L2_BYTES,
    };

    /// An aarch64 CPU.
    #[cfg(test)]
    pub const NEON: Self = Self {
        avx512f: false,
        avx2_fma: false,
        neon: true,
        faer_avx2: false,
        llc_bytes: DEFAULT_LLC_BYTES,
        l2_bytes: DEFAULT_L2_BYTES,
    };

    /// These features less what `limit` excludes (never more than they are).
    pub fn limited_to(self, limit: SimdLimit) -> Self {
        match limit {
            SimdLimit::Avx512 => self,
            SimdLimit::Avx2 => Self {
                avx512f: false,
                faer_avx2: self.avx512f || self.faer_avx2,
                ..self
            },
            SimdLimit::Portable => Self {
                avx512f: false,
                avx2_fma: false,
                faer_avx2: false,
                ..self
            },
        }
    }

    /// The features of the CPU this runs on. Cheap after the first call (the standard
    /// library keeps the CPUID answers, `caches` the cache sizes), but callers keep the
    /// result rather than ask per call.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        let (avx512f, avx2_fma) = (
            std::arch::is_x86_feature_detected!("avx512f"),
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma"),
        );
        #[cfg(not(target_arch = "x86_64"))]
        let (avx512f, avx2_fma) = (false, false);
        Self {
            avx512f,
            avx2_fma,
            neon: cfg!(target_arch = "aarch64"),
            faer_avx2: false,
            llc_bytes: super::caches::last_level_bytes().unwrap_or(DEFAULT_LLC_BYTES),
            l2_bytes: super::caches::l2_bytes().unwrap_or(DEFAULT_L2_BYTES),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_is_consistent() {
        let f = CpuFeatures::detect();
        // AVX-512F implies AVX2 and FMA on every CPU that has shipped it.
        assert!(!f.avx512f || f.avx2_fma);
        assert!(!(f.neon && f.avx2_fma));
        assert_eq!(f.neon, cfg!(target_arch = "aarch64"));
        #[cfg(target_arch = "x86_64")]
        assert_eq!(f.avx512f, std::arch::is_x86_feature_detected!("avx512f"));
    }

    #[test]
    fn a_limit_only_takes_away() {
        for features in [CpuFeatures::AVX512, CpuFeatures::AVX2, CpuFeatures::NEON] {
            assert_eq!(features.limited_to(SimdLimit::Avx512), features);
            let avx2 = features.limited_to(SimdLimit::Avx2);
            assert!(!avx2.avx512f);
            assert_eq!(avx2.avx2_fma, features.avx2_fma);
            // faer is held to AVX2 exactly where the limit took AVX-512 away.
            assert_eq!(avx2.faer_avx2, features.avx512f);
            assert_eq!(avx2.limited_to(SimdLimit::Avx2), avx2);
            let portable = features.limited_to(SimdLimit::Portable);
            assert!(!portable.avx512f && !portable.avx2_fma);
            assert_eq!(portable.neon, features.neon);
            assert!(!portable.faer_avx2);
            assert_eq!(avx2.limited_to(SimdLimit::Portable), portable);
        }
    }

    #[test]
    fn limits_parse_by_name() {
        for limit in SimdLimit::ALL {
            assert_eq!(limit.name().parse::<SimdLimit>(), Ok(limit));
            assert_eq!(
                format!(" {} ", limit.name().to_uppercase()).parse(),
                Ok(limit)
            );
        }
        let err = "sse9".parse::<SimdLimit>().unwrap_err();
        assert!(err.contains("sse9") && err.contains("avx2"), "{err}");
        assert!("".parse::<SimdLimit>().is_err());
    }
}
