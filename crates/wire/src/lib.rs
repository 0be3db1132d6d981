//! Wire types of the chat API: what crosses the network between the browser, the HTTP and WebSocket
//! functions and the worker.
//!
//! This crate is the contract. It holds serde types only (no tokio, no Redis, no AWS), so the Leptos
//! frontend compiles it to wasm and every party agrees on one definition. `PROTOCOL.md` at the
//! repository root describes the same contract in prose for third-party clients.
//!
//! Layout:
//! * HTTP bodies: [`ChatSession`] (`POST /token`, `GET /chat_history`), [`ConversationList`] and
//!   [`Conversation`] (`/conversations`), [`ErrorBody`], [`Health`].
//! * Stored and returned messages: [`ChatMessage`], [`Source`], [`ReplyStatus`].
//! * WebSocket frames: [`ClientFrame`] (browser to server) and [`ServerFrame`] (server to browser),
//!   with machine-readable [`ErrorCode`]s.
//! * [`ReplyText`]: how a client rebuilds a reply from deltas and snapshots, shared by the web app
//!   and the tests so both follow the protocol the same way.
//! * [`ids`]: [`Token`], [`MessageId`], [`ReplyId`] and [`ConnectionId`], each checked once where
//!   it enters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod ids;
pub use ids::{is_valid_message_id, reply_id_for, ConnectionId, ConversationId, InvalidId, MessageId, ReplyId, Token};

/// The `action` value of a [`ClientFrame::SendMessage`] frame (API Gateway's route selection reads it).
pub const ACTION_SEND_MESSAGE: &str = "sendMessage";
/// The `action` value of a [`ClientFrame::Stop`] frame.
pub const ACTION_STOP: &str = "stop";
/// The `action` value of a [`ClientFrame::Ping`] frame.
pub const ACTION_PING: &str = "ping";
/// The `action` value of a [`ClientFrame::Resume`] frame.
pub const ACTION_RESUME: &str = "resume";
/// The `action` value of a [`ClientFrame::Regenerate`] frame.
pub const ACTION_REGENERATE: &str = "regenerate";
/// The actions the server understands, in the order the protocol document lists them.
pub const KNOWN_ACTIONS: &[&str] = &[ACTION_SEND_MESSAGE, ACTION_STOP, ACTION_PING, ACTION_RESUME, ACTION_REGENERATE];

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
    /// Older messages were left out of this page (`GET /chat_history` returns the newest that
    /// fit `HISTORY_PAGE_BYTES`, or `limit`): ask again with `before` set to the oldest id here.
    /// Absent when the page holds the whole history.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub has_more: bool,
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
    /// For a reply still `streaming` in `GET /chat_history`: `msg` holds every delta before this
    /// `seq`, so a client continues from here (see [`ReplyText`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_seq: Option<u64>,
    /// For a finished reply: the tokens it took, as the model's provider counted them (absent
    /// when the provider said nothing, as for a reply stopped or cut before its end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// When its place in the conversation has other versions (an edited question, a
    /// regenerated reply): every version's first message id, oldest first, this one's included.
    /// `POST /conversations/{id}/versions` shows another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<String>>,
}

/// What a reply cost: its prompt and completion tokens, and their price when prices are
/// configured for its model (`MODEL_PRICES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    /// Tokens of the context sent (system prompt, history, question).
    pub prompt_tokens: u64,
    /// Tokens of the reply.
    pub completion_tokens: u64,
    /// The price of both, in millionths of a US dollar (integers add up exactly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_micro_usd: Option<u64>,
}

/// Both together, as a conversation's total.
impl std::ops::Add for Usage {
    type Output = Usage;

    fn add(self, other: Usage) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens.saturating_add(other.prompt_tokens),
            completion_tokens: self.completion_tokens.saturating_add(other.completion_tokens),
            cost_micro_usd: match (self.cost_micro_usd, other.cost_micro_usd) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
            },
        }
    }
}

/// One conversation of a session, as the list (`GET /conversations`) and the
/// [`ServerFrame::Conversation`] frame give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conversation {
    /// The conversation's id ([`ConversationId`]): `main` for a session's first.
    pub id: String,
    /// Its title: the start of its first question until the model names it, or the person's.
    /// Empty for a conversation with no question yet.
    pub title: String,
    /// Who wrote the title.
    pub titled_by: TitleSource,
    /// When it was created (RFC 3339, UTC).
    pub created: String,
    /// When a question was last asked in it, or it was created or renamed (RFC 3339, UTC).
    pub last_activity: String,
    /// The model chosen for it (one of `GET /models`); absent: the deployment's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Its own instructions, sent to the model as the system prompt; absent: the deployment's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// The body of `GET /models`: the models a conversation may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelList {
    /// The model of a conversation that chose none.
    pub default: String,
    /// Every model a conversation may choose (`ALLOWED_MODELS`), the default first.
    pub models: Vec<String>,
}

/// Who wrote a conversation's title.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TitleSource {
    /// No title yet (no question).
    #[default]
    None,
    /// The start of the first question, until the model's title comes.
    Question,
    /// The model, asked after the first reply.
    Model,
    /// The person (a rename): never replaced by the model's.
    Person,
}

/// The body of `GET /conversations`: a session's conversations, most recently active first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationList {
    /// The conversation a client that names none acts on (`sendMessage` without `conversation`,
    /// `GET /chat_history` without `conversation`): the most recently active.
    pub current: String,
    /// Newest activity first.
    pub conversations: Vec<Conversation>,
}

/// The body of `GET /search`: where a text appears in the session's conversations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchResults {
    /// The text searched for, as given.
    pub query: String,
    /// The hits, the most recently active conversations first; a conversation's title before
    /// its messages, its newest messages first.
    pub hits: Vec<SearchHit>,
    /// More hits were left out (`MAX_SEARCH_RESULTS`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// One place a searched text appears.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchHit {
    /// The conversation's id.
    pub conversation: String,
    /// The conversation's title.
    pub title: String,
    /// The message holding the text; absent when the title holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The text around the hit (the title, for a title's hit).
    pub snippet: String,
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
        /// The conversation ([`ConversationId`]); absent: the session's current one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
        /// An earlier question of the person this one edits: it takes that question's place as a
        /// new version, and the old question with everything after it is kept as the other.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        edits: Option<String>,
    },
    /// Stops the reply to `reply_to` being written; what was sent so far is kept, marked `stopped`.
    #[serde(rename = "stop")]
    Stop {
        /// The user message whose reply should stop.
        reply_to: String,
        /// The conversation ([`ConversationId`]); absent: the session's current one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
    },
    /// Keeps an idle connection open (API Gateway closes connections idle for 10 minutes).
    #[serde(rename = "ping")]
    Ping,
    /// Asks for the reply to `reply_to` as it stands (a [`ServerFrame::Snapshot`]), after a reload
    /// or a reconnect; the deltas that follow arrive on this connection as on any other.
    #[serde(rename = "resume")]
    Resume {
        /// The user message whose reply the client wants.
        reply_to: String,
        /// The conversation ([`ConversationId`]); absent: the session's current one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
    },
    /// Writes the reply to `reply_to` again (after a model failure, a stop, or an answer the person
    /// did not like). Only the last question of the session can be regenerated; its old reply is
    /// replaced.
    #[serde(rename = "regenerate")]
    Regenerate {
        /// The user message to answer again.
        reply_to: String,
        /// The conversation ([`ConversationId`]); absent: the session's current one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
    },
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
        /// The conversation it belongs to (absent only from servers that predate conversations).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
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
        /// The conversation it belongs to (absent only from servers that predate conversations).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
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
        /// The seq after the reply's last delta: a client whose text stops short of it missed
        /// deltas (or the reply was sent again after a crash) and asks for a snapshot.
        next_seq: u64,
        /// The tokens the reply took (and their price), as stored with it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<Usage>,
        /// The conversation it belongs to (absent only from servers that predate conversations).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
    },
    /// A reply as it stands: `text` is every delta before `next_seq`. Sent in answer to
    /// [`ClientFrame::Resume`], and by a worker that restarts a reply another worker left
    /// unfinished (then `text` is empty: what was shown before is void).
    Snapshot {
        /// The reply's id.
        id: String,
        /// The user message it answers.
        reply_to: String,
        /// The seq of the next delta.
        next_seq: u64,
        /// The reply's text so far.
        text: String,
        /// `streaming`, or how the reply ended.
        status: ReplyStatus,
        /// The conversation it belongs to (absent only from servers that predate conversations).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
    },
    /// Something went wrong; nothing the person sent is lost.
    Error {
        /// The user message concerned, when there is one.
        reply_to: Option<String>,
        /// A stable machine-readable code.
        code: ErrorCode,
        /// A sentence a person can read.
        message: String,
        /// Seconds to wait before trying again (rate limits, outages).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
        /// The conversation concerned, when there is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
    },
    /// The answer to a [`ClientFrame::Ping`].
    Pong,
    /// A conversation of the session was created, renamed, titled or asked something: every
    /// connection of the session gets it, so every open tab's list stays current.
    Conversation {
        /// The conversation as it now stands.
        conversation: Conversation,
    },
    /// A conversation of the session was deleted.
    ConversationDeleted {
        /// Its id.
        id: String,
    },
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

/// A reply's text as a client rebuilds it from [`ServerFrame::Delta`]s and
/// [`ServerFrame::Snapshot`]s, which may arrive in any order and more than once (a reconnecting
/// client can get a delta both live and inside a snapshot). Each delta counts once; a snapshot
/// newer than what the client has replaces it, and deltas received after it still count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyText {
    text: String,
    next_seq: u64,
    ahead: BTreeMap<u64, String>,
}

impl ReplyText {
    /// A reply as `GET /chat_history` or a snapshot gave it.
    pub fn from_snapshot(next_seq: u64, text: String) -> Self {
        ReplyText { text, next_seq, ahead: BTreeMap::new() }
    }

    /// Adds a delta; one already counted is ignored.
    pub fn delta(&mut self, seq: u64, text: &str) {
        if seq >= self.next_seq {
            self.ahead.entry(seq).or_insert_with(|| text.to_string());
            self.settle();
        }
    }

    /// Takes a snapshot unless the text already covers more of the reply.
    pub fn snapshot(&mut self, next_seq: u64, text: &str) {
        if next_seq >= self.next_seq {
            self.text = text.to_string();
            self.next_seq = next_seq;
            self.ahead = self.ahead.split_off(&next_seq);
            self.settle();
        }
    }

    fn settle(&mut self) {
        while let Some(piece) = self.ahead.remove(&self.next_seq) {
            self.text.push_str(&piece);
            self.next_seq += 1;
        }
    }

    /// The text, up to the first delta not yet received.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The seq of the first delta not yet received.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// True when later deltas arrived but one before them did not: a [`ClientFrame::Resume`]
    /// fills the hole.
    pub fn has_gap(&self) -> bool {
        !self.ahead.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usages_add_up_and_a_cost_counts_once_known() {
        let priced = Usage { prompt_tokens: 10, completion_tokens: 5, cost_micro_usd: Some(7) };
        let unpriced = Usage { prompt_tokens: 1, completion_tokens: 2, cost_micro_usd: None };
        assert_eq!(priced + unpriced, Usage { prompt_tokens: 11, completion_tokens: 7, cost_micro_usd: Some(7) });
        assert_eq!((unpriced + unpriced).cost_micro_usd, None);
    }
    use serde_json::json;

    #[test]
    fn client_frames_use_the_action_field() {
        let frame: ClientFrame =
            serde_json::from_value(json!({"action": "sendMessage", "id": "m1", "content": "hi"})).unwrap();
        assert_eq!(
            frame,
            ClientFrame::SendMessage { id: "m1".into(), content: "hi".into(), conversation: None, edits: None }
        );
        let frame: ClientFrame =
            serde_json::from_value(json!({"action": "stop", "reply_to": "m1", "conversation": "c1"})).unwrap();
        assert_eq!(frame, ClientFrame::Stop { reply_to: "m1".into(), conversation: Some("c1".into()) });
        assert_eq!(serde_json::to_value(ClientFrame::Ping).unwrap(), json!({"action": "ping"}));
    }

    #[test]
    fn server_frames_match_the_protocol_document() {
        let delta = ServerFrame::Delta {
            id: "m1.reply".into(),
            reply_to: "m1".into(),
            seq: 0,
            text: "Hel".into(),
            conversation: Some("main".into()),
        };
        assert_eq!(
            serde_json::to_value(&delta).unwrap(),
            json!({"type": "delta", "id": "m1.reply", "reply_to": "m1", "seq": 0, "text": "Hel", "conversation": "main"})
        );
        let deleted = ServerFrame::ConversationDeleted { id: "c1".into() };
        assert_eq!(serde_json::to_value(&deleted).unwrap(), json!({"type": "conversation_deleted", "id": "c1"}));
        let error = ServerFrame::Error {
            reply_to: None,
            code: ErrorCode::UnknownAction,
            message: "no".into(),
            retry_after: None,
            conversation: None,
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
            ErrorCode::UnknownConversation,
            ErrorCode::TooManyConversations,
            ErrorCode::ModelStreamInterrupted,
            ErrorCode::Unavailable,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
        }
    }

    #[test]
    fn reply_text_counts_each_delta_once_in_any_order() {
        let mut reply = ReplyText::default();
        reply.delta(0, "a");
        reply.delta(2, "c");
        assert_eq!((reply.text(), reply.has_gap()), ("a", true));
        // A snapshot answering a resume covers the hole; the delta that came first still counts.
        reply.snapshot(2, "ab");
        assert_eq!((reply.text(), reply.next_seq(), reply.has_gap()), ("abc", 3, false));
        // The same delta again, and an older snapshot, change nothing.
        reply.delta(1, "b");
        reply.snapshot(1, "a");
        assert_eq!(reply.text(), "abc");
        // A worker that restarts the reply voids what was shown.
        reply.snapshot(4, "");
        reply.delta(4, "x");
        assert_eq!(reply.text(), "x");
    }

    #[test]
    fn stored_messages_without_status_read_as_done() {
        let m: ChatMessage =
            serde_json::from_value(json!({"id": "1", "msg": "hi", "timestamp": "t", "source": "user"})).unwrap();
        assert_eq!(m.status, ReplyStatus::Done);
    }
}
