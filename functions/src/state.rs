//! What every handler needs, built once per cold start and shared by all invocations.

use std::sync::Arc;

use chat_core::{Config, ManagementApi, Store};

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
    /// The Management API, to close a connection that floods its frame limit.
    pub connections: ManagementApi,
}

impl AppState {
    /// Builds the state from the environment (a Lambda cold start).
    #[cfg(feature = "aws")]
    pub async fn from_env() -> Result<Self, lambda_runtime::Error> {
        chat_core::telemetry::init_tracing();
        let config = Config::load().await?;
        let store = Store::connect(&config)?;
        let trigger = WorkerTrigger::from_config(&config).await;
        let connections = ManagementApi::from_env(&config).await;
        Ok(AppState { config, store, trigger, model_status: None, connections })
    }

    /// Builds the state from parts (the local runner and tests), for the local gateway's
    /// Management API.
    pub fn new(config: Config, store: Store, trigger: WorkerTrigger) -> Self {
        let connections = ManagementApi::local(&config);
        AppState { config, store, trigger, model_status: None, connections }
    }
}
