//! The whole product on one machine: the API Gateway emulator over the real Lambda handlers, the
//! worker as a daemon, and a local redis-server.
//!
//! Layout:
//! * [`config`]: the local runner's own settings ([`LocalConfig`]), apart from the product's.
//! * [`gateway`]: the API Gateway emulator (HTTP API, WebSocket API, Management API), generic
//!   over the handlers it calls.
//! * [`handlers`]: this product's Lambda handlers, as the gateway calls them.
//! * [`listener`]: serves a router over TCP with `TCP_NODELAY`, a header-read timeout and a
//!   connection cap.
//! * [`redis_server`]: starts a real redis-server on a free port.
//! * [`site`]: serves the built frontend with its runtime `config.json` and security headers.
//! * [`start_embedded_model`]: the llama.cpp model behind an OpenAI-compatible server, used
//!   when no model provider is configured.
//!
//! [`run`] takes a bound listener and a shutdown future, so tests bind port 0 and spawn it.

pub mod config;
pub mod gateway;
pub mod handlers;
pub mod listener;
pub mod redis_server;
pub mod site;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use chat_core::{Config, Store};
use chat_functions::{AppState, WorkerTrigger};
use chat_worker::{ManagementApi, Worker};
use tokio::net::TcpListener;

pub use config::{ListenerLimits, LocalConfig, WebSocketLimits};

/// Why the local stack stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// Redis could not be reached or started.
    #[error(transparent)]
    Store(#[from] chat_core::StoreError),
    /// The listener failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What to run beside the gateway.
#[derive(Clone)]
pub struct Options {
    /// Run the worker daemon in this process (tests turn it off to drive the worker themselves or
    /// to run it as a separate process).
    pub in_process_worker: bool,
    /// The embedded model this process serves, reported by `/health`.
    pub model_status: Option<chat_functions::ModelStatus>,
    /// The WebSocket limits the emulator applies.
    pub websocket: WebSocketLimits,
    /// What the gateway's listener admits.
    pub listener: ListenerLimits,
    /// The secret path segment of the Management API (`/{secret}/@connections/{id}`): only this
    /// process, and workers reading the endpoint from the request stream, know where to post.
    pub management_secret: String,
    /// How the message handler wakes workers: none to wake by default (workers block on the
    /// stream); the Lambda wake-up when a test runs the worker as Lambda does.
    pub worker_trigger: WorkerTrigger,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            in_process_worker: true,
            model_status: None,
            websocket: WebSocketLimits::default(),
            listener: ListenerLimits::default(),
            management_secret: new_management_secret(),
            worker_trigger: WorkerTrigger::StreamReaders,
        }
    }
}

/// Starts the embedded model's OpenAI-compatible server (on `LOCAL_MODEL_PORT`, 0 for any free
/// port) and points the worker's model settings at it. The model loads in the background;
/// requests sent meanwhile wait for it.
pub async fn start_embedded_model(
    config: &mut Config,
    model: &chat_model::ModelServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<chat_model::Engine, LocalError> {
    let listener = TcpListener::bind((model.bind.as_str(), model.port)).await?;
    let (engine, addr) = chat_model::start(model, listener, shutdown)?;
    config.model.base_url = format!("http://{addr}/v1");
    config.model.model = engine.name().to_string();
    config.model.api_key = None;
    config.model.context_tokens = model.context_tokens;
    // SmolLM2-135M cannot title a conversation (of 20 varied first questions, 17 titles read as
    // replies and the 3 kept were no topic: PERFORMANCE.md), so the question's own words stay
    // unless CONVERSATION_TITLES asks for the model's.
    config.worker.titles.get_or_insert(false);
    Ok(engine)
}

/// The `/health` probe of an embedded model.
pub fn model_status(engine: &chat_model::Engine) -> chat_functions::ModelStatus {
    let engine = engine.clone();
    Arc::new(move || match engine.state() {
        chat_model::EngineState::Loading { .. } => "loading",
        chat_model::EngineState::Ready => "ready",
        chat_model::EngineState::Failed(_) => "failed",
    })
}

/// Serves the gateway on `listener` (and the worker, if asked) until `shutdown` resolves.
///
/// The Management API endpoint the worker posts to is this listener's address under the run's
/// secret path, so `WS_MANAGEMENT_ENDPOINT` is set here whatever the environment said.
pub async fn run(
    listener: TcpListener,
    mut config: Config,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), LocalError> {
    let addr = listener.local_addr()?;
    config.ws_management_endpoint = Some(management_endpoint(addr, &options.management_secret));
    let store = Store::connect(&config)?;
    let mut state = AppState::new(config.clone(), store.clone(), options.worker_trigger.clone());
    state.model_status = options.model_status.clone();
    let gateway = gateway::Gateway::new(
        handlers::ChatHandlers::new(state),
        gateway::GatewayConfig {
            websocket_path: "/chat".into(),
            management_secret: options.management_secret.clone(),
            own_ip: addr.ip(),
            idle_timeout: options.websocket.idle_timeout,
            max_duration: options.websocket.max_duration,
        },
    );

    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let worker_task = if options.in_process_worker {
        let reader = Store::connect_for_blocking_reads(&config, config.worker.block)?;
        let worker = Arc::new(Worker::new(config.clone(), store, ManagementApi::local(&config)));
        Some(tokio::spawn(worker.run(reader, async {
            let _ = worker_stopped.await;
        })))
    } else {
        None
    };

    let app = gateway::router(gateway.clone());
    let shutdown = async move {
        shutdown.await;
        gateway.close_all();
    };
    listener::serve(listener, app, options.listener, shutdown).await?;
    let _ = stop_worker.send(());
    if let Some(task) = worker_task {
        let _ = task.await;
    }
    Ok(())
}

/// The Management API endpoint of a gateway listening on `addr` with this secret path.
pub fn management_endpoint(addr: SocketAddr, secret: &str) -> String {
    // Bound to every address: reached through loopback, as the Management API only serves
    // this machine.
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("http://{addr}/{secret}")
}

/// A fresh secret path for the Management API: 128 random bits, hex.
pub fn new_management_secret() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Serves the built frontend in `dir` on `listener` until `shutdown` resolves, with a
/// `config.json` pointing the page at `api_url` and `ws_url`.
pub async fn serve_site(
    listener: TcpListener,
    dir: &std::path::Path,
    config: site::SiteConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), LocalError> {
    let app = site::router(dir, config)?;
    listener::serve(listener, app, ListenerLimits::default(), shutdown).await?;
    Ok(())
}
