//! What the CPU is: model, architecture, vector extensions, L2 and last-level caches,
//! cores and memory.

use crate::DeviceInfo;

/// Facts about the machine's CPU, read once when a [`CpuBackend`](super::CpuBackend) is made.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CpuInfo {
    /// The model name, e.g. `"AMD EPYC 9R14"` or `"Apple M2"`; `"unknown CPU"` if unread.
    pub model: String,
    /// The architecture, e.g. `"x86_64"` or `"aarch64"`.
    pub arch: String,
    /// The widest vector extension found at run time, e.g. `"avx512f"`, `"avx2+fma"`,
    /// `"neon"`; from a [`CpuBackend`](super::CpuBackend) with a lower
    /// [`SimdLimit`](super::SimdLimit), what its kernels use and what the CPU has.
    pub simd: String,
    /// The last-level cache one core sees, in bytes (per instance, not summed over the
    /// chip): what the CPU backend's plan compares a vector shape's matrix with. 0 where
    /// CPUID does not tell, and on every CPU but x86-64.
    #[cfg_attr(feature = "serde", serde(default))]
    pub last_level_cache: u64,
    /// The L2 cache one core sees, in bytes (per instance): what the plan chooses the
    /// split of a product of few rows by. 0 where CPUID does not tell, and on every CPU
    /// but x86-64.
    #[cfg_attr(feature = "serde", serde(default))]
    pub l2_cache: u64,
    /// Logical cores available to this process.
    pub cores: usize,
    /// Physical memory in bytes (0 if unread).
    pub memory_total: u64,
    /// Memory available to new allocations in bytes (0 if unread).
    pub memory_available: u64,
}

impl CpuInfo {
    /// Reads the facts from the operating system.
    pub fn detect() -> Self {
        let (memory_total, memory_available) = memory();
        Self {
            model: model().unwrap_or_else(|| "unknown CPU".to_owned()),
            arch: std::env::consts::ARCH.to_owned(),
            simd: simd().to_owned(),
            last_level_cache: super::caches::last_level_bytes().map_or(0, |b| b as u64),
            l2_cache: super::caches::l2_bytes().map_or(0, |b| b as u64),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_total,
            memory_available,
        }
    }

    /// The CPU backend's [`DeviceInfo`] with `threads` workers.
    pub fn device_info(&self, threads: usize) -> DeviceInfo {
        DeviceInfo {
            device_type: DeviceInfo::CPU_DEVICE_TYPE.to_owned(),
            name: self.model.clone(),
            compute_capability: format!("{} {}", self.arch, self.simd),
            memory_total: self.memory_total,
            memory_free: self.memory_available,
            max_threads_per_group: u32::try_from(threads).unwrap_or(u32::MAX),
            unified_memory: true,
            gpu: None,
        }
    }
}

fn simd() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512f";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "avx2+fma";
        }
        if std::arch::is_x86_feature_detected!("avx") {
            return "avx";
        }
        "sse2"
    }
    #[cfg(target_arch = "aarch64")]
    {
        "neon"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "scalar"
    }
}

#[cfg(target_os = "linux")]
fn model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("model name") || l.starts_with("Model"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

#[cfg(target_os = "linux")]
fn memory() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

#[cfg(target_os = "macos")]
fn sysctl_bytes(name: &std::ffi::CStr) -> Option<Vec<u8>> {
    let mut len: libc::size_t = 0;
    // SAFETY: `name` is NUL-terminated; a null output pointer asks only for the length,
    // which sysctlbyname writes to `len`.
    let rc = unsafe {
        libc::sysctlbyname(
            name.as_ptr(),
            std::ptr::null_mut(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 || len == 0 {
        return None;
    }
    let mut buf = vec![0u8; len];
    // SAFETY: `buf` is writable for `len` bytes, the length sysctlbyname asked for; it
    // writes at most `len` bytes and updates `len` to what it wrote.
    let rc = unsafe {
        libc::sysctlbyname(
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return None;
    }
    buf.truncate(len);
    Some(buf)
}

#[cfg(target_os = "macos")]
fn model() -> Option<String> {
    let bytes = sysctl_bytes(c"machdep.cpu.brand_string")?;
    let text = String::from_utf8_lossy(&bytes);
    Some(text.trim_end_matches('\0').trim().to_owned())
}

#[cfg(target_os = "macos")]
fn memory() -> (u64, u64) {
    let total = sysctl_bytes(c"hw.memsize")
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(0, u64::from_ne_bytes);
    // macOS has no single "available" figure without Mach calls; report the total.
    (total, total)
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn model() -> Option<String> {
    None
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn memory() -> (u64, u64) {
    (0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_something_real() {
        let info = CpuInfo::detect();
        assert!(info.cores >= 1);
        assert!(!info.arch.is_empty());
        #[cfg(target_os = "linux")]
        {
            assert_ne!(info.model, "unknown CPU");
            assert!(info.memory_total > 0);
        }
        #[cfg(not(target_arch = "x86_64"))]
        assert_eq!((info.last_level_cache, info.l2_cache), (0, 0));
        // Where Linux lists the caches too, CPUID's largest and L2 agree with its own.
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        for (cpuid, sysfs) in [
            (info.last_level_cache, sysfs_cache(None)),
            (info.l2_cache, sysfs_cache(Some(2))),
        ] {
            match (cpuid, sysfs) {
                (0, _) | (_, None) => eprintln!("no cache size from CPUID or from sysfs"),
                (cpuid, Some(sysfs)) => assert_eq!(cpuid, sysfs),
            }
        }
        let dev = info.device_info(3);
        assert_eq!(dev.device_type, "CPU");
        assert_eq!(dev.max_threads_per_group, 3);
    }

    /// The largest data or unified cache of cpu0 that sysfs lists at `level` (any level
    /// for `None`), in bytes.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    fn sysfs_cache(level: Option<u32>) -> Option<u64> {
        let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
        dir.filter_map(|entry| {
            let path = entry.ok()?.path();
            let read = |name: &str| std::fs::read_to_string(path.join(name)).ok();
            let kind = read("type")?;
            if !matches!(kind.trim(), "Data" | "Unified") {
                return None;
            }
            if level
                .is_some_and(|want| read("level").and_then(|l| l.trim().parse().ok()) != Some(want))
            {
                return None;
            }
            let size = read("size")?;
            let kib = size.trim().strip_suffix('K')?.parse::<u64>().ok()?;
            Some(kib * 1024)
        })
        .max()
    }
}
