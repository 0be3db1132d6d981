//! How a worker reads the request stream and relays replies, in both its modes (a Lambda
//! invocation, a daemon).

use std::time::Duration;

/// How the worker reads the stream and relays replies.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// `WORKER_CONCURRENCY` (1024): replies generated at once by one worker process. Replies wait
    /// on the model almost all the time; docs/configuration.md gives the measurement behind the
    /// default (PERFORMANCE.md, "Worker slots", the whole run).
    pub concurrency: usize,
    /// `WORKER_CONSUMER`: this worker's consumer name in the group (default: host and pid).
    pub consumer: String,
    /// `WORKER_CLAIM_IDLE_MS` (60000): an entry pending this long on a dead consumer is reclaimed.
    pub claim_idle: Duration,
    /// `WORKER_BLOCK_MS` (5000): how long one blocking stream read waits (daemon mode).
    pub block: Duration,
    /// `DELTA_INTERVAL_MS` (100): a reply's first piece is posted at once, later ones at most
    /// this often (each post is a billed gateway message and a signed HTTPS call; the web app
    /// reveals what arrives smoothly, so 10 posts a second read as a stream).
    pub delta_interval: Duration,
    /// `WORKER_POSTS_PER_SECOND` (2000): the posts per second one worker process aims to stay
    /// under; with more replies in flight than this allows at `DELTA_INTERVAL_MS`, each reply's
    /// interval widens to replies / this (a busy worker posts bigger pieces, not more of them).
    pub posts_per_second: u32,
    /// `DELTA_INTERVAL_MAX_MS` (1000): the widest the interval gets, however busy the worker.
    pub delta_interval_max: Duration,
    /// `MAX_REPLY_SECONDS` (120): the longest a reply may take; a longer one is stored as it
    /// stands, as an error. A Lambda invocation takes no new entry with less than this (plus
    /// [`WorkerConfig::deadline_margin`]) left.
    pub max_reply: Duration,
    /// `WORKER_MAX_DELIVERIES` (5): an entry delivered more often than this (its workers keep
    /// dying on it) is answered with an error and acknowledged.
    pub max_deliveries: usize,
    /// `RECLAIM_INTERVAL_SECONDS` (60): how often something looks for a dead worker's entries (the
    /// Lambda's schedule; a daemon looks every half `WORKER_CLAIM_IDLE_MS`).
    pub reclaim_interval: Duration,
    /// `WORKER_LEASE_SECONDS` (10): a running Lambda worker's lease on its free slots; while one
    /// has a free slot, a new question wakes no other invocation.
    pub lease: Duration,
    /// `WORKER_LINGER_MS` (1000): how long a Lambda invocation with nothing queued and nothing in
    /// flight waits for the next entry before it ends, holding its lease meanwhile (so a question
    /// asked then wakes no new invocation). PERFORMANCE.md gives the measurement behind the default.
    pub linger: Duration,
    /// `CONVERSATION_TITLES`: after a conversation's first reply, ask the model for a short title
    /// (one small non-streamed call); off, a conversation keeps its question's start. Unset: on
    /// with a model provider, off with the embedded model (the local runner decides), which
    /// cannot title (PERFORMANCE.md).
    pub titles: Option<bool>,
}

impl WorkerConfig {
    /// Whether a conversation's title is asked of the model: yes unless `CONVERSATION_TITLES`
    /// says no (or the embedded model's runner decided so).
    pub fn titles_from_model(&self) -> bool {
        self.titles != Some(false)
    }

    /// Time kept free before a Lambda invocation's deadline, beyond `MAX_REPLY_SECONDS`: the last
    /// reply's store, its `done` and the acknowledgement.
    pub fn deadline_margin(&self) -> Duration {
        Duration::from_secs(5)
    }
}

impl WorkerConfig {
    /// The shortest time between two posts of one reply while `replies` are being generated:
    /// `DELTA_INTERVAL_MS`, widened to replies / `WORKER_POSTS_PER_SECOND` when that is longer,
    /// up to `DELTA_INTERVAL_MAX_MS`.
    pub fn delta_interval(&self, replies: usize) -> Duration {
        let needed = Duration::from_secs_f64(replies as f64 / f64::from(self.posts_per_second));
        self.delta_interval.max(needed).min(self.delta_interval_max.max(self.delta_interval))
    }
}

pub(super) fn default_consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "worker".into());
    format!("{host}-{}", std::process::id())
}
