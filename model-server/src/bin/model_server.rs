//! `model-server`: the embedded model alone, as an OpenAI-compatible server on `LOCAL_MODEL_PORT`.

use chat_core::Config;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    chat_core::telemetry::init_tracing();
    let config = Config::from_env()?;
    let listener = tokio::net::TcpListener::bind((config.local.bind.as_str(), config.embedded.port)).await?;
    let (engine, addr) = chat_model::start(&config.embedded, listener, chat_core::shutdown::shutdown_signal())?;
    println!("OpenAI-compatible server for {} on http://{addr}/v1", engine.name());
    engine.ready().await?;
    chat_core::shutdown::shutdown_signal().await;
    Ok(())
}
