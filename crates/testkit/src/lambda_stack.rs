//! The stack with its worker on the emulated Lambda: a redis-server, the scripted stub model, the
//! gateway and functions in this process waking the worker through the Invoke API (as the
//! message function does on AWS), and the worker's real binary in the execution environments of
//! a [`LambdaService`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use chat_local::redis_server::RedisServer;
use chat_local::Options;
use chat_stub_model::{Pacing, StubModel};
use tokio::sync::oneshot;

use crate::env::{test_config, Vars};
use crate::lambda_service::LambdaService;
use crate::temp::TempDir;
use crate::ws::WsClient;

/// The worker as Lambda runs it, behind the local gateway.
pub struct LambdaStack {
    /// The worker function.
    pub lambda: LambdaService,
    /// The model the worker calls.
    pub stub: StubModel,
    /// `http://127.0.0.1:port`, the gateway's HTTP API.
    pub base: String,
    pub http: reqwest::Client,
    _gateway: oneshot::Sender<()>,
    _redis: RedisServer,
    _dir: TempDir,
}

impl LambdaStack {
    /// Starts the stack: the worker binary `bootstrap` with `function_vars` (beside the stack's
    /// Redis and model), `timeout` per invocation and at most `max_environments` at once.
    pub async fn start(
        bootstrap: PathBuf,
        pacing: Pacing,
        function_vars: &[(&str, &str)],
        timeout: Duration,
        max_environments: usize,
    ) -> LambdaStack {
        let stub = StubModel::start(pacing).await;
        let dir = TempDir::new("lambda-stack");
        let redis = RedisServer::start(dir.path(), false).await.expect("redis-server starts");
        let function_env = Vars::stack(&redis.url(), &stub, "test-key").with(function_vars);
        let lambda = LambdaService::start(bootstrap, function_env, timeout, max_environments).await;
        let sdk = aws_sdk_lambda::Config::builder()
            .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
            .region(aws_sdk_lambda::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_lambda::config::Credentials::new("test", "test", None, None, "test"))
            .endpoint_url(lambda.endpoint())
            .build();
        let trigger = chat_functions::WorkerTrigger::Lambda {
            client: aws_sdk_lambda::Client::from_conf(sdk),
            function_name: "worker".into(),
        };
        // Many people from this one machine: the per-address session limit is lifted.
        let config = test_config(&redis.url(), &stub, &[("SESSIONS_PER_IP_PER_WINDOW", "0")]);
        let options = Options { in_process_worker: false, worker_trigger: trigger, ..Default::default() };
        let (addr, management_endpoint, gateway) = crate::app::serve(config, options).await;
        lambda.set_var("WS_MANAGEMENT_ENDPOINT", management_endpoint);
        LambdaStack {
            lambda,
            stub,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            _gateway: gateway,
            _redis: redis,
            _dir: dir,
        }
    }

    /// A new session named `name`, connected: its token and its socket.
    pub async fn person(&self, name: &str) -> (String, WsClient) {
        let session = crate::api::create_session(&self.http, &self.base, name).await.unwrap_or_else(|e| panic!("{e}"));
        let ws = WsClient::connect(&format!("ws://{}/chat", &self.base["http://".len()..]), &session.token)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (session.token, ws)
    }

    /// Waits up to `within` for every invocation to end; whether they did.
    pub async fn settle(&self, within: Duration) -> bool {
        crate::wait::wait_until(within, Duration::from_millis(50), || async { self.lambda.busy() == 0 }).await
    }
}

/// The worker's Lambda binary as cargo builds it for `profile` (`dev`: target/debug) in the
/// workspace that holds `manifest_dir`, built if it is missing or stale.
pub fn worker_binary(manifest_dir: &Path, profile: &str) -> PathBuf {
    let workspace = manifest_dir.ancestors().find(|dir| dir.join("Cargo.lock").exists()).expect("a workspace");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = std::process::Command::new(cargo)
        .args(["build", "--quiet", "--locked", "--profile", profile, "-p", "chat-worker", "--bin", "worker"])
        .current_dir(workspace)
        .status()
        .expect("cargo runs");
    assert!(built.success(), "the worker binary builds");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), Into::into);
    target.join(if profile == "dev" { "debug" } else { profile }).join("worker")
}
