//! Key names, in one place. A session's keys share the hash tag `{S}`, 128 bits of SHA-256 of its
//! token (key names show in SLOWLOG, MONITOR, key listings and dumps: they never carry the bearer
//! token itself), so each script that
//! touches several of them stays in one hash slot (one shard of a cluster); the running workers'
//! keys share the stream's name as theirs; a connection's mapping and frame counter share the
//! connection id as theirs. An address's counter is a key of its own, used alone. Every script is given all the keys it touches
//! in KEYS, and [`super::connection`] refuses a script call whose keys span two slots.
//!
//! `{P}` is a conversation's prefix: `chat:{S}:` for the session's first conversation (`main`,
//! the names a session's single thread had before conversations), `chat:{S}:conv:{C}:` for the
//! others.
//!
//! docs/architecture.md ("Redis keys") lists every key with its type and what it holds.

use chat_wire::{ConnectionId, ConversationId, ReplyId, Token};

/// The keys of one session that are not any one conversation's.
#[derive(Debug, Clone)]
pub struct SessionKeys {
    /// `chat:{S}:session`: name and start.
    pub session: String,
    /// `chat:{S}:conns`: live connection ids.
    pub conns: String,
    /// `chat:{S}:rate`: messages in the current rate window.
    pub rate: String,
    /// `chat:{S}:reads`: history reads in the current rate window.
    pub reads: String,
    /// `chat:{S}:convs`: the conversations, scored by last activity (ms).
    pub convs: String,
    /// `chat:{S}:searches`: searches in the current rate window.
    pub searches: String,
    /// `chat:{S}:changes`: conversations created, changed or deleted in the current rate window.
    pub changes: String,
    /// `chat:{S}:extended`: present while the session's conversations outlive the session by
    /// more than its whole lifetime, so a question need not extend them again.
    pub extended: String,
    /// `chat:{S}:`, the prefix every key of the session starts with.
    tag: String,
}

/// The keys of one conversation of a session. The first conversation (`main`) keeps the names a
/// session's single thread had before there were conversations, so a session survives an upgrade.
#[derive(Debug, Clone)]
pub struct ConversationKeys {
    /// `chat:{S}:conv:{C}`: title, who wrote it, creation, stored bytes.
    pub meta: String,
    /// Message ids, oldest first.
    pub order: String,
    /// Message id -> JSON.
    pub messages: String,
    /// The user message whose reply is being written.
    pub lock: String,
    /// The user message whose reply the person stopped.
    pub stop: String,
    /// The last user message whose reply request is in the stream.
    pub queued: String,
    /// Where the path has versions: the id a place follows (`^` for the first) -> the ids of its
    /// versions, space-separated, oldest first.
    pub versions: String,
    /// Versions set aside: a version's first id -> `<parent>|<its path's ids>`.
    pub tails: String,
    /// The prefix to which a reply id is appended for its log.
    log_prefix: String,
}

impl SessionKeys {
    /// The keys of the session `token`.
    pub fn new(token: &Token) -> SessionKeys {
        let tag = format!("chat:{{{}}}:", session_tag(token));
        SessionKeys {
            session: format!("{tag}session"),
            conns: format!("{tag}conns"),
            rate: format!("{tag}rate"),
            reads: format!("{tag}reads"),
            convs: format!("{tag}convs"),
            searches: format!("{tag}searches"),
            changes: format!("{tag}changes"),
            extended: format!("{tag}extended"),
            tag,
        }
    }

    /// The keys of the session's conversation `id`.
    pub fn conversation(&self, id: &ConversationId) -> ConversationKeys {
        let tag = &self.tag;
        let meta = format!("{tag}conv:{id}");
        // `main` keeps the pre-conversation names; the others live under their meta key's name.
        let scope = if id.is_main() { tag.clone() } else { format!("{meta}:") };
        ConversationKeys {
            order: format!("{scope}order"),
            messages: format!("{scope}messages"),
            lock: format!("{scope}lock"),
            stop: format!("{scope}stop"),
            queued: format!("{scope}queued"),
            versions: format!("{scope}versions"),
            tails: format!("{scope}tails"),
            log_prefix: format!("{scope}log:"),
            meta,
        }
    }
}

impl ConversationKeys {
    /// The log of reply `reply_id` while it is written.
    pub fn log(&self, reply_id: &ReplyId) -> String {
        self.log_of(reply_id.as_str())
    }

    /// The log of a reply whose id was read back from the conversation's history.
    pub fn log_of(&self, stored_reply_id: &str) -> String {
        format!("{}{stored_reply_id}", self.log_prefix)
    }

    /// The keys that live as long as the conversation (its reply logs and lock come and go).
    pub fn lasting(&self) -> [&String; 5] {
        [&self.meta, &self.order, &self.messages, &self.versions, &self.tails]
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

/// `chat:models`: the models the provider serves, as a worker last listed them (JSON array).
pub const PROVIDER_MODELS: &str = "chat:models";

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
        let main = keys.conversation(&ConversationId::main());
        let other = keys.conversation(&ConversationId::parse("c2").unwrap());
        // The first conversation keeps the names of a session's single thread.
        assert_eq!(main.log(&reply), format!("chat:{tag}:log:m1.reply"));
        assert_eq!(main.order, format!("chat:{tag}:order"));
        assert_eq!(other.log(&reply), format!("chat:{tag}:conv:c2:log:m1.reply"));
        assert_eq!(other.meta, format!("chat:{tag}:conv:c2"));
        let slot = Slot::for_key(&keys.session);
        let mut all = vec![keys.conns.clone(), keys.rate.clone(), keys.reads.clone(), keys.convs.clone()];
        all.extend([keys.searches.clone(), keys.changes.clone(), keys.extended.clone()]);
        for conversation in [&main, &other] {
            all.extend([&conversation.meta, &conversation.order, &conversation.messages].map(String::clone));
            all.extend([&conversation.lock, &conversation.stop, &conversation.queued].map(String::clone));
            all.extend([&conversation.versions, &conversation.tails].map(String::clone));
            all.push(conversation.log(&reply));
        }
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len(), "no two keys share a name");
        for key in &all {
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
