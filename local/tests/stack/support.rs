//! `spawn_app()`: a real redis-server on a free port, the scripted stub model, and the local stack
//! (gateway + worker) on port 0, all in this test's process except redis-server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chat_core::Config;
use chat_local::redis_server::RedisServer;
use chat_local::Options;
use chat_stub_model::{Pacing, StubModel};
use chat_wire::{ChatSession, ReplyText, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub struct TestApp {
    pub base: String,
    pub ws_url: String,
    pub redis: RedisServer,
    pub stub: StubModel,
    pub config: Config,
    pub http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
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

fn temp_dir() -> std::path::PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir =
        std::env::temp_dir().join(format!("chat-test-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst)));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Builds the config a test runs with: `vars` override the test defaults.
pub fn test_config(redis_url: &str, stub: &StubModel, vars: &[(&str, &str)]) -> Config {
    let mut all: HashMap<String, String> = [
        ("APP_ENV", "development"),
        ("OPENAI_API_KEY", "test-key"),
        ("OPENAI_MODEL", "stub"),
        ("MODEL_RETRY_BASE_MS", "10"),
        ("WORKER_BLOCK_MS", "200"),
        ("WORKER_CLAIM_IDLE_MS", "60000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    all.insert("REDIS_URL".into(), redis_url.into());
    all.insert("OPENAI_BASE_URL".into(), stub.base_url());
    for (k, v) in vars {
        all.insert(k.to_string(), v.to_string());
    }
    Config::from_vars(&all).expect("test config")
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

async fn spawn(stub: StubModel, model: Option<(&str, &str)>, vars: &[(&str, &str)], options: Options) -> TestApp {
    let redis = RedisServer::start(&temp_dir(), true).await.expect("redis-server starts");
    let mut config = test_config(&redis.url(), &stub, vars);
    if let Some((base_url, name)) = model {
        config.model.base_url = base_url.to_string();
        config.model.model = name.to_string();
        config.model.first_token_timeout = Duration::from_secs(120);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(chat_local::run(listener, config.clone(), options, async {
        let _ = stopped.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        ws_url: format!("ws://{addr}/chat"),
        redis,
        stub,
        config,
        http: reqwest::Client::new(),
        shutdown: Some(stop),
    }
}

impl TestApp {
    pub async fn create_session(&self, name: &str) -> ChatSession {
        let response = self.http.post(format!("{}/token", self.base)).form(&[("name", name)]).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub async fn history(&self, token: &str) -> (u16, Value) {
        let response =
            self.http.get(format!("{}/chat_history", self.base)).query(&[("token", token)]).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    pub async fn session(&self, token: &str) -> ChatSession {
        let (status, body) = self.history(token).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_value(body).unwrap()
    }

    pub async fn connect(&self, token: &str) -> WsClient {
        let (stream, _) = tokio_tungstenite::connect_async(format!("{}?token={token}", self.ws_url))
            .await
            .expect("websocket handshake");
        WsClient { stream, buffered: Default::default() }
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
    }

    pub async fn stream_len(&self) -> usize {
        let mut conn = self.redis().await;
        redis::cmd("XLEN").arg(&self.config.request_stream).query_async(&mut conn).await.unwrap()
    }
}

pub struct WsClient {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames read while waiting for another (an ack may follow the first delta).
    buffered: std::collections::VecDeque<ServerFrame>,
}

/// A reply as the client saw it.
pub struct Reply {
    pub deltas: Vec<ServerFrame>,
    pub snapshots: Vec<ServerFrame>,
    pub text: String,
    pub end: ServerFrame,
}

impl WsClient {
    pub async fn send_text(&mut self, text: &str) {
        self.stream.send(Message::Text(text.into())).await.unwrap();
    }

    pub async fn send_message(&mut self, id: &str, content: &str) {
        let frame = serde_json::json!({"action": "sendMessage", "id": id, "content": content});
        self.send_text(&frame.to_string()).await;
    }

    /// The next server frame (fails the test after 10 s).
    pub async fn next_frame(&mut self) -> ServerFrame {
        if let Some(frame) = self.buffered.pop_front() {
            return frame;
        }
        self.read_frame().await
    }

    async fn read_frame(&mut self) -> ServerFrame {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.stream.next())
                .await
                .expect("a frame within 10 s")
                .expect("the connection is open")
                .expect("a valid websocket message");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).expect("a protocol frame"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected message {other:?}"),
            }
        }
    }

    /// Reads deltas (and snapshots) until the reply's `done` or an `error` frame, rebuilding the
    /// text as the web app does.
    pub async fn read_reply(&mut self) -> Reply {
        self.read_reply_from(ReplyText::default()).await
    }

    /// Like [`WsClient::read_reply`], for a client that already holds part of the reply.
    pub async fn read_reply_from(&mut self, mut text: ReplyText) -> Reply {
        let mut deltas = Vec::new();
        let mut snapshots = Vec::new();
        loop {
            match self.next_frame().await {
                frame @ ServerFrame::Delta { .. } => {
                    if let ServerFrame::Delta { text: piece, seq, .. } = &frame {
                        text.delta(*seq, piece);
                    }
                    deltas.push(frame);
                }
                frame @ ServerFrame::Snapshot { .. } => {
                    if let ServerFrame::Snapshot { text: whole, next_seq, .. } = &frame {
                        text.snapshot(*next_seq, whole);
                    }
                    snapshots.push(frame);
                }
                ServerFrame::Ack { .. } => continue,
                end @ (ServerFrame::Done { .. } | ServerFrame::Error { .. }) => {
                    assert!(!text.has_gap(), "a delta never arrived: {text:?}");
                    return Reply { deltas, snapshots, text: text.text().to_string(), end };
                }
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// Sends a message and expects its ack.
    pub async fn ask(&mut self, id: &str, content: &str) {
        self.send_message(id, content).await;
        loop {
            match self.read_frame().await {
                ServerFrame::Ack { id: acked, .. } => {
                    assert_eq!(acked, id);
                    return;
                }
                frame @ ServerFrame::Delta { .. } => self.buffered.push_back(frame),
                other => panic!("expected an ack, got {other:?}"),
            }
        }
    }
}
