//! The worker as a long-running process: blocks on the request stream until Ctrl-C or SIGTERM.

use std::sync::Arc;

use chat_core::{Config, Store};
use chat_worker::{ManagementApi, Worker};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    chat_core::telemetry::init_tracing();
    let config = Config::from_env()?;
    let store = Store::connect(&config)?;
    let reader = Store::connect_for_blocking_reads(&config, config.worker.block)?;
    let worker = Arc::new(Worker::new(config, store, ManagementApi::from_env().await));
    worker.run(reader, shutdown_signal()).await;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
