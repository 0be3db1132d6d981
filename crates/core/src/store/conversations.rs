//! A session's conversations: the list (most recently active first), creating, titling and
//! deleting one, and keeping them all alive as long as the session.
//!
//! Every session has `main`, its first conversation, which a client that knows nothing of
//! conversations uses without naming it; the others are created on request. The session's
//! "current" conversation, for such clients, is the most recently active one.

use chat_wire::{Conversation, ConversationId, ConversationList, TitleSource, Token};
use redis::AsyncCommands;

use super::{millis_rfc3339, now_millis, now_rfc3339, rfc3339_millis, scripts};
use super::{Refusal, SessionKeys, Step, Store, StoreError, Write};

/// What a conversation may carry of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// The model it is answered by.
    Model,
    /// The system prompt it is answered with.
    Instructions,
}

/// A conversation's meta hash as read: title, who wrote it, creation.
type Meta = (Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);
const META_FIELDS: [&str; 5] = ["title", "titled_by", "created", "model", "instructions"];

impl Store {
    /// The session's conversations, most recently active first; `None` for an unknown or expired
    /// session.
    pub async fn conversations(&self, token: &Token) -> Result<Option<ConversationList>, StoreError> {
        let keys = SessionKeys::new(token);
        let mut conn = self.connection().await?;
        let session_start: Option<String> = conn.hget(&keys.session, "session_start").await?;
        let Some(session_start) = session_start else { return Ok(None) };
        let listed: Vec<(String, f64)> = conn.zrevrange_withscores(&keys.convs, 0, -1).await?;
        let mut listed: Vec<(ConversationId, i64)> = listed
            .into_iter()
            .filter_map(|(id, score)| ConversationId::parse(&id).ok().map(|id| (id, score as i64)))
            .collect();
        if listed.is_empty() {
            // A session from before conversations, or one whose every conversation was deleted:
            // `main` stands, as it always does.
            listed.push((ConversationId::main(), rfc3339_millis(&session_start)));
        }
        let mut pipe = redis::pipe();
        for (id, _) in &listed {
            pipe.cmd("HMGET").arg(keys.conversation(id).meta).arg(&META_FIELDS[..]);
        }
        let metas: Vec<Meta> = pipe.query_async(&mut conn).await?;
        let conversations: Vec<Conversation> = listed
            .iter()
            .zip(metas)
            .map(|((id, activity), meta)| summary(id, *activity, meta, &session_start))
            .collect();
        let current = conversations[0].id.clone();
        Ok(Some(ConversationList { current, conversations }))
    }

    /// One conversation of the session, or `None` if the session or the conversation is gone.
    pub async fn conversation(&self, token: &Token, id: &ConversationId) -> Result<Option<Conversation>, StoreError> {
        let keys = SessionKeys::new(token);
        let mut conn = self.connection().await?;
        let (session_start, activity): (Option<String>, Option<f64>) = redis::pipe()
            .hget(&keys.session, "session_start")
            .zscore(&keys.convs, id.as_str())
            .query_async(&mut conn)
            .await?;
        let Some(session_start) = session_start else { return Ok(None) };
        let activity = match activity {
            Some(score) => score as i64,
            None if id.is_main() => rfc3339_millis(&session_start),
            None => return Ok(None),
        };
        let meta: Meta =
            redis::cmd("HMGET").arg(keys.conversation(id).meta).arg(&META_FIELDS[..]).query_async(&mut conn).await?;
        Ok(Some(summary(id, activity, meta, &session_start)))
    }

    /// The conversation a client that names none acts on: the most recently active.
    pub async fn current_conversation(&self, token: &Token) -> Result<ConversationId, StoreError> {
        let mut conn = self.connection().await?;
        let top: Vec<String> = conn.zrevrange(SessionKeys::new(token).convs, 0, 0).await?;
        Ok(top.first().and_then(|id| ConversationId::parse(id).ok()).unwrap_or_else(ConversationId::main))
    }

    /// Adds conversation `id` to the session, as its most recently active. Creating an id that
    /// exists answers it as it stands (a client's retry). Refused with
    /// [`Refusal::TooManyConversations`] at `MAX_CONVERSATIONS_PER_SESSION`.
    #[tracing::instrument(skip_all, fields(conversation = %id))]
    pub async fn create_conversation(
        &self,
        token: &Token,
        id: &ConversationId,
    ) -> Result<Step<Conversation>, StoreError> {
        let keys = SessionKeys::new(token);
        let mut conn = self.connection().await?;
        let call = scripts::CreateConversation {
            session: &keys,
            thread: &keys.conversation(id),
            conversation: id,
            now_ms: now_millis(),
            now: &now_rfc3339(),
            ttl: self.session_ttl.as_secs(),
            max: self.max_conversations,
        }
        .invocation();
        let status: String = self.write_replicated(&mut conn, Write::Script(&call)).await?;
        match status.as_str() {
            "created" | "exists" => {}
            "full" => return Ok(Err(Refusal::TooManyConversations)),
            other => return Ok(Err(Refusal::from_status("create_conversation", other, 0)?)),
        }
        match self.conversation(token, id).await? {
            Some(conversation) => Ok(Ok(conversation)),
            // Deleted (or the session ended) the moment after.
            None => Ok(Err(Refusal::ConversationDeleted)),
        }
    }

    /// Titles a conversation: the person's title always, the model's only over the question's
    /// start. Answers the conversation as it now stands ([`Refusal::ConversationDeleted`] if it is
    /// gone).
    pub async fn title_conversation(
        &self,
        token: &Token,
        id: &ConversationId,
        title: &str,
        by: TitleSource,
    ) -> Result<Step<Conversation>, StoreError> {
        let keys = SessionKeys::new(token);
        let by = match by {
            TitleSource::Person => "person",
            TitleSource::Model => "model",
            other => return Err(StoreError::Corrupt(format!("a title cannot be set as {other:?}"))),
        };
        let mut conn = self.connection().await?;
        let call = scripts::TitleConversation {
            session: &keys,
            thread: &keys.conversation(id),
            conversation: id,
            title,
            by,
            now_ms: now_millis(),
            ttl: self.session_ttl.as_secs(),
        }
        .invocation();
        let status: String = self.write_replicated(&mut conn, Write::Script(&call)).await?;
        match status.as_str() {
            "titled" | "kept" => {}
            other => return Ok(Err(Refusal::from_status("title_conversation", other, 0)?)),
        }
        Ok(self.conversation(token, id).await?.ok_or(Refusal::ConversationDeleted))
    }

    /// Sets a conversation's `model` or `instructions` (`""`: back to the deployment's).
    /// Answers the conversation as it now stands ([`Refusal::ConversationDeleted`] if it is gone).
    pub async fn configure_conversation(
        &self,
        token: &Token,
        id: &ConversationId,
        field: Setting,
        value: &str,
    ) -> Result<Step<Conversation>, StoreError> {
        let keys = SessionKeys::new(token);
        let mut conn = self.connection().await?;
        let call = scripts::ConfigureConversation {
            session: &keys,
            thread: &keys.conversation(id),
            conversation: id,
            field: match field {
                Setting::Model => "model",
                Setting::Instructions => "instructions",
            },
            value,
            ttl: self.session_ttl.as_secs(),
        }
        .invocation();
        let status: String = self.write_replicated(&mut conn, Write::Script(&call)).await?;
        if status != "set" {
            return Ok(Err(Refusal::from_status("configure_conversation", &status, 0)?));
        }
        Ok(self.conversation(token, id).await?.ok_or(Refusal::ConversationDeleted))
    }

    /// Deletes a conversation: it leaves the list, its messages and replies in progress go at
    /// once (a worker writing one stops at its next delta). Deleting `main` empties it.
    #[tracing::instrument(skip_all, fields(conversation = %id))]
    pub async fn delete_conversation(&self, token: &Token, id: &ConversationId) -> Result<Step<()>, StoreError> {
        let keys = SessionKeys::new(token);
        let logs = self.reply_logs(token, id).await?;
        let call = scripts::DeleteConversation {
            session: &keys,
            thread: &keys.conversation(id),
            logs: &logs,
            conversation: id,
        }
        .invocation();
        let mut conn = self.connection().await?;
        let status: String = self.write_replicated(&mut conn, Write::Script(&call)).await?;
        match status.as_str() {
            "deleted" => Ok(Ok(())),
            other => Ok(Err(Refusal::from_status("delete_conversation", other, 0)?)),
        }
    }

    /// Keeps the list and every conversation of the session alive as long as the session: a
    /// question, a regeneration or a reply in one keeps the others alive. They are given the
    /// session's lifetime and a tenth more, and `extended` marks that for that tenth: until it
    /// ends, a call costs one `EXISTS`, however many conversations the session holds, and an
    /// extended conversation never expires before its session (at most a tenth of the lifetime
    /// after it).
    pub async fn extend_conversations(&self, token: &Token) -> Result<(), StoreError> {
        let keys = SessionKeys::new(token);
        let mut conn = self.connection().await?;
        if conn.exists(&keys.extended).await? {
            return Ok(());
        }
        let ttl_ms = self.session_ttl.as_millis() as i64;
        let margin_ms = (ttl_ms / 10).max(1);
        let ids: Vec<String> = conn.zrange(&keys.convs, 0, -1).await?;
        let mut pipe = redis::pipe();
        pipe.pexpire(&keys.convs, ttl_ms + margin_ms).ignore();
        for id in ids.iter().filter_map(|id| ConversationId::parse(id).ok()) {
            for key in keys.conversation(&id).lasting() {
                pipe.pexpire(key, ttl_ms + margin_ms).ignore();
            }
        }
        pipe.cmd("SET").arg(&keys.extended).arg(1).arg("PX").arg(margin_ms).ignore();
        let () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// The session's conversation ids, `main` included even when unlisted.
    pub(super) async fn conversation_ids(&self, token: &Token) -> Result<Vec<ConversationId>, StoreError> {
        let mut conn = self.connection().await?;
        let listed: Vec<String> = conn.zrange(SessionKeys::new(token).convs, 0, -1).await?;
        let mut ids: Vec<ConversationId> = listed.iter().filter_map(|id| ConversationId::parse(id).ok()).collect();
        if !ids.iter().any(ConversationId::is_main) {
            ids.push(ConversationId::main());
        }
        Ok(ids)
    }
}

/// A conversation's summary from its listing and meta hash.
fn summary(id: &ConversationId, activity_ms: i64, meta: Meta, session_start: &str) -> Conversation {
    let (title, titled_by, created, model, instructions) = meta;
    let titled_by = match titled_by.as_deref() {
        Some("question") => TitleSource::Question,
        Some("model") => TitleSource::Model,
        Some("person") => TitleSource::Person,
        _ => TitleSource::None,
    };
    Conversation {
        id: id.to_string(),
        title: title.unwrap_or_default(),
        titled_by,
        created: created.unwrap_or_else(|| session_start.to_string()),
        last_activity: millis_rfc3339(activity_ms),
        model: model.filter(|m| !m.is_empty()),
        instructions: instructions.filter(|i| !i.is_empty()),
    }
}
