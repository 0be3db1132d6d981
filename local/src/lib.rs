//! The whole product on one machine: the API Gateway emulator over the real Lambda handlers, the
//! worker as a daemon, and a local redis-server.
//!
//! Layout:
//! * [`gateway`]: the API Gateway emulator (HTTP API, WebSocket API, Management API).
//! * [`redis_server`]: starts a real redis-server on a free port.
//!
//! [`run`] takes a bound listener and a shutdown future, so tests bind port 0 and spawn it.

pub mod gateway;
pub mod redis_server;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use chat_core::{Config, Store};
use chat_functions::{AppState, WorkerTrigger};
use chat_worker::{ManagementApi, Worker};
use tokio::net::TcpListener;

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
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Run the worker daemon in this process (tests turn it off to drive the worker themselves or
    /// to run it as a separate process).
    pub in_process_worker: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { in_process_worker: true }
    }
}

/// Serves the gateway on `listener` (and the worker, if asked) until `shutdown` resolves.
///
/// The Management API endpoint the worker posts to is this listener's address, so
/// `WS_MANAGEMENT_ENDPOINT` is set here whatever the environment said.
pub async fn run(
    listener: TcpListener,
    mut config: Config,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), LocalError> {
    let addr = listener.local_addr()?;
    config.ws_management_endpoint = Some(management_endpoint(addr));
    let store = Store::connect(&config)?;
    let state = AppState::new(config.clone(), store.clone(), WorkerTrigger::StreamReaders);
    let gateway = gateway::Gateway::new(state);

    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let worker_task = if options.in_process_worker {
        let reader = Store::connect_for_blocking_reads(&config, config.worker.block)?;
        let worker = Arc::new(Worker::new(config.clone(), store, ManagementApi::local()));
        Some(tokio::spawn(worker.run(reader, async {
            let _ = worker_stopped.await;
        })))
    } else {
        None
    };

    let app = gateway::router(gateway).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    let _ = stop_worker.send(());
    if let Some(task) = worker_task {
        let _ = task.await;
    }
    Ok(())
}

/// The Management API endpoint of a gateway listening on `addr`.
pub fn management_endpoint(addr: SocketAddr) -> String {
    format!("http://{addr}/{}", gateway::STAGE)
}
