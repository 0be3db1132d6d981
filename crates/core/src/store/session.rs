//! Sessions: creating one, and reading its history and its replies as they stand.
//!
//! A reply in progress is a `streaming` message in the history plus its log; the reads here fill
//! in its text so far from the log, whichever process writes it.

use chat_wire::{ChatMessage, ChatSession, MessageId, ReplyId, Token};
use redis::AsyncCommands;

use super::lua::{CREATE_SESSION, READ, SNAPSHOT};
use super::{decode, now_rfc3339, SessionKeys, Store, StoreError, Write};

/// How often a history read is repeated when replies begin while it reads.
const READ_ATTEMPTS: usize = 4;

impl Store {
    /// Creates a session for `name` under a fresh token.
    #[tracing::instrument(skip_all)]
    pub async fn create_session(&self, name: &str) -> Result<ChatSession, StoreError> {
        let token = crate::token::new_token();
        let session_start = now_rfc3339();
        let keys = SessionKeys::new(&token);
        let mut conn = self.connection().await?;
        let mut call = CREATE_SESSION.prepare_invoke();
        call.key(&keys.session).arg(name).arg(&session_start).arg(self.session_ttl.as_secs());
        // With REDIS_WAIT_REPLICAS, a token is handed out only once the replicas have its session.
        let _created: i32 = self.write_replicated(&mut conn, Write::Script(&call)).await?;
        Ok(ChatSession {
            token: token.expose().to_string(),
            name: name.to_string(),
            session_start,
            messages: Vec::new(),
        })
    }

    /// The session with its whole stored history, or `None` if unknown or expired.
    pub async fn history(&self, token: &Token) -> Result<Option<ChatSession>, StoreError> {
        self.read(token, 0).await
    }

    /// The session with only its last `n` messages (the model's context).
    pub async fn recent(&self, token: &Token, n: usize) -> Result<Option<ChatSession>, StoreError> {
        if n == 0 {
            return Ok(self.read(token, i64::MAX).await?.map(|mut s| {
                s.messages.clear();
                s
            }));
        }
        self.read(token, -(n as i64)).await
    }

    async fn read(&self, token: &Token, first: i64) -> Result<Option<ChatSession>, StoreError> {
        let keys = SessionKeys::new(token);
        let mut conn = self.connection().await?;
        type Read = (String, String, Vec<Option<String>>, Vec<(String, String, u64)>, Vec<String>);
        // The logs of replies in progress are keys too, declared once known: usually there is
        // none; a reply that began between two reads is declared on the next one.
        let mut streaming: Vec<String> = Vec::new();
        for _ in 0..READ_ATTEMPTS {
            let mut call = READ.prepare_invoke();
            call.key(&keys.session).key(&keys.order).key(&keys.messages).arg(first);
            for reply in &streaming {
                call.key(keys.log_of(reply)).arg(reply);
            }
            let reply: Option<Read> = call.invoke_async(&mut conn).await?;
            let Some((name, session_start, raw, live, undeclared)) = reply else { return Ok(None) };
            if !undeclared.is_empty() {
                streaming.extend(undeclared);
                continue;
            }
            let mut messages =
                raw.into_iter().flatten().map(|json| decode(&json)).collect::<Result<Vec<ChatMessage>, _>>()?;
            for (id, text, next_seq) in live {
                if let Some(reply) = messages.iter_mut().find(|m| m.id == id) {
                    reply.msg = text;
                    reply.next_seq = Some(next_seq);
                }
            }
            return Ok(Some(ChatSession { token: token.expose().to_string(), name, session_start, messages }));
        }
        Err(StoreError::Corrupt(format!("replies kept beginning while the history was read {READ_ATTEMPTS} times")))
    }

    /// A reply as it stands: the stored message, or for one still `streaming` its text so far
    /// with `next_seq` set. `None` if the session holds no such reply.
    pub async fn reply_snapshot(&self, token: &Token, reply_id: &ReplyId) -> Result<Option<ChatMessage>, StoreError> {
        let keys = SessionKeys::new(token);
        let mut conn = self.connection().await?;
        let found: Option<(String, String, u64)> =
            SNAPSHOT.key(&keys.messages).key(keys.log(reply_id)).arg(reply_id.as_str()).invoke_async(&mut conn).await?;
        let Some((json, text, next_seq)) = found else { return Ok(None) };
        let mut reply = decode(&json)?;
        if !reply.status.is_final() {
            reply.msg = text;
            reply.next_seq = Some(next_seq);
        }
        Ok(Some(reply))
    }

    /// Whether the session already holds a message with this id.
    pub async fn has_message(&self, token: &Token, message_id: &MessageId) -> Result<bool, StoreError> {
        let mut conn = self.connection().await?;
        Ok(conn.hexists(SessionKeys::new(token).messages, message_id.as_str()).await?)
    }
}
