//! A session's routes: `POST /token` (a new session), `DELETE /token` (the end of one),
//! `GET /chat_history`, `GET /chat_export`, and `GET /health` (`/test`).

use ::http::{header, HeaderValue, StatusCode};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chat_core::store::Step;
use chat_wire::text::one_line;
use chat_wire::{ChatSession, ConversationId, ErrorBody, Health, MessageId, Token, TokenForm};

use super::extract::{ClientAddress, NameForm, Params, Session};
use crate::error::ApiError;
use crate::export::{self, ExportFormat};
use crate::state::AppState;

/// Creates a session and returns its token.
#[utoipa::path(
    post,
    path = "/token",
    tag = "session",
    request_body(
        content = TokenForm,
        description = "The name, as `application/x-www-form-urlencoded`, `multipart/form-data` or JSON",
        content_type = "application/x-www-form-urlencoded"
    ),
    responses(
        (status = 200, description = "The new session, with an empty history", body = ChatSession),
        (status = 400, description = "Blank, too long or unreadable name (`invalid_name`)", body = ErrorBody),
        (status = 429, description = "Too many sessions from this address (`rate_limited`)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the window ends"))),
        (status = 500, description = "A bug (`internal`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again")))
    )
)]
pub async fn create_token(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    NameForm(name): NameForm,
) -> Result<Json<ChatSession>, ApiError> {
    let name = validate_name(&name, state.config.max_name_chars)?;
    let limits = &state.config.rate_limits;
    if let Some(wait) = state.store.count_session_creation(&address, limits.sessions_per_ip, limits.window).await? {
        return Err(ApiError::rate_limited("new sessions from this address", wait));
    }
    let session = state.store.create_session(&name).await?;
    tracing::info!(name_chars = name.chars().count(), "session created");
    Ok(Json(session))
}

/// Ends a session for good ("End session"): its conversations and replies are deleted, and its
/// token opens nothing any more (its open WebSocket connections are answered `reconnect`, then
/// refused). Answers 204 for an unknown or expired token too: revoking twice is not an error.
#[utoipa::path(
    delete,
    path = "/token",
    tag = "session",
    params(("token" = String, Query, description = "The session token to revoke")),
    responses(
        (status = 204, description = "The session is gone (or never existed)"),
        (status = 400, description = "No token given (`session_expired`)", body = ErrorBody),
        (status = 500, description = "A bug (`internal`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again")))
    )
)]
pub async fn revoke_token(State(state): State<AppState>, params: Params) -> Result<StatusCode, ApiError> {
    let token = params.get("token").ok_or(ApiError::SessionExpired)?;
    if let Ok(token) = Token::parse(token) {
        let connections = state.store.revoke_session(&token).await?;
        tracing::info!(session = %token.log_id(), "session revoked");
        // Its other devices' sockets close now, not at their next frame.
        if let Some(endpoint) = &state.config.ws_management_endpoint {
            for connection in &connections {
                state.connections.close(endpoint, connection).await;
            }
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Returns a conversation of the session (the current one unless `conversation` names another),
/// oldest message first.
#[utoipa::path(
    get,
    path = "/chat_history",
    tag = "session",
    params(
        ("token" = String, Query, description = "The session token from `POST /token` (43 characters of base64url)"),
        ("conversation" = Option<String>, Query, description = "The conversation; absent: the session's current one (the most recently active)"),
        ("limit" = Option<u32>, Query, description = "At most this many messages (1 to `MAX_HISTORY_MESSAGES`)"),
        ("before" = Option<String>, Query, description = "Only messages older than this message id (the oldest id of the previous page)")
    ),
    responses(
        (status = 200, description = "The session and the newest of its messages that fit `HISTORY_PAGE_BYTES` (and `limit`), oldest first; `has_more` when older ones were left out", body = ChatSession),
        (status = 400, description = "Missing, unknown or expired token (`session_expired`), a bad `limit` (`invalid_parameter`) or an unknown `before` (`unknown_message`)", body = ErrorBody),
        (status = 404, description = "No such conversation in the session (`unknown_conversation`)", body = ErrorBody),
        (status = 429, description = "Too many reads of this session (`rate_limited`)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the window ends"))),
        (status = 500, description = "A bug (`internal`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again")))
    )
)]
pub async fn chat_history(
    State(state): State<AppState>,
    Session(token): Session,
    params: Params,
) -> Result<Json<ChatSession>, ApiError> {
    let max = state.config.max_history_messages;
    let limit = match params.get("limit") {
        None => None,
        Some(raw) => match raw.parse::<usize>() {
            Ok(limit) if (1..=max).contains(&limit) => Some(limit),
            _ => return Err(ApiError::InvalidParameter(format!("`limit` is a whole number from 1 to {max}"))),
        },
    };
    // A page may begin with a reply: its id (`<question>.reply`, or `<question>.reply~N` for an
    // older version of it) is a cursor too.
    let before = match params.get("before") {
        None => None,
        Some(raw) => Some(cursor(raw).ok_or(ApiError::UnknownMessage)?),
    };
    count_read(&state, &token).await?;
    let conversation = existing_conversation(&state, &params, &token).await?;
    let page_bytes = state.config.history_page_bytes;
    let page = state.store.history_page(&token, &conversation, before.as_deref(), limit, page_bytes).await?;
    let session = page.ok_or(ApiError::SessionExpired)?.map_err(|_| ApiError::UnknownMessage)?;
    Ok(Json(session))
}

/// A history cursor: a question's id, its reply's (`<id>.reply`), or an older version of that
/// reply's (`<id>.reply~N`); `None` for anything else.
fn cursor(raw: &str) -> Option<String> {
    let (id, version) = match raw.rsplit_once('~') {
        Some((id, n)) if !n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit()) => (id, Some(n)),
        Some(_) => return None,
        None => (raw, None),
    };
    let question = id.strip_suffix(".reply");
    let parsed = MessageId::parse(question.unwrap_or(id)).ok()?;
    match (question, version) {
        (None, None) => Some(parsed.to_string()),
        (Some(_), None) => Some(parsed.reply_id().to_string()),
        (Some(_), Some(n)) => Some(format!("{}~{n}", parsed.reply_id())),
        (None, Some(_)) => None,
    }
}

/// The conversation a read names (`?conversation=`), or the session's current one.
pub(super) async fn named_or_current(
    state: &AppState,
    params: &Params,
    token: &Token,
) -> Result<ConversationId, ApiError> {
    match params.get("conversation") {
        Some(id) => ConversationId::parse(id).map_err(|_| ApiError::UnknownConversation),
        None => Ok(state.store.current_conversation(token).await?),
    }
}

/// The conversation a read names, checked to be the session's (a deleted one is not).
async fn existing_conversation(state: &AppState, params: &Params, token: &Token) -> Result<ConversationId, ApiError> {
    let conversation = named_or_current(state, params, token).await?;
    if conversation.is_main() || state.store.conversation(token, &conversation).await?.is_some() {
        Ok(conversation)
    } else {
        Err(ApiError::UnknownConversation)
    }
}

/// Returns a whole conversation (the current one unless `conversation` names another) as a file
/// to keep: a Markdown transcript, or the history's JSON (every message with all its fields,
/// without the token).
#[utoipa::path(
    get,
    path = "/chat_export",
    tag = "session",
    params(
        ("token" = String, Query, description = "The session token from `POST /token` (43 characters of base64url)"),
        ("conversation" = Option<String>, Query, description = "The conversation; absent: the session's current one"),
        ("format" = Option<String>, Query, description = "`markdown` (the default) or `json`")
    ),
    responses(
        (status = 200, description = "The conversation, as an attachment (`Content-Disposition`) named after the session's start",
            content((String = "text/markdown"), (export::ExportedConversation = "application/json")),
            headers(("Content-Disposition" = String, description = "attachment; filename=\"chat-<date>.md\" (or .json)"))),
        (status = 400, description = "Missing, unknown or expired token (`session_expired`), or a format other than `markdown` or `json` (`invalid_parameter`)", body = ErrorBody),
        (status = 404, description = "No such conversation in the session (`unknown_conversation`)", body = ErrorBody),
        (status = 429, description = "Too many reads of this session (`rate_limited`, counted with `GET /chat_history`)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the window ends"))),
        (status = 500, description = "A bug (`internal`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again")))
    )
)]
pub async fn chat_export(
    State(state): State<AppState>,
    Session(token): Session,
    params: Params,
) -> Result<Response, ApiError> {
    let format = ExportFormat::parse(params.get("format"))
        .ok_or_else(|| ApiError::InvalidParameter("`format` is `markdown` or `json`".into()))?;
    count_read(&state, &token).await?;
    let conversation = existing_conversation(&state, &params, &token).await?;
    let session = state.store.history(&token, &conversation).await?.ok_or(ApiError::SessionExpired)?;
    let file_name = format.file_name(&session);
    let body = match format {
        ExportFormat::Markdown => export::markdown(&session),
        ExportFormat::Json => {
            let others = state.store.other_versions(&token, &conversation, &session.messages).await?;
            serde_json::to_string_pretty(&export::ExportedConversation::new(session, others))
                .expect("API types always serialize")
        }
    };
    let disposition = format!("attachment; filename=\"{file_name}\"");
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(format.content_type())),
        (header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).expect("an ASCII file name")),
    ];
    Ok((headers, body).into_response())
}

/// Counts a read of the session's history (a page or an export) against
/// `HISTORY_READS_PER_SESSION_PER_WINDOW`, before reading, and only for a live session: an
/// over-limit client costs one small script, and unknown tokens leave no counter behind.
pub(super) async fn count_read(state: &AppState, token: &Token) -> Result<(), ApiError> {
    let counted = state.store.count_history_read(token, state.config.rate_limits.history_reads_per_session).await?;
    within_limit(counted, "history reads of this session")
}

/// Counts one conversation created, changed or deleted against
/// `CHANGES_PER_SESSION_PER_WINDOW`.
pub(super) async fn count_change(state: &AppState, token: &Token) -> Result<(), ApiError> {
    let counted = state.store.count_change(token, state.config.rate_limits.changes_per_session).await?;
    within_limit(counted, "changes to this session's conversations")
}

/// What a per-session count says: go on, wait (`rate_limited`, naming what was counted), or the
/// session is gone (`session_expired`).
fn within_limit(counted: Step<Option<std::time::Duration>>, what: &'static str) -> Result<(), ApiError> {
    match counted {
        Ok(None) => Ok(()),
        Ok(Some(wait)) => Err(ApiError::rate_limited(what, wait)),
        Err(_) => Err(ApiError::SessionExpired),
    }
}

/// Reports whether the service and its storage answer.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, description = "Redis answers; `model` (local runs) says whether the embedded model is still loading", body = Health),
        (status = 503, description = "Redis is unreachable", body = Health)
    )
)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let redis_ok = state.store.ping().await.is_ok();
    let model = state.model_status.as_ref().map(|status| status());
    let status = match (redis_ok, model) {
        (false, _) | (_, Some("failed")) => "degraded",
        (true, Some("loading")) => "loading",
        _ => "ok",
    };
    let health = Health {
        status: status.into(),
        redis: if redis_ok { "ok" } else { "unreachable" }.into(),
        model: model.map(str::to_string),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    (if redis_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(health))
}

/// Trims a display name and checks it: not blank, at most `max_chars` characters, no control
/// characters (the rule of `chat_wire::text::one_line`).
pub fn validate_name(name: &str, max_chars: usize) -> Result<String, ApiError> {
    one_line(name, max_chars, "name").map_err(ApiError::InvalidName)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_a_question_or_a_version_of_its_reply() {
        assert_eq!(cursor("m1").as_deref(), Some("m1"));
        assert_eq!(cursor("m1.reply").as_deref(), Some("m1.reply"));
        assert_eq!(cursor("m1.reply~2").as_deref(), Some("m1.reply~2"));
        for bad in ["m1~2", "m1.reply~", "m1.reply~x", "has space", "m1.reply~12345"] {
            assert_eq!(cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_name("  Ada  ", 64).unwrap(), "Ada");
        assert!(matches!(validate_name("   ", 64), Err(ApiError::InvalidName(_))));
        assert!(validate_name(&"é".repeat(64), 64).is_ok());
        assert!(validate_name(&"é".repeat(65), 64).is_err());
        assert!(validate_name("a\u{7}b", 64).is_err());
    }
}
