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
//! | `chat:{T}:log:{R}` | stream | reply `R` while it is written: one entry per delta, entry id `0-(seq+1)` |
//! | `chat:{T}:rate` | string | messages counted in the current rate window |
//! | `chat:conn:{C}` | string | the token connection `C` belongs to |
//! | `chat:ip:{IP}` | string | sessions created from address `IP` in the current rate window |
//! | `REQUEST_STREAM` | stream | reply requests: `token`, `message_id`, `endpoint` |
//!
//! All session keys carry the session's TTL and every message refreshes it, so they expire together.
//!
//! A reply in progress is a `streaming` message in the history plus its log. The log is what makes
//! replies resumable whichever process serves the client: `GET /chat_history` and the `resume`
//! action read the text so far from it, and a worker that takes over a dead worker's reply appends
//! a restart entry so clients drop what the dead one had sent. The stored message replaces the
//! log when the reply ends.

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
    /// Another worker took this reply over (this one was thought dead): stop writing it.
    #[error("another worker took this reply over")]
    ReplyTakenOver,
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
    /// Over `MESSAGES_PER_SESSION_PER_WINDOW`; nothing stored. Try again after this long.
    RateLimited(Duration),
}

/// What [`Store::store_reply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredReply {
    /// In the history, replacing the `streaming` placeholder.
    Stored {
        /// The session's live connections, read in the same step: one that binds later finds the
        /// reply complete when it resumes.
        connections: Vec<String>,
    },
    /// A reply with this id was already there (a reclaimed entry): left as it was.
    AlreadyStored,
    /// The session expired while the reply was written; nothing was stored.
    SessionExpired,
    /// Another worker took the reply over (its log moved on): nothing was stored.
    TakenOver,
}

/// What [`Store::begin_reply`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeganReply {
    /// The reply may be written; its deltas start at `next_seq`.
    Started {
        /// The seq of the first delta to write.
        next_seq: u64,
        /// True when another worker had begun this reply and died: clients must drop its text.
        restarted: bool,
        /// The session's live connections.
        connections: Vec<String>,
    },
    /// The reply is already stored (a reclaimed entry that was in fact answered).
    AlreadyStored,
    /// The session expired.
    SessionExpired,
}

/// What [`Store::append_delta`] learned while appending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendedDelta {
    /// The person asked to stop this reply.
    pub stop_requested: bool,
    /// The session's live connections, read in the same step as the append: a connection bound
    /// after it reads the delta from the log instead.
    pub connections: Vec<String>,
}

/// What [`Store::regenerate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regenerated {
    /// The old reply is gone and the session is locked for the new one.
    Ready,
    /// The session is unknown or expired.
    SessionExpired,
    /// No such question in the session.
    UnknownMessage,
    /// Only the last question can be answered again.
    NotLastQuestion,
    /// A reply is being written.
    ReplyInProgress,
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
    messages_per_window: u32,
    rate_window: Duration,
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
-- KEYS: session, order, messages, lock, conns, rate
-- ARGV: id, json, ttl, lock_ttl, max_history, messages per window (0: no limit), window ms
if redis.call('EXISTS', KEYS[1]) == 0 then return {'expired', 0} end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return {'duplicate', 0} end
if tonumber(ARGV[6]) > 0 then
  local wait = count_in_window(KEYS[6], ARGV[6], ARGV[7])
  if wait > 0 then return {'rate_limited', wait} end
end
if not redis.call('SET', KEYS[4], ARGV[1], 'NX', 'EX', ARGV[4]) then return {'busy', 0} end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
append_trimmed(KEYS[2], KEYS[3], ARGV[1], ARGV[5])
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
redis.call('EXPIRE', KEYS[5], ARGV[3])
return {'stored', 0}
"#;

// serde writes `"status":"streaming"` exactly so, and escapes every quote inside a string, so a
// plain substring search finds replies in progress without decoding JSON in Lua.
const LUA_HELPERS: &str = r#"
local function is_streaming(json)
  return json and string.find(json, '"status":"streaming"', 1, true) ~= nil
end
-- A reply log's text since its last restart entry, and the seq of the next delta.
local function log_state(log)
  local parts, next_seq = {}, 0
  for _, entry in ipairs(redis.call('XRANGE', log, '-', '+')) do
    next_seq = tonumber(string.sub(entry[1], 3))
    if entry[2][1] == 'k' then parts = {} else parts[#parts + 1] = entry[2][2] end
  end
  return table.concat(parts), next_seq
end
-- Counts one event in a fixed window; 0 while within `limit`, else the ms until the window ends.
local function count_in_window(counter, limit, window_ms)
  local count = redis.call('INCR', counter)
  local ttl = redis.call('PTTL', counter)
  if ttl < 0 then redis.call('PEXPIRE', counter, window_ms); ttl = tonumber(window_ms) end
  if count > tonumber(limit) then return ttl end
  return 0
end
local function append_trimmed(order, messages, id, max_history)
  local len = redis.call('RPUSH', order, id)
  local excess = len - tonumber(max_history)
  if excess > 0 then
    local old = redis.call('LPOP', order, excess)
    redis.call('HDEL', messages, unpack(old))
  end
end
"#;

const BEGIN_REPLY_SCRIPT: &str = r#"
-- KEYS: session, order, messages, conns, log; ARGV: reply id, placeholder json, ttl, max_history
if redis.call('EXISTS', KEYS[1]) == 0 then return {'expired', 0, {}} end
local existing = redis.call('HGET', KEYS[3], ARGV[1])
local outcome, next_seq = 'new', 0
if existing then
  if not is_streaming(existing) then return {'exists', 0, {}} end
  -- Another worker began this reply: void whatever it sent (even nothing yet, so that it can
  -- write no delta 0 of its own if it is still alive).
  local _, logged = log_state(KEYS[5])
  redis.call('XADD', KEYS[5], '0-' .. (logged + 1), 'k', 'restart')
  outcome, next_seq = 'restart', logged + 1
else
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
  append_trimmed(KEYS[2], KEYS[3], ARGV[1], ARGV[4])
end
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
return {outcome, next_seq, redis.call('SMEMBERS', KEYS[4])}
"#;

const APPEND_DELTA_SCRIPT: &str = r#"
-- KEYS: log, conns, stop; ARGV: seq, text, ttl, user message id
redis.call('XADD', KEYS[1], '0-' .. (tonumber(ARGV[1]) + 1), 't', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
local stop = redis.call('GET', KEYS[3]) == ARGV[4]
return {stop and 1 or 0, redis.call('SMEMBERS', KEYS[2])}
"#;

const STORE_REPLY_SCRIPT: &str = r#"
-- KEYS: session, order, messages, lock, conns, log
-- ARGV: reply id, json, ttl, user message id, max_history, next seq of the writer's log
local existing = redis.call('HGET', KEYS[3], ARGV[1])
if existing and not is_streaming(existing) then return {'exists', {}} end
local top = redis.call('XREVRANGE', KEYS[6], '+', '-', 'COUNT', 1)
local logged = 0
if #top > 0 then logged = tonumber(string.sub(top[1][1], 3)) end
if logged ~= tonumber(ARGV[6]) then return {'taken_over', {}} end
if redis.call('GET', KEYS[4]) == ARGV[4] then redis.call('DEL', KEYS[4]) end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'expired', {}} end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
if not existing then append_trimmed(KEYS[2], KEYS[3], ARGV[1], ARGV[5]) end
redis.call('DEL', KEYS[6])
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
redis.call('EXPIRE', KEYS[5], ARGV[3])
return {'stored', redis.call('SMEMBERS', KEYS[5])}
"#;

const READ_SCRIPT: &str = r#"
-- KEYS: session, order, messages; ARGV: first index (0 for all, -N for the last N), log key prefix
local s = redis.call('HMGET', KEYS[1], 'name', 'session_start')
if not s[1] then return false end
local ids = redis.call('LRANGE', KEYS[2], ARGV[1], -1)
local msgs = {}
if #ids > 0 then msgs = redis.call('HMGET', KEYS[3], unpack(ids)) end
local live = {}
for i, json in ipairs(msgs) do
  if is_streaming(json) then
    local text, next_seq = log_state(ARGV[2] .. ids[i])
    live[#live + 1] = {ids[i], text, next_seq}
  end
end
return {s[1], s[2], msgs, live}
"#;

const SNAPSHOT_SCRIPT: &str = r#"
-- KEYS: messages, log; ARGV: reply id
local json = redis.call('HGET', KEYS[1], ARGV[1])
if not json then return false end
if not is_streaming(json) then return {json, '', 0} end
local text, next_seq = log_state(KEYS[2])
return {json, text, next_seq}
"#;

const REGENERATE_SCRIPT: &str = r#"
-- KEYS: session, order, messages, lock, log, stop; ARGV: user message id, reply id, ttl, lock ttl
if redis.call('EXISTS', KEYS[1]) == 0 then return 'expired' end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then return 'unknown' end
local tail = redis.call('LRANGE', KEYS[2], -2, -1)
local last = tail[#tail]
if last ~= ARGV[1] and not (last == ARGV[2] and tail[1] == ARGV[1]) then return 'not_last' end
if not redis.call('SET', KEYS[4], ARGV[1], 'NX', 'EX', ARGV[4]) then return 'busy' end
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('LREM', KEYS[2], 0, ARGV[2])
redis.call('DEL', KEYS[5], KEYS[6])
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
return 'ok'
"#;

const RATE_SCRIPT: &str = r#"
-- KEYS: counter; ARGV: limit, window ms. Returns 0, or the ms until the window ends.
return count_in_window(KEYS[1], ARGV[1], ARGV[2])
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
static ACCEPT: LazyLock<Script> = LazyLock::new(|| with_helpers(ACCEPT_SCRIPT));
static BIND: LazyLock<Script> = LazyLock::new(|| Script::new(BIND_SCRIPT));
static RENEW_LOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end return 0",
    )
});
static RATE: LazyLock<Script> = LazyLock::new(|| with_helpers(RATE_SCRIPT));
static APPEND_DELTA: LazyLock<Script> = LazyLock::new(|| Script::new(APPEND_DELTA_SCRIPT));
static BEGIN_REPLY: LazyLock<Script> = LazyLock::new(|| with_helpers(BEGIN_REPLY_SCRIPT));
static STORE_REPLY: LazyLock<Script> = LazyLock::new(|| with_helpers(STORE_REPLY_SCRIPT));
static READ: LazyLock<Script> = LazyLock::new(|| with_helpers(READ_SCRIPT));
static SNAPSHOT: LazyLock<Script> = LazyLock::new(|| with_helpers(SNAPSHOT_SCRIPT));
static REGENERATE: LazyLock<Script> = LazyLock::new(|| Script::new(REGENERATE_SCRIPT));

fn with_helpers(script: &str) -> Script {
    Script::new(&format!("{LUA_HELPERS}{script}"))
}

fn log_key(token: &str, reply_id: &str) -> String {
    key(token, &format!("log:{reply_id}"))
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
        type Read = (String, String, Vec<Option<String>>, Vec<(String, String, u64)>);
        let reply: Option<Read> = READ
            .key(key(token, "session"))
            .key(key(token, "order"))
            .key(key(token, "messages"))
            .arg(first)
            .arg(log_key(token, ""))
            .invoke_async(&mut conn)
            .await?;
        let Some((name, session_start, raw, live)) = reply else { return Ok(None) };
        let mut messages =
            raw.into_iter().flatten().map(|json| decode(&json)).collect::<Result<Vec<ChatMessage>, _>>()?;
        for (id, text, next_seq) in live {
            if let Some(reply) = messages.iter_mut().find(|m| m.id == id) {
                reply.msg = text;
                reply.next_seq = Some(next_seq);
            }
        }
        Ok(Some(ChatSession { token: token.to_string(), name, session_start, messages }))
    }

    /// A reply as it stands: the stored message, or for one still `streaming` its text so far
    /// with `next_seq` set. `None` if the session holds no such reply.
    pub async fn reply_snapshot(&self, token: &str, reply_id: &str) -> Result<Option<ChatMessage>, StoreError> {
        let mut conn = self.conn.clone();
        let found: Option<(String, String, u64)> = SNAPSHOT
            .key(key(token, "messages"))
            .key(log_key(token, reply_id))
            .arg(reply_id)
            .invoke_async(&mut conn)
            .await?;
        let Some((json, text, next_seq)) = found else { return Ok(None) };
        let mut reply = decode(&json)?;
        if !reply.status.is_final() {
            reply.msg = text;
            reply.next_seq = Some(next_seq);
        }
        Ok(Some(reply))
    }

    /// Starts writing a reply: records it as `streaming` in the history (or, when a dead worker
    /// had begun it, appends a restart entry to its log), and returns the session's connections.
    pub async fn begin_reply(&self, token: &str, placeholder: &ChatMessage) -> Result<BeganReply, StoreError> {
        let json = serde_json::to_string(placeholder).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut conn = self.conn.clone();
        let (outcome, next_seq, connections): (String, u64, Vec<String>) = BEGIN_REPLY
            .key(key(token, "session"))
            .key(key(token, "order"))
            .key(key(token, "messages"))
            .key(key(token, "conns"))
            .key(log_key(token, &placeholder.id))
            .arg(&placeholder.id)
            .arg(json)
            .arg(self.session_ttl.as_secs())
            .arg(self.max_history)
            .invoke_async(&mut conn)
            .await?;
        Ok(match outcome.as_str() {
            "expired" => BeganReply::SessionExpired,
            "exists" => BeganReply::AlreadyStored,
            "new" | "restart" => BeganReply::Started { next_seq, restarted: outcome == "restart", connections },
            other => return Err(StoreError::Corrupt(format!("begin script answered {other}"))),
        })
    }

    /// Appends delta `seq` to a reply's log; in the same round trip, reads whether the person
    /// asked to stop and which connections to send the delta to.
    pub async fn append_delta(
        &self,
        token: &str,
        reply_to: &str,
        seq: u64,
        text: &str,
    ) -> Result<AppendedDelta, StoreError> {
        let mut conn = self.conn.clone();
        let appended: Result<(u8, Vec<String>), redis::RedisError> = APPEND_DELTA
            .key(log_key(token, &chat_wire::reply_id_for(reply_to)))
            .key(key(token, "conns"))
            .key(key(token, "stop"))
            .arg(seq)
            .arg(text)
            .arg(self.session_ttl.as_secs())
            .arg(reply_to)
            .invoke_async(&mut conn)
            .await;
        match appended {
            Ok((stop, connections)) => Ok(AppendedDelta { stop_requested: stop == 1, connections }),
            // The log already holds this seq: a worker that took the reply over wrote past it.
            Err(e) if e.to_string().contains("equal or smaller") => Err(StoreError::ReplyTakenOver),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the last question's reply and locks the session so the question is answered again.
    pub async fn regenerate(&self, token: &str, message_id: &str) -> Result<Regenerated, StoreError> {
        let reply_id = chat_wire::reply_id_for(message_id);
        let mut conn = self.conn.clone();
        let outcome: String = REGENERATE
            .key(key(token, "session"))
            .key(key(token, "order"))
            .key(key(token, "messages"))
            .key(key(token, "lock"))
            .key(log_key(token, &reply_id))
            .key(key(token, "stop"))
            .arg(message_id)
            .arg(&reply_id)
            .arg(self.session_ttl.as_secs())
            .arg(self.reply_lock.as_secs().max(1))
            .invoke_async(&mut conn)
            .await?;
        Ok(match outcome.as_str() {
            "ok" => Regenerated::Ready,
            "expired" => Regenerated::SessionExpired,
            "unknown" => Regenerated::UnknownMessage,
            "not_last" => Regenerated::NotLastQuestion,
            "busy" => Regenerated::ReplyInProgress,
            other => return Err(StoreError::Corrupt(format!("regenerate script answered {other}"))),
        })
    }

    /// Counts one message of a session against `MESSAGES_PER_SESSION_PER_WINDOW` (the counter
    /// [`Store::accept_user_message`] shares); `Some(wait)` once over it.
    pub async fn count_message(&self, token: &str) -> Result<Option<Duration>, StoreError> {
        self.count(key(token, "rate"), self.messages_per_window, self.rate_window).await
    }

    /// Extends a connection mapping's life to the session's TTL (each message is activity), for a
    /// caller that already knows the connection's session.
    pub async fn refresh_connection(&self, connection_id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: bool = conn.expire(conn_key(connection_id), self.session_ttl.as_secs() as i64).await?;
        Ok(())
    }

    /// Counts one session created from `address` against `limit` per `window`.
    pub async fn count_session_creation(
        &self,
        address: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Option<Duration>, StoreError> {
        self.count(format!("chat:ip:{{{address}}}"), limit, window).await
    }

    async fn count(&self, counter: String, limit: u32, window: Duration) -> Result<Option<Duration>, StoreError> {
        if limit == 0 {
            return Ok(None);
        }
        let mut conn = self.conn.clone();
        let wait_ms: u64 = RATE.key(counter).arg(limit).arg(window.as_millis() as u64).invoke_async(&mut conn).await?;
        Ok((wait_ms > 0).then(|| Duration::from_millis(wait_ms)))
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

    /// Stores a user message and locks the session for its reply, in one atomic step that also
    /// counts it against the session's message rate (a resent duplicate is not counted).
    pub async fn accept_user_message(&self, token: &str, message: &ChatMessage) -> Result<Accepted, StoreError> {
        let json = serde_json::to_string(message).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut conn = self.conn.clone();
        let (outcome, wait_ms): (String, u64) = ACCEPT
            .key(key(token, "session"))
            .key(key(token, "order"))
            .key(key(token, "messages"))
            .key(key(token, "lock"))
            .key(key(token, "conns"))
            .key(key(token, "rate"))
            .arg(&message.id)
            .arg(json)
            .arg(self.session_ttl.as_secs())
            .arg(self.reply_lock.as_secs().max(1))
            .arg(self.max_history)
            .arg(self.messages_per_window)
            .arg(self.rate_window.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        match outcome.as_str() {
            "stored" => Ok(Accepted::Stored),
            "duplicate" => Ok(Accepted::Duplicate),
            "expired" => Ok(Accepted::SessionExpired),
            "busy" => Ok(Accepted::ReplyInProgress),
            "rate_limited" => Ok(Accepted::RateLimited(Duration::from_millis(wait_ms))),
            other => Err(StoreError::Corrupt(format!("accept script answered {other}"))),
        }
    }

    /// Extends the session's lock for the reply to `message_id` while that reply is written.
    pub async fn renew_reply_lock(&self, token: &str, message_id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i32 = RENEW_LOCK
            .key(key(token, "lock"))
            .arg(message_id)
            .arg(self.reply_lock.as_secs().max(1))
            .invoke_async(&mut conn)
            .await?;
        Ok(())
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

    /// Stores a finished reply once, whatever the number of attempts, in place of its `streaming`
    /// placeholder; drops its log and unlocks the session.
    /// `next_seq` is the seq after the writer's last logged delta: a log that moved past it
    /// belongs to a worker that took the reply over.
    pub async fn store_reply(
        &self,
        token: &str,
        reply: &ChatMessage,
        user_message_id: &str,
        next_seq: u64,
    ) -> Result<StoredReply, StoreError> {
        let json = serde_json::to_string(reply).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut conn = self.conn.clone();
        let (outcome, connections): (String, Vec<String>) = STORE_REPLY
            .key(key(token, "session"))
            .key(key(token, "order"))
            .key(key(token, "messages"))
            .key(key(token, "lock"))
            .key(key(token, "conns"))
            .key(log_key(token, &reply.id))
            .arg(&reply.id)
            .arg(json)
            .arg(self.session_ttl.as_secs())
            .arg(user_message_id)
            .arg(self.max_history)
            .arg(next_seq)
            .invoke_async(&mut conn)
            .await?;
        match outcome.as_str() {
            "stored" => Ok(StoredReply::Stored { connections }),
            "taken_over" => Ok(StoredReply::TakenOver),
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
        let created: Result<(), redis::RedisError> = conn.xgroup_create_mkstream(&self.stream, &self.group, "0").await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// New entries for `consumer` (XREADGROUP `>`), waiting up to `block` if there are none.
    pub async fn read_new(
        &self,
        consumer: &str,
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<StreamEntry>, StoreError> {
        let mut options = StreamReadOptions::default().group(&self.group, consumer).count(count);
        if let Some(block) = block {
            options = options.block(block.as_millis() as usize);
        }
        let mut conn = self.conn.clone();
        let reply: Option<StreamReadReply> = conn.xread_options(&[&self.stream], &[">"], &options).await?;
        Ok(reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids).map(|entry| parse_entry(entry, 1)).collect())
    }

    /// Takes over entries pending on any consumer for longer than `min_idle` (a dead worker's).
    pub async fn claim_stale(
        &self,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<StreamEntry>, StoreError> {
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

    /// Resets an entry's idle time, so a reply that takes longer than `WORKER_CLAIM_IDLE_MS` is not
    /// taken over while its worker is alive.
    pub async fn keep_claimed(&self, consumer: &str, entry_id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(consumer)
            .arg(0)
            .arg(entry_id)
            .arg("JUSTID")
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Entries delivered to a consumer and not yet acknowledged, across the group.
    pub async fn pending_count(&self) -> Result<usize, StoreError> {
        let mut conn = self.conn.clone();
        let reply: redis::streams::StreamPendingReply = conn.xpending(&self.stream, &self.group).await?;
        Ok(reply.count())
    }
}

fn decode(json: &str) -> Result<ChatMessage, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse_entry(entry: StreamId, deliveries: usize) -> StreamEntry {
    let field = |name: &str| entry.get::<String>(name);
    let request = match (field("token"), field("message_id"), field("endpoint")) {
        (Some(token), Some(message_id), Some(endpoint)) => Some(ReplyRequest { token, message_id, endpoint }),
        _ => None,
    };
    StreamEntry { entry_id: entry.id, request, deliveries: entry.delivered_count.unwrap_or(deliveries) }
}
