//! The API Gateway Management API, with the AWS SDK, against AWS or the local gateway alike:
//! posting frames to WebSocket connections (`POST /@connections/{id}`, the worker) and closing
//! them (`DELETE /@connections/{id}`, the message function, for a client over its frame limit).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_apigatewaymanagement::config::{BehaviorVersion, Builder, Credentials, Region};
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_apigatewaymanagement::Client;
use chat_wire::ConnectionId;

use crate::Config;

/// What happened to a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The connection received the frame.
    Sent,
    /// The connection is gone (`410 GoneException`): forget it.
    Gone,
    /// The post failed for another reason (logged); the connection is kept.
    Failed,
}

/// At most this many endpoints' clients are kept. The worker posts only to its own deployment's
/// endpoints (`Config::management_endpoint_allowed`): one per stage, so this is never reached
/// unless entries name many stages, and then the cache starts afresh rather than growing.
const CACHED_CLIENTS: usize = 16;

/// Management API clients, one per endpoint (one per WebSocket API stage), built on first use and
/// reused: no client construction per message. Clones share the clients.
#[derive(Clone)]
pub struct ManagementApi {
    base: Builder,
    clients: Arc<Mutex<HashMap<String, Client>>>,
    /// Fixed local credentials, for the local gateway: nothing secret is signed.
    local: bool,
}

impl ManagementApi {
    /// Credentials and region from the standard AWS chain (Lambda's environment).
    pub async fn from_env() -> Self {
        let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
        Self::with_builder(Builder::from(&sdk), false)
    }

    /// For the local gateway, which checks no signature: fixed credentials, no AWS look-ups.
    pub fn local() -> Self {
        Self::with_builder(
            Builder::new()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("local", "local", None, None, "local-gateway")),
            true,
        )
    }

    fn with_builder(base: Builder, local: bool) -> Self {
        ManagementApi { base, clients: Arc::new(Mutex::new(HashMap::new())), local }
    }

    /// Whether posts may go to `endpoint`. With real credentials, only where
    /// [`Config::management_endpoint_allowed`] says (they sign every request); the local client
    /// signs with fixed dummy credentials, and posts to a gateway on this machine's loopback.
    pub fn accepts(&self, config: &Config, endpoint: &str) -> bool {
        config.management_endpoint_allowed(endpoint) || (self.local && is_loopback_http(endpoint))
    }

    fn client(&self, endpoint: &str) -> Client {
        let mut clients = self.clients.lock().expect("client cache lock");
        // Looked up by reference first: no allocation on the hot path (one post per delta).
        if let Some(client) = clients.get(endpoint) {
            return client.clone();
        }
        let client = Client::from_conf(self.base.clone().endpoint_url(endpoint).build());
        if clients.len() >= CACHED_CLIENTS {
            clients.clear();
        }
        clients.insert(endpoint.to_string(), client.clone());
        client
    }

    /// Closes one connection; the client sees its socket close, and `$disconnect` runs.
    pub async fn close(&self, endpoint: &str, connection_id: &ConnectionId) -> Delivery {
        let closed = self.client(endpoint).delete_connection().connection_id(connection_id.as_str()).send().await;
        match closed {
            Ok(_) => Delivery::Sent,
            Err(error) if error.as_service_error().is_some_and(|e| e.is_gone_exception()) => Delivery::Gone,
            Err(error) => {
                tracing::warn!(
                    connection_id = %connection_id,
                    error = %aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&error),
                    "closing a connection failed"
                );
                Delivery::Failed
            }
        }
    }

    /// Posts one frame to one connection.
    pub async fn post(&self, endpoint: &str, connection_id: &ConnectionId, frame: &[u8]) -> Delivery {
        let sent = self
            .client(endpoint)
            .post_to_connection()
            .connection_id(connection_id.as_str())
            .data(Blob::new(frame))
            .send()
            .await;
        match sent {
            Ok(_) => Delivery::Sent,
            Err(error) if error.as_service_error().is_some_and(|e| e.is_gone_exception()) => Delivery::Gone,
            Err(error) => {
                tracing::warn!(
                    connection_id = %connection_id,
                    error = %aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&error),
                    "post to connection failed"
                );
                Delivery::Failed
            }
        }
    }
}

/// `http://127.0.0.1:…/…`, `http://localhost:…/…` or `http://[::1]:…/…`.
fn is_loopback_http(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("http://") else { return false };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return false; // user-info: the host is what follows it
    }
    let host = match authority.strip_prefix("[::1]") {
        Some(port) => return port.is_empty() || port.starts_with(':'),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host == "127.0.0.1" || host == "localhost"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_client_posts_only_to_loopback_and_the_aws_one_only_where_config_allows() {
        let config = Config::from_vars(&[("AWS_REGION".to_string(), "eu-west-1".to_string())].into()).unwrap();
        let local = ManagementApi::local();
        assert!(local.accepts(&config, "http://127.0.0.1:3000/local"));
        assert!(local.accepts(&config, "http://[::1]:3000/local"));
        assert!(!local.accepts(&config, "http://127.0.0.1.evil.example/local"));
        assert!(!local.accepts(&config, "http://10.0.0.7:3000/local"));
        assert!(!local.accepts(&config, "http://127.0.0.1:80@evil.example/local"));
        assert!(!local.accepts(&config, "http://[::1]:@evil.example/local"));
        let aws = ManagementApi::with_builder(Builder::new(), false);
        assert!(!aws.accepts(&config, "http://127.0.0.1:3000/local"));
        assert!(aws.accepts(&config, "https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod"));
    }

    #[test]
    fn the_client_cache_stays_bounded() {
        let api = ManagementApi::local();
        for stage in 0..100 {
            api.client(&format!("https://abc123defg.execute-api.eu-west-1.amazonaws.com/stage{stage}"));
            assert!(api.clients.lock().unwrap().len() <= CACHED_CLIENTS);
        }
        let again = "https://abc123defg.execute-api.eu-west-1.amazonaws.com/stage99";
        api.client(again);
        assert!(api.clients.lock().unwrap().contains_key(again), "a recent endpoint is still cached");
    }
}
