//! The parts of AWS Lambda a function's life depends on, for one function: the Invoke API (what
//! the message function calls to wake the worker), and the Runtime API its processes poll, with
//! a real deadline per invocation. As on Lambda, an invocation still running at its deadline has
//! its process killed (SIGKILL), and each execution environment (a process) runs one invocation
//! at a time; more are started while invocations wait, up to a reserved concurrency.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::process::{Child, Command};
use tokio::sync::Notify;

use crate::env::Vars;

/// What happened to the invocations, for a test to check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Invocations the Invoke API accepted.
    pub invoked: usize,
    /// Invocations whose function answered before its deadline.
    pub completed: usize,
    /// Invocations still running at their deadline (their process was killed).
    pub timed_out: usize,
    /// Execution environments (processes) started.
    pub environments: usize,
}

struct Running {
    id: String,
    deadline: tokio::time::Instant,
}

struct Inner {
    bootstrap: PathBuf,
    env: Vars,
    timeout: Duration,
    max_environments: usize,
    addr: SocketAddr,
    queue: VecDeque<Bytes>,
    running: Vec<Running>,
    idle: usize,
    children: Vec<Child>,
    counts: Counts,
    next_id: usize,
}

/// One function on an emulated Lambda service.
#[derive(Clone)]
pub struct LambdaService {
    inner: Arc<Mutex<Inner>>,
    queued: Arc<Notify>,
}

impl LambdaService {
    /// Serves function `bootstrap` (its binary) with `env`, a `timeout` per invocation and at
    /// most `max_environments` processes, on a free loopback port.
    pub async fn start(bootstrap: PathBuf, env: Vars, timeout: Duration, max_environments: usize) -> LambdaService {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = LambdaService {
            inner: Arc::new(Mutex::new(Inner {
                bootstrap,
                env,
                timeout,
                max_environments,
                addr,
                queue: VecDeque::new(),
                running: Vec::new(),
                idle: 0,
                children: Vec::new(),
                counts: Counts::default(),
                next_id: 0,
            })),
            queued: Arc::new(Notify::new()),
        };
        let app = Router::new()
            .route("/2015-03-31/functions/{name}/invocations", post(invoke))
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(response))
            .with_state(service.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        tokio::spawn(service.clone().enforce_deadlines());
        service
    }

    /// Sets a variable of the environments started from now on.
    pub fn set_var(&self, name: &str, value: impl Into<String>) {
        let mut inner = self.inner.lock().unwrap();
        inner.env = inner.env.clone().set(name, value);
    }

    /// The endpoint the AWS SDK's Lambda client is pointed at.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.inner.lock().unwrap().addr)
    }

    /// What happened so far.
    pub fn counts(&self) -> Counts {
        self.inner.lock().unwrap().counts.clone()
    }

    /// Invocations queued or running.
    pub fn busy(&self) -> usize {
        let inner = self.inner.lock().unwrap();
        inner.queue.len() + inner.running.len()
    }

    /// Kills a process whose invocation passed its deadline, as Lambda does.
    async fn enforce_deadlines(self) {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut inner = self.inner.lock().unwrap();
            let now = tokio::time::Instant::now();
            let late = inner.running.iter().filter(|r| r.deadline <= now).count();
            if late == 0 {
                continue;
            }
            inner.running.retain(|r| r.deadline > now);
            inner.counts.timed_out += late;
            // Which process ran it is not tracked: kill them all, as a cold start follows anyway.
            for child in &mut inner.children {
                let _ = child.start_kill();
            }
            inner.children.clear();
            inner.idle = 0;
            inner.running.clear();
        }
    }

    fn spawn_environment(inner: &mut Inner) {
        let mut command = Command::new(&inner.bootstrap);
        command
            .env_clear()
            .envs(inner.env.iter())
            .env("AWS_LAMBDA_RUNTIME_API", inner.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "worker")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            // Lambda hands every environment its region and its role's credentials.
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "emulated")
            .env("AWS_SECRET_ACCESS_KEY", "emulated")
            .env("AWS_SESSION_TOKEN", "emulated")
            // The runtime's log goes to stdout, errors to stderr: both to the environment's log.
            .stdout(log_file(inner.counts.environments))
            .stderr(log_file(inner.counts.environments))
            .kill_on_drop(true);
        inner.children.push(command.spawn().expect("the function's binary runs"));
        inner.counts.environments += 1;
    }
}

/// Where environment `n` of this process writes its log (kept for a failing test to show).
pub fn log_path(n: usize) -> PathBuf {
    std::env::temp_dir().join(format!("chat-lambda-{}-environment-{n}.log", std::process::id()))
}

fn log_file(n: usize) -> std::process::Stdio {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log_path(n));
    file.map_or_else(|_| std::process::Stdio::null(), Into::into)
}

impl Drop for Inner {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.start_kill();
        }
    }
}

async fn invoke(State(service): State<LambdaService>, Path(_name): Path<String>, body: Bytes) -> StatusCode {
    {
        let mut inner = service.inner.lock().unwrap();
        inner.counts.invoked += 1;
        inner.queue.push_back(body);
        let waiting = inner.queue.len();
        if waiting > inner.idle && inner.children.len() < inner.max_environments {
            LambdaService::spawn_environment(&mut inner);
        }
    }
    service.queued.notify_waiters();
    // InvocationType Event: accepted, run later.
    StatusCode::ACCEPTED
}

async fn next(State(service): State<LambdaService>) -> Response {
    service.inner.lock().unwrap().idle += 1;
    loop {
        let notified = service.queued.notified();
        {
            let mut inner = service.inner.lock().unwrap();
            if let Some(payload) = inner.queue.pop_front() {
                inner.idle = inner.idle.saturating_sub(1);
                inner.next_id += 1;
                let id = format!("invocation-{}", inner.next_id);
                let deadline = tokio::time::Instant::now() + inner.timeout;
                let epoch_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
                    + inner.timeout.as_millis() as u64;
                inner.running.push(Running { id: id.clone(), deadline });
                let mut headers = HeaderMap::new();
                headers.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
                headers.insert("lambda-runtime-deadline-ms", epoch_ms.to_string().parse().unwrap());
                headers.insert(
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:worker".parse().unwrap(),
                );
                return (headers, payload).into_response();
            }
        }
        notified.await;
    }
}

async fn response(State(service): State<LambdaService>, Path(id): Path<String>) -> StatusCode {
    let mut inner = service.inner.lock().unwrap();
    let before = inner.running.len();
    inner.running.retain(|r| r.id != id);
    if inner.running.len() < before {
        inner.counts.completed += 1;
    }
    StatusCode::ACCEPTED
}
