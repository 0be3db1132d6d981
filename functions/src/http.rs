//! The HTTP API: `POST /token`, `DELETE /token`, `GET /chat_history`, `GET /chat_export`, the
//! conversation routes ([`crate::conversations`]), `GET /health` (`/test`), `GET /openapi.json`
//! and, in development, `GET /docs`.
//!
//! Each route is a plain async fn over a `lambda_http::Request` (what API Gateway's HTTP API sends,
//! converted by `lambda_http`). [`handle`] routes on whole paths, applies CORS (tower-http's layer)
//! and turns every [`ApiError`] into its JSON response; the `token` and `history` binaries and the
//! local gateway all call it.

use std::convert::Infallible;

use chat_wire::{ChatSession, ErrorBody, Health, MessageId, Token};
use http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, RequestPayloadExt, Response};
use serde::{Deserialize, Serialize};
use tower::{service_fn, Layer, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::conversations::{self, named_or_current};
use crate::error::ApiError;
use crate::export::{self, ExportFormat};
use crate::openapi;
use crate::state::AppState;

/// The form (or JSON) body of `POST /token`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TokenForm {
    /// The person's display name: 1 to `MAX_NAME_CHARS` (64) characters, no control characters.
    pub name: String,
}

/// Routes a request, answers CORS preflights and maps errors to JSON responses. Never fails:
/// every failure is a response.
pub async fn handle(state: &AppState, request: Request) -> Response<Body> {
    let routed = service_fn(|request: Request| async move {
        let response = match route(state, request).await {
            Ok(response) => response,
            Err(error) => {
                error.log();
                error_response(&error)
            }
        };
        Ok::<_, Infallible>(response)
    });
    let Ok(mut response) = cors(&state.config).layer(routed).oneshot(request).await;
    response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// CORS for the allow-list in `ALLOWED_ORIGINS` (any origin in development).
fn cors(config: &chat_core::Config) -> CorsLayer {
    let config = config.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origin.to_str().is_ok_and(|origin| config.origin_allowed(origin))
        }))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([header::CONTENT_TYPE])
        // The web app saves an export under the name the server gives it.
        .expose_headers([header::CONTENT_DISPOSITION])
        .max_age(std::time::Duration::from_secs(600))
}

/// The routes, matched on the whole path (the stage prefix of a named stage removed).
async fn route(state: &AppState, request: Request) -> Result<Response<Body>, ApiError> {
    let path = route_path(&request);
    match (path.as_str(), request.method().clone()) {
        ("/token", Method::POST) => create_token(state, &request).await,
        ("/token", Method::DELETE) => revoke_token(state, &request).await,
        ("/chat_history", Method::GET) => chat_history(state, &request).await,
        ("/chat_export", Method::GET) => chat_export(state, &request).await,
        ("/conversations", Method::GET) => conversations::list(state, &request).await,
        ("/conversations", Method::POST) => conversations::create(state, &request).await,
        ("/search", Method::GET) => conversations::search(state, &request).await,
        ("/models", Method::GET) => conversations::models(state).await,
        ("/health" | "/test", Method::GET) => Ok(health(state).await),
        ("/openapi.json", Method::GET) => Ok(json(StatusCode::OK, &openapi::document(&state.config))),
        ("/docs", Method::GET) if state.config.development => Ok(html(openapi::docs_page(&state.config))),
        (one, method) if one.starts_with("/conversations/") => {
            let (id, rest) = conversation_in_path(&request, one);
            match (rest, method) {
                ("", Method::PATCH) => conversations::rename(state, &request, &id).await,
                ("", Method::DELETE) => conversations::delete(state, &request, &id).await,
                ("", _) => Err(ApiError::MethodNotAllowed { allow: "PATCH, DELETE" }),
                ("/versions", Method::POST) => conversations::switch_version(state, &request, &id).await,
                ("/versions", _) => Err(ApiError::MethodNotAllowed { allow: "POST" }),
                _ => Err(ApiError::NotFound),
            }
        }
        ("/token", _) => Err(ApiError::MethodNotAllowed { allow: "POST, DELETE" }),
        ("/conversations", _) => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
        ("/chat_history" | "/chat_export" | "/search" | "/models" | "/health" | "/test" | "/openapi.json", _) => {
            Err(ApiError::MethodNotAllowed { allow: "GET" })
        }
        _ => Err(ApiError::NotFound),
    }
}

/// The request's path as the API defines it. On AWS, the route API Gateway matched
/// (`routeKey`, e.g. `POST /token`) says it, whatever a custom domain's API mapping or a named
/// stage put in front of the raw path; for a `$default` route (the local gateway), the raw path
/// without a named stage's prefix (`/prod/token` -> `/token`). No trailing slash either way.
fn route_path(request: &Request) -> String {
    use lambda_http::request::RequestContext;
    let (route_key, stage) = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => (context.route_key.clone(), context.stage.clone()),
        Some(RequestContext::ApiGatewayV1(context)) => (None, context.stage.clone()),
        _ => (None, None),
    };
    let matched = route_key.as_deref().and_then(|key| key.split_once(' ')).map(|(_, path)| path.to_string());
    let raw = request.raw_http_path();
    let raw = if raw.is_empty() { request.uri().path() } else { raw };
    let path = match (&matched, stage.filter(|s| s != "$default")) {
        (Some(path), _) => path.as_str(),
        (None, Some(stage)) => raw.strip_prefix(&format!("/{stage}")).filter(|p| p.starts_with('/')).unwrap_or(raw),
        (None, None) => raw,
    };
    match path.trim_end_matches('/') {
        "" => "/".to_string(),
        trimmed => trimmed.to_string(),
    }
}

/// The `{id}` of `/conversations/{id}...` and what follows it: API Gateway's path parameter
/// when its route matched it, else the path's segment (the local gateway's `$default` route).
fn conversation_in_path<'a>(request: &Request, path: &'a str) -> (String, &'a str) {
    let after = path.trim_start_matches("/conversations/");
    let (segment, rest) = after.find('/').map_or((after, ""), |slash| after.split_at(slash));
    if segment == "{id}" {
        return (request.path_parameters().first("id").unwrap_or_default().to_string(), rest);
    }
    (segment.to_string(), rest)
}

/// The session token of a request (`?token=`), checked.
pub(crate) fn session_token(request: &Request) -> Result<Token, ApiError> {
    let params = request.query_string_parameters();
    let token = params.first("token").ok_or(ApiError::SessionExpired)?;
    Token::parse(token).map_err(|_| ApiError::SessionExpired)
}

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
pub async fn create_token(state: &AppState, request: &Request) -> Result<Response<Body>, ApiError> {
    let name = read_name(request).await?;
    let name = validate_name(&name, state.config.max_name_chars)?;
    let limits = &state.config.rate_limits;
    if let Some(wait) =
        state.store.count_session_creation(&client_address(request), limits.sessions_per_ip, limits.window).await?
    {
        return Err(ApiError::rate_limited("new sessions from this address", wait));
    }
    let session = state.store.create_session(&name).await?;
    tracing::info!(name_chars = name.chars().count(), "session created");
    Ok(no_store(json(StatusCode::OK, &session)))
}

/// Ends a session for good ("New chat"): its history and replies are deleted, and its token opens
/// nothing any more (its open WebSocket connections are answered `reconnect`, then refused).
/// Answers 204 for an unknown or expired token too: revoking twice is not an error.
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
pub async fn revoke_token(state: &AppState, request: &Request) -> Result<Response<Body>, ApiError> {
    let params = request.query_string_parameters();
    let token = params.first("token").ok_or(ApiError::SessionExpired)?;
    if let Ok(token) = Token::parse(token) {
        state.store.revoke_session(&token).await?;
        tracing::info!(session = %token.log_id(), "session revoked");
    }
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(no_store(response))
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
pub async fn chat_history(state: &AppState, request: &Request) -> Result<Response<Body>, ApiError> {
    let params = request.query_string_parameters();
    let token = session_token(request)?;
    let max = state.config.max_history_messages;
    let limit = match params.first("limit") {
        None => None,
        Some(raw) => match raw.parse::<usize>() {
            Ok(limit) if (1..=max).contains(&limit) => Some(limit),
            _ => return Err(ApiError::InvalidParameter(format!("`limit` is a whole number from 1 to {max}"))),
        },
    };
    // A page may begin with a reply: its id (`<question>.reply`, or `<question>.reply~N` for an
    // older version of it) is a cursor too.
    let before = match params.first("before") {
        None => None,
        Some(raw) => Some(cursor(raw).ok_or(ApiError::UnknownMessage)?),
    };
    count_read(state, &token).await?;
    let conversation = existing_conversation(state, request, &token).await?;
    let page_bytes = state.config.history_page_bytes;
    let page = state.store.history_page(&token, &conversation, before.as_deref(), limit, page_bytes).await?;
    let session = page.ok_or(ApiError::SessionExpired)?.map_err(|_| ApiError::UnknownMessage)?;
    Ok(no_store(json(StatusCode::OK, &session)))
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

/// The conversation a read names, checked to be the session's (a deleted one is not).
async fn existing_conversation(
    state: &AppState,
    request: &Request,
    token: &Token,
) -> Result<chat_wire::ConversationId, ApiError> {
    let conversation = named_or_current(state, request, token).await?;
    if conversation.is_main() || state.store.conversation(token, &conversation).await?.is_some() {
        Ok(conversation)
    } else {
        Err(ApiError::UnknownConversation)
    }
}

/// Returns a whole conversation (the current one unless `conversation` names another) as a file to keep: a Markdown transcript, or the
/// history's JSON (every message with all its fields, without the token).
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
pub async fn chat_export(state: &AppState, request: &Request) -> Result<Response<Body>, ApiError> {
    let params = request.query_string_parameters();
    let token = session_token(request)?;
    let format = ExportFormat::parse(params.first("format"))
        .ok_or_else(|| ApiError::InvalidParameter("`format` is `markdown` or `json`".into()))?;
    count_read(state, &token).await?;
    let conversation = existing_conversation(state, request, &token).await?;
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
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    let disposition = format!("attachment; filename=\"{file_name}\"");
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).expect("an ASCII file name"));
    Ok(no_store(response))
}

/// Counts a read of the session's history (a page or an export) against
/// `HISTORY_READS_PER_SESSION_PER_WINDOW`, before reading, and only for a live session: an
/// over-limit client costs one small script, and unknown tokens leave no counter behind.
pub(crate) async fn count_read(state: &AppState, token: &Token) -> Result<(), ApiError> {
    let reads = state.config.rate_limits.history_reads_per_session;
    match state.store.count_history_read(token, reads).await? {
        Ok(None) => Ok(()),
        Ok(Some(wait)) => Err(ApiError::rate_limited("history reads of this session", wait)),
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
pub async fn health(state: &AppState) -> Response<Body> {
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
    let status = if redis_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    no_store(json(status, &health))
}

/// The client's address as API Gateway saw it (the TCP peer, not a header a client could forge).
fn client_address(request: &Request) -> String {
    use lambda_http::request::RequestContext;
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.clone(),
        Some(RequestContext::ApiGatewayV1(context)) => context.identity.source_ip.clone(),
        _ => None,
    }
    .unwrap_or_else(|| "unknown".into())
}

async fn read_name(request: &Request) -> Result<String, ApiError> {
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if content_type.starts_with("multipart/form-data") {
        return read_multipart_name(content_type, request.body()).await;
    }
    let form: Option<TokenForm> =
        request.payload().map_err(|e| ApiError::InvalidName(format!("could not read the name: {e}")))?;
    form.map(|f| f.name).ok_or_else(|| ApiError::InvalidName("the form field `name` is required".into()))
}

async fn read_multipart_name(content_type: &str, body: &Body) -> Result<String, ApiError> {
    let unreadable = |e: multer::Error| ApiError::InvalidName(format!("could not read the form: {e}"));
    let boundary = multer::parse_boundary(content_type).map_err(unreadable)?;
    let bytes = bytes::Bytes::copy_from_slice(body.as_ref());
    let stream = futures_util::stream::once(async move { Ok::<_, Infallible>(bytes) });
    let limits = multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(64 * 1024));
    let mut form = multer::Multipart::with_constraints(stream, boundary, limits);
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        if field.name() == Some("name") {
            return field.text().await.map_err(unreadable);
        }
    }
    Err(ApiError::InvalidName("the form field `name` is required".into()))
}

/// Trims a display name and checks it: not blank, at most `max_chars` characters, no control
/// characters.
pub fn validate_name(name: &str, max_chars: usize) -> Result<String, ApiError> {
    one_line(name, max_chars, "name").map_err(ApiError::InvalidName)
}

/// The one rule of a name, a title and a search: trimmed, not blank, at most `max_chars`
/// characters, no control characters (`name_pattern` in the OpenAPI document says the same).
/// The error is a sentence about `what`.
pub(crate) fn one_line(text: &str, max_chars: usize, what: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("the {what} must not be blank"));
    }
    if text.chars().count() > max_chars {
        return Err(format!("the {what} must be at most {max_chars} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("the {what} must not contain control characters"));
    }
    Ok(text.to_string())
}

/// The JSON response of an error.
pub fn error_response(error: &ApiError) -> Response<Body> {
    let mut response = json(error.status(), &error.body());
    if let Some(seconds) = error.retry_after() {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if let ApiError::MethodNotAllowed { allow } = error {
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    response
}

pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_string(value).expect("API types always serialize");
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn html(page: String) -> Response<Body> {
    let mut response = Response::new(Body::from(page));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    response
}

pub(crate) fn no_store(mut response: Response<Body>) -> Response<Body> {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, raw_path: &str, stage: &str) -> Request {
        routed(method, raw_path, stage, "$default")
    }

    fn routed(method: Method, raw_path: &str, stage: &str, route_key: &str) -> Request {
        let mut event = aws_lambda_events::apigw::ApiGatewayV2httpRequest::default();
        event.raw_path = Some(raw_path.into());
        event.request_context.stage = Some(stage.into());
        event.request_context.route_key = Some(route_key.into());
        event.request_context.http.method = method;
        lambda_http::request::LambdaRequest::ApiGatewayV2(event).into()
    }

    #[test]
    fn routes_match_whole_paths() {
        assert_eq!(route_path(&request(Method::POST, "/token", "$default")), "/token");
        assert_eq!(route_path(&request(Method::POST, "/prod/token/", "prod")), "/token");
        assert_eq!(route_path(&request(Method::POST, "/x/y/token", "$default")), "/x/y/token");
        assert_eq!(route_path(&request(Method::GET, "/", "$default")), "/");
        // Behind a custom domain's API mapping, API Gateway's matched route says what was asked.
        assert_eq!(route_path(&routed(Method::POST, "/v1/token", "prod", "POST /token")), "/token");
    }

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
