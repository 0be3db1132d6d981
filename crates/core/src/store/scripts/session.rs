//! The scripts of sessions and history reads, which `store/session.rs` calls.

use chat_wire::ReplyId;
use redis::ScriptInvocation;

use crate::store::lua::{CREATE_SESSION, READ, REVOKE, SNAPSHOT, TRIM_SESSION};
use crate::store::{ConversationKeys, SessionKeys};

/// `create_session.lua`: a session with its first conversation, `main`.
pub(in crate::store) struct CreateSession<'a> {
    pub session: &'a SessionKeys,
    /// `main`'s keys.
    pub main: &'a ConversationKeys,
    pub name: &'a str,
    /// RFC 3339.
    pub session_start: &'a str,
    /// The session's TTL, seconds.
    pub ttl: u64,
    pub now_ms: i64,
}

impl CreateSession<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let mut call = CREATE_SESSION.prepare_invoke();
        call.key(&self.session.session)
            .key(&self.session.convs)
            .key(&self.main.meta)
            .arg(self.name)
            .arg(self.session_start)
            .arg(self.ttl)
            .arg(self.now_ms);
        call
    }
}

/// `revoke.lua`: deletes every key of a session; answers its connections.
pub(in crate::store) struct Revoke<'a> {
    pub session: &'a SessionKeys,
    /// Every conversation's keys, with the logs of its replies in progress.
    pub conversations: &'a [(ConversationKeys, Vec<String>)],
}

impl Revoke<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let keys = self.session;
        let mut call = REVOKE.prepare_invoke();
        for key in [
            &keys.session,
            &keys.conns,
            &keys.rate,
            &keys.reads,
            &keys.convs,
            &keys.searches,
            &keys.changes,
            &keys.extended,
        ] {
            call.key(key);
        }
        for (conversation, logs) in self.conversations {
            for key in conversation.lasting() {
                call.key(key);
            }
            call.key(&conversation.lock).key(&conversation.stop).key(&conversation.queued);
            for log in logs {
                call.key(log);
            }
        }
        call
    }
}

/// `read.lua`: a session and a window of one conversation's messages, with the text so far of
/// the replies in progress whose logs are declared.
pub(in crate::store) struct Read<'a> {
    pub session: &'a SessionKeys,
    pub thread: &'a ConversationKeys,
    /// The first index considered (0: all, -N: the last N).
    pub first: i64,
    /// Only messages before this one ('' for none).
    pub before: &'a str,
    /// Most messages (0: no limit).
    pub limit: usize,
    /// Most stored bytes (0: no limit).
    pub budget: usize,
    /// The replies in progress whose logs are declared.
    pub streaming: &'a [String],
}

impl Read<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let thread = self.thread;
        let mut call = READ.prepare_invoke();
        call.key(&self.session.session)
            .key(&thread.order)
            .key(&thread.messages)
            .key(&thread.versions)
            .arg(self.first)
            .arg(self.before)
            .arg(self.limit)
            .arg(self.budget);
        for reply in self.streaming {
            call.key(thread.log_of(reply)).arg(reply);
        }
        call
    }
}

/// `snapshot.lua`: a reply as it stands.
pub(in crate::store) struct Snapshot<'a> {
    pub thread: &'a ConversationKeys,
    pub reply_id: &'a ReplyId,
}

impl Snapshot<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let mut call = SNAPSHOT.prepare_invoke();
        call.key(&self.thread.messages).key(self.thread.log(self.reply_id)).arg(self.reply_id.as_str());
        call
    }
}

/// `trim_session.lua`: drops a conversation's oldest messages while the session stores too much.
pub(in crate::store) struct TrimSession<'a> {
    pub session: &'a SessionKeys,
    pub thread: &'a ConversationKeys,
    /// The session's most stored bytes.
    pub max_bytes: usize,
    /// Most messages one call drops.
    pub max_drops: usize,
}

impl TrimSession<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let mut call = TRIM_SESSION.prepare_invoke();
        call.key(&self.session.session)
            .key(&self.thread.meta)
            .key(&self.thread.order)
            .key(&self.thread.messages)
            .arg(self.max_bytes)
            .arg(self.max_drops);
        call
    }
}
