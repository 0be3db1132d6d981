//! The rate counters' scripts, which `store/limits.rs` calls.

use redis::ScriptInvocation;

use crate::store::lua::{COUNT, COUNT_SESSION};

/// `count.lua`: one event against a limit in a fixed window.
pub(in crate::store) struct Count<'a> {
    pub counter: &'a str,
    pub limit: u32,
    pub window_ms: u64,
}

impl Count<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let mut call = COUNT.prepare_invoke();
        call.key(self.counter).arg(self.limit).arg(self.window_ms);
        call
    }
}

/// `count_session.lua`: one event of a live session against a limit in a fixed window.
pub(in crate::store) struct CountSession<'a> {
    /// The session's hash (`chat:{S}:session`).
    pub session: &'a str,
    pub counter: &'a str,
    /// 0: no limit.
    pub limit: u32,
    pub window_ms: u64,
}

impl CountSession<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let mut call = COUNT_SESSION.prepare_invoke();
        call.key(self.session).key(self.counter).arg(self.limit).arg(self.window_ms);
        call
    }
}
