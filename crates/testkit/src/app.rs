//! The local stack in this process: a real redis-server on a free port (or a real Redis Cluster of
//! six), the scripted stub model, and the gateway with its worker on port 0, all in this process
//! except Redis.

use std::net::SocketAddr;
use std::time::Duration;

use chat_core::store::RedisConnection;
use chat_core::Config;
use chat_local::redis_server::{AppendFsync, RedisCluster, RedisServer};
use chat_local::Options;
use chat_stub_model::StubModel;
use chat_wire::ChatSession;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::api;
use crate::temp::TempDir;
use crate::ws::WsClient;

/// Which Redis a stack runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreKind {
    /// One redis-server.
    #[default]
    Standalone,
    /// A Redis Cluster of three primaries and three replicas, found through one node's URL.
    Cluster,
    /// The same cluster, whose nodes count a silent peer as failed after one second: for the
    /// failover stories, which kill primaries and wait for their replicas to take over.
    FailoverCluster,
}

/// How long a cluster's nodes wait before counting a peer as failed: long enough that a node
/// of a busy test machine, stalled for a moment, is not failed over in the middle of a story.
pub const CLUSTER_NODE_TIMEOUT: Duration = Duration::from_secs(5);

/// The node timeout of [`StoreKind::FailoverCluster`].
pub const FAILOVER_NODE_TIMEOUT: Duration = Duration::from_millis(1000);

/// The Redis a test stack runs on.
#[allow(clippy::large_enum_variant)] // One per test: the size of a child process handle is no matter.
pub enum TestRedis {
    /// One redis-server.
    Standalone(RedisServer),
    /// A Redis Cluster (of either node timeout).
    Cluster(RedisCluster),
}

impl TestRedis {
    /// Starts one of `kind` with its files under `dir`.
    pub async fn start(kind: StoreKind, dir: &std::path::Path) -> TestRedis {
        match kind {
            StoreKind::Standalone => {
                // Stories kill the process (never the machine): whatever it acknowledged is in its
                // file, without waiting for a sync.
                TestRedis::Standalone(
                    RedisServer::start_persistent(dir, AppendFsync::No).await.expect("redis-server starts"),
                )
            }
            StoreKind::Cluster => {
                TestRedis::Cluster(RedisCluster::start(dir, CLUSTER_NODE_TIMEOUT).await.expect("a redis cluster forms"))
            }
            StoreKind::FailoverCluster => TestRedis::Cluster(
                RedisCluster::start(dir, FAILOVER_NODE_TIMEOUT).await.expect("a redis cluster forms"),
            ),
        }
    }

    /// The URL the product is given (one node of a cluster).
    pub fn url(&self) -> String {
        match self {
            TestRedis::Standalone(server) => server.url(),
            TestRedis::Cluster(cluster) => cluster.url(),
        }
    }

    /// The standalone server (for outage stories, which kill and restart it).
    pub fn server(&mut self) -> &mut RedisServer {
        match self {
            TestRedis::Standalone(server) => server,
            TestRedis::Cluster(_) => panic!("this story needs a standalone redis-server"),
        }
    }

    /// The cluster, if the stack runs on one.
    pub fn cluster(&self) -> Option<&RedisCluster> {
        match self {
            TestRedis::Cluster(cluster) => Some(cluster),
            TestRedis::Standalone(_) => None,
        }
    }

    /// The cluster (for failover stories, which kill and restart its nodes).
    pub fn cluster_mut(&mut self) -> &mut RedisCluster {
        match self {
            TestRedis::Cluster(cluster) => cluster,
            TestRedis::Standalone(_) => panic!("this story needs a redis cluster"),
        }
    }
}

/// Runs each named story, an `async fn story(kind: StoreKind)` in scope, as two tests: on a
/// standalone redis-server (`story::standalone`) and on a Redis Cluster (`story::cluster`).
#[macro_export]
macro_rules! on_each_store {
    ($($story:ident),* $(,)?) => {$(
        mod $story {
            #[tokio::test]
            async fn standalone() {
                super::$story($crate::StoreKind::Standalone).await
            }
            #[tokio::test]
            async fn cluster() {
                super::$story($crate::StoreKind::Cluster).await
            }
        }
    )*};
}

/// A running stack; dropping it stops the gateway and its worker, kills Redis and removes its
/// files.
pub struct TestApp {
    /// The gateway's HTTP base URL (`http://127.0.0.1:port`).
    pub base: String,
    /// The gateway's WebSocket URL (`ws://127.0.0.1:port/chat`).
    pub ws_url: String,
    /// The Redis the stack runs on.
    pub redis: TestRedis,
    /// The scripted stub model (unused when the stack is pointed at another model).
    pub stub: StubModel,
    /// The product's settings, as the gateway and its worker run with them.
    pub config: Config,
    /// An HTTP client for calls to [`TestApp::base`].
    pub http: reqwest::Client,
    pub(crate) shutdown: Option<oneshot::Sender<()>>,
    pub(crate) _dir: TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves the stack (`chat_local::run`) with `config` on a free loopback port, in this process,
/// until the returned sender fires or is dropped. Answers its address and its Management API
/// endpoint.
pub async fn serve(config: Config, options: Options) -> (SocketAddr, String, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let management_endpoint = chat_local::management_endpoint(addr, &options.management_secret);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(chat_local::run(listener, config, options, async {
        let _ = stopped.await;
    }));
    (addr, management_endpoint, stop)
}

/// A session's Redis keys, named as the store names them (by a digest of the token).
pub fn session_keys(token: &str) -> chat_core::store::SessionKeys {
    chat_core::store::SessionKeys::new(&chat_wire::Token::parse(token).expect("a session token"))
}

/// The keys of a session's first conversation (`main`), where a client that names none chats.
pub fn main_keys(token: &str) -> chat_core::store::ConversationKeys {
    session_keys(token).conversation(&chat_wire::ConversationId::main())
}

impl TestApp {
    /// A new session for `name` (`POST /token`).
    pub async fn create_session(&self, name: &str) -> ChatSession {
        api::create_session(&self.http, &self.base, name).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// `GET /chat_history` of `token`'s session: the status and the JSON answered.
    pub async fn history(&self, token: &str) -> (u16, Value) {
        let response = api::history_request(&self.http, &self.base, token).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// `token`'s session as `GET /chat_history` answers it (which must succeed).
    pub async fn session(&self, token: &str) -> ChatSession {
        let (status, body) = self.history(token).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_value(body).unwrap()
    }

    /// `method` on `path` with `?token=` and `query`, and a JSON body if given: the status and
    /// the JSON answered (`Null` for an empty body).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request =
            self.http.request(method, format!("{}{path}", self.base)).query(&[("token", token)]).query(query);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }

    /// `GET /conversations`.
    pub async fn conversations(&self, token: &str) -> chat_wire::ConversationList {
        let (status, body) = self.call(reqwest::Method::GET, "/conversations", token, &[], None).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_value(body).unwrap()
    }

    /// `POST /conversations`: a new conversation, now the current one.
    pub async fn new_conversation(&self, token: &str) -> chat_wire::Conversation {
        let (status, body) = self.call(reqwest::Method::POST, "/conversations", token, &[], None).await;
        assert_eq!(status, 201, "{body}");
        serde_json::from_value(body).unwrap()
    }

    /// `GET /chat_history?conversation=`: one conversation's history.
    pub async fn history_of(&self, token: &str, conversation: &str) -> ChatSession {
        let query = [("conversation", conversation)];
        let (status, body) = self.call(reqwest::Method::GET, "/chat_history", token, &query, None).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_value(body).unwrap()
    }

    /// A WebSocket to the chat as `token`'s session, as the web app opens it.
    pub async fn connect(&self, token: &str) -> WsClient {
        WsClient::connect(&self.ws_url, token).await.expect("websocket handshake")
    }

    /// A new session for `name` with its WebSocket open: `create_session`, then `connect`.
    pub async fn signed_in(&self, name: &str) -> (ChatSession, WsClient) {
        let session = self.create_session(name).await;
        let ws = self.connect(&session.token).await;
        (session, ws)
    }

    /// A connection to the stack's Redis, made as the product makes its own (cluster-aware).
    pub async fn redis(&self) -> RedisConnection {
        chat_core::Store::connect(&self.config).unwrap().connection().await.expect("redis answers")
    }

    /// The remaining lifetime (ms) of each of a session's connection mappings, found through the
    /// session's set of connections (on a cluster too).
    pub async fn connection_mappings_pttl(&self, token: &str) -> Vec<u64> {
        let mut redis = self.redis().await;
        let ids: Vec<String> = redis::AsyncCommands::smembers(&mut redis, session_keys(token).conns).await.unwrap();
        let mut lifetimes = Vec::new();
        for id in ids {
            let pttl: i64 = redis::AsyncCommands::pttl(&mut redis, format!("chat:conn:{{{id}}}")).await.unwrap();
            lifetimes.push(u64::try_from(pttl).unwrap_or_else(|_| panic!("mapping of {id}: PTTL {pttl}")));
        }
        lifetimes
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

    /// How many entries the request stream holds (`XLEN`).
    pub async fn stream_len(&self) -> usize {
        let mut conn = self.redis().await;
        redis::cmd("XLEN").arg(&self.config.request_stream).query_async(&mut conn).await.unwrap()
    }
}
