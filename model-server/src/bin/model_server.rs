//! `model-server`: the embedded model alone, as an OpenAI-compatible server on `LOCAL_MODEL_PORT`.

use chat_model::ModelServerConfig;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let config = ModelServerConfig::from_env()?;
    let listener = tokio::net::TcpListener::bind((config.bind.as_str(), config.port)).await?;
    let (engine, addr) = chat_model::start(&config, listener, shutdown_signal())?;
    println!("OpenAI-compatible server for {} on http://{addr}/v1", engine.name());
    engine.ready().await?;
    shutdown_signal().await;
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("install a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
