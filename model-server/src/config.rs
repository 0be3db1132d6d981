//! The model server's own settings, read from the environment once. Kept apart from the chat
//! service's configuration so that this crate needs neither Redis nor the AWS SDK.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use crate::engine::EngineSettings;

/// A model server variable that is set but cannot be used: its name, and why.
#[derive(Debug, thiserror::Error)]
#[error("{name} is invalid: {why}")]
pub struct ConfigError {
    /// The variable's name.
    pub name: &'static str,
    /// The value and what is wrong with it.
    pub why: String,
}

/// Where the embedded model comes from and where its OpenAI-compatible API listens.
#[derive(Debug, Clone)]
pub struct ModelServerConfig {
    /// `MODEL_PATH`: the GGUF file (default `$MODEL_CACHE_DIR/SmolLM2-135M-Instruct.Q4_1.gguf`,
    /// `MODEL_CACHE_DIR` defaulting to `~/.cache/chatbot/models`).
    pub model_path: PathBuf,
    /// `EMBEDDED_CONTEXT_TOKENS` (2048): context window, prompt and reply together.
    pub context_tokens: u32,
    /// `EMBEDDED_THREADS` (the number of CPUs, at most 4): decoding threads.
    pub threads: i32,
    /// `EMBEDDED_MAX_QUEUE` (16): requests waiting or running at once; more get 503 with
    /// `Retry-After`.
    pub max_queue: usize,
    /// `EMBEDDED_MAX_STOP_SEQUENCES` (4, as OpenAI) and `EMBEDDED_MAX_STOP_BYTES` (256): a
    /// request's `stop` list; longer ones are refused with 400.
    pub max_stops: usize,
    /// See `max_stops`.
    pub max_stop_bytes: usize,
    /// `LOCAL_BIND` (`127.0.0.1`): the address the server listens on.
    pub bind: String,
    /// `LOCAL_MODEL_PORT` (3501): the port (0: any free port).
    pub port: u16,
}

impl ModelServerConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads the given variables (the environment, or a test's own map).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::read(vars, &RefCell::default())
    }

    /// Every variable the model server reads (docs/configuration.md lists them).
    pub fn variables() -> Vec<String> {
        let read = RefCell::default();
        Self::read(&HashMap::new(), &read).expect("the defaults are a valid configuration");
        read.into_inner().into_iter().collect()
    }

    fn read(vars: &HashMap<String, String>, read: &RefCell<BTreeSet<String>>) -> Result<Self, ConfigError> {
        let string = |name: &str| {
            read.borrow_mut().insert(name.to_string());
            vars.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
        };
        let model_path = string("MODEL_PATH").map(PathBuf::from).unwrap_or_else(|| {
            let cache = string("MODEL_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| {
                PathBuf::from(string("HOME").unwrap_or_else(|| ".".into())).join(".cache/chatbot/models")
            });
            cache.join("SmolLM2-135M-Instruct.Q4_1.gguf")
        });
        let default_threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4)) as i32;
        Ok(ModelServerConfig {
            model_path,
            context_tokens: number(&string, "EMBEDDED_CONTEXT_TOKENS", 2048)?,
            threads: number(&string, "EMBEDDED_THREADS", default_threads)?,
            max_queue: number(&string, "EMBEDDED_MAX_QUEUE", 16)?,
            max_stops: number(&string, "EMBEDDED_MAX_STOP_SEQUENCES", 4)?,
            max_stop_bytes: number(&string, "EMBEDDED_MAX_STOP_BYTES", 256)?,
            bind: string("LOCAL_BIND").unwrap_or_else(|| "127.0.0.1".into()),
            port: number(&string, "LOCAL_MODEL_PORT", 3501)?,
        })
    }

    /// How the engine loads and runs the model.
    pub fn engine(&self) -> EngineSettings {
        EngineSettings {
            model_path: self.model_path.clone(),
            context_tokens: self.context_tokens,
            threads: self.threads,
            max_queue: self.max_queue,
        }
    }
}

fn number<T: std::str::FromStr>(
    string: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match string(name) {
        None => Ok(default),
        Some(value) => value.parse().map_err(|e: T::Err| ConfigError { name, why: format!("{value:?}: {e}") }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_a_bad_number() {
        let vars = HashMap::from([("HOME".to_string(), "/home/ada".to_string())]);
        let config = ModelServerConfig::from_vars(&vars).unwrap();
        assert_eq!(config.model_path, PathBuf::from("/home/ada/.cache/chatbot/models/SmolLM2-135M-Instruct.Q4_1.gguf"));
        assert_eq!((config.context_tokens, config.port, config.bind.as_str()), (2048, 3501, "127.0.0.1"));
        let bad = HashMap::from([("LOCAL_MODEL_PORT".to_string(), "http".to_string())]);
        assert_eq!(ModelServerConfig::from_vars(&bad).unwrap_err().name, "LOCAL_MODEL_PORT");
    }
}
