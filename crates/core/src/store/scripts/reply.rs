//! The reply lifecycle's scripts, which `store/reply.rs` calls.

use chat_wire::{ConversationId, MessageId, ReplyId};
use redis::ScriptInvocation;

use crate::store::lua::{
    ACCEPT, APPEND_DELTA, BEGIN_REPLY, REGENERATE, RELEASE_LOCK, RENEW_LOCK, STORE_REPLY, SWITCH_VERSION,
};
use crate::store::{ConversationKeys, SessionKeys};

/// `accept.lua`: stores a question and locks its conversation for its reply.
pub(in crate::store) struct Accept<'a> {
    pub session: &'a SessionKeys,
    pub thread: &'a ConversationKeys,
    /// The question's id (its reply's id derives from it).
    pub message_id: &'a MessageId,
    /// The question, as stored.
    pub json: &'a str,
    /// The session's TTL, seconds.
    pub ttl: u64,
    /// The reply lock's TTL, seconds.
    pub lock_ttl: u64,
    pub max_history: usize,
    /// Questions per rate window (0: no limit).
    pub per_window: u32,
    pub window_ms: u64,
    /// Most stored bytes (0: no limit).
    pub max_bytes: usize,
    pub conversation: &'a ConversationId,
    pub now_ms: i64,
    /// Now, RFC 3339.
    pub now: &'a str,
    /// The title from the question's start, for an untitled conversation.
    pub title: &'a str,
    /// The earlier question this one edits.
    pub edits: Option<&'a MessageId>,
    pub max_versions: usize,
}

impl Accept<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let (keys, thread) = (self.session, self.thread);
        let mut call = ACCEPT.prepare_invoke();
        call.key(&keys.session)
            .key(&thread.order)
            .key(&thread.messages)
            .key(&thread.lock)
            .key(&keys.conns)
            .key(&keys.rate)
            .key(&thread.queued)
            .key(&keys.convs)
            .key(&thread.meta)
            .key(&thread.versions)
            .key(&thread.tails)
            .arg(self.message_id.as_str())
            .arg(self.json)
            .arg(self.ttl)
            .arg(self.lock_ttl)
            .arg(self.max_history)
            .arg(self.per_window)
            .arg(self.window_ms)
            .arg(self.message_id.reply_id().as_str())
            .arg(self.max_bytes)
            .arg(self.conversation.as_str())
            .arg(self.now_ms)
            .arg(self.now)
            .arg(self.title)
            .arg(self.edits.map(MessageId::as_str).unwrap_or_default())
            .arg(self.max_versions);
        call
    }
}

/// `begin_reply.lua`: records a reply as `streaming`, or restarts one a dead worker had begun.
pub(in crate::store) struct BeginReply<'a> {
    pub session: &'a SessionKeys,
    pub thread: &'a ConversationKeys,
    /// The reply (its log derives from it).
    pub reply_id: &'a ReplyId,
    /// The question it answers.
    pub message_id: &'a str,
    /// The `streaming` placeholder, as stored.
    pub placeholder: &'a str,
    /// The session's TTL, seconds.
    pub ttl: u64,
    pub max_history: usize,
    /// The entry was delivered before (its worker may have died).
    pub redelivered: bool,
    /// Most stored bytes (0: no limit).
    pub max_bytes: usize,
}

impl BeginReply<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let (keys, thread) = (self.session, self.thread);
        let mut call = BEGIN_REPLY.prepare_invoke();
        call.key(&keys.session)
            .key(&thread.order)
            .key(&thread.messages)
            .key(&keys.conns)
            .key(thread.log(self.reply_id))
            .key(&thread.meta)
            .arg(self.reply_id.as_str())
            .arg(self.placeholder)
            .arg(self.ttl)
            .arg(self.max_history)
            .arg(if self.redelivered { "1" } else { "0" })
            .arg(self.max_bytes)
            .arg(self.message_id);
        call
    }
}

/// `append_delta.lua`: logs a delta of a reply; reads whether to stop and where to send it.
pub(in crate::store) struct AppendDelta<'a> {
    pub session: &'a SessionKeys,
    pub thread: &'a ConversationKeys,
    /// The question the reply answers (its log and id derive from it).
    pub message_id: &'a MessageId,
    pub seq: u64,
    pub text: &'a str,
    /// The session's TTL, seconds.
    pub ttl: u64,
}

impl AppendDelta<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let reply_id = self.message_id.reply_id();
        let mut call = APPEND_DELTA.prepare_invoke();
        call.key(self.thread.log(&reply_id))
            .key(&self.session.conns)
            .key(&self.thread.stop)
            .key(&self.thread.messages)
            .arg(self.seq)
            .arg(self.text)
            .arg(self.ttl)
            .arg(self.message_id.as_str())
            .arg(reply_id.as_str());
        call
    }
}

/// `store_reply.lua`: stores a finished reply once, in place of its placeholder.
pub(in crate::store) struct StoreReply<'a> {
    pub session: &'a SessionKeys,
    pub thread: &'a ConversationKeys,
    /// The reply (its log derives from it).
    pub reply_id: &'a ReplyId,
    /// The question it answers.
    pub message_id: &'a MessageId,
    /// The reply, as stored.
    pub json: &'a str,
    /// The session's TTL, seconds.
    pub ttl: u64,
    pub max_history: usize,
    /// The seq after the writer's last logged delta.
    pub next_seq: u64,
    /// Most stored bytes (0: no limit).
    pub max_bytes: usize,
}

impl StoreReply<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let (keys, thread) = (self.session, self.thread);
        let mut call = STORE_REPLY.prepare_invoke();
        call.key(&keys.session)
            .key(&thread.order)
            .key(&thread.messages)
            .key(&thread.lock)
            .key(&keys.conns)
            .key(thread.log(self.reply_id))
            .key(&thread.meta)
            .arg(self.reply_id.as_str())
            .arg(self.json)
            .arg(self.ttl)
            .arg(self.message_id.as_str())
            .arg(self.max_history)
            .arg(self.next_seq)
            .arg(self.max_bytes);
        call
    }
}

/// `regenerate.lua`: removes the last question's reply (a finished one stays, as a version) and
/// locks the conversation for the new one.
pub(in crate::store) struct RegenerateReply<'a> {
    pub session: &'a SessionKeys,
    pub thread: &'a ConversationKeys,
    /// The question answered again (its reply's log and id derive from it).
    pub message_id: &'a MessageId,
    /// The session's TTL, seconds.
    pub ttl: u64,
    /// The reply lock's TTL, seconds.
    pub lock_ttl: u64,
    pub max_versions: usize,
}

impl RegenerateReply<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let (keys, thread) = (self.session, self.thread);
        let reply_id = self.message_id.reply_id();
        let mut call = REGENERATE.prepare_invoke();
        call.key(&keys.session)
            .key(&thread.order)
            .key(&thread.messages)
            .key(&thread.lock)
            .key(thread.log(&reply_id))
            .key(&thread.stop)
            .key(&thread.queued)
            .key(&thread.meta)
            .key(&thread.versions)
            .key(&thread.tails)
            .arg(self.message_id.as_str())
            .arg(reply_id.as_str())
            .arg(self.ttl)
            .arg(self.lock_ttl)
            .arg(self.max_versions);
        call
    }
}

/// `switch_version.lua`: shows another version of a place in a conversation.
pub(in crate::store) struct SwitchVersion<'a> {
    pub thread: &'a ConversationKeys,
    /// The chosen version's first message id.
    pub first: &'a str,
    /// The session's TTL, seconds.
    pub ttl: u64,
}

impl SwitchVersion<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let thread = self.thread;
        let mut call = SWITCH_VERSION.prepare_invoke();
        call.key(&thread.order)
            .key(&thread.versions)
            .key(&thread.tails)
            .key(&thread.lock)
            .key(&thread.meta)
            .arg(self.first)
            .arg(self.ttl);
        call
    }
}

/// `renew_lock.lua`: extends a conversation's reply lock while it is held for this reply.
pub(in crate::store) struct RenewLock<'a> {
    pub thread: &'a ConversationKeys,
    /// The question whose reply holds the lock.
    pub message_id: &'a MessageId,
    /// Seconds.
    pub lock_ttl: u64,
}

impl RenewLock<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let mut call = RENEW_LOCK.prepare_invoke();
        call.key(&self.thread.lock).arg(self.message_id.as_str()).arg(self.lock_ttl);
        call
    }
}

/// `release_lock.lua`: unlocks a conversation, only if the lock is held for this reply.
pub(in crate::store) struct ReleaseLock<'a> {
    pub thread: &'a ConversationKeys,
    /// The question whose reply holds the lock.
    pub message_id: &'a MessageId,
}

impl ReleaseLock<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let mut call = RELEASE_LOCK.prepare_invoke();
        call.key(&self.thread.lock).arg(self.message_id.as_str());
        call
    }
}
