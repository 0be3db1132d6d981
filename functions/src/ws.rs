//! The WebSocket API's routes, as API Gateway invokes them: `$connect`, `$default` (every client
//! frame) and `$disconnect`.
//!
//! Each takes the real `ApiGatewayWebsocketProxyRequest` event and returns an
//! `ApiGatewayProxyResponse`. For `$connect` a non-2xx status refuses the handshake. For `$default`
//! the body is a [`ServerFrame`] that API Gateway's route response sends back to the client (an
//! `ack`, a `pong` or an `error`); replies themselves come from the worker via the Management API.

use aws_lambda_events::apigw::{
    ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest, ApiGatewayWebsocketProxyRequestContext,
};
use aws_lambda_events::encodings::Body;
use chat_core::store::now_rfc3339;
use chat_core::{Bound, Config, Refusal, ReplyRequest};
use chat_wire::{ChatMessage, ClientFrame, ConnectionId, ConversationId, MessageId, ReplyStatus, ServerFrame, Token};
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::error::ApiError;
use crate::state::AppState;

/// `$connect`: admits the connection only with a live session's token (`?token=`), and records
/// which session it belongs to. A missing token refuses the handshake with 401, an unknown or
/// expired one with 403, a session with `MAX_CONNECTIONS_PER_SESSION` open connections already
/// with 429 (those the Management API says are gone are forgotten first), an outage with 503.
pub async fn connect(state: &AppState, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let connection_id = match connection_of(&event.request_context) {
        Ok(id) => id,
        Err(error) => return refusal(&error),
    };
    let Some(token) = event.query_string_parameters.first("token") else {
        return refusal_with(StatusCode::UNAUTHORIZED, &ApiError::SessionExpired);
    };
    let Ok(token) = Token::parse(token) else {
        return refusal_with(StatusCode::FORBIDDEN, &ApiError::SessionExpired);
    };
    let mut bound = state.store.bind_connection(&connection_id, &token).await;
    if matches!(bound, Ok(Bound::Full)) && forget_gone_connections(state, &event.request_context, &token).await > 0 {
        bound = state.store.bind_connection(&connection_id, &token).await;
    }
    match bound {
        Ok(Bound::Bound) => {
            // Connection ids address sockets through the Management API: debug level only.
            tracing::debug!(connection_id = %connection_id, "connected");
            response(StatusCode::OK, None)
        }
        Ok(Bound::Expired) => refusal_with(StatusCode::FORBIDDEN, &ApiError::SessionExpired),
        Ok(Bound::Full) => refusal(&ApiError::TooManyConnections { limit: state.config.max_connections_per_session }),
        Err(error) => refusal(&ApiError::from(error)),
    }
}

/// Forgets the session's connections the Management API says are gone (their `$disconnect` never
/// came: API Gateway sends it best-effort), one `GET @connections/{id}` each, all at once; answers
/// how many. Asked only when the session's set is full, so at most
/// `MAX_CONNECTIONS_PER_SESSION` calls.
async fn forget_gone_connections(
    state: &AppState,
    context: &ApiGatewayWebsocketProxyRequestContext,
    token: &Token,
) -> usize {
    let endpoint = &management_endpoint(&state.config, context);
    let Ok(connections) = state.store.session_connections(token).await else { return 0 };
    let probes = connections.iter().map(|id| async move {
        (state.connections.describe(endpoint, id).await == chat_core::management::Delivery::Gone).then_some(id)
    });
    let mut forgotten = 0;
    for gone in futures_util::future::join_all(probes).await.into_iter().flatten() {
        if state.store.unbind_connection(gone, Some(token)).await.is_ok() {
            forgotten += 1;
        }
    }
    if forgotten > 0 {
        tracing::info!(session = %token.log_id(), forgotten, "connections gone without $disconnect forgotten");
    }
    forgotten
}

/// `$disconnect`: forgets the connection.
pub async fn disconnect(state: &AppState, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let connection_id = match connection_of(&event.request_context) {
        Ok(id) => id,
        Err(error) => return refusal(&error),
    };
    if let Err(error) = state.store.unbind_connection(&connection_id, None).await {
        // The mapping expires with the session anyway; a failed cleanup is not the client's problem.
        tracing::warn!(connection_id = %connection_id, error = %error, "could not forget a connection");
    }
    tracing::debug!(connection_id = %connection_id, "disconnected");
    response(StatusCode::OK, None)
}

/// `$default`: every frame the client sends. Answers with one frame: `ack`, `pong`, `snapshot` or
/// `error` (or nothing, for a `stop`: the worker's `done` answers it).
///
/// Every frame, whatever it holds, is first counted against the connection's
/// `FRAMES_PER_CONNECTION_PER_WINDOW` (which also extends the connection's life): frames over it
/// are answered `rate_limited`, and a connection that sends as many again in the window is closed.
pub async fn message(state: &AppState, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let context = &event.request_context;
    let decoded = decode_frame(event.body.as_deref(), event.is_base64_encoded);
    // An error names the message it concerns when the client gave a well-formed id.
    let concerns = decoded
        .as_ref()
        .ok()
        .and_then(frame_message_id)
        .filter(|id| chat_wire::is_valid_message_id(id))
        .map(str::to_string);
    let in_conversation = decoded
        .as_ref()
        .ok()
        .and_then(frame_conversation)
        .filter(|id| ConversationId::parse(id).is_ok())
        .map(str::to_string);
    let answer = match admit(state, context).await {
        Ok(Admitted::Closed) => return response(StatusCode::OK, None),
        Ok(Admitted::Frame(token)) => match decoded {
            Ok(frame) => answer(state, context, token, frame).await,
            Err(error) => Err(error),
        },
        Err(error) => Err(error),
    };
    let frame = match answer {
        Ok(Some(frame)) => frame,
        Ok(None) => return response(StatusCode::OK, None),
        Err(error) => {
            error.log();
            error.frame(concerns, in_conversation)
        }
    };
    let body = serde_json::to_string(&frame).expect("frames always serialize");
    response(StatusCode::OK, Some(body))
}

/// What the connection's frame count allows.
enum Admitted {
    /// Answer the frame, for this session.
    Frame(Token),
    /// The connection kept sending past its limit and was closed: nothing to answer.
    Closed,
}

/// Counts a frame on its connection and finds the connection's session.
async fn admit(state: &AppState, context: &ApiGatewayWebsocketProxyRequestContext) -> Result<Admitted, ApiError> {
    let connection_id = connection_of(context)?;
    let Some(frame) = state.store.connection_frame(&connection_id).await? else {
        // Its mapping expired or was lost: a new connection says whether the session lives.
        return Err(ApiError::Reconnect);
    };
    let Some(wait) = frame.over_limit else { return Ok(Admitted::Frame(frame.token)) };
    let limit = u64::from(state.config.rate_limits.frames_per_connection);
    if frame.frames_over <= limit {
        return Err(ApiError::rate_limited("frames on this connection", wait));
    }
    // Told and still going: close it, the same way on AWS and locally.
    tracing::warn!(session = %frame.token.log_id(), "closing a connection that keeps sending past its frame limit");
    let endpoint = management_endpoint(&state.config, context);
    state.connections.close(&endpoint, &connection_id).await;
    Ok(Admitted::Closed)
}

/// The user message a frame is about, as the client wrote it.
fn frame_message_id(frame: &ClientFrame) -> Option<&str> {
    match frame {
        ClientFrame::SendMessage { id, .. } => Some(id),
        ClientFrame::Stop { reply_to, .. }
        | ClientFrame::Resume { reply_to, .. }
        | ClientFrame::Regenerate { reply_to, .. } => Some(reply_to),
        ClientFrame::Ping => None,
    }
}

/// The conversation a frame names, as the client wrote it (`None`: the current one).
fn frame_conversation(frame: &ClientFrame) -> Option<&str> {
    match frame {
        ClientFrame::SendMessage { conversation, .. }
        | ClientFrame::Stop { conversation, .. }
        | ClientFrame::Resume { conversation, .. }
        | ClientFrame::Regenerate { conversation, .. } => conversation.as_deref(),
        ClientFrame::Ping => None,
    }
}

/// The conversation a frame acts on: the one it names, or the session's current one.
async fn conversation_of(state: &AppState, token: &Token, named: Option<&str>) -> Result<ConversationId, ApiError> {
    match named {
        Some(id) => ConversationId::parse(id).map_err(|_| ApiError::UnknownConversation),
        None => Ok(state.store.current_conversation(token).await?),
    }
}

/// Carries out one decoded frame; `None` when the frame needs no answer.
#[tracing::instrument(level = "debug", skip_all, fields(connection_id = context.connection_id.as_deref().unwrap_or_default()))]
async fn answer(
    state: &AppState,
    context: &ApiGatewayWebsocketProxyRequestContext,
    token: Token,
    frame: ClientFrame,
) -> Result<Option<ServerFrame>, ApiError> {
    let parse_id = |id: &str| MessageId::parse(id).map_err(|_| ApiError::InvalidId);
    if let ClientFrame::Ping = frame {
        return Ok(Some(ServerFrame::Pong));
    }
    let conversation = conversation_of(state, &token, frame_conversation(&frame)).await?;
    let at = At { token, conversation };
    Ok(match frame {
        ClientFrame::Ping => Some(ServerFrame::Pong),
        ClientFrame::Stop { reply_to, .. } => {
            state.store.request_stop(&at.token, &at.conversation, &parse_id(&reply_to)?).await?;
            None
        }
        ClientFrame::Resume { reply_to, .. } => Some(resume(state, &at, &parse_id(&reply_to)?).await?),
        ClientFrame::Regenerate { reply_to, .. } => Some(regenerate(state, context, at, &parse_id(&reply_to)?).await?),
        ClientFrame::SendMessage { id, content, edits, .. } => {
            // What `edits` names must be a question of the conversation: anything else (a
            // reply's id, say) names no question it holds.
            let edits =
                edits.as_deref().map(|e| MessageId::parse(e).map_err(|_| ApiError::UnknownMessage)).transpose()?;
            Some(send_message(state, context, at, parse_id(&id)?, content, edits).await?)
        }
    })
}

/// A session and the conversation a frame acts on.
struct At {
    token: Token,
    conversation: ConversationId,
}

/// The event's connection id, which API Gateway always sets.
fn connection_of(context: &ApiGatewayWebsocketProxyRequestContext) -> Result<ConnectionId, ApiError> {
    let raw = context.connection_id.as_deref().unwrap_or_default();
    ConnectionId::parse(raw).map_err(|e| ApiError::Internal(format!("the WebSocket event carries {e}: {raw:?}")))
}

/// Decodes a client frame, naming exactly what is wrong with one that cannot be used.
pub fn decode_frame(body: Option<&str>, is_base64_encoded: bool) -> Result<ClientFrame, ApiError> {
    if is_base64_encoded {
        return Err(ApiError::InvalidJson("frames must be UTF-8 JSON text, not binary".into()));
    }
    let body = body.unwrap_or_default();
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| ApiError::InvalidJson(format!("the frame is not valid JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(ApiError::InvalidFrame("a frame is a JSON object with an `action` field".into()));
    };
    match object.get("action") {
        None => return Err(ApiError::InvalidFrame("the frame has no `action` field".into())),
        Some(serde_json::Value::String(action)) if !chat_wire::KNOWN_ACTIONS.contains(&action.as_str()) => {
            return Err(ApiError::UnknownAction(action.chars().take(64).collect()))
        }
        Some(serde_json::Value::String(_)) => {}
        Some(_) => return Err(ApiError::InvalidFrame("the `action` field must be a string".into())),
    }
    serde_json::from_value(value).map_err(|e| ApiError::InvalidFrame(format!("invalid frame: {e}")))
}

async fn send_message(
    state: &AppState,
    context: &ApiGatewayWebsocketProxyRequestContext,
    at: At,
    id: MessageId,
    content: String,
    edits: Option<MessageId>,
) -> Result<ServerFrame, ApiError> {
    if content.trim().is_empty() {
        return Err(ApiError::EmptyMessage);
    }
    if content.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')) {
        return Err(ApiError::InvalidContent);
    }
    let limit = state.config.max_message_bytes;
    if content.len() > limit {
        return Err(ApiError::MessageTooLarge { size: content.len(), limit });
    }
    let message = ChatMessage::question(id.to_string(), content, now_rfc3339());
    let accepted = match &edits {
        None => state.store.accept_user_message(&at.token, &at.conversation, &message).await?,
        Some(edits) => state.store.accept_edit(&at.token, &at.conversation, &message, edits).await?,
    };
    match accepted {
        Ok(()) => {
            // A question in one conversation keeps the session's others alive as long.
            if let Err(error) = state.store.extend_conversations(&at.token).await {
                tracing::warn!(error = %error, "could not extend the session's conversations");
            }
            request_reply(state, context, &at, &id).await?
        }
        // A resend of a stored message whose reply is queued, written or stored: acknowledged
        // again, answered once. (One stored but never queued came back as `Ok` above.)
        Err(Refusal::Duplicate) => {}
        Err(refusal) => return Err(ApiError::from_refusal(refusal, &state.config)),
    }
    // With REDIS_WAIT_REPLICAS the store answered only once the replicas had the question and its
    // request (else `unavailable`: a client resends the same id, harmless either way).
    Ok(ack(&at, &id))
}

/// The `ack` of a user message whose reply is on its way.
fn ack(at: &At, id: &MessageId) -> ServerFrame {
    ServerFrame::Ack {
        id: id.to_string(),
        reply_id: id.reply_id().to_string(),
        conversation: Some(at.conversation.to_string()),
    }
}

/// Queues the reply to `message_id` (the session is already locked for it) and wakes the worker.
async fn request_reply(
    state: &AppState,
    context: &ApiGatewayWebsocketProxyRequestContext,
    at: &At,
    message_id: &MessageId,
) -> Result<(), ApiError> {
    let request = ReplyRequest {
        token: at.token.clone(),
        conversation: at.conversation.clone(),
        message_id: message_id.clone(),
        endpoint: management_endpoint(&state.config, context),
    };
    if let Err(error) = state.store.enqueue(&request).await {
        // The message is stored; unlock the session so the person can ask again once Redis is back.
        // Redis is failing, so this may fail too: the lock then expires after REPLY_LOCK_SECONDS.
        if let Err(unlock) = state.store.release_reply_lock(&at.token, &at.conversation, message_id).await {
            tracing::warn!(error = %unlock, "could not unlock a session whose request was not queued");
        }
        return Err(error.into());
    }
    // The mark lets a resend of this question be only acknowledged; without it (Redis failing
    // now) a resend queues the question again, which the worker answers once.
    let mark = async {
        if let Err(error) = state.store.mark_queued(&at.token, &at.conversation, message_id).await {
            tracing::warn!(error = %error, "could not mark a question as queued");
        }
    };
    tokio::join!(mark, state.trigger.wake(&state.store));
    Ok(())
}

/// The reply to `reply_to` as it stands, from the session's store, whichever worker writes it.
async fn resume(state: &AppState, at: &At, reply_to: &MessageId) -> Result<ServerFrame, ApiError> {
    let reply_id = reply_to.reply_id();
    let conversation = Some(at.conversation.to_string());
    let snapshot = match state.store.reply_snapshot(&at.token, &at.conversation, &reply_id).await? {
        Some(reply) => ServerFrame::Snapshot {
            id: reply.id,
            reply_to: reply_to.to_string(),
            next_seq: reply.next_seq.unwrap_or(0),
            text: reply.msg,
            status: reply.status,
            conversation,
        },
        // Asked, not begun yet: nothing written so far.
        None if state.store.has_message(&at.token, &at.conversation, reply_to).await? => ServerFrame::Snapshot {
            id: reply_id.to_string(),
            reply_to: reply_to.to_string(),
            next_seq: 0,
            text: String::new(),
            status: ReplyStatus::Streaming,
            conversation,
        },
        None if !holds_conversation(state, at).await? => return Err(ApiError::UnknownConversation),
        None => return Err(ApiError::UnknownMessage),
    };
    Ok(snapshot)
}

/// Whether the session holds the conversation a frame named (its first, `main`, always).
async fn holds_conversation(state: &AppState, at: &At) -> Result<bool, ApiError> {
    Ok(at.conversation.is_main() || state.store.conversation(&at.token, &at.conversation).await?.is_some())
}

/// Answers the session's last question again, replacing its reply.
async fn regenerate(
    state: &AppState,
    context: &ApiGatewayWebsocketProxyRequestContext,
    at: At,
    reply_to: &MessageId,
) -> Result<ServerFrame, ApiError> {
    if let Some(wait) = state.store.count_message(&at.token).await? {
        return Err(ApiError::rate_limited("messages in this session", wait));
    }
    match state.store.regenerate(&at.token, &at.conversation, reply_to).await? {
        Ok(()) => {}
        // A conversation the session does not hold holds no message either: say which.
        Err(Refusal::UnknownMessage) if !holds_conversation(state, &at).await? => {
            return Err(ApiError::UnknownConversation)
        }
        Err(refusal) => return Err(ApiError::from_refusal(refusal, &state.config)),
    }
    if let Err(error) = state.store.extend_conversations(&at.token).await {
        tracing::warn!(error = %error, "could not extend the session's conversations");
    }
    request_reply(state, context, &at, reply_to).await?;
    Ok(ack(&at, reply_to))
}

/// The API Gateway Management API endpoint for this event's connections: `WS_MANAGEMENT_ENDPOINT`
/// when set (the local gateway, a custom domain), otherwise `https://{domainName}/{stage}`, the
/// form AWS documents for `@connections`.
pub fn management_endpoint(config: &Config, context: &ApiGatewayWebsocketProxyRequestContext) -> String {
    if let Some(endpoint) = &config.ws_management_endpoint {
        return endpoint.clone();
    }
    format!(
        "https://{}/{}",
        context.domain_name.as_deref().unwrap_or_default(),
        context.stage.as_deref().unwrap_or_default()
    )
}

/// Refuses a handshake with the error's own status.
fn refusal(error: &ApiError) -> ApiGatewayProxyResponse {
    error.log();
    refusal_with(error.status(), error)
}

/// Refuses a handshake: API Gateway answers the client with `status`.
fn refusal_with(status: StatusCode, error: &ApiError) -> ApiGatewayProxyResponse {
    let body = serde_json::to_string(&error.body()).expect("error bodies always serialize");
    tracing::info!(status = status.as_u16(), "connection refused");
    response(status, Some(body))
}

fn response(status: StatusCode, body: Option<String>) -> ApiGatewayProxyResponse {
    let mut headers = HeaderMap::new();
    if body.is_some() {
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status.as_u16());
    response.headers = headers;
    response.body = body.map(Body::Text);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_wire::ErrorCode;

    fn code(body: &str) -> ErrorCode {
        decode_frame(Some(body), false).unwrap_err().code()
    }

    #[test]
    fn frames_decode_or_say_why_not() {
        assert_eq!(
            decode_frame(Some(r#"{"action":"sendMessage","id":"a","content":"hi"}"#), false).unwrap(),
            ClientFrame::SendMessage { id: "a".into(), content: "hi".into(), conversation: None, edits: None }
        );
        assert_eq!(code("not json"), ErrorCode::InvalidJson);
        assert_eq!(code(""), ErrorCode::InvalidJson);
        assert_eq!(code("[1,2]"), ErrorCode::InvalidFrame);
        assert_eq!(code(r#"{"id":"a"}"#), ErrorCode::InvalidFrame);
        assert_eq!(code(r#"{"action":7}"#), ErrorCode::InvalidFrame);
        assert_eq!(code(r#"{"action":"dance"}"#), ErrorCode::UnknownAction);
        assert_eq!(code(r#"{"action":"sendMessage","id":"a"}"#), ErrorCode::InvalidFrame);
        assert_eq!(code(r#"{"action":"sendMessage","id":5,"content":"x"}"#), ErrorCode::InvalidFrame);
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(code(&deep), ErrorCode::InvalidJson);
        assert_eq!(decode_frame(Some("{}"), true).unwrap_err().code(), ErrorCode::InvalidJson);
    }

    #[test]
    fn the_management_endpoint_follows_the_event() {
        let config = Config::from_vars(&Default::default()).unwrap();
        let mut context = ApiGatewayWebsocketProxyRequestContext::default();
        context.domain_name = Some("abc123.execute-api.eu-west-1.amazonaws.com".into());
        context.stage = Some("prod".into());
        assert_eq!(management_endpoint(&config, &context), "https://abc123.execute-api.eu-west-1.amazonaws.com/prod");
        let mut local = config.clone();
        local.ws_management_endpoint = Some("http://127.0.0.1:3500/local".into());
        assert_eq!(management_endpoint(&local, &context), "http://127.0.0.1:3500/local");
    }
}
