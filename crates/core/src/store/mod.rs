//! The Redis store: sessions, history, WebSocket connection mappings and the request stream.
//!
//! Layout:
//! * this module: the connection, [`StoreError`], and what every part shares.
//! * [`keys`]: every key name, from one typed helper ([`SessionKeys`]); the key table is there.
//! * [`lua`]: the Lua scripts, one `.lua` file each under `lua/`.
//! * [`session`]: creating a session and reading its history and replies.
//! * [`reply`]: the reply lifecycle (accept, begin, append, store, regenerate, stop, the session's
//!   lock), with its state diagram and its one outcome type, [`Refusal`].
//! * [`connections`]: which WebSocket connections belong to which session.
//! * [`limits`]: fixed-window rate counters.
//! * [`queue`]: the request stream, read as a consumer group.
//!
//! All session keys carry the session's TTL and every message refreshes it, so they expire together.

pub mod connections;
pub mod keys;
pub mod limits;
mod lua;
pub mod queue;
pub mod reply;
pub mod session;

use std::time::Duration;

use chat_wire::{ChatMessage, ConnectionId};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::Config;

pub use keys::SessionKeys;
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
    /// `REDIS_CA_CERT_FILE` could not be read.
    #[error("cannot read REDIS_CA_CERT_FILE {path}: {source}")]
    CaFile {
        /// The configured path.
        path: String,
        /// Why it could not be read.
        source: std::io::Error,
    },
}

/// The Redis store. Cheap to clone: clones share one multiplexed, self-reconnecting connection.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    session_ttl: Duration,
    max_history: usize,
    reply_lock: Duration,
    stream: String,
    stream_maxlen: usize,
    group: String,
    messages_per_window: u32,
    rate_window: Duration,
}

/// The current time as the API writes it: RFC 3339, UTC, milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
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
        // Both of rustls's crypto back ends end up in the dependency tree (AWS SDK, reqwest), so
        // rustls cannot pick one for `rediss://` by itself: choose the one the AWS SDK uses. An
        // error only means a provider is installed already (a second store in this process).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = match &config.redis_ca_cert_file {
            Some(path) => {
                let root_cert =
                    std::fs::read(path).map_err(|source| StoreError::CaFile { path: path.clone(), source })?;
                let certificates = redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert) };
                redis::Client::build_with_tls(config.redis_url.as_str(), certificates)?
            }
            None => redis::Client::open(config.redis_url.as_str())?,
        };
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(response_timeout)
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config)?;
        Ok(Store {
            conn,
            session_ttl: config.session_ttl,
            max_history: config.max_history_messages.max(1),
            reply_lock: config.reply_lock,
            stream: config.request_stream.clone(),
            stream_maxlen: config.request_stream_maxlen,
            group: config.worker_group.clone(),
            messages_per_window: config.rate_limits.messages_per_session,
            rate_window: config.rate_limits.window,
        })
    }

    /// The configured session lifetime.
    pub fn session_ttl(&self) -> Duration {
        self.session_ttl
    }

    /// Round trip to Redis (health checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
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
