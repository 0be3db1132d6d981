//! `local`: the whole chatbot on this machine. See README.md ("Run it locally").

use std::path::Path;

use chat_core::Config;
use chat_local::redis_server::RedisServer;
use chat_local::Options;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    chat_core::telemetry::init_tracing();
    let mut config = Config::from_env()?;
    let mut options = Options::default();
    if config.embedded.enabled {
        let engine = chat_local::start_embedded_model(&mut config, shutdown_signal()).await?;
        println!(
            "Model      {} (embedded llama.cpp, {} threads), OpenAI-compatible API at {}",
            engine.name(),
            config.embedded.threads,
            config.model.base_url
        );
        options.model_status = Some(chat_local::model_status(&engine));
    } else {
        println!("Model      {} at {}", config.model.model, config.model.base_url);
    }
    let _redis = if config.local.start_redis {
        let dir = Path::new(&config.local.data_dir).join("redis");
        let redis = RedisServer::start(&dir, true).await?;
        tracing::info!(url = redis.url(), dir = %dir.display(), "started a local redis-server (append-only)");
        config.redis_url = redis.url();
        Some(redis)
    } else {
        None
    };
    let address = format!("{}:{}", config.local.bind, config.local.http_port);
    let listener = tokio::net::TcpListener::bind(&address).await?;
    let base = format!("http://{address}");
    println!("Chatbot running (Ctrl-C stops it):");
    println!("  HTTP API   {base}  (POST /token, GET /chat_history, GET /health, GET /docs)");
    println!("  WebSocket  ws://{address}/chat?token=<token>");
    chat_local::run(listener, config, options, shutdown_signal()).await?;
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
