//! The worker Lambda: each invocation (from the message function, or the one-minute schedule)
//! reclaims stale entries and drains the request stream.

use chat_core::{Config, Store};
use chat_worker::{ManagementApi, Worker};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chat_core::telemetry::init_tracing();
    let config = Config::load().await?;
    let store = Store::connect(&config)?;
    let worker = Worker::new(config, store, ManagementApi::from_env().await);
    run(service_fn(|_event: LambdaEvent<Value>| async {
        let processed = worker.drain().await?;
        Ok::<_, Error>(json!({ "processed": processed }))
    }))
    .await
}
