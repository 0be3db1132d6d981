//! Key names, in one place. A session's keys share the hash tag `{S}`, 128 bits of SHA-256 of its
//! token (key names show in SLOWLOG, MONITOR, key listings and dumps: they never carry the bearer
//! token itself), so each script that
//! touches several of them stays in one hash slot (one shard of a cluster); the running workers'
//! keys share the stream's name as theirs; a connection's mapping and frame counter share the
//! connection id as theirs. An address's counter is a key of its own, used alone. Every script is given all the keys it touches
//! in KEYS, and [`super::connection`] refuses a script call whose keys span two slots.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `chat:{S}:session` | hash | `name`, `session_start` |
//! | `chat:{S}:order` | list | message ids, oldest first |
//! | `chat:{S}:messages` | hash | message id -> `ChatMessage` JSON |
//! | `chat:{S}:conns` | set | live WebSocket connection ids |
//! | `chat:{S}:lock` | string | id of the user message whose reply is being written |
//! | `chat:{S}:stop` | string | id of the user message whose reply the person stopped |
//! | `chat:{S}:log:{R}` | stream | reply `R` while it is written: one entry per delta, entry id `0-(seq+1)` |
//! | `chat:{S}:rate` | string | messages counted in the current rate window |
//! | `chat:{S}:reads` | string | `GET /chat_history` calls counted in the current rate window |
//! | `chat:{S}:queued` | string | id of the last user message whose reply request is in the stream |
//! | `chat:conn:{C}` | string | the token connection `C` belongs to |
//! | `chat:conn:{C}:frames` | string | frames connection `C` sent in the current rate window |
//! | `chat:ip:{IP}` | string | sessions created from address `IP` in the current rate window |
//! | `REQUEST_STREAM` | stream | reply requests: `token`, `message_id`, `endpoint` |
//! | `{REQUEST_STREAM}:workers` | sorted set | running Lambda workers' leases (worker id -> expiry ms) |
//! | `{REQUEST_STREAM}:free` | hash | running Lambda workers' free slots (worker id -> slots) |

use chat_wire::{ConnectionId, ReplyId, Token};

/// Every key of one session, named once.
#[derive(Debug, Clone)]
pub struct SessionKeys {
    /// `chat:{T}:session`: name and start.
    pub session: String,
    /// `chat:{T}:order`: message ids, oldest first.
    pub order: String,
    /// `chat:{T}:messages`: message id -> JSON.
    pub messages: String,
    /// `chat:{T}:conns`: live connection ids.
    pub conns: String,
    /// `chat:{T}:lock`: the user message whose reply is being written.
    pub lock: String,
    /// `chat:{T}:stop`: the user message whose reply the person stopped.
    pub stop: String,
    /// `chat:{T}:rate`: messages in the current rate window.
    pub rate: String,
    /// `chat:{T}:queued`: the last user message whose reply request is in the stream.
    pub queued: String,
    /// `chat:{T}:reads`: history reads in the current rate window.
    pub reads: String,
    /// `chat:{T}:log:`, to which a reply id is appended.
    log_prefix: String,
}

impl SessionKeys {
    /// The keys of the session `token`.
    pub fn new(token: &Token) -> SessionKeys {
        let tag = format!("chat:{{{}}}:", session_tag(token));
        SessionKeys {
            session: format!("{tag}session"),
            order: format!("{tag}order"),
            messages: format!("{tag}messages"),
            conns: format!("{tag}conns"),
            lock: format!("{tag}lock"),
            stop: format!("{tag}stop"),
            rate: format!("{tag}rate"),
            queued: format!("{tag}queued"),
            reads: format!("{tag}reads"),
            log_prefix: format!("{tag}log:"),
        }
    }

    /// The log of reply `reply_id` while it is written.
    pub fn log(&self, reply_id: &ReplyId) -> String {
        self.log_of(reply_id.as_str())
    }

    /// The log of a reply whose id was read back from the session's history.
    pub fn log_of(&self, stored_reply_id: &str) -> String {
        format!("{}{stored_reply_id}", self.log_prefix)
    }
}

/// The hash tag of a session's keys: the first 128 bits of SHA-256 of its token, in hex.
pub fn session_tag(token: &Token) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(token.expose().as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// `chat:conn:{C}`: the session a connection belongs to.
pub fn connection(connection_id: &ConnectionId) -> String {
    format!("chat:conn:{{{connection_id}}}")
}

/// `chat:conn:{C}:frames`: the connection's frames in the current rate window (the mapping's slot).
pub fn connection_frames(connection_id: &ConnectionId) -> String {
    format!("chat:conn:{{{connection_id}}}:frames")
}

/// The running workers' leases and free slots (one slot: both go in one script).
pub fn worker_leases(stream: &str) -> (String, String) {
    (format!("{{{stream}}}:workers"), format!("{{{stream}}}:free"))
}

/// `chat:ip:{IP}`: sessions created from one client address in the current window.
pub fn address(address: &str) -> String {
    format!("chat:ip:{{{address}}}")
}

#[cfg(test)]
mod tests {
    use redis::cluster_routing::Slot;

    use super::*;

    #[test]
    fn a_sessions_keys_share_its_hash_tag() {
        let token = Token::parse(&"a".repeat(Token::LEN)).unwrap();
        let keys = SessionKeys::new(&token);
        let tag = format!("{{{}}}", session_tag(&token));
        // Named by a digest of the token, never by the token itself.
        assert_eq!(tag.len(), 34);
        assert!(!keys.session.contains(token.expose()));
        let reply = chat_wire::MessageId::parse("m1").unwrap().reply_id();
        let log = keys.log(&reply);
        assert_eq!(log, format!("chat:{tag}:log:m1.reply"));
        let slot = Slot::for_key(&keys.session);
        for key in [
            &keys.order,
            &keys.messages,
            &keys.conns,
            &keys.lock,
            &keys.stop,
            &keys.rate,
            &keys.queued,
            &keys.reads,
            &log,
        ] {
            assert!(key.contains(&tag), "{key}");
            assert_eq!(Slot::for_key(key), slot, "{key}");
        }
    }

    #[test]
    fn a_connections_mapping_and_frame_counter_share_a_slot() {
        let id = ConnectionId::parse("L0SM9cOFvHcCIhw=").unwrap();
        assert_eq!(connection(&id), "chat:conn:{L0SM9cOFvHcCIhw=}");
        assert_eq!(Slot::for_key(connection(&id)), Slot::for_key(connection_frames(&id)));
    }

    #[test]
    fn the_workers_keys_share_one_slot_and_sessions_spread_over_slots() {
        let (leases, free) = worker_leases("chat:requests");
        assert_eq!(Slot::for_key(&leases), Slot::for_key(&free));
        let slots: std::collections::HashSet<_> = (0..64)
            .map(|i| SessionKeys::new(&Token::parse(&format!("{i:0>width$}", width = Token::LEN)).unwrap()).session)
            .map(Slot::for_key)
            .collect();
        assert!(slots.len() > 32, "64 sessions landed in {} slots", slots.len());
    }
}
