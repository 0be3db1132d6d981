//! The HTTP API's bodies: what the routes answer (a session and its history, conversations, search
//! results, errors, health) and what they take (the name of `POST /token`, a new conversation,
//! changes to one, a version to show), and `config.json`, what the web app reads at start.

use serde::{Deserialize, Serialize};

use crate::{ChatMessage, ErrorCode};

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

/// One conversation of a session, as the list (`GET /conversations`) and the
/// [`crate::ServerFrame::Conversation`] frame give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conversation {
    /// The conversation's id ([`crate::ConversationId`]): `main` for a session's first.
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

/// The form (or JSON) body of `POST /token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenForm {
    /// The person's display name: 1 to `MAX_NAME_CHARS` (64) characters, no control characters.
    pub name: String,
}

/// The body of `POST /conversations` (optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewConversation {
    /// The id to give it (1 to 32 of `A-Z a-z 0-9 - _`), so a retried request creates it once;
    /// the server picks one without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The body of `PATCH /conversations/{id}`: what to change, one field or more.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationChanges {
    /// A new title: 1 to `MAX_TITLE_CHARS` (80) characters, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The model to answer it with: one of `GET /models`, or `""` for the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Its own instructions (the system prompt): up to `MAX_INSTRUCTIONS_CHARS` (4000)
    /// characters, or `""` for the deployment's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// The body of `POST /conversations/{id}/versions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShowVersion {
    /// The first message of the version to show: one of the ids a message's `versions` lists.
    pub message_id: String,
}

/// `config.json`, beside the web app's `index.html`: where its servers are and the limits it
/// shows, read at start so one build serves any deployment (the local runner writes it for its
/// own ports; the template's `SiteConfigJson` output for a deployment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteConfig {
    /// Base URL of the HTTP API.
    pub api_url: String,
    /// URL of the WebSocket API (the token is added as `?token=`).
    pub ws_url: String,
    /// The server's message size limit (`MAX_MESSAGE_BYTES`), shown near the cap.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// The longest name (`MAX_NAME_CHARS`), checked as the person types.
    #[serde(default = "default_max_name_chars")]
    pub max_name_chars: usize,
}

fn default_max_message_bytes() -> usize {
    8192
}

fn default_max_name_chars() -> usize {
    64
}
