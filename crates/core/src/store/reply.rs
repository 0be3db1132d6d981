//! The reply lifecycle: one home for every step of a reply, from the question to the stored answer.
//!
//! ```text
//!                 accept                 begin                 append (xN)
//!   question ─────────────▶ accepted ─────────────▶ streaming ─────────────▶ streaming
//!   (lock taken, message     (lock held,            (placeholder in the       │
//!    stored, rate counted)    entry queued)          history, log begun)      │ store
//!                               ▲                        │                    ▼
//!                               │ regenerate             │ begin again   stored: done | stopped | error
//!                               │ (lock taken,           │ (a worker     (lock released, log dropped)
//!                               │  old reply removed)    │  thought dead)
//!                               └──── stored ◀───────────▼
//!                                                   taken over: the new writer logs a restart
//!                                                   entry; the old writer's next append or
//!                                                   store answers Refusal::TakenOver
//! ```
//!
//! The session's lock (`chat:{T}:lock`, holding the user message id) is taken by accept or
//! regenerate, renewed while the reply is written, and released by store (or by the message
//! function when the request could not be queued), always compared with the reply's message id;
//! [`super::lock`] renews and releases it, with the stop request and the queued mark.
//! Every step answers `Ok(T)` or one [`Refusal`]; Redis failures are [`StoreError`]s.

use std::time::Duration;

use chat_wire::{ChatMessage, ConnectionId, ConversationId, MessageId, Token};

use chat_wire::text::title_from;

use super::{connection_ids, encode, now_millis, now_rfc3339, scripts, SessionKeys, Store, StoreError, Write};
use redis::AsyncCommands;

/// How often a worker writing a reply checks whether it was asked to stop.
pub const STOP_POLL: Duration = Duration::from_millis(100);

/// Why a lifecycle step did not happen; nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The session is unknown or expired.
    SessionExpired,
    /// Another reply is still being written for this session.
    ReplyInProgress,
    /// Over `MESSAGES_PER_SESSION_PER_WINDOW`. Try again after this long.
    RateLimited(Duration),
    /// A message with this id is already stored (a client's retry).
    Duplicate,
    /// The reply was begun from another request for it, whose entry is still pending (a question
    /// queued twice): this request needs nothing more.
    BeingAnswered,
    /// The reply is already stored (a reclaimed entry that was in fact answered).
    AlreadyStored,
    /// Another worker took this reply over (this one was thought dead): stop writing it.
    TakenOver,
    /// No such question in the session.
    UnknownMessage,
    /// Only the last question can be answered again.
    NotLastQuestion,
    /// The conversation is not the session's (never created, or deleted, with its questions).
    ConversationDeleted,
    /// The session holds `MAX_CONVERSATIONS_PER_SESSION` conversations already.
    TooManyConversations,
    /// The place already has `MAX_VERSIONS_PER_MESSAGE` versions.
    TooManyVersions,
}

impl Refusal {
    /// Reads a script's status word (every lifecycle script answers with one).
    pub(super) fn from_status(script: &str, status: &str, wait_ms: u64) -> Result<Refusal, StoreError> {
        Ok(match status {
            "expired" => Refusal::SessionExpired,
            "busy" => Refusal::ReplyInProgress,
            "rate_limited" => Refusal::RateLimited(Duration::from_millis(wait_ms)),
            "duplicate" => Refusal::Duplicate,
            "in_progress" => Refusal::BeingAnswered,
            "exists" => Refusal::AlreadyStored,
            "taken_over" => Refusal::TakenOver,
            "unknown" => Refusal::UnknownMessage,
            "not_last" => Refusal::NotLastQuestion,
            "gone" => Refusal::ConversationDeleted,
            "full" => Refusal::TooManyConversations,
            "too_many_versions" => Refusal::TooManyVersions,
            other => return Err(StoreError::Corrupt(format!("the {script} script answered {other:?}"))),
        })
    }
}

/// A step's result: done (with what it read), or refused.
pub type Step<T> = Result<T, Refusal>;

/// A reply that may now be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begun {
    /// The seq of the first delta to write.
    pub next_seq: u64,
    /// True when another worker had begun this reply and died: clients must drop its text.
    pub restarted: bool,
    /// The session's live connections.
    pub connections: Vec<ConnectionId>,
}

/// A delta in the reply's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// The person asked to stop this reply.
    pub stop_requested: bool,
    /// The session's live connections, read in the same step as the append: a connection bound
    /// after it reads the delta from the log instead.
    pub connections: Vec<ConnectionId>,
}

impl Store {
    /// Stores a user message and locks the session for its reply, in one atomic step that also
    /// counts it against the session's message rate (a resent duplicate is not counted).
    ///
    /// `Ok(())` means the reply must now be queued: for a new question, and for a resent one that
    /// was stored but never queued (its first attempt died between the two steps, or its queueing
    /// failed), which is the session's last question, unanswered, and not marked by
    /// [`Store::mark_queued`]. Other resends answer [`Refusal::Duplicate`].
    #[tracing::instrument(skip_all, fields(message_id = %message.id))]
    pub async fn accept_user_message(
        &self,
        token: &Token,
        conversation: &ConversationId,
        message: &ChatMessage,
    ) -> Result<Step<()>, StoreError> {
        self.accept(token, conversation, message, None).await
    }

    /// Like [`Store::accept_user_message`], for a question that edits the earlier question
    /// `edits`: it takes that question's place as a new version, and the old question with
    /// everything after it is set aside as the other ([`Refusal::UnknownMessage`] if the path
    /// holds no such question of the person, [`Refusal::TooManyVersions`] at
    /// `MAX_VERSIONS_PER_MESSAGE`).
    #[tracing::instrument(skip_all, fields(message_id = %message.id))]
    pub async fn accept_edit(
        &self,
        token: &Token,
        conversation: &ConversationId,
        message: &ChatMessage,
        edits: &MessageId,
    ) -> Result<Step<()>, StoreError> {
        self.accept(token, conversation, message, Some(edits)).await
    }

    async fn accept(
        &self,
        token: &Token,
        conversation: &ConversationId,
        message: &ChatMessage,
        edits: Option<&MessageId>,
    ) -> Result<Step<()>, StoreError> {
        let keys = SessionKeys::new(token);
        let thread = keys.conversation(conversation);
        let mut conn = self.connection().await?;
        let json = encode(message)?;
        let call = scripts::Accept {
            session: &keys,
            thread: &thread,
            message_id: &message_id_of(message)?,
            json: &json,
            ttl: self.session_ttl.as_secs(),
            lock_ttl: self.reply_lock_secs(),
            max_history: self.max_history,
            per_window: self.messages_per_window,
            window_ms: self.rate_window.as_millis() as u64,
            max_bytes: self.max_conversation_bytes,
            conversation,
            now_ms: now_millis(),
            now: &now_rfc3339(),
            title: &title_from(&message.msg, self.max_title_chars),
            edits,
            max_versions: self.max_versions,
        }
        .invocation();
        let (status, wait_ms): (String, u64) = self.write_replicated(&mut conn, Write::Script(&call)).await?;
        if status == "stored" {
            // The question is stored whatever this answers: a session over its bytes is trimmed
            // at its next question if not now.
            if let Err(error) = self.keep_within_bytes(&keys).await {
                tracing::warn!(%error, "the session's oldest messages were not trimmed");
            }
        }
        match status.as_str() {
            "stored" | "unqueued" => Ok(Ok(())),
            other => Ok(Err(Refusal::from_status("accept", other, wait_ms)?)),
        }
    }

    /// Drops the session's oldest messages, from the least recently active conversation on,
    /// while it stores more than `MAX_HISTORY_BYTES`; a conversation's last question and reply
    /// stay. Each call drops a bounded number of messages of one conversation.
    async fn keep_within_bytes(&self, keys: &SessionKeys) -> Result<(), StoreError> {
        const DROPS_PER_CALL: usize = 100;
        if self.max_history_bytes == 0 {
            return Ok(());
        }
        let mut conn = self.connection().await?;
        let stored: Option<usize> = conn.hget(&keys.session, "stored_bytes").await?;
        if stored.unwrap_or_default() <= self.max_history_bytes {
            return Ok(());
        }
        // Least recently active first; at most MAX_CONVERSATIONS_PER_SESSION of them.
        let listed: Vec<String> = conn.zrange(&keys.convs, 0, -1).await?;
        for id in listed.iter().filter_map(|id| ConversationId::parse(id).ok()) {
            let thread = keys.conversation(&id);
            loop {
                let call = scripts::TrimSession {
                    session: keys,
                    thread: &thread,
                    max_bytes: self.max_history_bytes,
                    max_drops: DROPS_PER_CALL,
                };
                let (stored, dropped): (usize, usize) = call.invocation().invoke_async(&mut conn).await?;
                if stored <= self.max_history_bytes {
                    return Ok(());
                }
                if dropped < DROPS_PER_CALL {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Starts writing a reply: records it as `streaming` in the history (or, when a dead worker
    /// had begun it, appends a restart entry to its log), and returns the session's connections.
    /// Only a `redelivered` entry may take a begun reply over: a first delivery finding one is a
    /// second request for it ([`Refusal::BeingAnswered`]).
    #[tracing::instrument(skip_all, fields(reply_id = %placeholder.id))]
    pub async fn begin_reply(
        &self,
        token: &Token,
        conversation: &ConversationId,
        placeholder: &ChatMessage,
        redelivered: bool,
    ) -> Result<Step<Begun>, StoreError> {
        let keys = SessionKeys::new(token);
        let thread = keys.conversation(conversation);
        let reply_id = reply_id_of(placeholder)?;
        let mut conn = self.connection().await?;
        let call = scripts::BeginReply {
            session: &keys,
            thread: &thread,
            reply_id: &reply_id,
            message_id: placeholder.reply_to.as_deref().unwrap_or_default(),
            placeholder: &encode(placeholder)?,
            ttl: self.session_ttl.as_secs(),
            max_history: self.max_history,
            redelivered,
            max_bytes: self.max_conversation_bytes,
        };
        let (status, next_seq, connections): (String, u64, Vec<String>) =
            call.invocation().invoke_async(&mut conn).await?;
        match status.as_str() {
            "new" | "restart" => {
                Ok(Ok(Begun { next_seq, restarted: status == "restart", connections: connection_ids(connections)? }))
            }
            other => Ok(Err(Refusal::from_status("begin", other, 0)?)),
        }
    }

    /// Appends delta `seq` to the log of the reply to `reply_to`; in the same round trip, reads
    /// whether the person asked to stop and which connections to send the delta to.
    pub async fn append_delta(
        &self,
        token: &Token,
        conversation: &ConversationId,
        reply_to: &MessageId,
        seq: u64,
        text: &str,
    ) -> Result<Step<Logged>, StoreError> {
        let keys = SessionKeys::new(token);
        let thread = keys.conversation(conversation);
        let mut conn = self.connection().await?;
        let call = scripts::AppendDelta {
            session: &keys,
            thread: &thread,
            message_id: reply_to,
            seq,
            text,
            ttl: self.session_ttl.as_secs(),
        };
        let (status, stop, connections): (String, u8, Vec<String>) = call.invocation().invoke_async(&mut conn).await?;
        match status.as_str() {
            "logged" => Ok(Ok(Logged { stop_requested: stop == 1, connections: connection_ids(connections)? })),
            other => Ok(Err(Refusal::from_status("append", other, 0)?)),
        }
    }

    /// Stores a finished reply once, whatever the number of attempts, in place of its `streaming`
    /// placeholder; drops its log and unlocks the session. Answers the session's connections.
    /// `next_seq` is the seq after the writer's last logged delta: a log that moved past it
    /// belongs to a worker that took the reply over.
    #[tracing::instrument(skip_all, fields(reply_id = %reply.id))]
    pub async fn store_reply(
        &self,
        token: &Token,
        conversation: &ConversationId,
        reply: &ChatMessage,
        user_message_id: &MessageId,
        next_seq: u64,
    ) -> Result<Step<Vec<ConnectionId>>, StoreError> {
        let keys = SessionKeys::new(token);
        let thread = keys.conversation(conversation);
        let reply_id = reply_id_of(reply)?;
        let mut conn = self.connection().await?;
        let call = scripts::StoreReply {
            session: &keys,
            thread: &thread,
            reply_id: &reply_id,
            message_id: user_message_id,
            json: &encode(reply)?,
            ttl: self.session_ttl.as_secs(),
            max_history: self.max_history,
            next_seq,
            max_bytes: self.max_conversation_bytes,
        }
        .invocation();
        // Not acknowledged (the caller's XACK) before the replicas have it.
        let (status, connections): (String, Vec<String>) =
            self.write_replicated(&mut conn, Write::Script(&call)).await?;
        match status.as_str() {
            "stored" => Ok(Ok(connection_ids(connections)?)),
            other => Ok(Err(Refusal::from_status("store", other, 0)?)),
        }
    }

    /// Removes the last question's reply and locks the session so the question is answered again.
    #[tracing::instrument(skip_all, fields(message_id = %message_id))]
    pub async fn regenerate(
        &self,
        token: &Token,
        conversation: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Step<()>, StoreError> {
        let keys = SessionKeys::new(token);
        let thread = keys.conversation(conversation);
        let mut conn = self.connection().await?;
        let call = scripts::RegenerateReply {
            session: &keys,
            thread: &thread,
            message_id,
            ttl: self.session_ttl.as_secs(),
            lock_ttl: self.reply_lock_secs(),
            max_versions: self.max_versions,
        }
        .invocation();
        let status: String = self.write_replicated(&mut conn, Write::Script(&call)).await?;
        match status.as_str() {
            "ready" => Ok(Ok(())),
            other => Ok(Err(Refusal::from_status("regenerate", other, 0)?)),
        }
    }

    /// Shows the version of a place whose first message is `first`: the path from that place on
    /// is set aside and that version's path takes its place. [`Refusal::ReplyInProgress`] while a
    /// reply is written in the conversation, [`Refusal::UnknownMessage`] for an id that is no
    /// version on the path shown.
    pub async fn switch_version(
        &self,
        token: &Token,
        conversation: &ConversationId,
        first: &str,
    ) -> Result<Step<()>, StoreError> {
        let thread = SessionKeys::new(token).conversation(conversation);
        let mut conn = self.connection().await?;
        let call = scripts::SwitchVersion { thread: &thread, first, ttl: self.session_ttl.as_secs() }.invocation();
        let status: String = self.write_replicated(&mut conn, Write::Script(&call)).await?;
        match status.as_str() {
            "switched" => Ok(Ok(())),
            other => Ok(Err(Refusal::from_status("switch_version", other, 0)?)),
        }
    }
}

/// A user message's id, checked.
fn message_id_of(message: &ChatMessage) -> Result<MessageId, StoreError> {
    MessageId::parse(&message.id).map_err(|e| StoreError::Corrupt(format!("a user message carries {e}")))
}

/// A reply message's id, checked: only ids derived from a user message are replies.
fn reply_id_of(reply: &ChatMessage) -> Result<chat_wire::ReplyId, StoreError> {
    reply
        .reply_to
        .as_deref()
        .and_then(|to| MessageId::parse(to).ok())
        .map(|to| to.reply_id())
        .filter(|id| id.as_str() == reply.id)
        .ok_or_else(|| StoreError::Corrupt(format!("{:?} is not the reply to its reply_to", reply.id)))
}
