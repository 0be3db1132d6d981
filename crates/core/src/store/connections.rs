//! Which WebSocket connections belong to which session: a set per session (where replies are sent)
//! and a mapping per connection (which session a frame comes from).

use std::time::Duration;

use chat_wire::{ConnectionId, Token};
use redis::AsyncCommands;

use super::{connection_ids, keys, scripts, SessionKeys, Store, StoreError};

/// What binding a connection to a session did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The connection belongs to the session now.
    Bound,
    /// The session is unknown or expired.
    Expired,
    /// The session already has `MAX_CONNECTIONS_PER_SESSION` connections.
    Full,
}

/// A client frame, counted against its connection's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The session the connection belongs to.
    pub token: Token,
    /// `Some(wait)` when the frame is over `FRAMES_PER_CONNECTION_PER_WINDOW`: the window ends
    /// after `wait`.
    pub over_limit: Option<Duration>,
    /// How many frames of this window were over the limit, this one included (0 within it).
    pub frames_over: u64,
}

impl Store {
    /// Records that WebSocket `connection_id` belongs to the session, unless the session expired
    /// or already has `MAX_CONNECTIONS_PER_SESSION` connections.
    ///
    /// Two commands, as the session's set and the connection's mapping live in different hash
    /// slots: the set first, then the mapping. A crash between them leaves an id in the set with no
    /// mapping; the handshake failed, so no client holds that connection, and the first post to
    /// it answers `410 Gone`, which removes it. The other order could leave a mapping whose frames
    /// are accepted while replies never reach its socket.
    #[tracing::instrument(skip_all, fields(connection_id = %connection_id))]
    pub async fn bind_connection(&self, connection_id: &ConnectionId, token: &Token) -> Result<Bound, StoreError> {
        let session = SessionKeys::new(token);
        let mut conn = self.connection().await?;
        let call = scripts::Bind { session: &session, connection: connection_id, max: self.max_connections };
        let ttl: i64 = call.invocation().invoke_async(&mut conn).await?;
        match ttl {
            0 => return Ok(Bound::Expired),
            -1 => return Ok(Bound::Full),
            _ => {}
        }
        let () = conn.set_ex(keys::connection(connection_id), token.expose(), ttl.unsigned_abs()).await?;
        Ok(Bound::Bound)
    }

    /// One client frame on `connection_id`: the session it belongs to (`None` if the connection
    /// is unknown), counted against `FRAMES_PER_CONNECTION_PER_WINDOW`. Every frame extends the
    /// mapping's life to the session's TTL, so a connection lives as long as it is used, however
    /// late in the session it connected.
    pub async fn connection_frame(&self, connection_id: &ConnectionId) -> Result<Option<Frame>, StoreError> {
        let mut conn = self.connection().await?;
        let call = scripts::Frame {
            connection: connection_id,
            ttl: self.session_ttl.as_secs(),
            limit: self.frames_per_window,
            window_ms: self.rate_window.as_millis() as u64,
        };
        let (token, wait_ms, frames_over): (String, u64, u64) = call.invocation().invoke_async(&mut conn).await?;
        if token.is_empty() {
            return Ok(None);
        }
        let over_limit = (wait_ms > 0).then(|| Duration::from_millis(wait_ms));
        Ok(Some(Frame { token: parse_token(&token)?, over_limit, frames_over }))
    }

    /// Forgets a connection (on `$disconnect`, or when the Management API says it is gone).
    pub async fn unbind_connection(
        &self,
        connection_id: &ConnectionId,
        token: Option<&Token>,
    ) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        let key = keys::connection(connection_id);
        let token = match token {
            Some(t) => Some(t.clone()),
            None => conn.get::<_, Option<String>>(&key).await?.map(|t| parse_token(&t)).transpose()?,
        };
        // Two slots, two commands: out of the session's set first (no more replies are sent to it),
        // then the mapping. A crash between them leaves a mapping for a closed connection, which
        // no frame can use and which expires with the session.
        if let Some(token) = token {
            let _removed: usize = conn.srem(SessionKeys::new(&token).conns, connection_id.as_str()).await?;
        }
        let _deleted: usize = conn.del(&key).await?;
        Ok(())
    }

    /// The live WebSocket connections of a session.
    pub async fn session_connections(&self, token: &Token) -> Result<Vec<ConnectionId>, StoreError> {
        let mut conn = self.connection().await?;
        connection_ids(conn.smembers(SessionKeys::new(token).conns).await?)
    }
}

fn parse_token(raw: &str) -> Result<Token, StoreError> {
    Token::parse(raw).map_err(|e| StoreError::Corrupt(format!("a connection mapping holds {e}")))
}
