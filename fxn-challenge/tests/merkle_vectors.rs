//! `merkleRoot` against values computed independently of this crate.
//!
//! The expected strings and digests were produced once with Python 3, whose `'%.6f'`
//! formats the exact binary value rounded half to even, as Go's `%.6f` does:
//!
//! ```text
//! import struct, hashlib
//! f32 = lambda x: struct.unpack('<f', struct.pack('<f', x))[0]
//! root = lambda vals: "0x" + hashlib.sha256("".join('%.6f' % v for v in vals).encode()).hexdigest()
//! ```

use fxn_challenge::{fixed6, merkle_root};

/// (f32 bits, Python's `'%.6f'`).
const VALUES: [(u32, &str); 19] = [
    (0x8000_0000, "-0.000000"),
    (0xb089_705f, "-0.000000"),
    (0x3c00_0000, "0.007812"),
    (0xbc00_0000, "-0.007812"),
    (
        0x7f7f_ffff,
        "340282346638528859811704183484516925440.000000",
    ),
    (
        0xff7f_c99e,
        "-339999995214436424907732413799364296704.000000",
    ),
    (0x0000_0001, "0.000000"),
    (0x3dcc_cccd, "0.100000"),
    (0xc020_0000, "-2.500000"),
    (0x4996_b43f, "1234567.875000"),
    (0x4b80_0000, "16777216.000000"),
    (0x3eaa_aaab, "0.333333"),
    (0x3480_0000, "0.000000"),
    (0x3506_37bd, "0.000000"),
    (0xb506_37bd, "-0.000000"),
    (0x35c9_539c, "0.000002"),
    (0x42f6_e9e0, "123.456787"),
    (0xbf7f_fff8, "-1.000000"),
    (0x4974_2400, "1000000.000000"),
];

/// Python's digest of all of `VALUES` in order.
const VALUES_ROOT: &str = "0xa4b428556a13ae000ee4c48ffdece092928ebe192bcd8cb268a10a419abd3efc";

#[test]
fn each_value_prints_as_percent_6f() {
    for (bits, want) in VALUES {
        assert_eq!(fixed6(f32::from_bits(bits)), want, "bits {bits:#010x}");
    }
}

#[test]
fn exact_ties_round_to_even() {
    // 3/128 = 0.0234375 and 5/128 = 0.0390625 are exact ties at 6 decimals.
    assert_eq!(fixed6(f32::from_bits(0x3cc0_0000)), "0.023438");
    assert_eq!(fixed6(f32::from_bits(0x3d20_0000)), "0.039062");
    assert_eq!(fixed6(f32::from_bits(0xbcc0_0000)), "-0.023438");
}

#[test]
fn digest_of_tricky_values() {
    let values: Vec<f32> = VALUES
        .iter()
        .map(|&(bits, _)| f32::from_bits(bits))
        .collect();
    assert_eq!(merkle_root(&values), VALUES_ROOT);
}

#[test]
fn digests_of_the_pinned_examples() {
    assert_eq!(
        merkle_root(&[19.0, 22.0, 43.0, 50.0]),
        "0x93eea43e7660399dd3e4ac5e27a71f94486e4b646623f95d437ba7d75175a3b4"
    );
    assert_eq!(
        merkle_root(&[58.0, 64.0, 139.0, 154.0]),
        "0xcd866ca5a4f28dc992ddb25137cd28f4e3f2cd427673566c0516d8cff09c17f1"
    );
}

#[test]
fn digest_spans_hash_blocks() {
    // Several blocks, formatted in parallel, and a partial last block: the digest
    // must not depend on where the blocks end. Compare with hashing the whole
    // concatenation at once.
    use fxn_challenge::BLOCK_VALUES;
    use sha2_check::concatenated_root;
    // One window, two, and three (the hash of one overlaps the formatting of the next).
    for len in [
        BLOCK_VALUES * 2 + 1,
        BLOCK_VALUES * 70 + 5,
        BLOCK_VALUES * 130 + 3,
    ] {
        let values: Vec<f32> = (0..len).map(|i| (i as f32 - 7_000.5) / 3.0).collect();
        assert_eq!(merkle_root(&values), concatenated_root(&values), "{len}");
    }
}

mod sha2_check {
    /// The recipe written the slow, obvious way: one String, std formatting.
    pub fn concatenated_root(values: &[f32]) -> String {
        use sha2::{Digest, Sha256};
        let text: String = values
            .iter()
            .map(|v| format!("{:.6}", f64::from(*v)))
            .collect();
        let digest = Sha256::digest(text.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("0x{hex}")
    }
}
