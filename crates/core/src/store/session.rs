//! Sessions: creating and ending one, and reading a conversation's history and its replies as
//! they stand.
//!
//! A reply in progress is a `streaming` message in the history plus its log; the reads here fill
//! in its text so far from the log, whichever process writes it.

use chat_wire::{ChatMessage, ChatSession, ConnectionId, ConversationId, MessageId, ReplyId, Token};
use redis::AsyncCommands;

use super::{connection_ids, decode, keys, now_millis, now_rfc3339, scripts, SessionKeys, Store, StoreError, Write};

/// How often a history read is repeated when replies begin while it reads.
const READ_ATTEMPTS: usize = 4;

/// A page's `before` names no message of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownCursor;

/// Which messages a read returns.
struct Window<'a> {
    /// The first index of the history considered (0: all, -N: the last N).
    first: i64,
    /// Only messages before this one.
    before: Option<&'a str>,
    /// Most messages (0: no limit).
    limit: usize,
    /// Most stored bytes (0: no limit).
    bytes: usize,
}

impl Window<'_> {
    fn all() -> Self {
        Window { first: 0, before: None, limit: 0, bytes: 0 }
    }
}

impl Store {
    /// Creates a session for `name` under a fresh token.
    #[tracing::instrument(skip_all)]
    pub async fn create_session(&self, name: &str) -> Result<ChatSession, StoreError> {
        let token = crate::token::new_token();
        let session_start = now_rfc3339();
        let keys = SessionKeys::new(&token);
        let mut conn = self.connection().await?;
        let call = scripts::CreateSession {
            session: &keys,
            main: &keys.conversation(&ConversationId::main()),
            name,
            session_start: &session_start,
            ttl: self.session_ttl.as_secs(),
            now_ms: now_millis(),
        }
        .invocation();
        // With REDIS_WAIT_REPLICAS, a token is handed out only once the replicas have its session.
        let _created: i32 = self.write_replicated(&mut conn, Write::Script(&call)).await?;
        Ok(ChatSession {
            token: token.expose().to_string(),
            name: name.to_string(),
            session_start,
            messages: Vec::new(),
            has_more: false,
        })
    }

    /// Ends a session for good (the "New chat" of a client that knows no conversations): every
    /// conversation, reply in progress and connection mapping is deleted; its token opens nothing
    /// any more. A reply that begins while this runs leaves a log that expires with the session's
    /// TTL, and is refused when it would be stored. Nothing to do for an unknown token. Answers
    /// the connections the session had open, for the caller to close.
    #[tracing::instrument(skip_all, fields(session = %token.log_id()))]
    pub async fn revoke_session(&self, token: &Token) -> Result<Vec<ConnectionId>, StoreError> {
        let keys = SessionKeys::new(token);
        let mut conversations = Vec::new();
        for id in self.conversation_ids(token).await? {
            conversations.push((keys.conversation(&id), self.reply_logs(token, &id).await?));
        }
        let call = scripts::Revoke { session: &keys, conversations: &conversations }.invocation();
        let mut conn = self.connection().await?;
        // With REDIS_WAIT_REPLICAS, a failover cannot bring the session back.
        let connections: Vec<String> = self.write_replicated(&mut conn, Write::Script(&call)).await?;
        let connections = connection_ids(connections)?;
        for connection in &connections {
            let _deleted: usize = conn.del(keys::connection(connection)).await?;
        }
        Ok(connections)
    }

    /// The log of a conversation's reply in progress: a reply is written only while its
    /// conversation is locked for its question, so one `GET` finds it, however much the
    /// conversation holds. (A log whose writer died and whose lock expired is left to expire
    /// with the session's TTL.)
    pub(super) async fn reply_logs(&self, token: &Token, id: &ConversationId) -> Result<Vec<String>, StoreError> {
        let conversation = SessionKeys::new(token).conversation(id);
        let mut conn = self.connection().await?;
        let locked_for: Option<String> = conn.get(&conversation.lock).await?;
        Ok(locked_for.map(|question| conversation.log_of(&chat_wire::reply_id_for(&question))).into_iter().collect())
    }

    /// The session with a conversation's whole stored history, or `None` if unknown or expired.
    pub async fn history(
        &self,
        token: &Token,
        conversation: &ConversationId,
    ) -> Result<Option<ChatSession>, StoreError> {
        Ok(self.read(token, conversation, Window::all()).await?.map(|(session, _)| session))
    }

    /// One page of a conversation's history: the newest messages before `before` (the newest of all
    /// without it), at most `limit` of them (`None`: no count limit) and at most `bytes` of stored
    /// JSON (the newest message is returned whatever its size). `has_more` says whether older ones
    /// were left out. `None` if the session is unknown or expired; `Some(Err(()))` if `before`
    /// names no message of the session.
    pub async fn history_page(
        &self,
        token: &Token,
        conversation: &ConversationId,
        before: Option<&str>,
        limit: Option<usize>,
        bytes: usize,
    ) -> Result<Option<Result<ChatSession, UnknownCursor>>, StoreError> {
        let window = Window { first: 0, before, limit: limit.unwrap_or(0), bytes };
        let read = self.read(token, conversation, window).await?;
        Ok(read.map(|(session, found)| if found { Ok(session) } else { Err(UnknownCursor) }))
    }

    /// The session with only the last `n` messages of a conversation (the model's context).
    pub async fn recent(
        &self,
        token: &Token,
        conversation: &ConversationId,
        n: usize,
    ) -> Result<Option<ChatSession>, StoreError> {
        let first = if n == 0 { i64::MAX } else { -(n as i64) };
        Ok(self.read(token, conversation, Window { first, ..Window::all() }).await?.map(|(session, _)| session))
    }

    /// The session and the messages `window` selects; with whether `window.before` was found.
    async fn read(
        &self,
        token: &Token,
        conversation: &ConversationId,
        window: Window<'_>,
    ) -> Result<Option<(ChatSession, bool)>, StoreError> {
        let keys = SessionKeys::new(token);
        let thread = keys.conversation(conversation);
        let mut conn = self.connection().await?;
        type Answer = (
            String,
            String,
            Vec<Option<String>>,
            Vec<(String, String, u64)>,
            Vec<String>,
            u8,
            u8,
            Vec<(String, String)>,
        );
        // The logs of replies in progress are keys too, declared once known: usually there is
        // none; a reply that began between two reads is declared on the next one.
        let mut streaming: Vec<String> = Vec::new();
        for _ in 0..READ_ATTEMPTS {
            let call = scripts::Read {
                session: &keys,
                thread: &thread,
                first: window.first,
                before: window.before.unwrap_or_default(),
                limit: window.limit,
                budget: window.bytes,
                streaming: &streaming,
            };
            let reply: Option<Answer> = call.invocation().invoke_async(&mut conn).await?;
            let Some((name, session_start, raw, live, undeclared, more, found, versions)) = reply else {
                return Ok(None);
            };
            if !undeclared.is_empty() {
                streaming.extend(undeclared);
                continue;
            }
            let mut messages =
                raw.into_iter().flatten().map(|json| decode(&json)).collect::<Result<Vec<ChatMessage>, _>>()?;
            for (id, list) in versions {
                if let Some(message) = messages.iter_mut().find(|m| m.id == id) {
                    message.versions = Some(list.split(' ').map(str::to_string).collect());
                }
            }
            for (id, text, next_seq) in live {
                if let Some(reply) = messages.iter_mut().find(|m| m.id == id) {
                    reply.msg = text;
                    reply.next_seq = Some(next_seq);
                }
            }
            let session =
                ChatSession { token: token.expose().to_string(), name, session_start, messages, has_more: more == 1 };
            return Ok(Some((session, found == 1)));
        }
        Err(StoreError::Corrupt(format!("replies kept beginning while the history was read {READ_ATTEMPTS} times")))
    }

    /// A reply as it stands: the stored message, or for one still `streaming` its text so far
    /// with `next_seq` set. `None` if the session holds no such reply.
    pub async fn reply_snapshot(
        &self,
        token: &Token,
        conversation: &ConversationId,
        reply_id: &ReplyId,
    ) -> Result<Option<ChatMessage>, StoreError> {
        let thread = SessionKeys::new(token).conversation(conversation);
        let mut conn = self.connection().await?;
        let call = scripts::Snapshot { thread: &thread, reply_id };
        let found: Option<(String, String, u64)> = call.invocation().invoke_async(&mut conn).await?;
        let Some((json, text, next_seq)) = found else { return Ok(None) };
        let mut reply = decode(&json)?;
        if !reply.status.is_final() {
            reply.msg = text;
            reply.next_seq = Some(next_seq);
        }
        Ok(Some(reply))
    }

    /// The messages a conversation keeps besides `shown` (the path shown): its other versions,
    /// oldest first.
    pub async fn other_versions(
        &self,
        token: &Token,
        conversation: &ConversationId,
        shown: &[ChatMessage],
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let mut conn = self.connection().await?;
        let stored: Vec<String> = conn.hvals(SessionKeys::new(token).conversation(conversation).messages).await?;
        let mut others = stored
            .iter()
            .map(|json| decode(json))
            .filter(|m| m.as_ref().map_or(true, |m| !shown.iter().any(|s| s.id == m.id)))
            .collect::<Result<Vec<_>, _>>()?;
        others.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
        Ok(others)
    }

    /// Whether the conversation already holds a message with this id.
    pub async fn has_message(
        &self,
        token: &Token,
        conversation: &ConversationId,
        message_id: &MessageId,
    ) -> Result<bool, StoreError> {
        let mut conn = self.connection().await?;
        Ok(conn.hexists(SessionKeys::new(token).conversation(conversation).messages, message_id.as_str()).await?)
    }
}
