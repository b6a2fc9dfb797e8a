//! The Function Network's matrix-multiplication challenge: parse it, validate it, run
//! it on Metal or the CPU through `metal-matmul`, and answer it exactly as the Go
//! Function Node does (the wire format is in `docs/CHALLENGE.md`).
//!
//! ```
//! use fxn_challenge::{Engine, EngineConfig, parse_envelope};
//!
//! let engine = Engine::new(EngineConfig::default())?;
//! let body = br#"{"type":"MATRIX_MULTIPLICATION",
//!                 "payload":{"matrixA":[[1,2],[3,4]],"matrixB":[[5,6],[7,8]]}}"#;
//! let outcome = engine.run(parse_envelope(body, engine.limits())?)?;
//! assert_eq!(&outcome.c[..], [19.0, 22.0, 43.0, 50.0]);
//! assert_eq!(outcome.flops(), 16);
//! let json = outcome.to_json(); // the response body
//! # assert!(!json.is_empty());
//! # Ok::<(), fxn_challenge::ChallengeError>(())
//! ```
//!
//! - [`parse_envelope`] / [`parse_challenge`] decode a body into a [`Challenge`],
//!   reading the matrices straight into flat `Vec<f32>`s and enforcing [`Limits`]
//!   while they are read; every error names its field.
//! - [`Engine`] holds the backends, opened once, and applies upstream's rules for
//!   choosing the GPU or the CPU, with fallback to the CPU and an optional Freivalds
//!   self-check ([`freivalds`]).
//! - [`Outcome::to_json`] writes the response, including [`merkle_root`].

mod engine;
mod error;
mod limits;
mod merkle;
mod parse;
mod random;
mod request;
mod response;

pub use engine::{Engine, EngineConfig, GPU_MIN_SIZE, SELF_CHECK_ROUNDS};
pub use error::ChallengeError;
pub use limits::Limits;
pub use merkle::{BLOCK_VALUES, FIXED6_MAX_LEN, fixed6, merkle_root, write_fixed6};
/// Freivalds' check, as the engine runs it (`metal_matmul::verify`).
pub use metal_matmul::verify::{FreivaldsReport, freivalds};
pub use parse::Matrix;
pub use random::{fresh_seed, random_fill, random_matrix, seeded_rng};
pub use request::{
    BackendRequest, Challenge, MATRIX_MULTIPLICATION, MISSING_OPERANDS, Operands, parse_challenge,
    parse_envelope,
};
pub use response::{MAX_SIZE_WITH_C, Outcome};
