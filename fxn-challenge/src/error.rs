//! What can go wrong with a challenge, and whose fault it is.

/// A challenge that could not be answered.
///
/// [`status`](Self::status) maps each to the HTTP status the server answers: the
/// client's mistakes are 400, only our own failures are 500.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeError {
    /// The body is not JSON of the expected form; the message names the field and the
    /// position where it can.
    #[error("{0}")]
    Decode(String),
    /// The envelope's `type` is not `MATRIX_MULTIPLICATION`.
    #[error("unknown challenge type `{0}` (this node answers MATRIX_MULTIPLICATION)")]
    UnknownType(String),
    /// The payload decoded but asks for something invalid (a shape mismatch, a size
    /// over the limits, missing matrices).
    #[error("{field}: {message}")]
    Invalid {
        /// The payload field at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A failure on our side: no backend could compute the product, or the self-check
    /// rejected every backend's result.
    #[error("{0}")]
    Internal(String),
}

impl ChallengeError {
    /// An [`Invalid`](Self::Invalid) error.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The HTTP status for this error: 400 for the client's mistakes, 500 for ours.
    pub fn status(&self) -> u16 {
        match self {
            Self::Decode(_) | Self::UnknownType(_) | Self::Invalid { .. } => 400,
            Self::Internal(_) => 500,
        }
    }

    /// True when the client is at fault (status 400).
    pub fn is_client_error(&self) -> bool {
        self.status() == 400
    }
}
