//! `merkleRoot`: upstream's digest of the result, and a fast exact `%.6f` for f32.
//!
//! The Go node hashes C as `"0x"` + hex(SHA-256(concatenation of every element of C,
//! row-major, each printed with Go's `%.6f`, no separators)). `%.6f` prints the exact
//! binary value rounded to 6 decimals, ties to even; a negative value keeps its sign
//! even when it rounds to zero (`-0.000000`), and non-finite values print as `+Inf`,
//! `-Inf` and `NaN`. [`write_fixed6`] reproduces that for the f32 values this crate
//! computes (each is printed as the exact value it holds, as Go does after widening a
//! float32 to float64), without going through the general float formatter, which is
//! several times slower on a million elements.

use sha2::{Digest, Sha256};

/// The longest text [`write_fixed6`] writes: a sign, 39 integer digits (f32::MAX is
/// about 3.4e38), the point and 6 decimals.
pub const FIXED6_MAX_LEN: usize = 47;

/// Writes `value` as Go's `%.6f` prints it into `out`; returns the length written.
pub fn write_fixed6(value: f32, out: &mut [u8; FIXED6_MAX_LEN]) -> usize {
    let bits = value.to_bits();
    let negative = bits >> 31 == 1;
    let exponent = (bits >> 23) & 0xff;
    let fraction = bits & 0x7f_ffff;
    if exponent == 0xff {
        let text: &[u8] = match (fraction != 0, negative) {
            (true, _) => b"NaN",
            (false, false) => b"+Inf",
            (false, true) => b"-Inf",
        };
        out[..text.len()].copy_from_slice(text);
        return text.len();
    }
    // value = mantissa · 2^power exactly, mantissa < 2^24.
    let (mantissa, power) = if exponent == 0 {
        (u64::from(fraction), -149i32)
    } else {
        (u64::from(fraction | 1 << 23), exponent as i32 - 150)
    };
    let mut len = 0;
    if negative {
        out[0] = b'-';
        len = 1;
    }
    // The value in millionths, rounded to nearest, ties to even, as integer part and
    // fraction. Everything fits u64 except integers of 2^64 and more (power > 40).
    let millionths = if power > 40 {
        // An integer of up to 39 digits: the one case that needs u128.
        len += write_digits_u128(u128::from(mantissa) << power, &mut out[len..]);
        0
    } else if power >= 0 {
        len += write_digits(mantissa << power, &mut out[len..]);
        0
    } else {
        let shift = power.unsigned_abs();
        let scaled = mantissa * 1_000_000; // < 2^44
        let rounded = if shift >= 45 {
            // scaled < 2^44 <= half of 2^shift: rounds to zero, never a tie.
            0
        } else {
            let quotient = scaled >> shift;
            let remainder = scaled & ((1u64 << shift) - 1);
            let half = 1u64 << (shift - 1);
            if remainder > half || (remainder == half && quotient & 1 == 1) {
                quotient + 1
            } else {
                quotient
            }
        };
        len += write_digits(rounded / 1_000_000, &mut out[len..]);
        (rounded % 1_000_000) as u32
    };
    out[len] = b'.';
    len += 1;
    let mut frac = millionths;
    for i in (0..6).rev() {
        out[len + i] = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    len + 6
}

/// Writes the decimal digits of `value` at the start of `out`; returns their count.
fn write_digits(mut value: u64, out: &mut [u8]) -> usize {
    write_digits_with(out, || {
        let digit = (value % 10) as u8;
        value /= 10;
        (digit, value == 0)
    })
}

/// [`write_digits`] for integers of 2^64 and more.
fn write_digits_u128(mut value: u128, out: &mut [u8]) -> usize {
    write_digits_with(out, || {
        let digit = (value % 10) as u8;
        value /= 10;
        (digit, value == 0)
    })
}

/// Writes the digits `next` yields, lowest first until it says it is done (at most 40:
/// a u128 has 39), at the start of `out`, highest first; returns their count.
#[inline(always)]
fn write_digits_with(out: &mut [u8], mut next: impl FnMut() -> (u8, bool)) -> usize {
    let mut digits = [0u8; 40];
    let mut start = digits.len();
    loop {
        start -= 1;
        let (digit, done) = next();
        digits[start] = b'0' + digit;
        if done {
            break;
        }
    }
    let count = digits.len() - start;
    out[..count].copy_from_slice(&digits[start..]);
    count
}

/// `value` as Go's `%.6f` prints it, as a `String` (see [`write_fixed6`]).
pub fn fixed6(value: f32) -> String {
    let mut buf = [0u8; FIXED6_MAX_LEN];
    let len = write_fixed6(value, &mut buf);
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// The `merkleRoot` of a result: `"0x"` + lowercase hex SHA-256 of every element of
/// `c` (row-major) printed with `%.6f`, concatenated without separators.
///
/// The text is formatted in blocks of [`BLOCK_VALUES`] values, on all cores (rayon's
/// global pool) when there are several blocks, and hashed in order. The hash is
/// sequential by nature, so it runs on one thread over one window of blocks while the
/// other threads format the next window: the cost is about the larger of the two, not
/// their sum. At most two windows of text (~20 MB) are held at once.
pub fn merkle_root(c: &[f32]) -> String {
    use rayon::prelude::*;
    /// Blocks formatted at once: bounds the text held in memory (~10 MB).
    const BLOCKS_AT_ONCE: usize = 64;
    let format_window = |window: &[f32]| -> Vec<Vec<u8>> {
        window.par_chunks(BLOCK_VALUES).map(format_block).collect()
    };
    let mut hasher = Sha256::new();
    if c.len() <= 2 * BLOCK_VALUES {
        hasher.update(format_block(c));
    } else {
        let mut windows = c.chunks(BLOCK_VALUES * BLOCKS_AT_ONCE);
        let mut ready = windows.next().map(format_window).unwrap_or_default();
        loop {
            let next = windows.next();
            let ((), formatted) = rayon::join(
                || ready.iter().for_each(|b| hasher.update(b)),
                || next.map(format_window),
            );
            match formatted {
                Some(blocks) => ready = blocks,
                None => break,
            }
        }
    }
    let digest = hasher.finalize();
    let mut root = String::with_capacity(2 + 2 * digest.len());
    root.push_str("0x");
    for byte in digest {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        root.push(char::from(HEX[usize::from(byte >> 4)]));
        root.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    root
}

/// Values of C formatted per block by [`merkle_root`].
pub const BLOCK_VALUES: usize = 16 * 1024;

/// The `%.6f` text of `values`, concatenated.
fn format_block(values: &[f32]) -> Vec<u8> {
    // Most values print in 8 to 12 bytes; the Vec grows for longer ones.
    let mut text = Vec::with_capacity(values.len() * 12);
    let mut buf = [0u8; FIXED6_MAX_LEN];
    for &value in values {
        let len = write_fixed6(value, &mut buf);
        text.extend_from_slice(&buf[..len]);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_formatter_on_chosen_values() {
        for v in [
            0.0f32,
            -0.0,
            1.0,
            -1.0,
            19.0,
            0.0078125,
            -0.0078125,
            1.0e-7,
            -1.0e-7,
            f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::MAX,
            f32::MIN,
            16_777_217.0,
            0.1,
            123_456.79,
        ] {
            assert_eq!(fixed6(v), format!("{:.6}", f64::from(v)), "{v:e}");
        }
    }

    #[test]
    fn non_finite_values_print_as_go_does() {
        assert_eq!(fixed6(f32::INFINITY), "+Inf");
        assert_eq!(fixed6(f32::NEG_INFINITY), "-Inf");
        assert_eq!(fixed6(f32::NAN), "NaN");
    }

    proptest::proptest! {
        #[test]
        fn matches_the_standard_formatter_on_any_finite_f32(bits in proptest::num::u32::ANY) {
            let v = f32::from_bits(bits);
            proptest::prop_assume!(v.is_finite());
            // Rust's `{:.6}` is exact and rounds ties to even, like Go's `%.6f`.
            proptest::prop_assert_eq!(fixed6(v), format!("{:.6}", f64::from(v)));
        }

        #[test]
        fn matches_the_standard_formatter_near_the_rounding_point(x in -2000.0f32..2000.0) {
            proptest::prop_assert_eq!(fixed6(x), format!("{:.6}", f64::from(x)));
        }
    }
}
