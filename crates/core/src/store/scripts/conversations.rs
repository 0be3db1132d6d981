//! The scripts of a session's conversations and their search, which `store/conversations.rs` and
//! `store/search.rs` call.

use chat_wire::ConversationId;
use redis::ScriptInvocation;

use crate::store::lua::{
    CONFIGURE_CONVERSATION, CREATE_CONVERSATION, DELETE_CONVERSATION, SEARCH_PAGE, TITLE_CONVERSATION,
};
use crate::store::{ConversationKeys, SessionKeys};

/// `create_conversation.lua`: adds a conversation to a live session, unless it holds `max`.
pub(in crate::store) struct CreateConversation<'a> {
    pub session: &'a SessionKeys,
    pub thread: &'a ConversationKeys,
    pub conversation: &'a ConversationId,
    pub now_ms: i64,
    /// Now, RFC 3339.
    pub now: &'a str,
    /// The session's TTL, seconds.
    pub ttl: u64,
    /// Most conversations per session.
    pub max: usize,
}

impl CreateConversation<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let mut call = CREATE_CONVERSATION.prepare_invoke();
        call.key(&self.session.session)
            .key(&self.session.convs)
            .key(&self.thread.meta)
            .arg(self.conversation.as_str())
            .arg(self.now_ms)
            .arg(self.now)
            .arg(self.ttl)
            .arg(self.max);
        call
    }
}

/// `title_conversation.lua`: sets a conversation's title.
pub(in crate::store) struct TitleConversation<'a> {
    pub session: &'a SessionKeys,
    pub thread: &'a ConversationKeys,
    pub conversation: &'a ConversationId,
    pub title: &'a str,
    /// `person` or `model`.
    pub by: &'a str,
    pub now_ms: i64,
    /// The session's TTL, seconds.
    pub ttl: u64,
}

impl TitleConversation<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let mut call = TITLE_CONVERSATION.prepare_invoke();
        call.key(&self.session.session)
            .key(&self.session.convs)
            .key(&self.thread.meta)
            .arg(self.conversation.as_str())
            .arg(self.title)
            .arg(self.by)
            .arg(self.now_ms)
            .arg(self.ttl);
        call
    }
}

/// `configure_conversation.lua`: sets a conversation's model or instructions.
pub(in crate::store) struct ConfigureConversation<'a> {
    pub session: &'a SessionKeys,
    pub thread: &'a ConversationKeys,
    pub conversation: &'a ConversationId,
    /// `model` or `instructions`.
    pub field: &'a str,
    /// `""` removes it.
    pub value: &'a str,
    /// The session's TTL, seconds.
    pub ttl: u64,
}

impl ConfigureConversation<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let mut call = CONFIGURE_CONVERSATION.prepare_invoke();
        call.key(&self.session.session)
            .key(&self.session.convs)
            .key(&self.thread.meta)
            .arg(self.conversation.as_str())
            .arg(self.field)
            .arg(self.value)
            .arg(self.ttl);
        call
    }
}

/// `delete_conversation.lua`: a conversation leaves the list, and its keys go.
pub(in crate::store) struct DeleteConversation<'a> {
    pub session: &'a SessionKeys,
    pub thread: &'a ConversationKeys,
    /// The logs of its replies in progress.
    pub logs: &'a [String],
    pub conversation: &'a ConversationId,
}

impl DeleteConversation<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let thread = self.thread;
        let mut call = DELETE_CONVERSATION.prepare_invoke();
        call.key(&self.session.session).key(&self.session.convs);
        for key in thread.lasting() {
            call.key(key);
        }
        call.key(&thread.lock).key(&thread.stop).key(&thread.queued);
        for log in self.logs {
            call.key(log);
        }
        call.arg(self.conversation.as_str());
        call
    }
}

/// `search_page.lua`: one page of a conversation's messages, newest first, those that may hold
/// the query.
pub(in crate::store) struct SearchPage<'a> {
    pub thread: &'a ConversationKeys,
    /// In lower case, JSON-escaped.
    pub query: &'a str,
    /// How many of the newest messages earlier pages read.
    pub skipped: usize,
    /// Messages this page reads.
    pub page: usize,
}

impl SearchPage<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let mut call = SEARCH_PAGE.prepare_invoke();
        call.key(&self.thread.order).key(&self.thread.messages).arg(self.query).arg(self.skipped).arg(self.page);
        call
    }
}
