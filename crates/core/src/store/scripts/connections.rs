//! The scripts of WebSocket connections, which `store/connections.rs` calls.

use chat_wire::ConnectionId;
use redis::ScriptInvocation;

use crate::store::lua::{BIND, FRAME};
use crate::store::{keys, SessionKeys};

/// `bind.lua`: adds a connection to a live session's set, unless the set is full.
pub(in crate::store) struct Bind<'a> {
    pub session: &'a SessionKeys,
    pub connection: &'a ConnectionId,
    /// Most connections per session (0: no limit).
    pub max: usize,
}

impl Bind<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let mut call = BIND.prepare_invoke();
        call.key(&self.session.session).key(&self.session.conns).arg(self.connection.as_str()).arg(self.max);
        call
    }
}

/// `frame.lua`: one client frame: its connection's session, the mapping's life extended, the
/// frame counted.
pub(in crate::store) struct Frame<'a> {
    /// Its mapping and frame counter are the keys.
    pub connection: &'a ConnectionId,
    /// The session's TTL, seconds.
    pub ttl: u64,
    /// Frames per window (0: no limit).
    pub limit: u32,
    pub window_ms: u64,
}

impl Frame<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let mut call = FRAME.prepare_invoke();
        call.key(keys::connection(self.connection))
            .key(keys::connection_frames(self.connection))
            .arg(self.ttl)
            .arg(self.limit)
            .arg(self.window_ms);
        call
    }
}
