//! Client errors, each knowing whether the operation may have taken effect.

use d_engine_proto::v1::ErrorCode;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The deadline passed after an attempt that may have been applied: the outcome is
    /// unknown (a read, by contrast, never changes anything).
    #[error("timed out; the outcome is unknown: {last}")]
    Timeout { last: String },
    /// No attempt could reach a leader before the deadline; nothing was applied.
    #[error("cluster unavailable: {last}")]
    Unavailable { last: String },
    /// The request exceeds a size limit (key, value or message); nothing was applied.
    #[error("request too large: {0}")]
    TooLarge(String),
    /// The request is malformed; nothing was applied.
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// The endpoint belongs to another cluster; nothing was applied.
    #[error("wrong cluster: {0}")]
    WrongCluster(String),
    /// Any other error the server reported.
    #[error("server error {code:?}: {message}")]
    Server {
        code: ErrorCode,
        message: String,
        /// Whether the operation may have been applied.
        maybe_applied: bool,
    },
    /// The client was configured wrongly (no endpoints, a malformed address).
    #[error("client configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// The error of the last attempt, knowing whether an earlier one may have been
    /// applied (a refusal now does not undo an earlier attempt's effect).
    pub(crate) fn after_attempts(self, earlier_maybe_applied: bool) -> ClientError {
        match self {
            ClientError::Server {
                code,
                message,
                maybe_applied,
            } => ClientError::Server {
                code,
                message,
                maybe_applied: maybe_applied || earlier_maybe_applied,
            },
            other => other,
        }
    }

    /// True if the operation may or may not have taken effect (record it as `info`).
    /// False means it definitely did not (record it as `fail`).
    pub fn outcome_unknown(&self) -> bool {
        match self {
            ClientError::Timeout { .. } => true,
            ClientError::Server { maybe_applied, .. } => *maybe_applied,
            _ => false,
        }
    }
}
