//! The CPU features the kernels are chosen by, detected at run time.

/// The instruction-set extensions that decide which kernels a CPU runs. Detected once
/// per backend ([`CpuFeatures::detect`]); the plan reads nothing else about the CPU
/// (never its vendor or model name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CpuFeatures {
    /// x86-64 with AVX-512F.
    pub avx512f: bool,
    /// x86-64 with AVX2 and FMA (every AVX-512F CPU has both too).
    pub avx2_fma: bool,
    /// aarch64 (NEON is part of the base architecture there).
    pub neon: bool,
}

impl CpuFeatures {
    /// An x86-64 CPU with AVX-512F (and so AVX2 and FMA).
    #[cfg(test)]
    pub const AVX512: Self = Self {
        avx512f: true,
        avx2_fma: true,
        neon: false,
    };

    /// An x86-64 CPU with AVX2 and FMA but no AVX-512.
    #[cfg(test)]
    pub const AVX2: Self = Self {
        avx512f: false,
        avx2_fma: true,
        neon: false,
    };

    /// An aarch64 CPU.
    #[cfg(test)]
    pub const NEON: Self = Self {
        avx512f: false,
        avx2_fma: false,
        neon: true,
    };

    /// The features of the CPU this runs on. Cheap (the standard library caches the
    /// CPUID answers), but callers keep the result rather than ask per call.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            Self {
                avx512f: std::arch::is_x86_feature_detected!("avx512f"),
                avx2_fma: std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma"),
                neon: false,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Self {
                avx512f: false,
                avx2_fma: false,
                neon: cfg!(target_arch = "aarch64"),
            }
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
}
