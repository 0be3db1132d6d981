//! Which WebSocket connections belong to which session: a set per session (where replies are sent)
//! and a mapping per connection (which session a frame comes from).

use chat_wire::{ConnectionId, Token};
use redis::AsyncCommands;

use super::lua::BIND;
use super::{connection_ids, keys, SessionKeys, Store, StoreError};

impl Store {
    /// Records that WebSocket `connection_id` belongs to the session; `false` if it expired.
    ///
    /// Two commands, as the session's set and the connection's mapping live in different hash
    /// slots: the set first, then the mapping. A crash between them leaves an id in the set with no
    /// mapping; the handshake failed, so no client holds that connection, and the first post to
    /// it answers `410 Gone`, which removes it. The other order could leave a mapping whose frames
    /// are accepted while replies never reach its socket.
    #[tracing::instrument(skip_all, fields(connection_id = %connection_id))]
    pub async fn bind_connection(&self, connection_id: &ConnectionId, token: &Token) -> Result<bool, StoreError> {
        let session = SessionKeys::new(token);
        let mut conn = self.connection().await?;
        let ttl: u64 =
            BIND.key(&session.session).key(&session.conns).arg(connection_id.as_str()).invoke_async(&mut conn).await?;
        if ttl == 0 {
            return Ok(false);
        }
        let () = conn.set_ex(keys::connection(connection_id), token.expose(), ttl).await?;
        Ok(true)
    }

    /// Extends a connection mapping's life to the session's TTL (each message is activity), for a
    /// caller that already knows the connection's session.
    pub async fn refresh_connection(&self, connection_id: &ConnectionId) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        let _known: bool = conn.expire(keys::connection(connection_id), self.session_ttl.as_secs() as i64).await?;
        Ok(())
    }

    /// The session a connection belongs to, extending the mapping's life to the session's TTL
    /// (each message is activity), or `None` if the connection is unknown.
    pub async fn touch_connection(&self, connection_id: &ConnectionId) -> Result<Option<Token>, StoreError> {
        let mut conn = self.connection().await?;
        let token: Option<String> = redis::cmd("GETEX")
            .arg(keys::connection(connection_id))
            .arg("EX")
            .arg(self.session_ttl.as_secs())
            .query_async(&mut conn)
            .await?;
        token.map(|t| parse_token(&t)).transpose()
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
