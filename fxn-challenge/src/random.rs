//! Reproducible random matrices for `size` challenges.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A `rows×cols` row-major matrix of values uniform in [0, 1), as upstream draws them,
/// from a generator seeded with `seed`.
///
/// The recipe is fixed so that a seed gives the same matrices on every version and
/// platform: ChaCha8 (`rand_chacha`, whose output is specified) seeded with
/// `seed_from_u64(seed)`; A is drawn first, then B; each value is the top 24 bits of
/// one `next_u32` times 2⁻²⁴, so every value is an exact f32 in [0, 1).
pub fn random_matrix(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> Vec<f32> {
    const SCALE: f32 = 1.0 / (1u32 << 24) as f32;
    (0..rows * cols)
        .map(|_| (rng.next_u32() >> 8) as f32 * SCALE)
        .collect()
}

/// The generator for `seed` (see [`random_matrix`]).
pub fn seeded_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A seed from the operating system's entropy, for `size` challenges without one.
pub fn fresh_seed() -> u64 {
    rand::random()
}
