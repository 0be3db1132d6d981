//! The embedded model: llama.cpp through the `llama-cpp-2` bindings, served as an
//! OpenAI-compatible API so the worker keeps one model code path.
//!
//! Layout:
//! * [`engine`]: loads the GGUF on its own thread, renders the chat template stored in the file,
//!   samples (temperature, top_p, seed, stop sequences, max_tokens) and streams decoded text.
//! * [`server`]: `POST /v1/chat/completions` (SSE or JSON), `GET /v1/models`, `GET /health`.
//! * [`config`]: its own settings ([`ModelServerConfig`]); it depends on no other crate of ours.
//!
//! [`start`] starts both and reports load progress, for the `model-server` binary and the local
//! runner alike.

pub mod config;
pub mod engine;
pub mod server;

use std::future::Future;
use std::net::SocketAddr;

pub use config::ModelServerConfig;
pub use engine::{Engine, EngineSettings, EngineState};
use tokio::net::TcpListener;

/// Starts loading the model and serves the OpenAI-compatible API on `listener` right away
/// (requests wait for the model). Load progress goes to the log. Returns the engine handle and the
/// server's address.
pub fn start(
    config: &ModelServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(Engine, SocketAddr)> {
    let addr = listener.local_addr()?;
    let engine = Engine::start(config.engine());
    tokio::spawn(report_progress(engine.clone()));
    let server_engine = engine.clone();
    let defaults = server::Defaults {
        max_stops: config.max_stops,
        max_stop_bytes: config.max_stop_bytes,
        ..server::Defaults::default()
    };
    tokio::spawn(async move {
        if let Err(error) = server::serve(listener, server_engine, defaults, shutdown).await {
            tracing::error!(error = %error, "the model server stopped");
        }
    });
    Ok((engine, addr))
}

async fn report_progress(engine: Engine) {
    let mut state = engine.watch_state();
    let mut shown = -1i32;
    loop {
        let current = state.borrow_and_update().clone();
        match current {
            EngineState::Loading { progress } => {
                let percent = (progress * 100.0) as i32 / 10 * 10;
                if percent > shown {
                    shown = percent;
                    tracing::info!(model = engine.name(), "loading the model: {percent}%");
                }
            }
            EngineState::Ready => {
                tracing::info!(model = engine.name(), "the model is ready");
                return;
            }
            EngineState::Failed(error) => {
                tracing::error!(model = engine.name(), error, "the model failed to load");
                return;
            }
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}
