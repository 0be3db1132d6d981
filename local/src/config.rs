//! The local runner's own settings (unused on AWS), read from the environment once by `main`.

use std::collections::HashMap;
use std::time::Duration;

use chat_core::config::Vars;
use chat_core::ConfigError;

/// How the local runner serves the product on this machine.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// `LOCAL_BIND` (`127.0.0.1`): the address the local gateway listens on.
    pub bind: String,
    /// `LOCAL_HTTP_PORT` (3500): port of the HTTP API, the WebSocket API (`/chat`) and `@connections`.
    pub http_port: u16,
    /// `LOCAL_SITE_PORT` (3000): port of the web app.
    pub site_port: u16,
    /// `LOCAL_SITE_DIR` (`frontend/dist`): the built web app (`scripts/build-frontend.sh`).
    pub site_dir: String,
    /// `LOCAL_DATA_DIR` (`.data`): where the local redis-server keeps its append-only file.
    pub data_dir: String,
    /// True when `REDIS_URL` is unset: the local runner starts its own redis-server.
    pub start_redis: bool,
    /// True when neither `OPENAI_API_KEY` (nor its secret's ARN) nor `OPENAI_BASE_URL` is set:
    /// the local runner serves the embedded model and points the worker at it.
    pub embedded_model: bool,
    /// `LOCAL_WORKER` (`true`): run the worker inside the local process; `false` leaves the stream
    /// to separate `local worker` processes.
    pub in_process_worker: bool,
    /// The WebSocket limits the emulator applies, as API Gateway does.
    pub websocket: WebSocketLimits,
    /// What the gateway's listener admits.
    pub listener: ListenerLimits,
    /// `LOCAL_REDIS_APPENDFSYNC` (`everysec`): when the local redis-server flushes its
    /// append-only file: `everysec` or `always`.
    pub redis_fsync: crate::redis_server::AppendFsync,
    /// `LOCAL_MANAGEMENT_SECRET` (random per run): the Management API's secret path segment, for
    /// a benchmark or tool that posts to the gateway itself (16-128 of `A-Z a-z 0-9 - _`).
    pub management_secret: Option<String>,
}

/// What the gateway's listener admits: API Gateway's front door protects it; locally the gateway
/// protects itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// `LOCAL_HEADER_READ_TIMEOUT_SECONDS` (10): a request whose headers take longer is dropped
    /// (slowloris).
    pub header_read_timeout: Duration,
    /// `LOCAL_MAX_CONNECTIONS` (10000): open TCP connections (WebSockets included) at once; more
    /// wait in the listen backlog until one closes.
    pub max_connections: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits { header_read_timeout: Duration::from_secs(10), max_connections: 10_000 }
    }
}

/// API Gateway's WebSocket limits, as the emulator applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebSocketLimits {
    /// `LOCAL_WS_IDLE_TIMEOUT_SECONDS` (600): idle connections are closed.
    pub idle_timeout: Duration,
    /// `LOCAL_WS_MAX_SECONDS` (7200): connections are closed after this long.
    pub max_duration: Duration,
}

impl Default for WebSocketLimits {
    fn default() -> Self {
        WebSocketLimits { idle_timeout: Duration::from_secs(600), max_duration: Duration::from_secs(7200) }
    }
}

impl LocalConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads the given variables (the environment, or a test's own map).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::read(&Vars::new(vars))
    }

    /// Every variable the local runner reads of its own (docs/configuration.md lists them).
    pub fn variables() -> Vec<String> {
        let none = HashMap::new();
        let env = Vars::new(&none);
        Self::read(&env).expect("the defaults are a valid configuration");
        env.read()
    }

    fn read(env: &Vars) -> Result<Self, ConfigError> {
        let defaults = WebSocketLimits::default();
        let listener = ListenerLimits::default();
        Ok(LocalConfig {
            bind: env.string("LOCAL_BIND").unwrap_or_else(|| "127.0.0.1".into()),
            http_port: env.number("LOCAL_HTTP_PORT", 3500)?,
            site_port: env.number("LOCAL_SITE_PORT", 3000)?,
            site_dir: env.string("LOCAL_SITE_DIR").unwrap_or_else(|| "frontend/dist".into()),
            data_dir: env.string("LOCAL_DATA_DIR").unwrap_or_else(|| ".data".into()),
            start_redis: env.string("REDIS_URL").is_none(),
            embedded_model: ["OPENAI_API_KEY", "OPENAI_API_KEY_SECRET_ARN", "OPENAI_BASE_URL"]
                .iter()
                .all(|name| env.string(name).is_none()),
            in_process_worker: env.flag("LOCAL_WORKER", true)?,
            websocket: WebSocketLimits {
                idle_timeout: env.seconds("LOCAL_WS_IDLE_TIMEOUT_SECONDS", defaults.idle_timeout.as_secs())?,
                max_duration: env.seconds("LOCAL_WS_MAX_SECONDS", defaults.max_duration.as_secs())?,
            },
            listener: ListenerLimits {
                header_read_timeout: env
                    .seconds("LOCAL_HEADER_READ_TIMEOUT_SECONDS", listener.header_read_timeout.as_secs())?
                    .max(Duration::from_secs(1)),
                max_connections: env.number("LOCAL_MAX_CONNECTIONS", listener.max_connections)?.max(1),
            },
            redis_fsync: match env.string("LOCAL_REDIS_APPENDFSYNC").as_deref() {
                None | Some("everysec") => crate::redis_server::AppendFsync::EverySec,
                Some("always") => crate::redis_server::AppendFsync::Always,
                Some(other) => {
                    return Err(ConfigError {
                        name: "LOCAL_REDIS_APPENDFSYNC",
                        value: other.into(),
                        reason: "expected everysec or always".into(),
                    })
                }
            },
            management_secret: match env.string("LOCAL_MANAGEMENT_SECRET") {
                Some(secret)
                    if (16..=128).contains(&secret.len())
                        && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
                {
                    Some(secret)
                }
                Some(_) => {
                    return Err(ConfigError {
                        name: "LOCAL_MANAGEMENT_SECRET",
                        value: "<redacted>".into(),
                        reason: "expected 16 to 128 characters of A-Z a-z 0-9 - _".into(),
                    })
                }
                None => None,
            },
        })
    }
}
