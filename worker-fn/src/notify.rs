//! Posting frames to WebSocket connections through the API Gateway Management API
//! (`POST /@connections/{id}`), with the AWS SDK, against AWS or the local gateway alike.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_apigatewaymanagement::config::{BehaviorVersion, Builder, Credentials, Region};
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_apigatewaymanagement::Client;
use chat_wire::ConnectionId;

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

/// Management API clients, one per endpoint (one per WebSocket API stage), built on first use and
/// reused: no client construction per message.
pub struct ManagementApi {
    base: Builder,
    clients: Mutex<HashMap<String, Client>>,
}

impl ManagementApi {
    /// Credentials and region from the standard AWS chain (Lambda's environment).
    pub async fn from_env() -> Self {
        let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
        Self::with_builder(Builder::from(&sdk))
    }

    /// For the local gateway, which checks no signature: fixed credentials, no AWS look-ups.
    pub fn local() -> Self {
        Self::with_builder(
            Builder::new()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("local", "local", None, None, "local-gateway")),
        )
    }

    fn with_builder(base: Builder) -> Self {
        ManagementApi { base, clients: Mutex::new(HashMap::new()) }
    }

    fn client(&self, endpoint: &str) -> Client {
        let mut clients = self.clients.lock().expect("client cache lock");
        // Looked up by reference first: no allocation on the hot path (one post per delta).
        if let Some(client) = clients.get(endpoint) {
            return client.clone();
        }
        let client = Client::from_conf(self.base.clone().endpoint_url(endpoint).build());
        clients.insert(endpoint.to_string(), client.clone());
        client
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
