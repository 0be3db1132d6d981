//! The conversation routes: `GET /conversations` (the list), `POST /conversations` (a new one),
//! `PATCH /conversations/{id}` (rename), `DELETE /conversations/{id}` and `GET /search`.
//!
//! Like the other routes, each takes the session token as `?token=`.

use chat_core::store::Setting;
use chat_core::token::new_conversation_id;
use chat_core::Refusal;
use chat_wire::{
    Conversation, ConversationId, ConversationList, ErrorBody, ModelList, SearchResults, ServerFrame, Token,
};
use http::StatusCode;
use lambda_http::{Body, Request, RequestExt, RequestPayloadExt, Response};
use serde::Deserialize;

use crate::error::ApiError;
use crate::http::{count_read, json, no_store, one_line, session_token};
use crate::state::AppState;

/// The body of `POST /conversations` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct NewConversation {
    /// The id to give it (1 to 32 of `A-Z a-z 0-9 - _`), so a retried request creates it once;
    /// the server picks one without it.
    #[serde(default)]
    pub id: Option<String>,
}

/// The body of `PATCH /conversations/{id}`: what to change, one field or more.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct ConversationChanges {
    /// A new title: 1 to `MAX_TITLE_CHARS` (80) characters, no control characters.
    #[serde(default)]
    pub title: Option<String>,
    /// The model to answer it with: one of `GET /models`, or `""` for the default.
    #[serde(default)]
    pub model: Option<String>,
    /// Its own instructions (the system prompt): up to `MAX_INSTRUCTIONS_CHARS` (4000)
    /// characters, or `""` for the deployment's.
    #[serde(default)]
    pub instructions: Option<String>,
}

/// Lists the session's conversations, most recently active first, with the current one's id.
#[utoipa::path(
    get,
    path = "/conversations",
    tag = "conversations",
    params(("token" = String, Query, description = "The session token from `POST /token`")),
    responses(
        (status = 200, description = "The conversations, newest activity first", body = ConversationList),
        (status = 400, description = "Missing, unknown or expired token (`session_expired`)", body = ErrorBody),
        (status = 429, description = "Too many reads of this session (`rate_limited`, counted with `GET /chat_history`)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the window ends"))),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody)
    )
)]
pub async fn list(state: &AppState, request: &Request) -> Result<Response<Body>, ApiError> {
    let token = session_token(request)?;
    count_read(state, &token).await?;
    let list = state.store.conversations(&token).await?.ok_or(ApiError::SessionExpired)?;
    Ok(no_store(json(StatusCode::OK, &list)))
}

/// Starts a conversation in the session; it becomes the current one.
#[utoipa::path(
    post,
    path = "/conversations",
    tag = "conversations",
    params(("token" = String, Query, description = "The session token from `POST /token`")),
    request_body(content = Option<NewConversation>, description = "Optional: the id to give it", content_type = "application/json"),
    responses(
        (status = 201, description = "The new conversation (or the one with that id, for a retry)", body = Conversation),
        (status = 400, description = "Missing, unknown or expired token (`session_expired`), or a malformed id (`invalid_parameter`)", body = ErrorBody),
        (status = 409, description = "The session holds `MAX_CONVERSATIONS_PER_SESSION` already (`too_many_conversations`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody)
    )
)]
pub async fn create(state: &AppState, request: &Request) -> Result<Response<Body>, ApiError> {
    let token = session_token(request)?;
    let body: Option<NewConversation> = if request.body().is_empty() {
        None
    } else {
        request.payload().map_err(|e| ApiError::InvalidParameter(format!("could not read the body: {e}")))?
    };
    let id = match body.and_then(|b| b.id) {
        Some(id) => ConversationId::parse(&id).map_err(|_| {
            ApiError::InvalidParameter("a conversation id is 1 to 32 characters of A-Z a-z 0-9 - _".into())
        })?,
        None => new_conversation_id(),
    };
    let conversation =
        state.store.create_conversation(&token, &id).await?.map_err(|refusal| refused(state, refusal))?;
    announce(state, &token, &ServerFrame::Conversation { conversation: conversation.clone() }).await;
    Ok(no_store(json(StatusCode::CREATED, &conversation)))
}

/// Renames a conversation (the model never replaces a person's title), or sets its model or
/// instructions.
#[utoipa::path(
    patch,
    path = "/conversations/{id}",
    tag = "conversations",
    params(
        ("id" = String, Path, description = "The conversation's id"),
        ("token" = String, Query, description = "The session token from `POST /token`")
    ),
    request_body(content = ConversationChanges, content_type = "application/json"),
    responses(
        (status = 200, description = "The conversation, changed", body = Conversation),
        (status = 400, description = "Missing, unknown or expired token (`session_expired`), a blank, long or unreadable title (`invalid_title`), no change, a model not in `GET /models` or instructions too long (`invalid_parameter`)", body = ErrorBody),
        (status = 404, description = "No such conversation in the session (`unknown_conversation`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody)
    )
)]
pub async fn rename(state: &AppState, request: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    let token = session_token(request)?;
    let id = ConversationId::parse(id).map_err(|_| ApiError::UnknownConversation)?;
    let changes: Option<ConversationChanges> =
        request.payload().map_err(|e| ApiError::InvalidParameter(format!("could not read the body: {e}")))?;
    let changes = changes.unwrap_or_default();
    // Checked whole before anything changes.
    let title = changes.title.as_deref().map(|t| validate_title(t, state.config.max_title_chars)).transpose()?;
    if let Some(model) = changes.model.as_deref().filter(|m| !m.is_empty()) {
        if !model_list(state).await?.models.iter().any(|offered| offered == model) {
            return Err(ApiError::InvalidParameter("`model` is not one of GET /models".into()));
        }
    }
    let limit = state.config.max_instructions_chars;
    if changes.instructions.as_deref().is_some_and(|i| i.chars().count() > limit) {
        return Err(ApiError::InvalidParameter(format!("`instructions` are at most {limit} characters")));
    }
    let mut changed = None;
    if let Some(title) = title {
        let done = state.store.title_conversation(&token, &id, &title, chat_wire::TitleSource::Person).await?;
        changed = Some(done.map_err(|refusal| refused(state, refusal))?);
    }
    for (setting, value) in [(Setting::Model, &changes.model), (Setting::Instructions, &changes.instructions)] {
        if let Some(value) = value {
            let done = state.store.configure_conversation(&token, &id, setting, value.trim()).await?;
            changed = Some(done.map_err(|refusal| refused(state, refusal))?);
        }
    }
    let conversation = changed
        .ok_or_else(|| ApiError::InvalidParameter("give at least one of `title`, `model` and `instructions`".into()))?;
    announce(state, &token, &ServerFrame::Conversation { conversation: conversation.clone() }).await;
    Ok(no_store(json(StatusCode::OK, &conversation)))
}

/// The models a conversation may be answered by: those of `ALLOWED_MODELS` the provider serves
/// (its `/models`, as a worker last listed them), the default first.
#[utoipa::path(
    get,
    path = "/models",
    tag = "conversations",
    responses(
        (status = 200, description = "The default model and every model a conversation may choose", body = ModelList),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody)
    )
)]
pub async fn models(state: &AppState) -> Result<Response<Body>, ApiError> {
    Ok(no_store(json(StatusCode::OK, &model_list(state).await?)))
}

/// `ALLOWED_MODELS` as far as the provider serves them (all of them until a worker listed what it
/// serves); the default is always offered.
async fn model_list(state: &AppState) -> Result<ModelList, ApiError> {
    let model = &state.config.model;
    let served = state.store.provider_models().await?;
    Ok(ModelList { default: model.model.clone(), models: model.offered_models(served.as_deref()) })
}

/// Deletes a conversation with its messages; a reply being written in it stops. Deleting `main`,
/// the session's first, empties it.
#[utoipa::path(
    delete,
    path = "/conversations/{id}",
    tag = "conversations",
    params(
        ("id" = String, Path, description = "The conversation's id"),
        ("token" = String, Query, description = "The session token from `POST /token`")
    ),
    responses(
        (status = 204, description = "The conversation is gone"),
        (status = 400, description = "Missing, unknown or expired token (`session_expired`)", body = ErrorBody),
        (status = 404, description = "No such conversation in the session (`unknown_conversation`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody)
    )
)]
pub async fn delete(state: &AppState, request: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    let token = session_token(request)?;
    let id = ConversationId::parse(id).map_err(|_| ApiError::UnknownConversation)?;
    state.store.delete_conversation(&token, &id).await?.map_err(|refusal| refused(state, refusal))?;
    tracing::info!(session = %token.log_id(), "conversation deleted");
    announce(state, &token, &ServerFrame::ConversationDeleted { id: id.to_string() }).await;
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(no_store(response))
}

/// The body of `POST /conversations/{id}/versions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ShowVersion {
    /// The first message of the version to show: one of the ids a message's `versions` lists.
    pub message_id: String,
}

/// Shows another version of a place in a conversation (an edited question, a regenerated
/// reply): the thread from that place on becomes that version's. Answers the conversation's
/// history as `GET /chat_history` does.
#[utoipa::path(
    post,
    path = "/conversations/{id}/versions",
    tag = "conversations",
    params(
        ("id" = String, Path, description = "The conversation's id"),
        ("token" = String, Query, description = "The session token from `POST /token`")
    ),
    request_body(content = ShowVersion, content_type = "application/json"),
    responses(
        (status = 200, description = "The conversation's history, that version shown, paged as `GET /chat_history` pages it", body = chat_wire::ChatSession),
        (status = 400, description = "Missing, unknown or expired token (`session_expired`), an unreadable body (`invalid_parameter`), or an id that names no version on the path shown of a conversation of the session (`unknown_message`)", body = ErrorBody),
        (status = 429, description = "Too many reads of this session (`rate_limited`, counted with `GET /chat_history`)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the window ends"))),
        (status = 404, description = "A malformed conversation id (`unknown_conversation`)", body = ErrorBody),
        (status = 409, description = "A reply is being written in the conversation (`reply_in_progress`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody)
    )
)]
pub async fn switch_version(state: &AppState, request: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    let token = session_token(request)?;
    let id = ConversationId::parse(id).map_err(|_| ApiError::UnknownConversation)?;
    let shown: Option<ShowVersion> =
        request.payload().map_err(|e| ApiError::InvalidParameter(format!("could not read the body: {e}")))?;
    let shown = shown.ok_or_else(|| ApiError::InvalidParameter("the JSON field `message_id` is required".into()))?;
    if !(1..=80).contains(&shown.message_id.len()) {
        return Err(ApiError::UnknownMessage);
    }
    // Counted with the history reads, which it answers as (and which answers an unknown session).
    count_read(state, &token).await?;
    // A conversation the session does not hold holds no version either: `unknown_message`.
    state.store.switch_version(&token, &id, &shown.message_id).await?.map_err(|refusal| match refusal {
        Refusal::ReplyInProgress => ApiError::ReplyInProgress,
        Refusal::UnknownMessage => ApiError::UnknownMessage,
        other => refused(state, other),
    })?;
    let page = state.store.history_page(&token, &id, None, None, state.config.history_page_bytes).await?;
    let session = page.ok_or(ApiError::SessionExpired)?.map_err(|_| ApiError::UnknownMessage)?;
    Ok(no_store(json(StatusCode::OK, &session)))
}

/// The longest text `GET /search` looks for, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

/// Finds a text in the session's conversations: their titles and their messages.
#[utoipa::path(
    get,
    path = "/search",
    tag = "conversations",
    params(
        ("token" = String, Query, description = "The session token from `POST /token`"),
        ("q" = String, Query, description = "The text to find (1 to 200 characters, not only spaces), compared without case")
    ),
    responses(
        (status = 200, description = "Where it appears: the most recently active conversations first, a title before its messages, at most `MAX_SEARCH_RESULTS` hits", body = SearchResults),
        (status = 400, description = "Missing, unknown or expired token (`session_expired`), or a blank or long `q` (`invalid_parameter`)", body = ErrorBody),
        (status = 429, description = "Over `SEARCHES_PER_SESSION_PER_WINDOW` (`rate_limited`)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the window ends"))),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody)
    )
)]
pub async fn search(state: &AppState, request: &Request) -> Result<Response<Body>, ApiError> {
    let token = session_token(request)?;
    let params = request.query_string_parameters();
    let query = one_line(params.first("q").unwrap_or_default(), MAX_QUERY_CHARS, "search (`q`)")
        .map_err(ApiError::InvalidParameter)?;
    let limit = state.config.rate_limits.searches_per_session;
    match state.store.count_search(&token, limit).await? {
        Ok(None) => {}
        Ok(Some(wait)) => return Err(ApiError::rate_limited("searches of this session", wait)),
        Err(_) => return Err(ApiError::SessionExpired),
    }
    let results = state.store.search(&token, &query).await?.ok_or(ApiError::SessionExpired)?;
    Ok(no_store(json(StatusCode::OK, &results)))
}

/// The longest an announcement may hold a route's answer.
const ANNOUNCE_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Tells every connection of the session (every open tab) of a change to its list, through the
/// Management API (`WS_MANAGEMENT_ENDPOINT`; without it, the tabs learn at their next list load).
/// A failure changes nothing of the answer: the change is stored.
async fn announce(state: &AppState, token: &Token, frame: &ServerFrame) {
    let Some(endpoint) = &state.config.ws_management_endpoint else { return };
    let connections = match state.store.session_connections(token).await {
        Ok(connections) => connections,
        Err(error) => return tracing::warn!(error = %error, "could not read where to announce a change"),
    };
    let bytes = serde_json::to_vec(frame).expect("frames always serialize");
    let posts = connections.iter().map(|id| state.connections.post(endpoint, id, &bytes));
    // The change is stored: a slow gateway must not make its answer late (the tabs then learn at
    // their next list load).
    if tokio::time::timeout(ANNOUNCE_WITHIN, futures_util::future::join_all(posts)).await.is_err() {
        tracing::warn!("announcing a conversation change took too long; left to the tabs' next load");
    }
}

/// The conversation a read names (`?conversation=`), or the session's current one.
pub async fn named_or_current(state: &AppState, request: &Request, token: &Token) -> Result<ConversationId, ApiError> {
    match request.query_string_parameters().first("conversation") {
        Some(id) => ConversationId::parse(id).map_err(|_| ApiError::UnknownConversation),
        None => Ok(state.store.current_conversation(token).await?),
    }
}

/// Trims a title and checks it: not blank, at most `max_chars` characters, no control characters.
pub fn validate_title(title: &str, max_chars: usize) -> Result<String, ApiError> {
    one_line(title, max_chars, "title").map_err(ApiError::InvalidTitle)
}

fn refused(state: &AppState, refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::SessionExpired => ApiError::SessionExpired,
        Refusal::ConversationDeleted => ApiError::UnknownConversation,
        Refusal::TooManyConversations => {
            ApiError::TooManyConversations { limit: state.config.max_conversations_per_session }
        }
        other => ApiError::Internal(format!("a conversation step was refused with {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(validate_title("  Trip to Oslo ", 80).unwrap(), "Trip to Oslo");
        assert!(matches!(validate_title(" ", 80), Err(ApiError::InvalidTitle(_))));
        assert!(validate_title(&"é".repeat(81), 80).is_err());
        assert!(validate_title("a\nb", 80).is_err());
    }
}
