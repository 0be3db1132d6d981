//! Why a model call gave no (complete) reply, in the person's words and the log's.

use chat_wire::ErrorCode;

/// Why the model gave no (complete) reply. Each variant becomes an error frame the person reads.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    /// 401/403: the API key is wrong or missing.
    #[error("the model provider refused our credentials ({0})")]
    Unauthorized(String),
    /// 429 after every retry.
    #[error("the model provider is rate limiting requests; try again shortly")]
    RateLimited {
        /// The provider's `Retry-After`, in seconds.
        retry_after: Option<u64>,
    },
    /// 5xx or an unreachable server, after every retry.
    #[error("the model is unavailable ({0})")]
    Unavailable(String),
    /// No response, or silence in the middle of the stream, past the configured timeout.
    #[error("the model did not answer in time")]
    Timeout,
    /// The stream broke off before the reply was complete.
    #[error("the model's reply broke off ({0})")]
    StreamInterrupted(String),
    /// Another 4xx: the provider rejected the request (for example: the context is too long).
    #[error("the model rejected the request: {0}")]
    Rejected(String),
    /// The reply took longer than `MAX_REPLY_SECONDS`; what was written is kept.
    #[error("the reply took longer than {0} s and was cut there")]
    ReplyTooLong(u64),
}

impl ModelError {
    /// What the person reads: clear, and without the provider's own words (they can name internal
    /// details, accounts or limits, and belong in the log, which gets the whole error).
    pub fn public_message(&self) -> String {
        match self {
            ModelError::Unauthorized(_) => "the model provider refused this service's credentials".into(),
            ModelError::Unavailable(_) => "the model is unavailable; try again shortly".into(),
            ModelError::StreamInterrupted(_) => "the model's reply broke off".into(),
            ModelError::Rejected(_) => {
                "the model rejected the request (for example, the conversation is too long for it)".into()
            }
            ModelError::RateLimited { .. } | ModelError::Timeout | ModelError::ReplyTooLong(_) => self.to_string(),
        }
    }

    /// The error code of the frame the person receives.
    pub fn code(&self) -> ErrorCode {
        match self {
            ModelError::Unauthorized(_) => ErrorCode::ModelUnauthorized,
            ModelError::RateLimited { .. } => ErrorCode::ModelRateLimited,
            ModelError::Unavailable(_) => ErrorCode::ModelUnavailable,
            ModelError::Timeout | ModelError::ReplyTooLong(_) => ErrorCode::ModelTimeout,
            ModelError::StreamInterrupted(_) => ErrorCode::ModelStreamInterrupted,
            ModelError::Rejected(_) => ErrorCode::ModelRejected,
        }
    }

    pub(super) fn is_retryable(&self) -> bool {
        matches!(
            self,
            ModelError::RateLimited { .. }
                | ModelError::Unavailable(_)
                | ModelError::Timeout
                | ModelError::StreamInterrupted(_)
        )
    }
}
