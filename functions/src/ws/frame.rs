//! `$default`: what a client sends, counted against its connection's limit, decoded, and routed.

use aws_lambda_events::apigw::{
    ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest, ApiGatewayWebsocketProxyRequestContext,
};
use chat_wire::{ClientFrame, ConversationId, MessageId, ServerFrame, Token};
use http::StatusCode;

use super::question::{regenerate, resume, send_message, At};
use super::{connection_of, management_endpoint, response};
use crate::error::ApiError;
use crate::state::AppState;

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
}
