//! What the bench measures: a redis-server (append-only, as production), the scripted stub model
//! in this process, and the product as a separate `local` process, started as `scripts/bench.sh`
//! built it (`target/fast/local`, beside this binary); and the clients that talk to it.

use std::path::PathBuf;
use std::time::Duration;

use chat_local::redis_server::{free_port, RedisServer};
use chat_stub_model::{Pacing, StubModel};
use chat_testkit::{api, process, wait, Error, TempDir, Vars, WsClient};
use chat_wire::ChatSession;
use futures_util::StreamExt;
use tokio::process::{Child, Command};

/// The product under test: redis-server, the stub model, and `local` as its own process.
pub struct Stack {
    pub redis: RedisServer,
    local: Child,
    pub stub: StubModel,
    pub base: String,
    pub ws_url: String,
    /// The gateway's Management API, as the worker posts to it.
    pub management_endpoint: String,
    pub http: reqwest::Client,
    settings: Settings,
    _dir: TempDir,
}

/// The `local` binary built beside this one.
fn local_binary() -> PathBuf {
    std::env::current_exe().expect("own path").with_file_name("local")
}

/// The `local` binary built with cargo profile `profile` (`target/<profile>/local`), beside this
/// binary's own profile directory.
pub fn local_binary_of(profile: &str) -> PathBuf {
    let own = std::env::current_exe().expect("own path");
    own.parent().and_then(|dir| dir.parent()).expect("a target directory").join(profile).join("local")
}

/// The settings a stack runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settings {
    /// What a user of README's run command gets: every default, but for the one limit a load
    /// test from one address must lift (sessions created per address).
    RunCommandDefaults,
    /// No rate limits and room for thousands of conversations: what the pipeline bench measures
    /// is the pipeline, not the limits.
    Lifted,
}

/// Environment of the `local` process (and of extra worker processes): errors only in the logs,
/// the limits as `settings` says; `extra` overrides.
fn stack_env(redis_url: &str, stub: &StubModel, settings: Settings, extra: &[(&str, &str)]) -> Vars {
    let vars = Vars::stack(redis_url, stub, "bench").with(&[
        ("RUST_LOG", "error"),
        ("SESSIONS_PER_IP_PER_WINDOW", "0"),
        ("LOCAL_SITE_DIR", "/nonexistent"),
    ]);
    let vars = match settings {
        Settings::RunCommandDefaults => vars,
        Settings::Lifted => vars.with(&[
            ("HISTORY_READS_PER_SESSION_PER_WINDOW", "0"),
            ("SEARCHES_PER_SESSION_PER_WINDOW", "0"),
            ("FRAMES_PER_CONNECTION_PER_WINDOW", "0"),
            ("MESSAGES_PER_SESSION_PER_WINDOW", "0"),
            ("WORKER_CONCURRENCY", "2048"),
            ("WORKER_BLOCK_MS", "1000"),
        ]),
    };
    vars.inherit("PATH").inherit("HOME").with(extra)
}

/// `local`, or `local` under BENCH_LOCAL_WRAPPER (a profiler, e.g. "valgrind --tool=callgrind").
fn local_command(binary: &std::path::Path) -> Command {
    let wrapper: Vec<String> =
        std::env::var("BENCH_LOCAL_WRAPPER").unwrap_or_default().split_whitespace().map(str::to_string).collect();
    match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(binary);
            command
        }
        None => Command::new(binary),
    }
}

impl Stack {
    pub async fn start(pacing: Pacing, extra: &[(&str, &str)]) -> Result<Stack, Error> {
        Stack::start_with(Settings::Lifted, pacing, extra).await
    }

    pub async fn start_with(settings: Settings, pacing: Pacing, extra: &[(&str, &str)]) -> Result<Stack, Error> {
        Stack::start_binary(&local_binary(), settings, pacing, extra).await
    }

    /// A stack whose `local` process is `binary`.
    pub async fn start_binary(
        binary: &std::path::Path,
        settings: Settings,
        pacing: Pacing,
        extra: &[(&str, &str)],
    ) -> Result<Stack, Error> {
        let dir = TempDir::new("chat-bench");
        let redis = RedisServer::start(&dir.path().join("redis"), true).await?;
        let stub = StubModel::start(pacing).await;
        let port = free_port();
        let secret = chat_local::new_management_secret();
        let env = stack_env(&redis.url(), &stub, settings, extra)
            .set("LOCAL_HTTP_PORT", port.to_string())
            .set("LOCAL_MANAGEMENT_SECRET", &secret);
        let local = process::spawn_quiet(&mut local_command(binary), &env)
            .map_err(|e| format!("cannot start {} (build it with scripts/bench.sh): {e}", binary.display()))?;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
        if !wait::wait_healthy(&http, &base, Duration::from_secs(120)).await {
            return Err("the local stack did not become healthy within 120 s".into());
        }
        let management_endpoint = format!("{base}/{secret}");
        Ok(Stack {
            redis,
            local,
            stub,
            ws_url: format!("ws://127.0.0.1:{port}/chat"),
            base,
            management_endpoint,
            http,
            settings,
            _dir: dir,
        })
    }

    /// Stops `local` with SIGTERM, as an operator would (a profiler wrapping it writes its data),
    /// waiting up to a minute.
    pub async fn shutdown(mut self) {
        if let Some(pid) = self.local.id() {
            let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
            let _ = tokio::time::timeout(Duration::from_secs(60), self.local.wait()).await;
        }
    }

    pub fn local_pid(&self) -> Option<u32> {
        self.local.id()
    }

    /// `local worker`, one more worker process named `consumer`; `extra` overrides the stack's
    /// environment.
    pub fn spawn_worker(&self, extra: &[(&str, &str)], consumer: &str) -> std::io::Result<Child> {
        process::spawn_worker(
            &local_binary(),
            &stack_env(&self.redis.url(), &self.stub, self.settings, extra),
            consumer,
        )
    }

    pub async fn session(&self, name: &str) -> Result<ChatSession, Error> {
        api::create_session(&self.http, &self.base, name).await
    }

    pub async fn connect(&self, token: &str) -> Result<WsClient, Error> {
        Ok(WsClient::connect(&self.ws_url, token).await?)
    }

    pub async fn history(&self, token: &str) -> Result<ChatSession, Error> {
        api::history(&self.http, &self.base, token).await
    }

    /// Opens `n` conversations (sessions with a connection each), 50 at a time.
    pub async fn conversations(&self, n: usize) -> Result<Vec<(String, WsClient)>, Error> {
        let opened: Vec<Result<(String, WsClient), Error>> = futures_util::stream::iter(0..n)
            .map(|i| async move {
                let session = self.session(&format!("bench-{i}")).await?;
                let ws = self.connect(&session.token).await?;
                Ok((session.token, ws))
            })
            .buffer_unordered(50)
            .collect()
            .await;
        opened.into_iter().collect()
    }

    /// The processes whose CPU and memory a measurement reports.
    pub fn processes(&self) -> Vec<(&'static str, u32)> {
        vec![
            ("local (gateway + functions + worker)", self.local.id().unwrap_or(0)),
            ("redis-server", self.redis.pid().unwrap_or(0)),
            ("bench (clients + stub model)", std::process::id()),
        ]
    }
}
