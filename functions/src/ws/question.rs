//! The frames that ask for a reply: a question (or an edit of one), a regeneration, and a resume
//! of a reply already on its way.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequestContext;
use chat_core::store::now_rfc3339;
use chat_core::{Refusal, ReplyRequest};
use chat_wire::{ChatMessage, ConversationId, MessageId, ReplyStatus, ServerFrame, Token};

use super::management_endpoint;
use crate::error::ApiError;
use crate::state::AppState;

/// A session and the conversation a frame acts on.
pub(super) struct At {
    pub(super) token: Token,
    pub(super) conversation: ConversationId,
}

/// Stores a question (or an edit of an earlier one) and queues its reply; answers its `ack`.
pub(super) async fn send_message(
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
pub(super) async fn resume(state: &AppState, at: &At, reply_to: &MessageId) -> Result<ServerFrame, ApiError> {
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
pub(super) async fn regenerate(
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
