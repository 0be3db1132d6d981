//! The parts of AWS Lambda a function's life depends on, for one function: the Invoke API (what
//! the message function calls to wake the worker), and the Runtime API its processes poll, with
//! a real deadline per invocation. As on Lambda, each execution environment (a process) has its
//! own Runtime API address and runs one invocation at a time; an invocation still running at its
//! deadline has its process killed (SIGKILL); more environments start while invocations wait, up
//! to a reserved concurrency; and the time each environment spends starting (init) and each
//! invocation runs is counted, as Lambda bills it.

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
use tokio::time::Instant;

use crate::env::Vars;

/// What happened to the invocations, for a test to check and a bench to print.
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
    /// Time spent running invocations, from the Runtime API handing one out to its answer (or
    /// its deadline): Lambda's billed duration.
    pub invocation_time: Duration,
    /// Time environments spent starting, from the process's start to its first request for an
    /// invocation: Lambda's init duration (billed too).
    pub init_time: Duration,
}

impl Counts {
    /// GB-seconds at `memory_mb`: what Lambda bills for the invocations and the inits.
    pub fn gb_seconds(&self, memory_mb: u32) -> f64 {
        (self.invocation_time + self.init_time).as_secs_f64() * f64::from(memory_mb) / 1024.0
    }
}

/// One execution environment: a process with its own Runtime API address.
struct Environment {
    child: Child,
    started: Instant,
    /// Set once the process first asks for an invocation.
    initialised: bool,
    /// The invocation it runs, if any: its id, when it was handed out and its deadline.
    running: Option<(String, Instant, Instant)>,
}

struct Inner {
    bootstrap: PathBuf,
    env: Vars,
    timeout: Duration,
    max_environments: usize,
    addr: SocketAddr,
    queue: VecDeque<Bytes>,
    environments: Vec<Option<Environment>>,
    /// Environments waiting in `next` for an invocation.
    idle: usize,
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
    /// most `max_environments` processes, on free loopback ports.
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
                environments: Vec::new(),
                idle: 0,
                counts: Counts::default(),
                next_id: 0,
            })),
            queued: Arc::new(Notify::new()),
        };
        let invoke_api =
            Router::new().route("/2015-03-31/functions/{name}/invocations", post(invoke)).with_state(service.clone());
        tokio::spawn(async move { axum::serve(listener, invoke_api).await });
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
        inner.queue.len() + inner.environments.iter().flatten().filter(|e| e.running.is_some()).count()
    }

    /// Kills the process whose invocation passed its deadline, as Lambda does.
    async fn enforce_deadlines(self) {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut inner = self.inner.lock().unwrap();
            let now = Instant::now();
            for slot in 0..inner.environments.len() {
                let late = matches!(&inner.environments[slot], Some(Environment { running: Some((_, _, deadline)), .. }) if *deadline <= now);
                if late {
                    let mut environment = inner.environments[slot].take().expect("late environment");
                    let _ = environment.child.start_kill();
                    let (_, handed_out, deadline) = environment.running.expect("late invocation");
                    inner.counts.timed_out += 1;
                    inner.counts.invocation_time += deadline - handed_out;
                }
            }
        }
    }

    /// Starts an environment with a Runtime API of its own (a new loopback port), so the service
    /// knows which process asks for, runs and answers each invocation.
    async fn spawn_environment(&self) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let runtime_api = listener.local_addr().unwrap();
        let mut inner = self.inner.lock().unwrap();
        let slot = inner.environments.len();
        let runtime = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(response))
            .with_state((self.clone(), slot));
        tokio::spawn(async move { axum::serve(listener, runtime).await });
        let mut command = Command::new(&inner.bootstrap);
        command
            .env_clear()
            .envs(inner.env.iter())
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
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
            .stdout(log_file(slot))
            .stderr(log_file(slot))
            .kill_on_drop(true);
        let child = command.spawn().expect("the function's binary runs");
        inner.environments.push(Some(Environment {
            child,
            started: Instant::now(),
            initialised: false,
            running: None,
        }));
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
        for environment in self.environments.iter_mut().flatten() {
            let _ = environment.child.start_kill();
        }
    }
}

async fn invoke(State(service): State<LambdaService>, Path(_name): Path<String>, body: Bytes) -> StatusCode {
    let start_one = {
        let mut inner = service.inner.lock().unwrap();
        inner.counts.invoked += 1;
        inner.queue.push_back(body);
        let live = inner.environments.iter().flatten().count();
        // Environments still starting will take a queued invocation too.
        let starting = inner.environments.iter().flatten().filter(|e| !e.initialised).count();
        inner.queue.len() > inner.idle + starting && live < inner.max_environments
    };
    if start_one {
        service.spawn_environment().await;
    }
    service.queued.notify_waiters();
    // InvocationType Event: accepted, run later.
    StatusCode::ACCEPTED
}

async fn next(State((service, slot)): State<(LambdaService, usize)>) -> Response {
    {
        let mut inner = service.inner.lock().unwrap();
        let Some(environment) = inner.environments[slot].as_mut() else {
            return StatusCode::GONE.into_response();
        };
        if !environment.initialised {
            environment.initialised = true;
            let init = environment.started.elapsed();
            inner.counts.init_time += init;
        }
        inner.idle += 1;
    }
    loop {
        let notified = service.queued.notified();
        {
            let mut inner = service.inner.lock().unwrap();
            if inner.environments[slot].is_none() {
                inner.idle = inner.idle.saturating_sub(1);
                return StatusCode::GONE.into_response();
            }
            if let Some(payload) = inner.queue.pop_front() {
                inner.idle = inner.idle.saturating_sub(1);
                inner.next_id += 1;
                let id = format!("invocation-{}", inner.next_id);
                let now = Instant::now();
                let deadline = now + inner.timeout;
                let epoch_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
                    + inner.timeout.as_millis() as u64;
                if let Some(environment) = inner.environments[slot].as_mut() {
                    environment.running = Some((id.clone(), now, deadline));
                }
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

async fn response(State((service, slot)): State<(LambdaService, usize)>, Path(id): Path<String>) -> StatusCode {
    let mut inner = service.inner.lock().unwrap();
    let Some(environment) = inner.environments[slot].as_mut() else {
        return StatusCode::GONE;
    };
    match environment.running.take() {
        Some((running, handed_out, _)) if running == id => {
            inner.counts.completed += 1;
            inner.counts.invocation_time += handed_out.elapsed();
            StatusCode::ACCEPTED
        }
        other => {
            environment.running = other;
            StatusCode::BAD_REQUEST
        }
    }
}
