//! The local stack in this process: a real redis-server on a free port, the scripted stub model,
//! and the gateway with its worker on port 0, all in this process except redis-server.

use std::net::SocketAddr;
use std::time::Duration;

use chat_core::Config;
use chat_local::redis_server::RedisServer;
use chat_local::Options;
use chat_stub_model::{Pacing, StubModel};
use chat_wire::ChatSession;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::api;
use crate::env::{test_config, Vars};
use crate::temp::TempDir;
use crate::ws::WsClient;

/// A running stack; dropping it stops the gateway and its worker, kills redis-server and removes
/// its files.
pub struct TestApp {
    pub base: String,
    pub ws_url: String,
    pub redis: RedisServer,
    pub stub: StubModel,
    pub config: Config,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    _dir: TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[], Options::default(), Pacing::default()).await
}

pub async fn spawn_app_with(vars: &[(&str, &str)], options: Options, pacing: Pacing) -> TestApp {
    let stub = StubModel::start(pacing).await;
    spawn(stub, None, vars, options).await
}

/// The stack pointed at another OpenAI-compatible server (the embedded model).
pub async fn spawn_app_with_model(base_url: &str, model: &str, vars: &[(&str, &str)], options: Options) -> TestApp {
    let stub = StubModel::start(Pacing::default()).await;
    spawn(stub, Some((base_url, model)), vars, options).await
}

async fn spawn(stub: StubModel, model: Option<(&str, &str)>, vars: &[(&str, &str)], mut options: Options) -> TestApp {
    // The emulator's WebSocket limits come from the test's variables, as `local` reads them.
    options.websocket = Vars::default().with(vars).local_config().expect("local settings").websocket;
    let dir = TempDir::new("chat-test");
    let redis = RedisServer::start(dir.path(), true).await.expect("redis-server starts");
    let mut config = test_config(&redis.url(), &stub, vars);
    if let Some((base_url, name)) = model {
        config.model.base_url = base_url.to_string();
        config.model.model = name.to_string();
        config.model.first_token_timeout = Duration::from_secs(120);
    }
    let (addr, stop) = serve(config.clone(), options).await;
    TestApp {
        base: format!("http://{addr}"),
        ws_url: format!("ws://{addr}/chat"),
        redis,
        stub,
        config,
        http: reqwest::Client::new(),
        shutdown: Some(stop),
        _dir: dir,
    }
}

/// Serves the stack (`chat_local::run`) with `config` on a free loopback port, in this process,
/// until the returned sender fires or is dropped.
pub async fn serve(config: Config, options: Options) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(chat_local::run(listener, config, options, async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

impl TestApp {
    pub async fn create_session(&self, name: &str) -> ChatSession {
        api::create_session(&self.http, &self.base, name).await.unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn history(&self, token: &str) -> (u16, Value) {
        let response = api::history_request(&self.http, &self.base, token).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    pub async fn session(&self, token: &str) -> ChatSession {
        let (status, body) = self.history(token).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_value(body).unwrap()
    }

    pub async fn connect(&self, token: &str) -> WsClient {
        WsClient::connect(&self.ws_url, token).await.expect("websocket handshake")
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
    }

    /// `local worker` (`local` is the `local` binary's path) against this stack, as on a second
    /// machine: reclaiming after `claim_idle_ms`, reading as `consumer`; killed when dropped.
    pub fn spawn_worker(&self, local: &std::path::Path, claim_idle_ms: &str, consumer: &str) -> tokio::process::Child {
        let env = crate::env::Vars::stack(&self.redis.url(), &self.stub, "test-key").with(&[
            ("WORKER_CLAIM_IDLE_MS", claim_idle_ms),
            ("WORKER_BLOCK_MS", "200"),
            ("RUST_LOG", "warn"),
        ]);
        crate::process::spawn_worker(local, &env, consumer).expect("the local binary runs as a worker")
    }

    pub async fn stream_len(&self) -> usize {
        let mut conn = self.redis().await;
        redis::cmd("XLEN").arg(&self.config.request_stream).query_async(&mut conn).await.unwrap()
    }
}
