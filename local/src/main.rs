//! `local`: the whole chatbot on this machine. See README.md ("Run it locally") and
//! docs/running-locally.md.
//!
//! `local worker` runs one more worker process against the same Redis (`REDIS_URL`), posting to
//! the local gateway: more workers share the stream as one consumer group, and a killed one's
//! replies are taken over by the others.
//!
//! `local redis-cluster` starts a Redis Cluster of six nodes (three primaries, three replicas) on
//! free ports under `LOCAL_DATA_DIR`, prints a node's URL for `REDIS_URL`, and runs until Ctrl-C.

use std::path::Path;

use chat_core::Config;
use chat_local::redis_server::{RedisCluster, RedisServer};
use chat_local::site::SiteConfig;
use chat_local::{LocalConfig, Options};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    chat_core::telemetry::init_tracing();
    let local = LocalConfig::from_env()?;
    if std::env::args().nth(1).as_deref() == Some("redis-cluster") {
        return run_redis_cluster(&local).await;
    }
    let mut config = Config::load().await?;
    if std::env::args().nth(1).as_deref() == Some("worker") {
        return run_worker(config).await;
    }
    let mut options = Options {
        in_process_worker: local.in_process_worker,
        websocket: local.websocket,
        listener: local.listener,
        ..Options::default()
    };
    if let Some(secret) = &local.management_secret {
        options.management_secret = secret.clone();
    }
    if local.embedded_model {
        let model = chat_model::ModelServerConfig::from_env()?;
        let engine =
            chat_local::start_embedded_model(&mut config, &model, chat_core::shutdown::shutdown_signal()).await?;
        println!(
            "Model      {} (embedded llama.cpp, {} threads), OpenAI-compatible API at {}",
            engine.name(),
            model.threads,
            config.model.base_url
        );
        options.model_status = Some(chat_local::model_status(&engine));
    } else {
        println!("Model      {} at {}", config.model.model, config.model.base_url);
    }
    let _redis = if local.start_redis {
        let dir = Path::new(&local.data_dir).join("redis");
        let redis = RedisServer::start_persistent(&dir, local.redis_fsync).await?;
        tracing::info!(
            url = redis.url(),
            dir = %dir.display(),
            appendfsync = local.redis_fsync.as_str(),
            "started a local redis-server (append-only)"
        );
        config.redis_url = redis.url().into();
        Some(redis)
    } else {
        None
    };
    let address = format!("{}:{}", local.bind, local.http_port);
    let listener = tokio::net::TcpListener::bind(&address).await?;
    let base = format!("http://{address}");
    // The page is opened as http://localhost:3000, so it calls the API by that name too.
    let host = match local.bind.as_str() {
        "127.0.0.1" | "0.0.0.0" | "::1" | "::" => "localhost".to_string(),
        other => other.to_string(),
    };
    let site_dir = Path::new(&local.site_dir).to_path_buf();
    if site_dir.join("index.html").is_file() {
        let site = SiteConfig {
            api_url: format!("http://{host}:{}", local.http_port),
            ws_url: format!("ws://{host}:{}/chat", local.http_port),
            max_message_bytes: config.max_message_bytes,
            max_name_chars: config.max_name_chars,
        };
        let site_listener = tokio::net::TcpListener::bind((local.bind.as_str(), local.site_port)).await?;
        println!("Web app    http://{host}:{}", local.site_port);
        tokio::spawn(async move {
            if let Err(error) =
                chat_local::serve_site(site_listener, &site_dir, site, chat_core::shutdown::shutdown_signal()).await
            {
                tracing::error!(error = %error, "the web app server stopped");
            }
        });
    } else {
        println!("Web app    not built ({} has no index.html): run scripts/build-frontend.sh", site_dir.display());
    }
    println!("Chatbot running (Ctrl-C stops it):");
    println!("  HTTP API   {base}  (POST /token, GET /chat_history, GET /health, GET /docs)");
    println!("  WebSocket  ws://{address}/chat?token=<token>");
    chat_local::run(listener, config, options, chat_core::shutdown::shutdown_signal()).await?;
    Ok(())
}

async fn run_redis_cluster(local: &LocalConfig) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let dir = Path::new(&local.data_dir).join("redis-cluster");
    // Each run forms a new cluster: the nodes' old cluster files would name other ports.
    let _ = std::fs::remove_dir_all(&dir);
    let cluster = RedisCluster::start(&dir, std::time::Duration::from_secs(5)).await?;
    println!("Redis Cluster of six nodes on ports {:?}, files under {}", cluster.ports(), dir.display());
    println!("  REDIS_URL={}", cluster.url());
    println!("Ctrl-C stops it.");
    chat_core::shutdown::shutdown_signal().await;
    Ok(())
}

async fn run_worker(config: Config) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let store = chat_core::Store::connect(&config)?;
    let reader = chat_core::Store::connect_for_blocking_reads(&config, config.worker.block)?;
    tracing::info!(consumer = config.worker.consumer, "worker started");
    let connections = chat_worker::ManagementApi::local(&config);
    let worker = std::sync::Arc::new(chat_worker::Worker::new(config, store, connections));
    worker.run(reader, chat_core::shutdown::shutdown_signal()).await;
    Ok(())
}
