//! The Redis store: sessions, history, WebSocket connection mappings and the request stream.
//!
//! Layout:
//! * this module: [`Store`], [`StoreError`], and what every part shares.
//! * [`connection`]: the connection, standalone or cluster (detected), and `WAIT`.
//! * [`iam`]: IAM authentication tokens for ElastiCache and MemoryDB.
//! * [`keys`]: every key name, from one typed helper ([`SessionKeys`]); the key table is there.
//! * [`lua`]: the Lua scripts, one `.lua` file each under `lua/`, each binding its KEYS and ARGV
//!   to names first.
//! * [`scripts`]: one struct per script call, its keys and arguments as named fields, laid out
//!   in the script's order in one place.
//! * [`session`]: creating and ending a session, reading a conversation's history and replies.
//! * [`conversations`]: a session's conversations: list, create, title, configure, delete.
//! * [`search`]: where a text appears in a session's conversations.
//! * [`models`]: the models the provider serves, as a worker last listed them.
//! * [`reply`]: the reply lifecycle (accept, begin, append, store, regenerate, versions), with its
//!   state diagram and its one outcome type, [`Refusal`].
//! * [`lock`]: a conversation's flags around its reply: its lock, the stop request, the queued mark.
//! * [`connections`]: which WebSocket connections belong to which session.
//! * [`limits`]: fixed-window rate counters.
//! * [`queue`]: the request stream, read as a consumer group.
//!
//! All session keys carry the session's TTL and every message refreshes it; the other
//! conversations are kept alive past it ([`Store::extend_conversations`]), so none expires
//! before its session.

pub mod connection;
pub mod connections;
pub mod conversations;
pub mod iam;
pub mod keys;
pub mod limits;
mod lock;
mod lua;
mod models;
pub mod queue;
pub mod reply;
mod scripts;
mod search;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use chat_wire::{ChatMessage, ConnectionId};
use tokio::sync::OnceCell;

use crate::config::{Config, ReplicaWait, SearchLimits};
pub use connection::RedisConnection;
use connection::RedisSettings;
pub use connections::{Bound, Frame};

pub use conversations::Setting;
pub use keys::{ConversationKeys, SessionKeys};
pub use queue::{ReplyRequest, StreamEntry};
pub use reply::{Begun, Logged, Refusal, Step, STOP_POLL};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis did not answer or refused the command.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis answered with data this code did not write.
    #[error("corrupt data in redis: {0}")]
    Corrupt(String),
    /// Fewer replicas than `REDIS_WAIT_REPLICAS` confirmed a write within `REDIS_WAIT_TIMEOUT_MS`:
    /// it may be lost in a failover, so it is not acknowledged.
    #[error("{confirmed} of {wanted} redis replicas confirmed the write")]
    NotReplicated {
        /// `REDIS_WAIT_REPLICAS`.
        wanted: u32,
        /// How many confirmed in time.
        confirmed: u32,
    },
    /// The IAM settings and the Redis URL do not say who to sign in as.
    #[error(transparent)]
    Iam(#[from] iam::IamError),
    /// `REDIS_CA_CERT_FILE` could not be read.
    #[error("cannot read REDIS_CA_CERT_FILE {path}: {source}")]
    CaFile {
        /// The configured path.
        path: String,
        /// Why it could not be read.
        source: std::io::Error,
    },
}

/// The Redis store. Cheap to clone: clones share one connection ([`RedisConnection`]), opened on
/// first use.
#[derive(Clone)]
pub struct Store {
    redis: Arc<OnceCell<RedisConnection>>,
    settings: Arc<RedisSettings>,
    replica_wait: ReplicaWait,
    session_ttl: Duration,
    max_history: usize,
    max_history_bytes: usize,
    max_conversation_bytes: usize,
    reply_lock: Duration,
    stream: String,
    stream_maxlen: usize,
    group: String,
    messages_per_window: u32,
    frames_per_window: u32,
    max_connections: usize,
    max_conversations: usize,
    max_title_chars: usize,
    search: SearchLimits,
    max_versions: usize,
    rate_window: Duration,
}

/// A write for [`Store::write_replicated`]: one script call or one command.
pub(crate) enum Write<'a> {
    Script(&'a redis::ScriptInvocation<'a>),
    Command(redis::Cmd),
}

/// The current time as the API writes it: RFC 3339, UTC, milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Now, in milliseconds since the epoch (a conversation's activity score).
fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Milliseconds since the epoch as the API writes a time.
fn millis_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An RFC 3339 time in milliseconds since the epoch (0 if it is not one).
fn rfc3339_millis(time: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(time).map(|t| t.timestamp_millis()).unwrap_or_default()
}

impl Store {
    /// Connects lazily: the first command opens the connection, and a lost connection is
    /// re-established on the next command, so a Redis restart needs no restart of ours.
    pub fn connect(config: &Config) -> Result<Self, StoreError> {
        Self::connect_with_timeout(config, Some(Duration::from_secs(5)))
    }

    /// Like [`Store::connect`], for a connection that issues blocking reads of up to `block`.
    pub fn connect_for_blocking_reads(config: &Config, block: Duration) -> Result<Self, StoreError> {
        Self::connect_with_timeout(config, Some(block + Duration::from_secs(5)))
    }

    fn connect_with_timeout(config: &Config, response_timeout: Option<Duration>) -> Result<Self, StoreError> {
        let root_cert = match &config.redis_ca_cert_file {
            Some(path) => {
                Some(std::fs::read(path).map_err(|source| StoreError::CaFile { path: path.clone(), source })?)
            }
            None => None,
        };
        // The URL is final here (a secret's value replaced it, if any): the IAM user and service
        // default to what it names.
        let iam = config.redis_iam.as_ref().map(|iam| iam.for_url(config.redis_url.as_str())).transpose()?;
        let settings = RedisSettings { url: config.redis_url.clone(), root_cert, iam, response_timeout };
        Ok(Store {
            redis: Arc::new(OnceCell::new()),
            settings: Arc::new(settings),
            replica_wait: config.redis_wait,
            session_ttl: config.session_ttl,
            max_history: config.max_history_messages.max(1),
            max_history_bytes: config.max_history_bytes,
            max_conversation_bytes: config.max_conversation_bytes,
            reply_lock: config.reply_lock,
            stream: config.request_stream.clone(),
            stream_maxlen: config.request_stream_maxlen,
            group: config.worker_group.clone(),
            messages_per_window: config.rate_limits.messages_per_session,
            frames_per_window: config.rate_limits.frames_per_connection,
            max_connections: config.max_connections_per_session,
            max_conversations: config.max_conversations_per_session,
            max_title_chars: config.max_title_chars,
            search: config.search.clone(),
            max_versions: config.max_versions,
            rate_window: config.rate_limits.window,
        })
    }

    /// The connection, opened (and the server's kind detected) on first use. A failed first
    /// attempt is tried again by the next command, so Redis may start after us.
    pub async fn connection(&self) -> Result<RedisConnection, StoreError> {
        // Boxed: opening (detection, cluster discovery) is a deep future that runs once, and every
        // caller's future would otherwise carry its type.
        Ok(self.redis.get_or_try_init(|| Box::pin(RedisConnection::open(&self.settings))).await?.clone())
    }

    /// A write that must reach `REDIS_WAIT_REPLICAS` replicas before it is acknowledged. The write
    /// and Redis's `WAIT` go in one pipeline, so one connection carries both (in a cluster, to the
    /// primary of the write's slot) and `WAIT` counts this very write; sent on its own after a
    /// reconnect it would count nothing and confirm at once. Answers the write's reply, or
    /// [`StoreError::NotReplicated`] if too few replicas confirm within `REDIS_WAIT_TIMEOUT_MS`.
    pub(crate) async fn write_replicated<T: redis::FromRedisValue>(
        &self,
        conn: &mut RedisConnection,
        write: Write<'_>,
    ) -> Result<T, StoreError> {
        let ReplicaWait { replicas, timeout } = self.replica_wait;
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        match &write {
            Write::Script(call) => pipe.invoke_script(call),
            Write::Command(cmd) => pipe.add_command(cmd.clone()),
        };
        if replicas > 0 {
            pipe.cmd("WAIT").arg(replicas).arg(timeout.as_millis() as u64);
        }
        let mut values: Vec<redis::Value> = pipe.query_async(conn).await?;
        if let (Write::Script(call), Some(redis::Value::ServerError(error))) = (&write, values.first()) {
            if error.kind() == Some(redis::ServerErrorKind::NoScript) {
                // Redis restarted or failed over since the script was loaded: load it, once.
                call.load_async(conn).await?;
                values = pipe.query_async(conn).await?;
            }
        }
        let mut values = values.into_iter();
        let reply = values.next().ok_or_else(|| StoreError::Corrupt("an empty pipeline reply".into()))?;
        let reply = reply.extract_error()?;
        if replicas > 0 {
            let confirmed =
                values.next().ok_or_else(|| StoreError::Corrupt("no WAIT reply".into()))?.extract_error()?;
            let confirmed: u32 = redis::from_redis_value(confirmed).map_err(redis::RedisError::from)?;
            if confirmed < replicas {
                return Err(StoreError::NotReplicated { wanted: replicas, confirmed });
            }
        }
        Ok(redis::from_redis_value(reply).map_err(redis::RedisError::from)?)
    }

    /// The configured session lifetime.
    pub fn session_ttl(&self) -> Duration {
        self.session_ttl
    }

    /// Round trip to Redis (health checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    fn reply_lock_secs(&self) -> u64 {
        self.reply_lock.as_secs().max(1)
    }
}

fn encode(message: &ChatMessage) -> Result<String, StoreError> {
    serde_json::to_string(message).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode(json: &str) -> Result<ChatMessage, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Connection ids as a script read them from a session's set. One that is not an id is skipped
/// (and logged), so one bad member cannot stop a session's replies.
fn connection_ids(raw: Vec<String>) -> Result<Vec<ConnectionId>, StoreError> {
    Ok(raw
        .into_iter()
        .filter_map(|id| match ConnectionId::parse(&id) {
            Ok(id) => Some(id),
            Err(error) => {
                tracing::warn!(%error, "skipping a malformed connection id in a session's set");
                None
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_milliseconds() {
        assert_eq!(millis_rfc3339(rfc3339_millis("2026-11-24T20:15:03.123Z")), "2026-11-24T20:15:03.123Z");
    }
}
