//! The settings a stack runs with: environment variables, for a child process or for
//! [`Config::from_vars`] in this one.

use std::collections::HashMap;

use chat_core::{Config, ConfigError};
use chat_local::LocalConfig;
use chat_stub_model::StubModel;

/// Environment variables in order; setting one again replaces it.
#[derive(Debug, Clone, Default)]
pub struct Vars(Vec<(String, String)>);

impl Vars {
    /// What every stack is pointed at: its Redis, and the stub model, called with `api_key`.
    pub fn stack(redis_url: &str, stub: &StubModel, api_key: &str) -> Vars {
        Vars::default()
            .set("REDIS_URL", redis_url)
            .set("OPENAI_BASE_URL", stub.base_url())
            .set("OPENAI_API_KEY", api_key)
            .set("OPENAI_MODEL", "stub")
            // A title request after each first reply would take a scripted answer meant for a
            // question: the stories about titles turn it on.
            .set("CONVERSATION_TITLES", "false")
    }

    /// Sets `name`, replacing an earlier value.
    pub fn set(mut self, name: &str, value: impl Into<String>) -> Vars {
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.to_string(), value.into()));
        self
    }

    /// Sets each of `vars`, in order.
    pub fn with(self, vars: &[(&str, &str)]) -> Vars {
        vars.iter().fold(self, |all, (name, value)| all.set(name, *value))
    }

    /// Sets `name` as this process has it (empty when unset).
    pub fn inherit(self, name: &str) -> Vars {
        self.set(name, std::env::var(name).unwrap_or_default())
    }

    /// Each name and value, for `Command::envs`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The product's settings from these variables alone.
    pub fn config(&self) -> Result<Config, ConfigError> {
        Config::from_vars(&self.map())
    }

    /// The local runner's settings from these variables alone.
    pub fn local_config(&self) -> Result<LocalConfig, ConfigError> {
        LocalConfig::from_vars(&self.map())
    }

    fn map(&self) -> HashMap<String, String> {
        self.0.iter().cloned().collect()
    }
}

/// Builds the config a test runs with: `vars` override the test defaults.
pub fn test_config(redis_url: &str, stub: &StubModel, vars: &[(&str, &str)]) -> Config {
    Vars::stack(redis_url, stub, "test-key")
        .with(&[
            ("APP_ENV", "development"),
            ("MODEL_RETRY_BASE_MS", "10"),
            ("WORKER_BLOCK_MS", "200"),
            ("WORKER_CLAIM_IDLE_MS", "60000"),
        ])
        .with(vars)
        .config()
        .expect("test config")
}
