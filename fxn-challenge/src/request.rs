//! A validated challenge: what to multiply and where.

use std::fmt;

use metal_matmul::Shape;

use crate::parse::{Matrix, RawDocument, RawPayload, SizeValue, decode};
use crate::{ChallengeError, Limits};

/// The envelope `type` this crate answers.
pub const MATRIX_MULTIPLICATION: &str = "MATRIX_MULTIPLICATION";

/// The message upstream gives when neither `size` nor both matrices are present; kept
/// word for word for callers that match on it.
pub const MISSING_OPERANDS: &str = "either 'size' or both 'A' and 'B' matrices must be provided";

/// The backend the payload asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendRequest {
    /// `auto` (or absent): the GPU when A has at least 100 rows, else the CPU.
    #[default]
    Auto,
    /// `cpu`.
    Cpu,
    /// `gpu`, `metal` or `cuda`: the GPU when there is one, else the CPU.
    Gpu,
}

impl BackendRequest {
    /// Parses a payload's `backend` (ASCII case ignored; empty means `auto`).
    pub fn parse(value: &str) -> Result<Self, ChallengeError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "gpu" | "metal" | "cuda" => Ok(Self::Gpu),
            _ => Err(ChallengeError::invalid(
                "backend",
                format!("unknown backend `{value}` (expected auto, cpu, gpu, metal or cuda)"),
            )),
        }
    }
}

impl fmt::Display for BackendRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Gpu => "gpu",
        })
    }
}

/// The two matrices of a challenge.
#[derive(Debug, Clone, PartialEq)]
pub enum Operands {
    /// Two random `size×size` matrices, values uniform in [0, 1), reproducible from
    /// `seed` (see [`random_matrix`](crate::random_matrix)); a random seed is drawn
    /// when it is `None`.
    Random {
        /// Rows and columns of both.
        size: usize,
        /// The generator's seed.
        seed: Option<u64>,
    },
    /// The matrices the payload gave.
    Given {
        /// A, m×k.
        a: Matrix,
        /// B, k×n.
        b: Matrix,
    },
}

/// A challenge that passed validation: it fits the limits and its shapes agree.
#[derive(Debug, Clone, PartialEq)]
pub struct Challenge {
    /// What to multiply.
    pub operands: Operands,
    /// Where the payload asks to run it.
    pub backend: BackendRequest,
    /// The payload's `selfCheck` (ours): `Some(true)` asks for the self-check.
    pub self_check: Option<bool>,
}

impl Challenge {
    /// The product's shape.
    pub fn shape(&self) -> Shape {
        match &self.operands {
            Operands::Random { size, .. } => Shape::square(*size),
            Operands::Given { a, b } => Shape::new(a.rows, a.cols, b.cols),
        }
    }

    /// A challenge of two random `size×size` matrices, checked against `limits`.
    pub fn random(size: usize, seed: Option<u64>, limits: &Limits) -> Result<Self, ChallengeError> {
        check_size(size, limits)?;
        Ok(Self {
            operands: Operands::Random { size, seed },
            backend: BackendRequest::Auto,
            self_check: None,
        })
    }

    /// A challenge of given matrices, checked against `limits`.
    pub fn given(a: Matrix, b: Matrix, limits: &Limits) -> Result<Self, ChallengeError> {
        Ok(Self {
            operands: check_given(a, "matrixA", b, "matrixB", limits)?,
            backend: BackendRequest::Auto,
            self_check: None,
        })
    }
}

/// Parses and validates a body that must be an envelope
/// `{"type": "MATRIX_MULTIPLICATION", "payload": {...}}`, as `POST /challenge` takes.
pub fn parse_envelope(body: &[u8], limits: &Limits) -> Result<Challenge, ChallengeError> {
    let doc = decode(body, limits)?;
    from_envelope(doc, limits)
}

/// Parses and validates an envelope or a bare payload (`{"size": 10}`), as
/// `fxn-cli challenge` takes. A body with a `type` or `payload` key is an envelope.
pub fn parse_challenge(body: &[u8], limits: &Limits) -> Result<Challenge, ChallengeError> {
    let doc = decode(body, limits)?;
    if doc.kind.is_some() || doc.has_payload {
        from_envelope(doc, limits)
    } else {
        validate(doc.bare, limits)
    }
}

fn from_envelope(doc: RawDocument, limits: &Limits) -> Result<Challenge, ChallengeError> {
    match doc.kind.as_deref() {
        Some(MATRIX_MULTIPLICATION) => validate(doc.payload.unwrap_or_default(), limits),
        Some(other) => Err(ChallengeError::UnknownType(other.to_owned())),
        None => Err(ChallengeError::Decode(format!(
            r#"the body has no `type`: expected {{"type": "{MATRIX_MULTIPLICATION}", "payload": {{...}}}}"#
        ))),
    }
}

fn validate(raw: RawPayload, limits: &Limits) -> Result<Challenge, ChallengeError> {
    let backend = match raw.backend.as_deref() {
        Some(name) => BackendRequest::parse(name)?,
        None => BackendRequest::Auto,
    };
    // `A`/`B` are the older names, used only when `matrixA`/`matrixB` are absent.
    let (a, a_field) = match (raw.matrix_a, raw.a) {
        (Some(m), _) => (Some(m), "matrixA"),
        (None, Some(m)) => (Some(m), "A"),
        (None, None) => (None, "matrixA"),
    };
    let (b, b_field) = match (raw.matrix_b, raw.b) {
        (Some(m), _) => (Some(m), "matrixB"),
        (None, Some(m)) => (Some(m), "B"),
        (None, None) => (None, "matrixB"),
    };
    let both = a.is_some() && b.is_some();
    let given = move || match (a, b) {
        (Some(a), Some(b)) => check_given(a, a_field, b, b_field, limits),
        _ => Err(ChallengeError::invalid("payload", MISSING_OPERANDS)),
    };
    let operands = match raw.size {
        Some(SizeValue::Int(size)) if size > 0 => {
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            check_size(size, limits)?;
            Operands::Random {
                size,
                seed: raw.seed,
            }
        }
        // A Go client whose struct lacks `omitempty` sends `"size": 0` beside its
        // matrices; upstream treats 0 as absent, so the matrices are used.
        Some(SizeValue::Int(0)) if both => given()?,
        Some(SizeValue::Int(size)) => {
            return Err(ChallengeError::invalid(
                "size",
                format!("must be a positive integer, got {size}"),
            ));
        }
        Some(SizeValue::Fraction(size)) => {
            return Err(ChallengeError::invalid(
                "size",
                format!("must be a positive integer, got {size}"),
            ));
        }
        None => given()?,
    };
    Ok(Challenge {
        operands,
        backend,
        self_check: raw.self_check,
    })
}

fn check_size(size: usize, limits: &Limits) -> Result<(), ChallengeError> {
    if size == 0 {
        return Err(ChallengeError::invalid(
            "size",
            "must be a positive integer, got 0",
        ));
    }
    if size > limits.max_dim {
        return Err(ChallengeError::invalid(
            "size",
            format!(
                "{size} is over the largest dimension allowed, {}",
                limits.max_dim
            ),
        ));
    }
    limits
        .check_budget(size, size, size)
        .map_err(|message| ChallengeError::invalid("size", message))
}

fn check_given(
    a: Matrix,
    a_field: &str,
    b: Matrix,
    b_field: &str,
    limits: &Limits,
) -> Result<Operands, ChallengeError> {
    for (m, field) in [(&a, a_field), (&b, b_field)] {
        if m.rows == 0 {
            return Err(ChallengeError::invalid(
                field,
                "is empty: a matrix needs at least one row",
            ));
        }
        if m.cols == 0 {
            return Err(ChallengeError::invalid(
                field,
                "has empty rows: a matrix needs at least one column",
            ));
        }
        if m.data.len() != m.rows.saturating_mul(m.cols) {
            return Err(ChallengeError::invalid(
                field,
                format!("holds {} values but is {}×{}", m.data.len(), m.rows, m.cols),
            ));
        }
        if m.rows > limits.max_dim || m.cols > limits.max_dim {
            return Err(ChallengeError::invalid(
                field,
                format!(
                    "is {}×{}, over the largest dimension allowed, {}",
                    m.rows, m.cols, limits.max_dim
                ),
            ));
        }
        if let Some(index) = metal_matmul::numeric::first_non_finite(&m.data) {
            return Err(ChallengeError::invalid(
                field,
                format!(
                    "the value at [{}][{}] is not finite",
                    index / m.cols,
                    index % m.cols
                ),
            ));
        }
    }
    if a.cols != b.rows {
        return Err(ChallengeError::invalid(
            format!("{a_field}, {b_field}"),
            format!(
                "matrix dimensions are not compatible for multiplication: {a_field} is {}×{} and {b_field} is {}×{}; the columns of {a_field} must equal the rows of {b_field}",
                a.rows, a.cols, b.rows, b.cols
            ),
        ));
    }
    limits
        .check_budget(a.rows, a.cols, b.cols)
        .map_err(|message| ChallengeError::invalid("payload", message))?;
    Ok(Operands::Given { a, b })
}
