//! The worker Lambda: each invocation (from the message function, or the one-minute schedule)
//! answers entries until the stream is empty, never past what its deadline allows.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_core::{Config, Store};
use chat_worker::{ManagementApi, Worker};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::{json, Value};
use tokio::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Error> {
    chat_core::telemetry::init_tracing();
    let config = Config::load().await?;
    let store = Store::connect(&config)?;
    let reader = Store::connect_for_blocking_reads(&config, chat_worker::INVOCATION_READ_BLOCK)?;
    let connections = ManagementApi::from_env(&config).await;
    let worker = Arc::new(Worker::new(config, store, connections));
    run(service_fn(|event: LambdaEvent<Value>| {
        let (worker, reader) = (worker.clone(), reader.clone());
        async move {
            let deadline = deadline(event.context.deadline);
            let left_ms = deadline.map(|at| at.saturating_duration_since(Instant::now()).as_millis() as u64);
            tracing::info!(source = %event.payload["source"], left_ms, "worker invocation started");
            let processed = worker.drain(&reader, deadline).await?;
            tracing::info!(processed, "worker invocation ended, no reply in flight");
            Ok::<_, Error>(json!({ "processed": processed }))
        }
    }))
    .await
}

/// The invocation's deadline (milliseconds since the epoch, from the runtime API) on this clock.
/// One already past as the invocation starts is no deadline at all: `cargo lambda watch` sends
/// a constant 600000 (ten minutes after 1970); AWS always sends a time ahead.
fn deadline(epoch_ms: u64) -> Option<Instant> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    (epoch_ms > now_ms).then(|| Instant::now() + Duration::from_millis(epoch_ms - now_ms))
}
