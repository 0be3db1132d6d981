//! The conversation routes: `GET /conversations` (the list), `POST /conversations` (a new one),
//! `PATCH /conversations/{id}` (title, model, instructions), `DELETE /conversations/{id}`,
//! `POST /conversations/{id}/versions`, `GET /search` and `GET /models`.
//!
//! Like the other routes, each takes the session token as `?token=`. A change is announced to
//! every connection of the session (every open tab), so their lists stay current.

use ::http::StatusCode;
use axum::extract::State;
use axum::Json;
use chat_core::store::Setting;
use chat_core::token::new_conversation_id;
use chat_wire::text::one_line;
use chat_wire::{
    ChatSession, Conversation, ConversationChanges, ConversationId, ConversationList, ErrorBody, ModelList,
    NewConversation, SearchResults, ServerFrame, ShowVersion, TitleSource, Token,
};

use super::extract::{Body, InPath, Params, Session};
use super::session::{count_change, count_read};
use crate::error::ApiError;
use crate::state::AppState;

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
pub async fn list(State(state): State<AppState>, Session(token): Session) -> Result<Json<ConversationList>, ApiError> {
    count_read(&state, &token).await?;
    let list = state.store.conversations(&token).await?.ok_or(ApiError::SessionExpired)?;
    Ok(Json(list))
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
        (status = 429, description = "Too many conversations created, changed or deleted by this session (`rate_limited`, `CHANGES_PER_SESSION_PER_WINDOW`)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the window ends"))),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody)
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Session(token): Session,
    Body(body): Body<NewConversation>,
) -> Result<(StatusCode, Json<Conversation>), ApiError> {
    let id = match body.and_then(|b| b.id) {
        Some(id) => ConversationId::parse(&id).map_err(|_| {
            ApiError::InvalidParameter("a conversation id is 1 to 32 characters of A-Z a-z 0-9 - _".into())
        })?,
        None => new_conversation_id(),
    };
    count_change(&state, &token).await?;
    let conversation = state
        .store
        .create_conversation(&token, &id)
        .await?
        .map_err(|refusal| ApiError::from_refusal(refusal, &state.config))?;
    announce(&state, &token, &ServerFrame::Conversation { conversation: conversation.clone() }).await;
    Ok((StatusCode::CREATED, Json(conversation)))
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
        (status = 429, description = "Too many conversations created, changed or deleted by this session (`rate_limited`, `CHANGES_PER_SESSION_PER_WINDOW`)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the window ends"))),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody)
    )
)]
pub async fn change(
    State(state): State<AppState>,
    Session(token): Session,
    InPath(id): InPath,
    Body(changes): Body<ConversationChanges>,
) -> Result<Json<Conversation>, ApiError> {
    let changes = changes.unwrap_or_default();
    // Checked whole before anything changes.
    let title = changes.title.as_deref().map(|t| validate_title(t, state.config.max_title_chars)).transpose()?;
    if let Some(model) = changes.model.as_deref().filter(|m| !m.is_empty()) {
        if !model_list(&state).await?.models.iter().any(|offered| offered == model) {
            return Err(ApiError::InvalidParameter("`model` is not one of GET /models".into()));
        }
    }
    let limit = state.config.max_instructions_chars;
    if changes.instructions.as_deref().is_some_and(|i| i.chars().count() > limit) {
        return Err(ApiError::InvalidParameter(format!("`instructions` are at most {limit} characters")));
    }
    count_change(&state, &token).await?;
    let refused = |refusal| ApiError::from_refusal(refusal, &state.config);
    let mut changed = None;
    if let Some(title) = title {
        let done = state.store.title_conversation(&token, &id, &title, TitleSource::Person).await?;
        changed = Some(done.map_err(refused)?);
    }
    for (setting, value) in [(Setting::Model, &changes.model), (Setting::Instructions, &changes.instructions)] {
        if let Some(value) = value {
            let done = state.store.configure_conversation(&token, &id, setting, value.trim()).await?;
            changed = Some(done.map_err(refused)?);
        }
    }
    let conversation = changed
        .ok_or_else(|| ApiError::InvalidParameter("give at least one of `title`, `model` and `instructions`".into()))?;
    announce(&state, &token, &ServerFrame::Conversation { conversation: conversation.clone() }).await;
    Ok(Json(conversation))
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
pub async fn models(State(state): State<AppState>) -> Result<Json<ModelList>, ApiError> {
    Ok(Json(model_list(&state).await?))
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
        (status = 429, description = "Too many conversations created, changed or deleted by this session (`rate_limited`, `CHANGES_PER_SESSION_PER_WINDOW`)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the window ends"))),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody)
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Session(token): Session,
    InPath(id): InPath,
) -> Result<StatusCode, ApiError> {
    count_change(&state, &token).await?;
    state
        .store
        .delete_conversation(&token, &id)
        .await?
        .map_err(|refusal| ApiError::from_refusal(refusal, &state.config))?;
    tracing::info!(session = %token.log_id(), "conversation deleted");
    announce(&state, &token, &ServerFrame::ConversationDeleted { id: id.to_string() }).await;
    Ok(StatusCode::NO_CONTENT)
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
        (status = 200, description = "The conversation's history, that version shown, paged as `GET /chat_history` pages it", body = ChatSession),
        (status = 400, description = "Missing, unknown or expired token (`session_expired`), an unreadable body (`invalid_parameter`), or an id that names no version on the path shown of a conversation of the session (`unknown_message`)", body = ErrorBody),
        (status = 429, description = "Too many reads of this session (`rate_limited`, counted with `GET /chat_history`)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the window ends"))),
        (status = 404, description = "A malformed conversation id (`unknown_conversation`)", body = ErrorBody),
        (status = 409, description = "A reply is being written in the conversation (`reply_in_progress`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody)
    )
)]
pub async fn switch_version(
    State(state): State<AppState>,
    Session(token): Session,
    InPath(id): InPath,
    Body(shown): Body<ShowVersion>,
) -> Result<Json<ChatSession>, ApiError> {
    let shown = shown.ok_or_else(|| ApiError::InvalidParameter("the JSON field `message_id` is required".into()))?;
    if !(1..=80).contains(&shown.message_id.len()) {
        return Err(ApiError::UnknownMessage);
    }
    // Counted with the history reads, which it answers as (and which answers an unknown session).
    count_read(&state, &token).await?;
    // A conversation the session does not hold holds no version either: `unknown_message`.
    state
        .store
        .switch_version(&token, &id, &shown.message_id)
        .await?
        .map_err(|refusal| ApiError::from_refusal(refusal, &state.config))?;
    let page = state.store.history_page(&token, &id, None, None, state.config.history_page_bytes).await?;
    let session = page.ok_or(ApiError::SessionExpired)?.map_err(|_| ApiError::UnknownMessage)?;
    Ok(Json(session))
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
pub async fn search(
    State(state): State<AppState>,
    Session(token): Session,
    params: Params,
) -> Result<Json<SearchResults>, ApiError> {
    let query = one_line(params.get("q").unwrap_or_default(), MAX_QUERY_CHARS, "search (`q`)")
        .map_err(ApiError::InvalidParameter)?;
    let limit = state.config.rate_limits.searches_per_session;
    match state.store.count_search(&token, limit).await? {
        Ok(None) => {}
        Ok(Some(wait)) => return Err(ApiError::rate_limited("searches of this session", wait)),
        Err(_) => return Err(ApiError::SessionExpired),
    }
    let results = state.store.search(&token, &query).await?.ok_or(ApiError::SessionExpired)?;
    Ok(Json(results))
}

/// Tells every connection of the session (every open tab) of a change to its list, through the
/// Management API (`WS_MANAGEMENT_ENDPOINT`; without it, the tabs learn at their next list load).
/// A failure changes nothing of the answer: the change is stored.
async fn announce(state: &AppState, token: &Token, frame: &ServerFrame) {
    let Some(endpoint) = &state.config.ws_management_endpoint else { return };
    chat_core::management::broadcast(&state.store, &state.connections, endpoint, token, frame).await;
}

/// Trims a title and checks it: not blank, at most `max_chars` characters, no control characters.
pub fn validate_title(title: &str, max_chars: usize) -> Result<String, ApiError> {
    one_line(title, max_chars, "title").map_err(ApiError::InvalidTitle)
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
