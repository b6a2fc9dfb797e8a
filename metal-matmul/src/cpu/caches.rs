//! The sizes of the L2 and last-level caches one core sees, from CPUID: the plan
//! streams a matrix larger than the last level with software prefetch (the vector
//! kernels), where a matrix that fits is read faster without, and splits products of
//! few rows by faer's own split where the L2 is large.

/// What CPUID says of this core's caches, in bytes, per instance (not summed over the
/// chip); `None` for what it does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Sizes {
    /// The level-2 data or unified cache.
    l2: Option<usize>,
    /// The largest data or unified cache: the last level (L3 on the x86-64 machines we
    /// measured).
    last_level: Option<usize>,
}

/// The largest data or unified cache of this core (its last level: L3 on the x86-64
/// machines we measured, per instance, not summed over the chip), in bytes. `None` where
/// CPUID does not enumerate caches (leaf 4 on Intel, 0x8000_001D on AMD) and on other
/// architectures. The first call asks CPUID (a few instructions, microseconds under a
/// hypervisor); later calls read the kept answer.
pub(super) fn last_level_bytes() -> Option<usize> {
    sizes().last_level
}

/// This core's level-2 data or unified cache in bytes (per instance: one core's on the
/// AMD and Intel server CPUs we measured, shared by a module's cores on some others),
/// `None` where CPUID does not tell; cached as [`last_level_bytes`].
pub(super) fn l2_bytes() -> Option<usize> {
    sizes().l2
}

/// The sizes, asked of CPUID once.
fn sizes() -> Sizes {
    static SIZES: std::sync::OnceLock<Sizes> = std::sync::OnceLock::new();
    *SIZES.get_or_init(ask_cpuid)
}

/// [`sizes`], asked of the CPU.
fn ask_cpuid() -> Sizes {
    #[cfg(target_arch = "x86_64")]
    {
        // Intel enumerates its caches in leaf 4, AMD in 0x8000_001D (same layout); the
        // other vendor's leaf reads as "no cache".
        [4, 0x8000_001D]
            .into_iter()
            .filter(|&leaf| leaf_exists(leaf))
            .map(|leaf| sizes_in_leaf(|sub| cpuid(leaf, sub)))
            .fold(Sizes::default(), |a, b| Sizes {
                l2: a.l2.max(b.l2),
                last_level: a.last_level.max(b.last_level),
            })
    }
    #[cfg(not(target_arch = "x86_64"))]
    Sizes::default()
}

/// EAX, EBX, ECX of CPUID `(leaf, sub)`.
#[cfg(target_arch = "x86_64")]
fn cpuid(leaf: u32, sub: u32) -> [u32; 3] {
    // SAFETY: CPUID exists on every x86-64 CPU and only writes registers; a leaf past
    // the maximum answers with unspecified values, never a fault (`leaf_exists` keeps
    // the callers below the maximum). The intrinsic is a safe fn in newer toolchains,
    // hence the allow.
    #[allow(unused_unsafe)]
    let r = unsafe { std::arch::x86_64::__cpuid_count(leaf, sub) };
    [r.eax, r.ebx, r.ecx]
}

/// Whether `leaf` is at most the CPU's highest basic (or extended) leaf.
#[cfg(target_arch = "x86_64")]
fn leaf_exists(leaf: u32) -> bool {
    let base = leaf & 0x8000_0000;
    cpuid(base, 0)[0] >= leaf
}

/// The L2 and the largest data or unified cache that `read(sub)` (CPUID leaf 4's
/// layout, subleaf by subleaf) describes, in bytes; `None` for what it does not list.
/// (The decoding is tested on every architecture, used on x86-64.)
#[cfg(any(target_arch = "x86_64", test))]
fn sizes_in_leaf(read: impl Fn(u32) -> [u32; 3]) -> Sizes {
    // 16 subleaves at most: no CPU lists more caches, and a broken answer cannot loop.
    let data: Vec<[u32; 3]> = (0..16)
        .map(read)
        .take_while(|&[eax, ..]| eax & 0x1f != 0)
        .filter(|&[eax, ..]| matches!(eax & 0x1f, 1 | 3))
        .collect();
    // EAX bits 7:5: the cache's level.
    let level = |&[eax, ..]: &[u32; 3]| (eax >> 5) & 0x7;
    Sizes {
        l2: data
            .iter()
            .filter(|r| level(r) == 2)
            .map(|&r| cache_bytes(r))
            .max(),
        last_level: data.iter().map(|&r| cache_bytes(r)).max(),
    }
}

/// A cache's size from its leaf-4 registers: ways × partitions × line × sets.
#[cfg(any(target_arch = "x86_64", test))]
fn cache_bytes([_, ebx, ecx]: [u32; 3]) -> usize {
    let ways = (ebx >> 22) as usize + 1;
    let partitions = ((ebx >> 12) & 0x3ff) as usize + 1;
    let line = (ebx & 0xfff) as usize + 1;
    let sets = ecx as usize + 1;
    ways * partitions * line * sets
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The subleaves an AMD EPYC Zen 4 (2 vCPUs, 2026-12-07) answers in 0x8000_001D:
    /// L1d and L1i 32 KiB, L2 1 MiB, L3 32 MiB, then the end of the list.
    const ZEN4: [[u32; 3]; 5] = [
        [0x121, 0x01c0_003f, 0x3f],
        [0x122, 0x01c0_003f, 0x3f],
        [0x143, 0x01c0_003f, 0x7ff],
        [0x4163, 0x03c0_003f, 0x7fff],
        [0, 0, 0],
    ];

    #[test]
    fn the_largest_data_cache_is_the_last_level() {
        let read = |sub: u32| ZEN4[(sub as usize).min(4)];
        assert_eq!(cache_bytes(ZEN4[0]), 32 << 10);
        assert_eq!(cache_bytes(ZEN4[2]), 1 << 20);
        assert_eq!(
            sizes_in_leaf(read),
            Sizes {
                l2: Some(1 << 20),
                last_level: Some(32 << 20)
            }
        );
        // The instruction cache (type 2) never counts, and an empty list is no answer.
        let only_l1i = |sub: u32| if sub == 0 { ZEN4[1] } else { [0; 3] };
        assert_eq!(sizes_in_leaf(only_l1i), Sizes::default());
        assert_eq!(sizes_in_leaf(|_| [0; 3]), Sizes::default());
        // A list without an L2 (L1d and L3 only) has a last level and no L2.
        let no_l2 = |sub: u32| [ZEN4[0], ZEN4[3], [0; 3]][(sub as usize).min(2)];
        assert_eq!(
            sizes_in_leaf(no_l2),
            Sizes {
                l2: None,
                last_level: Some(32 << 20)
            }
        );
    }

    #[test]
    fn this_cpu_answers_a_plausible_size() {
        match last_level_bytes() {
            // Between 256 KiB and 4 GiB: any real last-level cache.
            Some(bytes) => assert!((256 << 10..=4 << 30).contains(&bytes), "{bytes}"),
            None => eprintln!("this CPU does not enumerate its caches through CPUID"),
        }
        // An L2 of 128 KiB to 64 MiB, never larger than the last level.
        if let Some(l2) = l2_bytes() {
            assert!((128 << 10..=64 << 20).contains(&l2), "{l2}");
            assert!(last_level_bytes().is_some_and(|llc| llc >= l2));
        }
        #[cfg(not(target_arch = "x86_64"))]
        assert_eq!((last_level_bytes(), l2_bytes()), (None, None));
    }
}
