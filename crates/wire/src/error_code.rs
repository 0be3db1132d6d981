//! The machine-readable error codes, shared by HTTP error bodies and WebSocket error frames.

use serde::{Deserialize, Serialize};

/// Stable machine-readable error codes, shared by HTTP error bodies and WebSocket error frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request or frame is not valid JSON (or not UTF-8 text).
    InvalidJson,
    /// The frame is JSON but not a frame of this protocol (missing or mistyped fields).
    InvalidFrame,
    /// The `action` is not one the server knows.
    UnknownAction,
    /// The message has no content.
    EmptyMessage,
    /// The message is longer than the configured limit.
    MessageTooLarge,
    /// The message holds control characters other than newline, tab and carriage return.
    InvalidContent,
    /// A message id is missing or malformed.
    InvalidId,
    /// A name is blank or too long.
    InvalidName,
    /// A query parameter is malformed (`limit` of `GET /chat_history`).
    InvalidParameter,
    /// The token is missing, unknown or expired.
    SessionExpired,
    /// The server no longer knows this WebSocket connection (its mapping expired or was lost):
    /// open a new one with the same token, which also says whether the session is still alive.
    Reconnect,
    /// The session already has `MAX_CONNECTIONS_PER_SESSION` WebSocket connections (the
    /// handshake is refused with 429 and this body).
    TooManyConnections,
    /// A reply is still being written for this session.
    ReplyInProgress,
    /// Too many requests; see `retry_after`.
    RateLimited,
    /// The session holds no message with this id.
    UnknownMessage,
    /// Only the session's last question can be answered again.
    NotLastQuestion,
    /// The session holds no conversation with this id (never created, or deleted).
    UnknownConversation,
    /// The session already holds `MAX_CONVERSATIONS_PER_SESSION` conversations.
    TooManyConversations,
    /// A title is blank, too long (`MAX_TITLE_CHARS`) or holds control characters.
    InvalidTitle,
    /// A place in the conversation already has `MAX_VERSIONS_PER_MESSAGE` versions.
    TooManyVersions,
    /// The model provider refused our credentials.
    ModelUnauthorized,
    /// The model provider is rate limiting us.
    ModelRateLimited,
    /// The model provider failed or is unreachable.
    ModelUnavailable,
    /// The model took too long.
    ModelTimeout,
    /// The model's reply stream broke off.
    ModelStreamInterrupted,
    /// The model rejected the request (for example a context that is too long).
    ModelRejected,
    /// The route does not exist.
    NotFound,
    /// The storage is unreachable; try again shortly.
    Unavailable,
    /// A bug on our side.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidFrame => "invalid_frame",
            ErrorCode::UnknownAction => "unknown_action",
            ErrorCode::EmptyMessage => "empty_message",
            ErrorCode::MessageTooLarge => "message_too_large",
            ErrorCode::InvalidContent => "invalid_content",
            ErrorCode::InvalidId => "invalid_id",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::InvalidParameter => "invalid_parameter",
            ErrorCode::SessionExpired => "session_expired",
            ErrorCode::Reconnect => "reconnect",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::ReplyInProgress => "reply_in_progress",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::UnknownMessage => "unknown_message",
            ErrorCode::NotLastQuestion => "not_last_question",
            ErrorCode::UnknownConversation => "unknown_conversation",
            ErrorCode::TooManyConversations => "too_many_conversations",
            ErrorCode::InvalidTitle => "invalid_title",
            ErrorCode::TooManyVersions => "too_many_versions",
            ErrorCode::ModelUnauthorized => "model_unauthorized",
            ErrorCode::ModelRateLimited => "model_rate_limited",
            ErrorCode::ModelUnavailable => "model_unavailable",
            ErrorCode::ModelTimeout => "model_timeout",
            ErrorCode::ModelStreamInterrupted => "model_stream_interrupted",
            ErrorCode::ModelRejected => "model_rejected",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn error_code_strings_match_serde() {
        for code in [
            ErrorCode::InvalidJson,
            ErrorCode::ReplyInProgress,
            ErrorCode::UnknownConversation,
            ErrorCode::TooManyConversations,
            ErrorCode::ModelStreamInterrupted,
            ErrorCode::Unavailable,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
        }
    }
}
