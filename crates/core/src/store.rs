//! The Redis store: sessions, history, WebSocket connection mappings and the request stream.
//!
//! Keys of one session share the hash tag `{token}` so every multi-key script stays on one slot
//! (Redis Cluster and ElastiCache Serverless accept it); the request stream is the only other key.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `chat:{T}:session` | hash | `name`, `session_start` |
//! | `chat:{T}:order` | list | message ids, oldest first |
//! | `chat:{T}:messages` | hash | message id -> [`ChatMessage`] JSON |
//! | `chat:{T}:conns` | set | live WebSocket connection ids |
//! | `chat:{T}:lock` | string | id of the user message whose reply is being written |
//! | `chat:{T}:stop` | string | id of the user message whose reply the person stopped |
//! | `chat:conn:{C}` | string | the token connection `C` belongs to |
//! | `REQUEST_STREAM` | stream | reply requests: `token`, `message_id`, `endpoint` |
//!
//! All session keys carry the session's TTL and every message refreshes it, so they expire together.

use std::time::Duration;

use chat_wire::{ChatMessage, ChatSession};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimOptions, StreamId, StreamMaxlen, StreamReadOptions, StreamReadReply};
use std::sync::LazyLock;

use redis::{AsyncCommands, Script};

use crate::config::Config;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis did not answer or refused the command.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis answered with data this code did not write.
    #[error("corrupt data in redis: {0}")]
    Corrupt(String),
}

/// What happened to a user message handed to [`Store::accept_user_message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Stored; the session is now locked until its reply is stored.
    Stored,
    /// A message with this id is already stored: nothing changed (a client's retry).
    Duplicate,
    /// The session is unknown or expired.
    SessionExpired,
    /// Another reply is still being written for this session.
    ReplyInProgress,
}

/// What [`Store::store_reply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredReply {
    /// Appended to the history.
    Stored,
    /// A reply with this id was already there (a reclaimed entry): left as it was.
    AlreadyStored,
    /// The session expired while the reply was written; nothing was stored.
    SessionExpired,
}

/// One request for a reply, as the message function appends it to the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyRequest {
    /// The session.
    pub token: String,
    /// The user message to answer.
    pub message_id: String,
    /// The Management API endpoint that reaches the session's WebSocket connections.
    pub endpoint: String,
}

/// A stream entry: its id (for XACK) and the request it carries, or `None` if it was malformed.
#[derive(Debug, Clone)]
pub struct StreamEntry {
    /// The stream entry id.
    pub entry_id: String,
    /// The request, or `None` when the entry is not one this code wrote.
    pub request: Option<ReplyRequest>,
    /// How many times the entry was delivered (1 on a first read).
    pub deliveries: usize,
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
}

fn key(token: &str, part: &str) -> String {
    format!("chat:{{{token}}}:{part}")
}

fn conn_key(connection_id: &str) -> String {
    format!("chat:conn:{connection_id}")
}

/// How often a worker writing a reply checks whether it was asked to stop.
pub const STOP_POLL: Duration = Duration::from_millis(100);

/// The current time as the API writes it: RFC 3339, UTC, milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

const ACCEPT_SCRIPT: &str = r#"
-- KEYS: session, order, messages, lock; ARGV: id, json, ttl, lock_ttl, max_history
if redis.call('EXISTS', KEYS[1]) == 0 then return 'expired' end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return 'duplicate' end
if not redis.call('SET', KEYS[4], ARGV[1], 'NX', 'EX', ARGV[4]) then return 'busy' end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
local len = redis.call('RPUSH', KEYS[2], ARGV[1])
local excess = len - tonumber(ARGV[5])
if excess > 0 then
  local old = redis.call('LPOP', KEYS[2], excess)
  redis.call('HDEL', KEYS[3], unpack(old))
end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
redis.call('EXPIRE', KEYS[5], ARGV[3])
return 'stored'
"#;

const STORE_REPLY_SCRIPT: &str = r#"
-- KEYS: session, order, messages, lock, conns; ARGV: reply id, json, ttl, user message id, max_history
if redis.call('GET', KEYS[4]) == ARGV[4] then redis.call('DEL', KEYS[4]) end
if redis.call('EXISTS', KEYS[1]) == 0 then return 'expired' end
if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[2]) == 0 then return 'exists' end
local len = redis.call('RPUSH', KEYS[2], ARGV[1])
local excess = len - tonumber(ARGV[5])
if excess > 0 then
  local old = redis.call('LPOP', KEYS[2], excess)
  redis.call('HDEL', KEYS[3], unpack(old))
end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
redis.call('EXPIRE', KEYS[5], ARGV[3])
return 'stored'
"#;

const READ_SCRIPT: &str = r#"
-- KEYS: session, order, messages; ARGV: first index (0 for all, -N for the last N)
local s = redis.call('HMGET', KEYS[1], 'name', 'session_start')
if not s[1] then return false end
local ids = redis.call('LRANGE', KEYS[2], ARGV[1], -1)
local msgs = {}
if #ids > 0 then msgs = redis.call('HMGET', KEYS[3], unpack(ids)) end
return {s[1], s[2], msgs}
"#;

const BIND_SCRIPT: &str = r#"
-- KEYS: session, conns, conn; ARGV: connection id, token
local ttl = redis.call('TTL', KEYS[1])
if ttl <= 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('SET', KEYS[3], ARGV[2], 'EX', ttl)
return 1
"#;

// Compiled once: `Script` hashes its source, and EVALSHA falls back to EVAL after a Redis restart.
static ACCEPT: LazyLock<Script> = LazyLock::new(|| Script::new(ACCEPT_SCRIPT));
static STORE_REPLY: LazyLock<Script> = LazyLock::new(|| Script::new(STORE_REPLY_SCRIPT));
static READ: LazyLock<Script> = LazyLock::new(|| Script::new(READ_SCRIPT));
static BIND: LazyLock<Script> = LazyLock::new(|| Script::new(BIND_SCRIPT));

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
        // rustls cannot pick one for `rediss://` by itself: choose the one the AWS SDK uses.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = match &config.redis_ca_cert_file {
            Some(path) => {
                let root_cert = std::fs::read(path)
                    .map_err(|e| StoreError::Corrupt(format!("cannot read REDIS_CA_CERT_FILE {path}: {e}")))?;
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

    /// Creates a session for `name` under a fresh token.
    pub async fn create_session(&self, name: &str) -> Result<ChatSession, StoreError> {
        let token = crate::token::new_token();
        let session_start = now_rfc3339();
        let mut conn = self.conn.clone();
        let session_key = key(&token, "session");
        redis::pipe()
            .atomic()
            .hset_multiple(&session_key, &[("name", name), ("session_start", session_start.as_str())])
            .ignore()
            .expire(&session_key, self.session_ttl.as_secs() as i64)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(ChatSession { token, name: name.to_string(), session_start, messages: Vec::new() })
    }

    /// The session with its whole stored history, or `None` if unknown or expired.
    pub async fn history(&self, token: &str) -> Result<Option<ChatSession>, StoreError> {
        self.read(token, 0).await
    }

    /// The session with only its last `n` messages (the model's context).
    pub async fn recent(&self, token: &str, n: usize) -> Result<Option<ChatSession>, StoreError> {
        if n == 0 {
            return Ok(self.read(token, i64::MAX).await?.map(|mut s| {
                s.messages.clear();
                s
            }));
        }
        self.read(token, -(n as i64)).await
    }

    async fn read(&self, token: &str, first: i64) -> Result<Option<ChatSession>, StoreError> {
        let mut conn = self.conn.clone();
        let reply: Option<(String, String, Vec<Option<String>>)> = READ
            .key(key(token, "session"))
            .key(key(token, "order"))
            .key(key(token, "messages"))
            .arg(first)
            .invoke_async(&mut conn)
            .await?;
        let Some((name, session_start, raw)) = reply else { return Ok(None) };
        let messages = raw
            .into_iter()
            .flatten()
            .map(|json| serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect::<Result<Vec<ChatMessage>, _>>()?;
        Ok(Some(ChatSession { token: token.to_string(), name, session_start, messages }))
    }

    /// Records that WebSocket `connection_id` belongs to the session; `false` if it expired.
    pub async fn bind_connection(&self, connection_id: &str, token: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let bound: i32 = BIND
            .key(key(token, "session"))
            .key(key(token, "conns"))
            .key(conn_key(connection_id))
            .arg(connection_id)
            .arg(token)
            .invoke_async(&mut conn)
            .await?;
        Ok(bound == 1)
    }

    /// The session a connection belongs to, if it is still known.
    pub async fn connection_session(&self, connection_id: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(conn.get(conn_key(connection_id)).await?)
    }

    /// The session a connection belongs to, extending the mapping's life to the session's TTL
    /// (each message is activity), or `None` if the connection is unknown.
    pub async fn touch_connection(&self, connection_id: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("GETEX")
            .arg(conn_key(connection_id))
            .arg("EX")
            .arg(self.session_ttl.as_secs())
            .query_async(&mut conn)
            .await?)
    }

    /// Forgets a connection (on `$disconnect`, or when the Management API says it is gone).
    pub async fn unbind_connection(&self, connection_id: &str, token: Option<&str>) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let token = match token {
            Some(t) => Some(t.to_string()),
            None => conn.get(conn_key(connection_id)).await?,
        };
        let mut pipe = redis::pipe();
        pipe.del(conn_key(connection_id)).ignore();
        if let Some(token) = token {
            pipe.srem(key(&token, "conns"), connection_id).ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// The live WebSocket connections of a session.
    pub async fn session_connections(&self, token: &str) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(conn.smembers(key(token, "conns")).await?)
    }

    /// Stores a user message and locks the session for its reply, in one atomic step.
    pub async fn accept_user_message(&self, token: &str, message: &ChatMessage) -> Result<Accepted, StoreError> {
        let json = serde_json::to_string(message).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut conn = self.conn.clone();
        let outcome: String = ACCEPT
            .key(key(token, "session"))
            .key(key(token, "order"))
            .key(key(token, "messages"))
            .key(key(token, "lock"))
            .key(key(token, "conns"))
            .arg(&message.id)
            .arg(json)
            .arg(self.session_ttl.as_secs())
            .arg(self.reply_lock.as_secs().max(1))
            .arg(self.max_history)
            .invoke_async(&mut conn)
            .await?;
        match outcome.as_str() {
            "stored" => Ok(Accepted::Stored),
            "duplicate" => Ok(Accepted::Duplicate),
            "expired" => Ok(Accepted::SessionExpired),
            "busy" => Ok(Accepted::ReplyInProgress),
            other => Err(StoreError::Corrupt(format!("accept script answered {other}"))),
        }
    }

    /// Unlocks a session whose reply request could not be queued, so the person can retry.
    pub async fn release_reply_lock(&self, token: &str, message_id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let lock = key(token, "lock");
        let holder: Option<String> = conn.get(&lock).await?;
        if holder.as_deref() == Some(message_id) {
            let _: () = conn.del(&lock).await?;
        }
        Ok(())
    }

    /// Appends a reply request to the stream (capped at about `REQUEST_STREAM_MAXLEN` entries).
    pub async fn enqueue(&self, request: &ReplyRequest) -> Result<String, StoreError> {
        let mut conn = self.conn.clone();
        let id: String = conn
            .xadd_maxlen(
                &self.stream,
                StreamMaxlen::Approx(self.stream_maxlen),
                "*",
                &[
                    ("token", request.token.as_str()),
                    ("message_id", request.message_id.as_str()),
                    ("endpoint", request.endpoint.as_str()),
                ],
            )
            .await?;
        Ok(id)
    }

    /// Stores a finished reply once, whatever the number of attempts, and unlocks the session.
    pub async fn store_reply(&self, token: &str, reply: &ChatMessage, user_message_id: &str) -> Result<StoredReply, StoreError> {
        let json = serde_json::to_string(reply).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut conn = self.conn.clone();
        let outcome: String = STORE_REPLY
            .key(key(token, "session"))
            .key(key(token, "order"))
            .key(key(token, "messages"))
            .key(key(token, "lock"))
            .key(key(token, "conns"))
            .arg(&reply.id)
            .arg(json)
            .arg(self.session_ttl.as_secs())
            .arg(user_message_id)
            .arg(self.max_history)
            .invoke_async(&mut conn)
            .await?;
        match outcome.as_str() {
            "stored" => Ok(StoredReply::Stored),
            "exists" => Ok(StoredReply::AlreadyStored),
            "expired" => Ok(StoredReply::SessionExpired),
            other => Err(StoreError::Corrupt(format!("store script answered {other}"))),
        }
    }

    /// Asks whichever worker writes the reply to `message_id` to stop (it checks every
    /// [`STOP_POLL`] or so).
    pub async fn request_stop(&self, token: &str, message_id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: () = conn.set_ex(key(token, "stop"), message_id, self.reply_lock.as_secs().max(1)).await?;
        Ok(())
    }

    /// Whether the person asked to stop the reply to `message_id`.
    pub async fn stop_requested(&self, token: &str, message_id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let requested: Option<String> = conn.get(key(token, "stop")).await?;
        Ok(requested.as_deref() == Some(message_id))
    }

    /// Whether the session already holds a message with this id.
    pub async fn has_message(&self, token: &str, message_id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        Ok(conn.hexists(key(token, "messages"), message_id).await?)
    }

    /// Creates the consumer group (and the stream) if they do not exist yet.
    pub async fn ensure_group(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let created: Result<(), redis::RedisError> =
            conn.xgroup_create_mkstream(&self.stream, &self.group, "0").await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// New entries for `consumer` (XREADGROUP `>`), waiting up to `block` if there are none.
    pub async fn read_new(&self, consumer: &str, count: usize, block: Option<Duration>) -> Result<Vec<StreamEntry>, StoreError> {
        let mut options = StreamReadOptions::default().group(&self.group, consumer).count(count);
        if let Some(block) = block {
            options = options.block(block.as_millis() as usize);
        }
        let mut conn = self.conn.clone();
        let reply: Option<StreamReadReply> = conn.xread_options(&[&self.stream], &[">"], &options).await?;
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|entry| parse_entry(entry, 1))
            .collect())
    }

    /// Takes over entries pending on any consumer for longer than `min_idle` (a dead worker's).
    pub async fn claim_stale(&self, consumer: &str, min_idle: Duration, count: usize) -> Result<Vec<StreamEntry>, StoreError> {
        let mut conn = self.conn.clone();
        let reply: redis::streams::StreamAutoClaimReply = conn
            .xautoclaim_options(
                &self.stream,
                &self.group,
                consumer,
                min_idle.as_millis() as u64,
                "0-0",
                StreamAutoClaimOptions::default().count(count),
            )
            .await?;
        Ok(reply.claimed.into_iter().map(|entry| parse_entry(entry, 2)).collect())
    }

    /// Acknowledges an entry: its reply is stored (or it can never be answered).
    pub async fn ack(&self, entry_id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: usize = conn.xack(&self.stream, &self.group, &[entry_id]).await?;
        Ok(())
    }

    /// Entries delivered to a consumer and not yet acknowledged, across the group.
    pub async fn pending_count(&self) -> Result<usize, StoreError> {
        let mut conn = self.conn.clone();
        let reply: redis::streams::StreamPendingReply = conn.xpending(&self.stream, &self.group).await?;
        Ok(reply.count())
    }
}

fn parse_entry(entry: StreamId, deliveries: usize) -> StreamEntry {
    let field = |name: &str| entry.get::<String>(name);
    let request = match (field("token"), field("message_id"), field("endpoint")) {
        (Some(token), Some(message_id), Some(endpoint)) => Some(ReplyRequest { token, message_id, endpoint }),
        _ => None,
    };
    StreamEntry { entry_id: entry.id, request, deliveries: entry.delivered_count.unwrap_or(deliveries) }
}
