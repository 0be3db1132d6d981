//! Which WebSocket connections belong to which session: a set per session (where replies are sent)
//! and a mapping per connection (which session a frame comes from).

use chat_wire::{ConnectionId, Token};
use redis::AsyncCommands;

use super::lua::BIND;
use super::{connection_ids, keys, SessionKeys, Store, StoreError};

impl Store {
    /// Records that WebSocket `connection_id` belongs to the session; `false` if it expired.
    #[tracing::instrument(skip_all, fields(connection_id = %connection_id))]
    pub async fn bind_connection(&self, connection_id: &ConnectionId, token: &Token) -> Result<bool, StoreError> {
        let session = SessionKeys::new(token);
        let mut conn = self.conn.clone();
        let bound: i32 = BIND
            .key(&session.session)
            .key(&session.conns)
            .key(keys::connection(connection_id))
            .arg(connection_id.as_str())
            .arg(token.expose())
            .invoke_async(&mut conn)
            .await?;
        Ok(bound == 1)
    }

    /// Extends a connection mapping's life to the session's TTL (each message is activity), for a
    /// caller that already knows the connection's session.
    pub async fn refresh_connection(&self, connection_id: &ConnectionId) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _known: bool = conn.expire(keys::connection(connection_id), self.session_ttl.as_secs() as i64).await?;
        Ok(())
    }

    /// The session a connection belongs to, extending the mapping's life to the session's TTL
    /// (each message is activity), or `None` if the connection is unknown.
    pub async fn touch_connection(&self, connection_id: &ConnectionId) -> Result<Option<Token>, StoreError> {
        let mut conn = self.conn.clone();
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
        let mut conn = self.conn.clone();
        let key = keys::connection(connection_id);
        let token = match token {
            Some(t) => Some(t.clone()),
            None => conn.get::<_, Option<String>>(&key).await?.map(|t| parse_token(&t)).transpose()?,
        };
        let mut pipe = redis::pipe();
        pipe.del(&key).ignore();
        if let Some(token) = token {
            pipe.srem(SessionKeys::new(&token).conns, connection_id.as_str()).ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// The live WebSocket connections of a session.
    pub async fn session_connections(&self, token: &Token) -> Result<Vec<ConnectionId>, StoreError> {
        let mut conn = self.conn.clone();
        connection_ids(conn.smembers(SessionKeys::new(token).conns).await?)
    }
}

fn parse_token(raw: &str) -> Result<Token, StoreError> {
    Token::parse(raw).map_err(|e| StoreError::Corrupt(format!("a connection mapping holds {e}")))
}
