//! The machine's own ceiling at the moment of a round: fused multiply-adds on registers
//! only (no memory, no dependence between the chains), on as many threads as the
//! libraries use. A GEMM can approach it and never pass it, so it tells a round in
//! which the host slowed every library (another tenant on the virtual CPU's core, a
//! lower clock) from one in which a library fell behind.

use std::time::{Duration, Instant};

/// How long one probe computes on each thread.
const PROBE: Duration = Duration::from_millis(20);

/// Loop trips between two looks at the clock.
const TRIPS: usize = 20_000;

/// GFLOPS of register-only FMAs on `threads` threads (the caller and `threads - 1`
/// spawned ones), for about [`PROBE`], in AVX-512 where the CPU has it and `avx512`
/// allows it, else in AVX2; `None` on a CPU without AVX2+FMA or AVX-512F.
pub fn fma_gflops(threads: usize, avx512: bool) -> Option<f64> {
    let avx512 = avx512 && has_avx512();
    let per_trip = flops_per_trip(avx512)?;
    let probe = || {
        let start = Instant::now();
        let mut trips = 0usize;
        while start.elapsed() < PROBE {
            run(TRIPS, avx512);
            trips += TRIPS;
        }
        (trips as f64 * per_trip, start.elapsed().as_secs_f64())
    };
    let results: Vec<(f64, f64)> = std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads).map(|_| scope.spawn(probe)).collect();
        let mut all = vec![probe()];
        all.extend(others.into_iter().map(|h| h.join().expect("probe thread")));
        all
    });
    let flops: f64 = results.iter().map(|r| r.0).sum();
    let secs = results.iter().map(|r| r.1).fold(0.0, f64::max);
    Some(flops / secs / 1e9)
}

/// Whether the CPU has AVX-512F.
fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Floating-point operations of one trip of [`run`]'s loop on this CPU, in AVX-512 where
/// `avx512` (which the caller checked the CPU has).
fn flops_per_trip(avx512: bool) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if avx512 {
            return Some((CHAINS_512 * 16 * 2) as f64);
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Some((CHAINS_256 * 8 * 2) as f64);
        }
    }
    None
}

/// Independent accumulators of the AVX-512 loop: enough to cover two FMA pipes of
/// 4-cycle latency twice over.
#[cfg(target_arch = "x86_64")]
const CHAINS_512: usize = 16;

/// Independent accumulators of the AVX2 loop: 12 of the 16 registers, as the GEMM
/// micro-kernel's.
#[cfg(target_arch = "x86_64")]
const CHAINS_256: usize = 12;

/// `trips` trips of the AVX-512 loop where `avx512` (which the caller checked the CPU
/// has), else of the AVX2 one where the CPU has AVX2+FMA (see [`flops_per_trip`]).
fn run(trips: usize, avx512: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        if avx512 && has_avx512() {
            // SAFETY: the CPU has AVX-512F (checked just above).
            std::hint::black_box(unsafe { fma512(trips) });
        } else if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            std::hint::black_box(unsafe { fma256(trips) });
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (trips, avx512);
}

/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma256(trips: usize) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_ps(); CHAINS_256];
    let (x, y) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    for _ in 0..trips {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(x, *a, y);
        }
    }
    let sum = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, &a| _mm256_add_ps(s, a));
    _mm256_cvtss_f32(sum)
}

/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma512(trips: usize) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_ps(); CHAINS_512];
    let (x, y) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    for _ in 0..trips {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(x, *a, y);
        }
    }
    let sum = acc
        .iter()
        .fold(_mm512_setzero_ps(), |s, &a| _mm512_add_ps(s, a));
    _mm512_reduce_add_ps(sum)
}
