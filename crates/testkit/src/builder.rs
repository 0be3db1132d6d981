//! How a story sets up its stack: [`TestApp::builder`], then the settings, options, pacing,
//! Redis and model it needs, then [`AppBuilder::spawn`].

use std::time::Duration;

use chat_local::Options;
use chat_stub_model::{Pacing, StubModel};

use crate::app::{serve, StoreKind, TestApp, TestRedis};
use crate::env::{test_config, Vars};
use crate::temp::TempDir;

/// The stack a story asks for: by default a standalone redis-server, no extra settings,
/// `Options::default()`, the stub model at `Pacing::default()`.
///
/// ```ignore
/// let app = TestApp::builder().vars(&[("SESSION_TTL_SECONDS", "3")]).on(kind).spawn().await;
/// ```
#[must_use = "a builder does nothing until `spawn`"]
#[derive(Default)]
pub struct AppBuilder {
    kind: StoreKind,
    vars: Vec<(String, String)>,
    options: Options,
    pacing: Pacing,
    model: Option<(String, String)>,
}

/// The default stack, for a story that needs nothing else: `TestApp::builder().spawn()`.
pub async fn spawn_app() -> TestApp {
    TestApp::builder().spawn().await
}

impl TestApp {
    /// A stack to set up: see [`AppBuilder`].
    pub fn builder() -> AppBuilder {
        AppBuilder::default()
    }
}

impl AppBuilder {
    /// Adds settings (environment variables as the product reads them) over the test defaults;
    /// a later one replaces an earlier one of the same name.
    pub fn vars(mut self, vars: &[(&str, &str)]) -> AppBuilder {
        self.vars.extend(vars.iter().map(|(name, value)| (name.to_string(), value.to_string())));
        self
    }

    /// The local runner's options (its WebSocket and listener limits still come from the
    /// settings, as `local` reads them).
    pub fn options(mut self, options: Options) -> AppBuilder {
        self.options = options;
        self
    }

    /// How the stub model paces its replies.
    pub fn pacing(mut self, pacing: Pacing) -> AppBuilder {
        self.pacing = pacing;
        self
    }

    /// Runs on a Redis of `kind` (a standalone redis-server unless told).
    pub fn on(mut self, kind: StoreKind) -> AppBuilder {
        self.kind = kind;
        self
    }

    /// Runs on a Redis Cluster: `.on(StoreKind::Cluster)`.
    pub fn cluster(self) -> AppBuilder {
        self.on(StoreKind::Cluster)
    }

    /// Points the stack at another OpenAI-compatible server (the embedded model) at `base_url`,
    /// asking for `model`, with a first-token timeout long enough for a real model. The stub
    /// model still runs, unused.
    pub fn model(mut self, base_url: &str, model: &str) -> AppBuilder {
        self.model = Some((base_url.to_string(), model.to_string()));
        self
    }

    /// Starts Redis, the stub model and the gateway with its worker: the running stack.
    pub async fn spawn(self) -> TestApp {
        let AppBuilder { kind, vars, mut options, pacing, model } = self;
        let vars: Vec<(&str, &str)> = vars.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        let stub = StubModel::start(pacing).await;
        // The emulator's WebSocket limits come from the test's variables, as `local` reads them.
        let local = Vars::default().with(&vars).local_config().expect("local settings");
        options.websocket = local.websocket;
        options.listener = local.listener;
        let dir = TempDir::new("chat-test");
        let redis = TestRedis::start(kind, dir.path()).await;
        let mut config = test_config(&redis.url(), &stub, &vars);
        if let Some((base_url, name)) = model {
            config.model.base_url = base_url;
            config.model.model = name;
            config.model.first_token_timeout = Duration::from_secs(120);
        }
        // The product tells the two apart by itself, from the URL alone.
        let detected = chat_core::Store::connect(&config).unwrap().connection().await.expect("redis answers");
        assert_eq!(detected.is_cluster(), kind != StoreKind::Standalone, "the store detects a {kind:?} redis");
        let (addr, management_endpoint, stop) = serve(config.clone(), options).await;
        // As the stack sets it: workers a test builds from this config post where the stack's do.
        config.ws_management_endpoint = Some(management_endpoint);
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
}
