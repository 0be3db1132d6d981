//! The one error type of the functions, and its one mapping to HTTP responses and WebSocket frames.

use axum::response::{IntoResponse, Response};
use chat_core::{Config, Refusal, StoreError};
use chat_wire::{ErrorBody, ErrorCode, ServerFrame};
use http::{header, HeaderValue, StatusCode};

/// The detail the seed product returned for a missing, unknown or expired token; clients match it.
pub const SESSION_EXPIRED_DETAIL: &str = "Session expired or does not exist";

/// Everything a request can fail with. Each variant knows its status code, its machine code and a
/// sentence for the person.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The display name is blank, too long or holds control characters.
    #[error("{0}")]
    InvalidName(String),
    /// The token is missing, unknown or expired.
    #[error("{SESSION_EXPIRED_DETAIL}")]
    SessionExpired,
    /// The body or frame is not JSON text.
    #[error("{0}")]
    InvalidJson(String),
    /// The frame is JSON but not a frame of this protocol.
    #[error("{0}")]
    InvalidFrame(String),
    /// The frame names an action the server does not know.
    #[error("unknown action {0:?}; known actions: {known}", known = chat_wire::KNOWN_ACTIONS.join(", "))]
    UnknownAction(String),
    /// A query parameter is malformed.
    #[error("{0}")]
    InvalidParameter(String),
    /// The message is blank.
    #[error("the message is empty")]
    EmptyMessage,
    /// The message holds a control character other than newline, tab or carriage return (NUL
    /// included): stored JSON would escape each six-fold, and no keyboard types them.
    #[error("the message holds control characters; only newline, tab and carriage return are allowed")]
    InvalidContent,
    /// The message is longer than `MAX_MESSAGE_BYTES`.
    #[error("the message is {size} bytes; the limit is {limit} bytes")]
    MessageTooLarge {
        /// The message's size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The client's message id is missing or malformed.
    #[error("message ids are 1 to 64 characters of A-Z a-z 0-9 - _ . and do not end in .reply")]
    InvalidId,
    /// A reply is still being written for this session.
    #[error("a reply is still being written; wait for it to finish")]
    ReplyInProgress,
    /// The frame came on a connection the server no longer knows.
    #[error("this connection is no longer known; open a new one with your token")]
    Reconnect,
    /// The session holds `MAX_CONNECTIONS_PER_SESSION` connections already.
    #[error("this session already has {limit} open connections; close one first")]
    TooManyConnections {
        /// The configured limit.
        limit: usize,
    },
    /// Over a rate limit (`MESSAGES_PER_SESSION_PER_WINDOW`, `SESSIONS_PER_IP_PER_WINDOW`).
    #[error("too many {what}; try again in {retry_after} s")]
    RateLimited {
        /// What was counted.
        what: &'static str,
        /// Seconds until the window ends.
        retry_after: u64,
    },
    /// `resume` or `regenerate` named a message the session does not hold.
    #[error("this session holds no message with that id")]
    UnknownMessage,
    /// `regenerate` named a question other than the last.
    #[error("only the last question can be answered again")]
    NotLastQuestion,
    /// The session holds no conversation with that id (never created, or deleted).
    #[error("this session holds no conversation with that id")]
    UnknownConversation,
    /// The session holds `MAX_CONVERSATIONS_PER_SESSION` conversations already.
    #[error("this session already holds {limit} conversations; delete one first")]
    TooManyConversations {
        /// The configured limit.
        limit: usize,
    },
    /// A place in the conversation has `MAX_VERSIONS_PER_MESSAGE` versions already.
    #[error("this message already has {limit} versions")]
    TooManyVersions {
        /// The configured limit.
        limit: usize,
    },
    /// A conversation title is blank, too long or holds control characters.
    #[error("{0}")]
    InvalidTitle(String),
    /// No such route.
    #[error("not found")]
    NotFound,
    /// The route exists but not with this method (the router's `Allow` header lists those it
    /// serves).
    #[error("method not allowed; the Allow header lists the methods this route answers")]
    MethodNotAllowed,
    /// Redis is unreachable, or its replicas did not confirm a write in time (`REDIS_WAIT_REPLICAS`).
    #[error("the service is temporarily unavailable; try again in a few seconds")]
    Unavailable(#[source] StoreError),
    /// A bug on our side or the gateway's: data or an event this code cannot have produced. The
    /// detail goes to the log, not to the client.
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Redis(_) | StoreError::NotReplicated { .. } => ApiError::Unavailable(error),
            StoreError::Corrupt(_) | StoreError::CaFile { .. } | StoreError::Iam(_) => {
                ApiError::Internal(error.to_string())
            }
        }
    }
}

impl ApiError {
    /// The client's error for a refused step of the store (every route and frame maps them here).
    pub fn from_refusal(refusal: Refusal, config: &Config) -> ApiError {
        match refusal {
            Refusal::SessionExpired => ApiError::SessionExpired,
            Refusal::ReplyInProgress => ApiError::ReplyInProgress,
            Refusal::RateLimited(wait) => ApiError::rate_limited("messages in this session", wait),
            Refusal::UnknownMessage => ApiError::UnknownMessage,
            Refusal::NotLastQuestion => ApiError::NotLastQuestion,
            Refusal::ConversationDeleted => ApiError::UnknownConversation,
            Refusal::TooManyVersions => ApiError::TooManyVersions { limit: config.max_versions },
            Refusal::TooManyConversations => {
                ApiError::TooManyConversations { limit: config.max_conversations_per_session }
            }
            // Only the worker's steps answer these.
            other => ApiError::Internal(format!("a step was refused with {other:?}")),
        }
    }

    /// The error for a rate limit that says to wait `wait` (rounded up to whole seconds).
    pub fn rate_limited(what: &'static str, wait: std::time::Duration) -> Self {
        ApiError::RateLimited { what, retry_after: wait.as_millis().div_ceil(1000).max(1) as u64 }
    }

    /// The machine-readable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::InvalidName(_) => ErrorCode::InvalidName,
            ApiError::SessionExpired => ErrorCode::SessionExpired,
            ApiError::InvalidJson(_) => ErrorCode::InvalidJson,
            ApiError::InvalidFrame(_) => ErrorCode::InvalidFrame,
            ApiError::UnknownAction(_) => ErrorCode::UnknownAction,
            ApiError::EmptyMessage => ErrorCode::EmptyMessage,
            ApiError::InvalidParameter(_) => ErrorCode::InvalidParameter,
            ApiError::InvalidContent => ErrorCode::InvalidContent,
            ApiError::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
            ApiError::InvalidId => ErrorCode::InvalidId,
            ApiError::ReplyInProgress => ErrorCode::ReplyInProgress,
            ApiError::Reconnect => ErrorCode::Reconnect,
            ApiError::TooManyConnections { .. } => ErrorCode::TooManyConnections,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::UnknownMessage => ErrorCode::UnknownMessage,
            ApiError::NotLastQuestion => ErrorCode::NotLastQuestion,
            ApiError::UnknownConversation => ErrorCode::UnknownConversation,
            ApiError::TooManyConversations { .. } => ErrorCode::TooManyConversations,
            ApiError::InvalidTitle(_) => ErrorCode::InvalidTitle,
            ApiError::TooManyVersions { .. } => ErrorCode::TooManyVersions,
            ApiError::NotFound => ErrorCode::NotFound,
            ApiError::MethodNotAllowed => ErrorCode::NotFound,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The HTTP status. Client mistakes are 400 as in the seed product; an outage is 503.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound | ApiError::UnknownConversation => StatusCode::NOT_FOUND,
            ApiError::TooManyConversations { .. } | ApiError::TooManyVersions { .. } => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::ReplyInProgress => StatusCode::CONFLICT,
            ApiError::RateLimited { .. } | ApiError::TooManyConnections { .. } => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// Seconds a client should wait before retrying, when waiting helps.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Unavailable(_) => Some(2),
            ApiError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The JSON body of the HTTP error response.
    pub fn body(&self) -> ErrorBody {
        ErrorBody { detail: self.to_string(), code: self.code(), retry_after: self.retry_after() }
    }

    /// The WebSocket error frame, naming the message and conversation concerned when known.
    pub fn frame(&self, reply_to: Option<String>, conversation: Option<String>) -> ServerFrame {
        ServerFrame::Error {
            reply_to,
            code: self.code(),
            message: self.to_string(),
            retry_after: self.retry_after(),
            conversation,
        }
    }

    /// Logs what the operator should see: outages as errors, client mistakes at debug level.
    pub fn log(&self) {
        match self {
            ApiError::Unavailable(source) => tracing::error!(error = %source, "redis unavailable"),
            ApiError::Internal(detail) => tracing::error!(detail, "internal error"),
            other => tracing::debug!(code = other.code().as_str(), "request refused"),
        }
    }
}

/// The JSON answer of an error (with `Retry-After` when waiting helps), logged as
/// [`ApiError::log`] says.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
