//! What one session, one connection and one address may do in a window: rate limits counted in
//! Redis, shared by every function instance.

use std::time::Duration;

/// Fixed-window rate limits, counted in Redis so every function instance shares them. A limit of
/// 0 turns it off.
#[derive(Debug, Clone)]
pub struct RateLimits {
    /// `RATE_LIMIT_WINDOW_SECONDS` (60): the window both limits count in.
    pub window: Duration,
    /// `MESSAGES_PER_SESSION_PER_WINDOW` (20): questions and regenerations per session.
    pub messages_per_session: u32,
    /// `SESSIONS_PER_IP_PER_WINDOW` (20): `POST /token` calls per client address.
    pub sessions_per_ip: u32,
    /// `FRAMES_PER_CONNECTION_PER_WINDOW` (60): frames of any kind (pings included) per
    /// WebSocket connection; those over it are answered `rate_limited`, and a connection that
    /// sends as many again in the same window is closed.
    pub frames_per_connection: u32,
    /// `HISTORY_READS_PER_SESSION_PER_WINDOW` (60): `GET /chat_history` calls per session.
    pub history_reads_per_session: u32,
    /// `SEARCHES_PER_SESSION_PER_WINDOW` (30): `GET /search` calls per session.
    pub searches_per_session: u32,
    /// `CHANGES_PER_SESSION_PER_WINDOW` (30): conversations created, changed (`PATCH`) or
    /// deleted per session.
    pub changes_per_session: u32,
}

/// How far one `GET /search` reads, so that no session's search holds Redis up for the others.
#[derive(Debug, Clone)]
pub struct SearchLimits {
    /// `MAX_SEARCH_RESULTS` (50): the most hits one search answers.
    pub max_results: usize,
    /// `SEARCH_PAGE_MESSAGES` (32): messages one Redis call of a search reads.
    pub page_messages: usize,
    /// `SEARCH_TIME_BUDGET_MS` (2000): how long one search may read; it then answers what it
    /// found, `truncated`.
    pub time_budget: Duration,
}
