//! What every handler needs, built once per cold start and shared by all invocations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chat_core::{Config, Store};
use chat_wire::{ConnectionId, Token};

use crate::trigger::WorkerTrigger;

/// Reports the readiness of a model served by this process (`loading`, `ready`, `failed`).
pub type ModelStatus = Arc<dyn Fn() -> &'static str + Send + Sync>;

/// Configuration, the Redis store and the way to wake the worker.
#[derive(Clone)]
pub struct AppState {
    /// All settings.
    pub config: Config,
    /// The Redis store (one multiplexed connection, reused across invocations).
    pub store: Store,
    /// How a stored message wakes the worker.
    pub trigger: WorkerTrigger,
    /// The embedded model's readiness, when this process serves one (local runs).
    pub model_status: Option<ModelStatus>,
    /// Which session each connection seen by this instance belongs to.
    pub connection_sessions: ConnectionSessions,
}

/// The session of each WebSocket connection this instance has served. A connection belongs to one
/// session for its whole life and its id is never reused, so a remembered mapping stays true;
/// remembering it takes one Redis round trip off every later message on that connection.
#[derive(Clone, Default)]
pub struct ConnectionSessions(Arc<Mutex<HashMap<ConnectionId, Token>>>);

/// Mappings kept per instance before the cache starts over (about 150 bytes each).
const MAX_REMEMBERED_CONNECTIONS: usize = 10_000;

impl ConnectionSessions {
    /// The session of `connection_id`, if this instance has seen it.
    pub fn get(&self, connection_id: &ConnectionId) -> Option<Token> {
        self.0.lock().expect("connection cache lock").get(connection_id).cloned()
    }

    /// Remembers the session of `connection_id`.
    pub fn remember(&self, connection_id: &ConnectionId, token: &Token) {
        let mut map = self.0.lock().expect("connection cache lock");
        if map.len() >= MAX_REMEMBERED_CONNECTIONS {
            map.clear();
        }
        map.insert(connection_id.clone(), token.clone());
    }

    /// Forgets a connection that closed.
    pub fn forget(&self, connection_id: &ConnectionId) {
        self.0.lock().expect("connection cache lock").remove(connection_id);
    }
}

impl AppState {
    /// Builds the state from the environment (a Lambda cold start).
    pub async fn from_env() -> Result<Self, lambda_runtime::Error> {
        chat_core::telemetry::init_tracing();
        let config = Config::load().await?;
        let store = Store::connect(&config)?;
        let trigger = WorkerTrigger::from_config(&config).await;
        Ok(AppState { config, store, trigger, model_status: None, connection_sessions: ConnectionSessions::default() })
    }

    /// Builds the state from parts (the local runner and tests).
    pub fn new(config: Config, store: Store, trigger: WorkerTrigger) -> Self {
        AppState { config, store, trigger, model_status: None, connection_sessions: ConnectionSessions::default() }
    }
}
