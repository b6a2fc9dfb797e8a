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
///
/// ChaCha's stream is seekable, so large matrices are drawn on all cores (rayon's global
/// pool): each piece of 1 Mi values (`PIECE_VALUES`) starts from a clone of `rng` moved to
/// that piece's word, and `rng` ends where the sequential draw would have left it. The
/// values are the same, bit for bit, as one thread drawing them in order.
pub fn random_matrix(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; rows * cols];
    random_fill(rng, &mut out);
    out
}

/// Fills `out` with the next `out.len()` values of `rng`, exactly as
/// [`random_matrix`] draws a matrix of that many elements (same recipe, same parallel
/// draw); for drawing into memory the caller already has, such as a backend's
/// [`HostBuffer`](metal_matmul::HostBuffer).
pub fn random_fill(rng: &mut ChaCha8Rng, out: &mut [f32]) {
    use rayon::prelude::*;
    if out.len() <= PIECE_VALUES {
        fill(rng, out);
        return;
    }
    let start = rng.get_word_pos();
    out.par_chunks_mut(PIECE_VALUES)
        .enumerate()
        .for_each(|(i, piece)| {
            let mut local = rng.clone();
            local.set_word_pos(start + (i * PIECE_VALUES) as u128);
            fill(&mut local, piece);
        });
    rng.set_word_pos(start + out.len() as u128);
}

/// Values drawn per task by [`random_matrix`] (4 MiB of f32).
pub const PIECE_VALUES: usize = 1 << 20;

/// Draws `out.len()` values in order, one `next_u32` each.
fn fill(rng: &mut ChaCha8Rng, out: &mut [f32]) {
    const SCALE: f32 = 1.0 / (1u32 << 24) as f32;
    for v in out {
        *v = (rng.next_u32() >> 8) as f32 * SCALE;
    }
}

/// The generator for `seed` (see [`random_matrix`]).
pub fn seeded_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A seed from the operating system's entropy, for `size` challenges without one.
pub fn fresh_seed() -> u64 {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The draw one thread makes in order: what the parallel one must equal.
    fn sequential(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
        let mut out = vec![0.0; len];
        fill(rng, &mut out);
        out
    }

    #[test]
    fn the_parallel_draw_is_the_sequential_one_and_leaves_the_stream_alike() {
        // Around one piece, several with a ragged last one, and a tiny matrix between.
        let dims = [
            (1, PIECE_VALUES),
            (3, PIECE_VALUES / 2 + 7),
            (2, 3),
            (1025, 2049),
        ];
        let mut par = seeded_rng(11);
        let mut seq = seeded_rng(11);
        for (rows, cols) in dims {
            let got = random_matrix(&mut par, rows, cols);
            let want = sequential(&mut seq, rows * cols);
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(g, w)| g.to_bits() == w.to_bits()),
                "{rows}×{cols}"
            );
            assert_eq!(got.len(), want.len());
            assert_eq!(par.get_word_pos(), seq.get_word_pos(), "{rows}×{cols}");
        }
        assert_eq!(par.next_u32(), seq.next_u32());
    }
}
