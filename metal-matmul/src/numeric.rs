//! Numerical helpers: finiteness scans, and the tolerances a correct f32 product stays
//! within (the checks that use them are in [`verify`](crate::verify)).

use crate::{Error, Result};

/// The index of the first NaN or infinity in `values`, if any.
///
/// One read of `values`, vectorized: blocks of 16,384 values are tested without a branch
/// per value, and the position is looked for only inside a block that has one. From
/// [`PARALLEL_SCAN_MIN`] values the blocks are scanned on all cores (rayon's global
/// pool), still answering the first position. Costs one pass over `values` at about
/// memory speed (docs/PERFORMANCE.md, `first_non_finite`, has the figures).
pub fn first_non_finite(values: &[f32]) -> Option<usize> {
    let in_block = |(block, chunk): (usize, &[f32])| {
        if !has_non_finite(chunk) {
            return None;
        }
        let at = chunk.iter().position(|v| !v.is_finite())?;
        Some(block * SCAN_BLOCK + at)
    };
    if values.len() >= PARALLEL_SCAN_MIN {
        use rayon::prelude::*;
        return values
            .par_chunks(SCAN_BLOCK)
            .enumerate()
            .find_map_first(in_block);
    }
    values.chunks(SCAN_BLOCK).enumerate().find_map(in_block)
}

/// Values from which [`first_non_finite`] scans on all cores (4 MiB: a tenth of a
/// millisecond on one core, where handing blocks to other threads costs microseconds).
pub const PARALLEL_SCAN_MIN: usize = 1 << 20;

/// Whether `chunk` holds a NaN or an infinity: four streams when the chunk is a whole
/// [`SCAN_BLOCK`], one otherwise.
fn has_non_finite(chunk: &[f32]) -> bool {
    let bad = |v: &f32| v.to_bits() & EXPONENT == EXPONENT;
    let Ok(whole) = <&[f32; SCAN_BLOCK]>::try_from(chunk) else {
        return chunk.iter().fold(false, |any, v| any | bad(v));
    };
    const QUARTER: usize = SCAN_BLOCK / 4;
    let (q0, rest) = whole.split_at(QUARTER);
    let (q1, rest) = rest.split_at(QUARTER);
    let (q2, q3) = rest.split_at(QUARTER);
    q0.iter()
        .zip(q1)
        .zip(q2)
        .zip(q3)
        .fold(false, |any, (((a, b), c), d)| {
            any | bad(a) | bad(b) | bad(c) | bad(d)
        })
}

/// Values per block of [`first_non_finite`]'s scan (64 KiB: four streams of 16 KiB, a
/// stop soon after the first non-finite value).
const SCAN_BLOCK: usize = 16_384;

/// An f32's exponent bits: all ones for NaN and the infinities, and only for them.
const EXPONENT: u32 = 0x7f80_0000;

/// Fails with [`Error::NonFinite`] when `values` (a `rows×cols` row-major matrix named
/// `operand`) holds NaN or infinity.
pub fn check_finite(operand: &'static str, values: &[f32], cols: usize) -> Result<()> {
    match first_non_finite(values) {
        None => Ok(()),
        Some(index) => Err(Error::NonFinite {
            operand,
            index,
            row: index / cols.max(1),
            col: index % cols.max(1),
        }),
    }
}

/// The tolerance of an FP32 product in [`verify`](crate::verify)'s checks: a few units
/// of f32 rounding per accumulation step, relative to the product's scale.
pub const DEFAULT_TOLERANCE: f64 = 1e-5;

/// The tolerance for TF32 tensor-core products ([`Method::CublasTf32`](crate::Method)):
/// inputs keep 10 mantissa bits (relative rounding 2⁻¹¹ per factor), so a scaled error
/// near 1e-3 is what TF32 gives, not a fault. [`Method::tolerance`](crate::Method::tolerance)
/// picks it.
pub const TF32_TOLERANCE: f64 = 2e-3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_check_names_the_position() {
        let err = check_finite("B", &[1.0, 2.0, 3.0, f32::INFINITY], 2).unwrap_err();
        assert_eq!(
            err,
            Error::NonFinite {
                operand: "B",
                index: 3,
                row: 1,
                col: 1
            }
        );
        assert!(check_finite("A", &[1.0, -2.0], 2).is_ok());
    }

    #[test]
    fn the_block_scan_finds_the_first_non_finite_value() {
        let len = 3 * SCAN_BLOCK + 17;
        let mut values: Vec<f32> = (0..len).map(|i| (i as f32 - 5000.0) * 1e30).collect();
        values[7] = -0.0;
        values[8] = f32::MAX;
        values[9] = f32::MIN_POSITIVE / 2.0;
        assert_eq!(first_non_finite(&values), None);
        assert_eq!(first_non_finite(&[]), None);
        // Each quarter of a block, block edges, the last partial block, and the first
        // of two.
        let quarter = SCAN_BLOCK / 4;
        for at in [
            0,
            1,
            quarter + 3,
            2 * quarter,
            3 * quarter - 1,
            SCAN_BLOCK - 1,
            SCAN_BLOCK,
            2 * SCAN_BLOCK + 3 * quarter + 5,
            len - 1,
        ] {
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -f32::NAN] {
                let mut v = values.clone();
                v[at] = bad;
                assert_eq!(first_non_finite(&v), Some(at), "{bad} at {at}");
                v[len - 1] = f32::NAN;
                assert_eq!(first_non_finite(&v), Some(at), "{bad} at {at}, NaN last");
            }
        }
    }

    #[test]
    fn the_parallel_scan_answers_the_first_position_too() {
        let len = PARALLEL_SCAN_MIN + 3 * SCAN_BLOCK + 5;
        let mut values = vec![1.5f32; len];
        assert_eq!(first_non_finite(&values), None);
        // Late blocks may finish first on other threads: the earliest still wins.
        for at in [len - 1, PARALLEL_SCAN_MIN + 7, 40 * SCAN_BLOCK + 3, 5] {
            values[at] = f32::NAN;
            assert_eq!(first_non_finite(&values), Some(at), "NaN at {at}");
        }
    }
}
