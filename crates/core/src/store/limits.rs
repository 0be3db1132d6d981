//! Fixed-window rate counters: messages per session, new sessions per client address.

use std::time::Duration;

use chat_wire::Token;

use super::{keys, scripts, SessionKeys, Store, StoreError};
use super::{Refusal, Step};

impl Store {
    /// Counts one message of a session against `MESSAGES_PER_SESSION_PER_WINDOW` (the counter
    /// the accept step shares); `Some(wait)` once over it.
    pub async fn count_message(&self, token: &Token) -> Result<Option<Duration>, StoreError> {
        self.count(SessionKeys::new(token).rate, self.messages_per_window, self.rate_window).await
    }

    /// Counts one `GET /chat_history` of a live session against `limit` per rate window:
    /// `Ok(Some(wait))` once over it, [`Refusal::SessionExpired`] (and no counter) for an unknown
    /// session.
    pub async fn count_history_read(&self, token: &Token, limit: u32) -> Result<Step<Option<Duration>>, StoreError> {
        self.count_for_session(token, SessionKeys::new(token).reads, limit).await
    }

    /// Counts one `GET /search` of a live session against `limit` per rate window, as
    /// [`Store::count_history_read`] does.
    pub async fn count_search(&self, token: &Token, limit: u32) -> Result<Step<Option<Duration>>, StoreError> {
        self.count_for_session(token, SessionKeys::new(token).searches, limit).await
    }

    /// Counts one conversation created, changed or deleted by a live session against `limit`
    /// per rate window, as [`Store::count_history_read`] does.
    pub async fn count_change(&self, token: &Token, limit: u32) -> Result<Step<Option<Duration>>, StoreError> {
        self.count_for_session(token, SessionKeys::new(token).changes, limit).await
    }

    async fn count_for_session(
        &self,
        token: &Token,
        counter: String,
        limit: u32,
    ) -> Result<Step<Option<Duration>>, StoreError> {
        let keys = SessionKeys::new(token);
        let mut conn = self.connection().await?;
        let call = scripts::CountSession {
            session: &keys.session,
            counter: &counter,
            limit,
            window_ms: self.rate_window.as_millis() as u64,
        };
        let wait_ms: i64 = call.invocation().invoke_async(&mut conn).await?;
        Ok(match wait_ms {
            -1 => Err(Refusal::SessionExpired),
            0 => Ok(None),
            wait => Ok(Some(Duration::from_millis(wait.unsigned_abs()))),
        })
    }

    /// Counts one session created from `address` against `limit` per `window`.
    pub async fn count_session_creation(
        &self,
        address: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Option<Duration>, StoreError> {
        self.count(keys::address(address), limit, window).await
    }

    async fn count(&self, counter: String, limit: u32, window: Duration) -> Result<Option<Duration>, StoreError> {
        if limit == 0 {
            return Ok(None);
        }
        let mut conn = self.connection().await?;
        let call = scripts::Count { counter: &counter, limit, window_ms: window.as_millis() as u64 };
        let wait_ms: u64 = call.invocation().invoke_async(&mut conn).await?;
        Ok((wait_ms > 0).then(|| Duration::from_millis(wait_ms)))
    }
}
