//! Wire types of the chat API: what crosses the network between the browser, the HTTP and WebSocket
//! functions and the worker.
//!
//! This crate is the contract. It holds serde types only (no tokio, no Redis, no AWS), so the Leptos
//! frontend compiles it to wasm and every party agrees on one definition. `PROTOCOL.md` at the
//! repository root describes the same contract in prose for third-party clients.
//!
//! Layout:
//! * HTTP bodies: [`ChatSession`] (`POST /token`, `GET /chat_history`), [`ErrorBody`], [`Health`].
//! * Stored and returned messages: [`ChatMessage`], [`Source`], [`ReplyStatus`].
//! * WebSocket frames: [`ClientFrame`] (browser to server) and [`ServerFrame`] (server to browser),
//!   with machine-readable [`ErrorCode`]s.

use serde::{Deserialize, Serialize};

/// The `action` value of a [`ClientFrame::SendMessage`] frame (API Gateway's route selection reads it).
pub const ACTION_SEND_MESSAGE: &str = "sendMessage";
/// The `action` value of a [`ClientFrame::Stop`] frame.
pub const ACTION_STOP: &str = "stop";
/// The `action` value of a [`ClientFrame::Ping`] frame.
pub const ACTION_PING: &str = "ping";
/// The actions the server understands, in the order the protocol document lists them.
pub const KNOWN_ACTIONS: &[&str] = &[ACTION_SEND_MESSAGE, ACTION_STOP, ACTION_PING];

/// A chat session as `POST /token` creates it and `GET /chat_history` returns it.
///
/// The seed product's clients read exactly these four fields, so they stay as they were.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatSession {
    /// Bearer secret of the session: whoever holds it reads the history and chats.
    pub token: String,
    /// The display name the person gave.
    pub name: String,
    /// When the session was created (RFC 3339, UTC).
    pub session_start: String,
    /// The conversation, oldest first.
    pub messages: Vec<ChatMessage>,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The person.
    User,
    /// The model.
    Assistant,
}

/// Where a message stands: user messages are always `done`; a reply moves from `streaming` to one
/// of the three final states.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ReplyStatus {
    /// The model is still writing this reply.
    Streaming,
    /// Complete.
    #[default]
    Done,
    /// The person stopped the reply; `msg` holds what had been sent.
    Stopped,
    /// The model failed; `msg` holds what had been sent before the failure.
    Error,
}

impl ReplyStatus {
    /// True once the reply can no longer change.
    pub fn is_final(self) -> bool {
        !matches!(self, ReplyStatus::Streaming)
    }
}

/// One message of a conversation, as stored and as returned by `GET /chat_history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatMessage {
    /// Unique within the session: the client's id for user messages, derived from it for replies.
    pub id: String,
    /// The text (markdown for replies).
    pub msg: String,
    /// When the message was stored (RFC 3339, UTC).
    pub timestamp: String,
    /// Who wrote it.
    pub source: Source,
    /// Where the message stands; always `done` for user messages.
    #[serde(default)]
    pub status: ReplyStatus,
    /// For a reply: the id of the user message it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// For a reply: the model that wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// The body of every HTTP error, shaped like FastAPI's so the seed's clients keep working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// A sentence a person can read.
    pub detail: String,
    /// A stable machine-readable code.
    pub code: ErrorCode,
    /// Seconds to wait before trying again, when the error is a rate limit or an outage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// The body of `GET /health` (and `/test`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok` when every dependency answers, `degraded` otherwise.
    pub status: String,
    /// `ok` or `unreachable`.
    pub redis: String,
    /// For a model served by this process (the embedded model): `loading`, `ready` or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The service's version.
    pub version: String,
}

/// A frame the browser sends over the WebSocket. The `action` field selects the API Gateway route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action")]
pub enum ClientFrame {
    /// Ask the model something.
    #[serde(rename = "sendMessage")]
    SendMessage {
        /// The client's id for this message (1 to 64 of `A-Z a-z 0-9 - _ .`); resending the same id
        /// is harmless, which makes retries after a dropped connection safe.
        id: String,
        /// The question.
        content: String,
    },
    /// Stops the reply to `reply_to` being written; what was sent so far is kept, marked `stopped`.
    #[serde(rename = "stop")]
    Stop {
        /// The user message whose reply should stop.
        reply_to: String,
    },
    /// Keeps an idle connection open (API Gateway closes connections idle for 10 minutes).
    #[serde(rename = "ping")]
    Ping,
}

/// A frame the server sends over the WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The user message `id` is stored; a reply follows.
    Ack {
        /// The client's message id.
        id: String,
        /// The id the reply will carry.
        reply_id: String,
    },
    /// A piece of a reply. Concatenating a reply's deltas in `seq` order gives the stored reply.
    Delta {
        /// The reply's id.
        id: String,
        /// The user message it answers.
        reply_to: String,
        /// Position of this piece in the reply, from 0.
        seq: u64,
        /// The text of this piece.
        text: String,
    },
    /// The reply is complete (or ended early: see `status`).
    Done {
        /// The reply's id.
        id: String,
        /// The user message it answers.
        reply_to: String,
        /// How it ended.
        status: ReplyStatus,
        /// The model that wrote it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
    },
    /// Something went wrong; nothing the person sent is lost.
    Error {
        /// The user message concerned, when there is one.
        reply_to: Option<String>,
        /// A stable machine-readable code.
        code: ErrorCode,
        /// A sentence a person can read.
        message: String,
    },
    /// The answer to a [`ClientFrame::Ping`].
    Pong,
}

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
    /// A message id is missing or malformed.
    InvalidId,
    /// A name is blank or too long.
    InvalidName,
    /// The token is missing, unknown or expired.
    SessionExpired,
    /// A reply is still being written for this session.
    ReplyInProgress,
    /// Too many requests; see `retry_after`.
    RateLimited,
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
            ErrorCode::InvalidId => "invalid_id",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::SessionExpired => "session_expired",
            ErrorCode::ReplyInProgress => "reply_in_progress",
            ErrorCode::RateLimited => "rate_limited",
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

/// The id a reply carries, derived from the user message it answers so that a retried request
/// can never store a second reply.
pub fn reply_id_for(user_message_id: &str) -> String {
    format!("{user_message_id}.reply")
}

/// Whether a client-chosen message id is acceptable: 1 to 64 characters of `A-Z a-z 0-9 - _ .`.
pub fn is_valid_message_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_frames_use_the_action_field() {
        let frame: ClientFrame =
            serde_json::from_value(json!({"action": "sendMessage", "id": "m1", "content": "hi"}))
                .unwrap();
        assert_eq!(
            frame,
            ClientFrame::SendMessage { id: "m1".into(), content: "hi".into() }
        );
        assert_eq!(
            serde_json::to_value(ClientFrame::Ping).unwrap(),
            json!({"action": "ping"})
        );
    }

    #[test]
    fn server_frames_match_the_protocol_document() {
        let delta = ServerFrame::Delta {
            id: "m1.reply".into(),
            reply_to: "m1".into(),
            seq: 0,
            text: "Hel".into(),
        };
        assert_eq!(
            serde_json::to_value(&delta).unwrap(),
            json!({"type": "delta", "id": "m1.reply", "reply_to": "m1", "seq": 0, "text": "Hel"})
        );
        let error = ServerFrame::Error {
            reply_to: None,
            code: ErrorCode::UnknownAction,
            message: "no".into(),
        };
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            json!({"type": "error", "reply_to": null, "code": "unknown_action", "message": "no"})
        );
    }

    #[test]
    fn error_code_strings_match_serde() {
        for code in [
            ErrorCode::InvalidJson,
            ErrorCode::ReplyInProgress,
            ErrorCode::ModelStreamInterrupted,
            ErrorCode::Unavailable,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
        }
    }

    #[test]
    fn message_ids_are_restricted() {
        assert!(is_valid_message_id("c-1700000000000-ab_x.2"));
        assert!(!is_valid_message_id(""));
        assert!(!is_valid_message_id("has space"));
        assert!(!is_valid_message_id(&"x".repeat(65)));
        assert!(!is_valid_message_id("é"));
    }

    #[test]
    fn stored_messages_without_status_read_as_done() {
        let m: ChatMessage = serde_json::from_value(
            json!({"id": "1", "msg": "hi", "timestamp": "t", "source": "user"}),
        )
        .unwrap();
        assert_eq!(m.status, ReplyStatus::Done);
    }
}
