//! Peak resident memory of one call, from Linux's `/proc/self`.
//!
//! Writing `5` to `/proc/self/clear_refs` resets the peak (`VmHWM`) to the current
//! resident size; after the call, `VmHWM` minus that size is the most memory the call
//! added at any moment: workspace, packing buffers, thread stacks first touched. Other
//! systems report nothing.

/// Resets the peak and returns the resident size now, in KiB; `None` where unsupported.
pub fn reset_peak() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        std::fs::write("/proc/self/clear_refs", "5").ok()?;
        status_kib("VmRSS:")
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The peak since [`reset_peak`] above `baseline_kib`, in MiB.
pub fn peak_above(baseline_kib: u64) -> Option<f64> {
    #[cfg(target_os = "linux")]
    {
        let peak = status_kib("VmHWM:")?;
        Some(peak.saturating_sub(baseline_kib) as f64 / 1024.0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = baseline_kib;
        None
    }
}

#[cfg(target_os = "linux")]
fn status_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_large_allocation_shows_in_the_peak() {
        let Some(base) = reset_peak() else {
            eprintln!("skipped: this kernel cannot reset the peak resident size");
            return;
        };
        let block = vec![1u8; 64 << 20];
        let peak = peak_above(base).expect("VmHWM is readable");
        assert!(block.iter().all(|&b| b == 1));
        assert!(peak >= 60.0, "peak {peak} MiB after touching 64 MiB");
    }
}
