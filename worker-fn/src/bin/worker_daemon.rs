//! The worker as a long-running process: blocks on the request stream until Ctrl-C or SIGTERM.

use std::sync::Arc;

use chat_core::{Config, Store};
use chat_worker::{ManagementApi, Worker};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    chat_core::telemetry::init_tracing();
    let config = Config::load().await?;
    let store = Store::connect(&config)?;
    let reader = Store::connect_for_blocking_reads(&config, config.worker.block)?;
    let connections = ManagementApi::from_env(&config).await;
    let worker = Arc::new(Worker::new(config, store, connections));
    worker.run(reader, chat_core::shutdown::shutdown_signal()).await;
    Ok(())
}
