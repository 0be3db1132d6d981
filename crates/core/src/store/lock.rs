//! A conversation's flags around its reply: the lock (taken by accept or regenerate, released by
//! store: [`super::reply`]) renewed and released here, the person's stop request, and the mark
//! that a question's reply request is queued. Each holds the id of the user message it is for, and
//! is only ever compared with it.

use chat_wire::{ConversationId, MessageId, Token};
use redis::AsyncCommands;

use super::{scripts, SessionKeys, Store, StoreError};
#[cfg(doc)]
use super::{Refusal, STOP_POLL};

impl Store {
    /// Records that the reply to `message_id` is queued, once the stream has its request: a resend
    /// of the question is then only acknowledged, not queued again. Written after the stream
    /// entry, so a crash between the two can only queue a question twice, which the worker
    /// answers once ([`Refusal::BeingAnswered`], [`Refusal::AlreadyStored`]).
    pub async fn mark_queued(
        &self,
        token: &Token,
        conversation: &ConversationId,
        message_id: &MessageId,
    ) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        let () = conn
            .set_ex(
                SessionKeys::new(token).conversation(conversation).queued,
                message_id.as_str(),
                self.session_ttl.as_secs(),
            )
            .await?;
        Ok(())
    }

    /// Extends the session's lock for the reply to `message_id` while that reply is written.
    pub async fn renew_reply_lock(
        &self,
        token: &Token,
        conversation: &ConversationId,
        message_id: &MessageId,
    ) -> Result<(), StoreError> {
        let thread = SessionKeys::new(token).conversation(conversation);
        let mut conn = self.connection().await?;
        let call = scripts::RenewLock { thread: &thread, message_id, lock_ttl: self.reply_lock_secs() };
        let _renewed: i32 = call.invocation().invoke_async(&mut conn).await?;
        Ok(())
    }

    /// Unlocks a session whose reply request could not be queued, so the person can retry.
    pub async fn release_reply_lock(
        &self,
        token: &Token,
        conversation: &ConversationId,
        message_id: &MessageId,
    ) -> Result<(), StoreError> {
        let thread = SessionKeys::new(token).conversation(conversation);
        let mut conn = self.connection().await?;
        let call = scripts::ReleaseLock { thread: &thread, message_id };
        let _released: i32 = call.invocation().invoke_async(&mut conn).await?;
        Ok(())
    }

    /// Asks whichever worker writes the reply to `message_id` to stop (it checks every
    /// [`STOP_POLL`] or so).
    pub async fn request_stop(
        &self,
        token: &Token,
        conversation: &ConversationId,
        message_id: &MessageId,
    ) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        let _: () = conn
            .set_ex(
                SessionKeys::new(token).conversation(conversation).stop,
                message_id.as_str(),
                self.reply_lock_secs(),
            )
            .await?;
        Ok(())
    }

    /// Whether the person asked to stop the reply to `message_id`.
    pub async fn stop_requested(
        &self,
        token: &Token,
        conversation: &ConversationId,
        message_id: &MessageId,
    ) -> Result<bool, StoreError> {
        let mut conn = self.connection().await?;
        let requested: Option<String> = conn.get(SessionKeys::new(token).conversation(conversation).stop).await?;
        Ok(requested.as_deref() == Some(message_id.as_str()))
    }
}
