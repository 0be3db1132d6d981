//! `bench`: what the pipeline adds to the model's own speed, and how it holds under load.
//!
//! * `bench pipeline` (`scripts/bench.sh`): floors (Redis PING, WebSocket echo, a ping through the
//!   gateway), first-token overhead against the stub's own time to first token measured side by
//!   side, token delivery at 200 tokens/s, 1/10/100/1,000 simultaneous conversations, and history
//!   reads; prints a table and writes `target/bench/pipeline.json`.
//! * `bench load` (`scripts/load.sh`): 1,000 sessions each sending 5 messages, then 100 rounds of
//!   killing a worker process mid-reply; prints what was sent, answered, lost and duplicated.
//!
//! Both start a redis-server (append-only, as production), the scripted stub model (real HTTP +
//! SSE) in this process, and the product as a separate `local` process (gateway, functions and
//! worker), so each process's CPU and memory are its own.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_local::redis_server::{free_port, RedisServer};
use chat_stub_model::{Pacing, StubModel};
use chat_wire::{ChatSession, ReplyStatus, ReplyText, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    match std::env::args().nth(1).as_deref() {
        Some("pipeline") => pipeline().await,
        Some("load") => load().await,
        _ => {
            eprintln!("usage: bench pipeline | bench load   (see scripts/bench.sh and scripts/load.sh)");
            std::process::exit(2);
        }
    }
}

/// The product under test: redis-server, the stub model, and `local` as its own process.
struct Stack {
    redis: RedisServer,
    local: Child,
    stub: StubModel,
    base: String,
    ws_url: String,
    http: reqwest::Client,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sibling_binary(name: &str) -> PathBuf {
    std::env::current_exe().expect("own path").with_file_name(name)
}

/// Environment of the `local` process (and of extra worker processes).
fn stack_env(redis_url: &str, stub: &StubModel, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("REDIS_URL", redis_url.to_string()),
        ("OPENAI_BASE_URL", stub.base_url()),
        ("OPENAI_API_KEY", "bench".into()),
        ("OPENAI_MODEL", "stub".into()),
        ("RUST_LOG", "error".into()),
        ("SESSIONS_PER_IP_PER_WINDOW", "0".into()),
        ("MESSAGES_PER_SESSION_PER_WINDOW", "0".into()),
        ("WORKER_CONCURRENCY", "2048".into()),
        ("WORKER_BLOCK_MS", "1000".into()),
        ("LOCAL_SITE_DIR", "/nonexistent".into()),
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("HOME", std::env::var("HOME").unwrap_or_default()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in extra {
        env.retain(|(name, _)| name != k);
        env.push((k.to_string(), v.to_string()));
    }
    env
}

impl Stack {
    async fn start(pacing: Pacing, extra: &[(&str, &str)]) -> Result<Stack, Error> {
        let dir = TempDir(std::env::temp_dir().join(format!("chat-bench-{}-{}", std::process::id(), free_port())));
        let redis = RedisServer::start(&dir.0.join("redis"), true).await?;
        let stub = StubModel::start(pacing).await;
        let port = free_port();
        let mut env = stack_env(&redis.url(), &stub, extra);
        env.push(("LOCAL_HTTP_PORT".into(), port.to_string()));
        // BENCH_LOCAL_WRAPPER runs `local` under a profiler, e.g. "valgrind --tool=callgrind".
        let wrapper: Vec<String> =
            std::env::var("BENCH_LOCAL_WRAPPER").unwrap_or_default().split_whitespace().map(str::to_string).collect();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(sibling_binary("local"));
                command
            }
            None => Command::new(sibling_binary("local")),
        };
        let local = command
            .env_clear()
            .envs(env)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start target/release/local (build it with scripts/bench.sh): {e}"))?;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(response) = http.get(format!("{base}/health")).send().await {
                if response.status() == 200 {
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err("the local stack did not become healthy within 120 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Stack { redis, local, stub, ws_url: format!("ws://127.0.0.1:{port}/chat"), base, http, _dir: dir })
    }

    /// Stops `local` with SIGTERM, as an operator would (a profiler wrapping it writes its data),
    /// waiting up to a minute.
    async fn shutdown(mut self) {
        if let Some(pid) = self.local.id() {
            let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
            let _ = tokio::time::timeout(Duration::from_secs(60), self.local.wait()).await;
        }
    }

    async fn session(&self, name: &str) -> Result<ChatSession, Error> {
        let response = self.http.post(format!("{}/token", self.base)).form(&[("name", name)]).send().await?;
        if response.status() != 200 {
            return Err(format!("POST /token answered {}", response.status()).into());
        }
        Ok(response.json().await?)
    }

    async fn connect(&self, token: &str) -> Result<Ws, Error> {
        Ok(tokio_tungstenite::connect_async(format!("{}?token={token}", self.ws_url)).await?.0)
    }

    async fn history(&self, token: &str) -> Result<ChatSession, Error> {
        Ok(self.http.get(format!("{}/chat_history", self.base)).query(&[("token", token)]).send().await?.json().await?)
    }

    /// Opens `n` conversations (sessions with a connection each), 50 at a time.
    async fn conversations(&self, n: usize) -> Result<Vec<(String, Ws)>, Error> {
        let opened: Vec<Result<(String, Ws), Error>> = futures_util::stream::iter(0..n)
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

    fn processes(&self) -> Vec<(&'static str, u32)> {
        vec![
            ("local (gateway + functions + worker)", self.local.id().unwrap_or(0)),
            ("redis-server", self.redis.pid().unwrap_or(0)),
            ("bench (clients + stub model)", std::process::id()),
        ]
    }
}

/// CPU time (user + system) and resident memory of a process, from /proc.
#[derive(Debug, Clone, Copy, Default)]
struct ProcStat {
    cpu_seconds: f64,
    rss_bytes: u64,
}

fn proc_stat(pid: u32) -> ProcStat {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name: utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    // CLK_TCK is 100 on Linux.
    ProcStat { cpu_seconds: (ticks(11) + ticks(12)) / 100.0, rss_bytes: rss_kb * 1024 }
}

/// Watches processes during a measurement: CPU used between start and stop, peak resident memory.
struct Watch {
    pids: Vec<(&'static str, u32)>,
    start: Vec<ProcStat>,
    peak: Arc<std::sync::Mutex<Vec<u64>>>,
    sampler: tokio::task::JoinHandle<()>,
    started: Instant,
}

impl Watch {
    fn start(pids: Vec<(&'static str, u32)>) -> Watch {
        let start: Vec<ProcStat> = pids.iter().map(|(_, pid)| proc_stat(*pid)).collect();
        let peak = Arc::new(std::sync::Mutex::new(start.iter().map(|s| s.rss_bytes).collect::<Vec<_>>()));
        let sampled = peak.clone();
        let watched: Vec<u32> = pids.iter().map(|(_, pid)| *pid).collect();
        let sampler = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let mut peak = sampled.lock().unwrap();
                for (i, pid) in watched.iter().enumerate() {
                    peak[i] = peak[i].max(proc_stat(*pid).rss_bytes);
                }
            }
        });
        Watch { pids, start, peak, sampler, started: Instant::now() }
    }

    fn stop(self) -> Vec<Value> {
        self.sampler.abort();
        let wall = self.started.elapsed().as_secs_f64();
        let peak = self.peak.lock().unwrap().clone();
        self.pids
            .iter()
            .zip(self.start.iter())
            .zip(peak)
            .map(|(((name, pid), start), peak)| {
                let end = proc_stat(*pid);
                json!({
                    "process": name,
                    "cpu_seconds": round3(end.cpu_seconds - start.cpu_seconds),
                    "cpu_percent_of_one_core": round1(100.0 * (end.cpu_seconds - start.cpu_seconds) / wall),
                    "peak_rss_mib": round1(peak as f64 / 1048576.0),
                })
            })
            .collect()
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// p-th percentile (0..=100) of samples in milliseconds.
fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One reply as a client saw it.
#[derive(Debug, Default)]
struct ReplyTiming {
    sent: Option<Instant>,
    ack: Option<Instant>,
    first_delta: Option<Instant>,
    last_delta: Option<Instant>,
    done: Option<Instant>,
    deltas: usize,
    dones: usize,
    status: Option<ReplyStatus>,
    text: String,
}

/// Sends a question and reads until its `done` (or `timeout`).
async fn ask(ws: &mut Ws, id: &str, content: &str, timeout: Duration) -> ReplyTiming {
    let mut timing = ReplyTiming::default();
    let frame = json!({"action": "sendMessage", "id": id, "content": content}).to_string();
    timing.sent = Some(Instant::now());
    if ws.send(Message::Text(frame.into())).await.is_err() {
        return timing;
    }
    let mut text = ReplyText::default();
    let deadline = tokio::time::Instant::now() + timeout;
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, ws.next()).await {
        let Message::Text(body) = message else {
            continue;
        };
        let Ok(frame) = serde_json::from_str::<ServerFrame>(&body) else {
            continue;
        };
        let now = Instant::now();
        match frame {
            ServerFrame::Delta { seq, text: piece, .. } => {
                timing.first_delta.get_or_insert(now);
                timing.last_delta = Some(now);
                timing.deltas += 1;
                text.delta(seq, &piece);
            }
            ServerFrame::Snapshot { next_seq, text: whole, .. } => text.snapshot(next_seq, &whole),
            ServerFrame::Done { status, .. } => {
                timing.done = Some(now);
                timing.dones += 1;
                timing.status = Some(status);
                break;
            }
            ServerFrame::Error { .. } => break,
            ServerFrame::Ack { .. } => timing.ack = Some(now),
            _ => {}
        }
    }
    timing.text = text.text().to_string();
    timing
}

/// The stub's own time to its first content chunk, from a direct HTTP client: the reference the
/// pipeline's first-token time is compared with.
async fn stub_first_token(http: &reqwest::Client, stub: &StubModel) -> Result<Duration, Error> {
    let body = json!({"model": "stub", "stream": true, "messages": [{"role": "user", "content": "hello"}]});
    let started = Instant::now();
    let response = http.post(format!("{}/chat/completions", stub.base_url())).json(&body).send().await?;
    let mut stream = response.bytes_stream();
    let mut seen = Vec::new();
    while let Some(chunk) = stream.next().await {
        seen.extend_from_slice(&chunk?);
        if memchr_content(&seen) {
            let first = started.elapsed();
            while stream.next().await.is_some() {}
            return Ok(first);
        }
    }
    Err("the stub sent no content".into())
}

/// Whether an SSE body holds a non-empty `content` delta yet.
fn memchr_content(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    text.match_indices("\"content\":\"").any(|(i, m)| text[i + m.len()..].chars().next().is_some_and(|c| c != '"'))
}

/// The stub's own emission rate for a reply, from a direct HTTP client: tokens per second between
/// its first and last content chunks.
async fn stub_rate(http: &reqwest::Client, stub: &StubModel) -> Result<(f64, usize), Error> {
    let body = json!({"model": "stub", "stream": true, "messages": [{"role": "user", "content": "hello"}]});
    let response = http.post(format!("{}/chat/completions", stub.base_url())).json(&body).send().await?;
    let mut stream = response.bytes_stream();
    let (mut first, mut last, mut chunks) = (None, None, 0usize);
    let mut buffer = String::new();
    while let Some(chunk) = stream.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if memchr_content(event.as_bytes()) {
                let now = Instant::now();
                first.get_or_insert(now);
                last = Some(now);
                chunks += 1;
            }
        }
    }
    let span = last.zip(first).map(|(l, f)| (l - f).as_secs_f64()).unwrap_or(0.0);
    Ok(((chunks.saturating_sub(1)) as f64 / span, chunks))
}

// ---------------------------------------------------------------------------------------------
// bench pipeline
// ---------------------------------------------------------------------------------------------

async fn pipeline() -> Result<(), Error> {
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut figures = serde_json::Map::new();
    let stack = Stack::start(Pacing::default(), &[]).await?;
    println!("bench: stack up at {} (local pid {:?}, redis pid {:?})", stack.base, stack.local.id(), stack.redis.pid());

    let parts =
        std::env::var("BENCH_PARTS").unwrap_or_else(|_| "floors,first-token,delivery,concurrency,history".into());
    let part = |name: &str| parts.split(',').any(|p| p.trim() == name);
    if part("floors") {
        // Floors.
        let redis_ping = redis_ping_floor(&stack.redis.url()).await?;
        let ws_echo = websocket_echo_floor().await?;
        let gateway_ping = gateway_ping(&stack).await?;
        rows.push(row("Redis PING round trip", &redis_ping, "floor"));
        rows.push(row("WebSocket echo round trip (loopback)", &ws_echo, "floor"));
        rows.push(row("ping through the gateway ($default)", &gateway_ping, "floor: handler + GETEX"));
        figures.insert("redis_ping_ms".into(), stats_json(&redis_ping));
        figures.insert("websocket_echo_ms".into(), stats_json(&ws_echo));
        figures.insert("gateway_ping_ms".into(), stats_json(&gateway_ping));
    }
    if part("first-token") {
        // First-token overhead at one conversation, side by side with the stub's own first token.
        let pacing = Pacing {
            first_token: Duration::from_millis(50),
            between_tokens: Duration::from_millis(20),
            fixed_tokens: Some(5),
        };
        stack.stub.set_pacing(pacing);
        let session = stack.session("first-token").await?;
        let mut ws = stack.connect(&session.token).await?;
        let (mut direct, mut through, mut overhead, mut acked) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..100 {
            let reference = ms(stub_first_token(&stack.http, &stack.stub).await?);
            let reply = ask(&mut ws, &format!("ft{i}"), "hello", Duration::from_secs(10)).await;
            let first = ms(reply.first_delta.ok_or("no delta")? - reply.sent.unwrap());
            direct.push(reference);
            through.push(first);
            overhead.push(first - reference);
            acked.push(ms(reply.ack.ok_or("no ack")? - reply.sent.unwrap()));
        }
        let posts = management_post_floor(&stack, &session.token).await?;
        for (name, samples) in store_steps(&stack).await? {
            rows.push(row(&format!("  store: {name}"), &samples, "one step of the first-token path"));
            figures.insert(format!("store_{}_ms", name.replace(' ', "_")), stats_json(&samples));
        }
        rows.push(row("ack on the WebSocket (message stored, queued)", &acked, "part of the overhead"));
        rows.push(row("Management API post (AWS SDK -> gateway)", &posts, "part of the overhead, once per delta"));
        figures.insert("ack_ms".into(), stats_json(&acked));
        figures.insert("management_post_ms".into(), stats_json(&posts));
        rows.push(row("stub first token, direct HTTP client", &direct, "reference"));
        rows.push(row(
            "first delta on the WebSocket",
            &through,
            &format!("{:.3}x the reference (p50)", percentile(&through, 50.0) / percentile(&direct, 50.0)),
        ));
        rows.push(row("first-token overhead (1 conversation)", &overhead, "target p50 <= 1 ms, p99 <= 5 ms"));
        figures.insert("stub_first_token_ms".into(), stats_json(&direct));
        figures.insert("first_delta_ms".into(), stats_json(&through));
        figures.insert("first_token_overhead_ms".into(), stats_json(&overhead));
    }
    if part("delivery") {
        // Token delivery at 200 tokens/s.
        let session = stack.session("delivery").await?;
        let mut ws = stack.connect(&session.token).await?;
        stack.stub.set_pacing(Pacing {
            first_token: Duration::ZERO,
            between_tokens: Duration::from_millis(5),
            fixed_tokens: Some(400),
        });
        let (mut emitted, mut delivered, mut posts) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..5 {
            let (rate, _) = stub_rate(&stack.http, &stack.stub).await?;
            let reply = ask(&mut ws, &format!("rate{i}"), "go", Duration::from_secs(30)).await;
            let tokens = reply.text.split_inclusive(' ').count();
            let span = (reply.last_delta.ok_or("no delta")? - reply.first_delta.unwrap()).as_secs_f64();
            emitted.push(rate);
            delivered.push((tokens.saturating_sub(1)) as f64 / span);
            posts.push(reply.deltas as f64);
        }
        let (emitted_rate, delivered_rate) = (percentile(&emitted, 50.0), percentile(&delivered, 50.0));
        let posts_per_reply = percentile(&posts, 50.0);
        rows.push((
            "token delivery at 200 tokens/s (400-token replies)".into(),
            format!("{delivered_rate:.1} of {emitted_rate:.1} tok/s"),
            format!("{:.3} of the emitted rate (target >= 0.98)", delivered_rate / emitted_rate),
        ));
        rows.push((
            "Management API posts per reply".into(),
            format!("{posts_per_reply:.0} posts"),
            format!("{:.1} tokens per post; first post at once, then <= DELTA_COALESCE_MS", 400.0 / posts_per_reply),
        ));
        figures.insert(
            "token_delivery".into(),
            json!({"emitted_tokens_per_s": round1(emitted_rate), "delivered_tokens_per_s": round1(delivered_rate),
                   "ratio": round3(delivered_rate / emitted_rate), "posts_per_reply": posts_per_reply, "tokens_per_reply": 400}),
        );
    }
    if part("concurrency") {
        // Concurrency.
        let mut levels = Vec::new();
        let wanted = std::env::var("BENCH_LEVELS").unwrap_or_else(|_| "1,10,100,1000".into());
        for n in wanted.split(',').filter_map(|n| n.trim().parse::<usize>().ok()) {
            let level = concurrency_level(&stack, n).await?;
            rows.push((
                format!("{n} simultaneous conversations"),
                format!(
                    "overhead p50 {:.1} / p99 {:.1} ms",
                    level["first_token_overhead_ms"]["p50"].as_f64().unwrap_or(f64::NAN),
                    level["first_token_overhead_ms"]["p99"].as_f64().unwrap_or(f64::NAN)
                ),
                format!(
                    "{} replies/s, {} lost, {} duplicated{}",
                    level["replies_per_s"],
                    level["lost"],
                    level["duplicated"],
                    if n == 1000 { " (target p99 <= 50 ms, 0 lost)" } else { "" }
                ),
            ));
            for process in level["processes"].as_array().unwrap() {
                rows.push((
                    format!("  {}", process["process"].as_str().unwrap_or_default()),
                    format!("{}% CPU", process["cpu_percent_of_one_core"]),
                    format!("peak RSS {} MiB", process["peak_rss_mib"]),
                ));
            }
            levels.push(level);
        }
        figures.insert("concurrency".into(), Value::Array(levels));
    }
    if part("history") {
        // History reads.
        let mut history = Vec::new();
        for n in [10usize, 100, 1000] {
            let (samples, bytes) = history_latency(&stack, n).await?;
            rows.push(row(
                &format!("GET /chat_history, {n} messages"),
                &samples,
                &format!(
                    "{} KB, {:.1} µs per message (p50)",
                    bytes / 1024,
                    1000.0 * percentile(&samples, 50.0) / n as f64
                ),
            ));
            history.push(json!({"messages": n, "latency_ms": stats_json(&samples), "bytes": bytes}));
        }
        figures.insert("history".into(), Value::Array(history));
    }

    // Figures of the other benches, run just before by scripts/bench.sh, in the same table.
    match read_json("target/bench-lambdas.json") {
        Some(Value::Object(lambdas)) => {
            for (binary, figures) in &lambdas {
                let size = figures["arm64_bootstrap_bytes"]
                    .as_f64()
                    .map_or("size: run check-deploy".to_string(), |b| format!("arm64 {:.2} MB", b / 1e6));
                rows.push((
                    format!("Lambda {binary}"),
                    format!(
                        "init {:.1} ms, first event {:.1} ms",
                        figures["init_ms"].as_f64().unwrap_or(f64::NAN),
                        figures["first_event_ms"].as_f64().unwrap_or(f64::NAN)
                    ),
                    format!("{size} (targets: <= 50 ms, <= 8 MB)"),
                ));
            }
            figures.insert("lambdas".into(), Value::Object(lambdas));
        }
        _ => rows.push(("Lambda binaries".into(), "not measured".into(), "scripts/bench-lambdas.sh".into())),
    }
    match read_json("target/bench-frontend.json") {
        Some(frontend) => {
            rows.push((
                "web app download (wasm + JS + CSS, gzip)".into(),
                format!("{:.1} KB", frontend["gzip_total_bytes"].as_f64().unwrap_or(f64::NAN) / 1024.0),
                "target <= 250 KB".into(),
            ));
            rows.push((
                "web app: render 1,000 restored messages".into(),
                format!("{:.1} ms", frontend["render_1000_restored_messages_ms"].as_f64().unwrap_or(f64::NAN)),
                format!(
                    "navigation to interactive {:.1} ms (target render <= 100 ms)",
                    frontend["navigation_to_interactive_ms"].as_f64().unwrap_or(f64::NAN)
                ),
            ));
            figures.insert("frontend".into(), frontend);
        }
        None => rows.push(("web app".into(), "not measured".into(), "scripts/bench-frontend.sh".into())),
    }

    stack.shutdown().await;
    print_table("Pipeline, Lambda and web app figures (this machine, one run)", &rows);
    std::fs::create_dir_all("target/bench")?;
    std::fs::write("target/bench/bench.json", serde_json::to_string_pretty(&Value::Object(figures))?)?;
    println!("figures written to target/bench/bench.json");
    Ok(())
}

fn read_json(path: &str) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn row(name: &str, samples: &[f64], note: &str) -> (String, String, String) {
    (
        name.to_string(),
        format!("p50 {:.3} / p99 {:.3} ms", percentile(samples, 50.0), percentile(samples, 99.0)),
        note.to_string(),
    )
}

fn stats_json(samples: &[f64]) -> Value {
    json!({"p50": round3(percentile(samples, 50.0)), "p99": round3(percentile(samples, 99.0)), "samples": samples.len()})
}

fn print_table(title: &str, rows: &[(String, String, String)]) {
    let w0 = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    println!("\n{title}");
    println!("{}", "-".repeat(w0 + w1 + 50));
    for (a, b, c) in rows {
        println!("{a:<w0$}  {b:<w1$}  {c}");
    }
}

async fn redis_ping_floor(url: &str) -> Result<Vec<f64>, Error> {
    let mut conn = redis::Client::open(url)?.get_multiplexed_async_connection().await?;
    let mut samples = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let started = Instant::now();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        samples.push(ms(started.elapsed()));
    }
    Ok(samples)
}

async fn websocket_echo_floor() -> Result<Vec<f64>, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Ok((stream, _)) = listener.accept().await {
            if let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await {
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_text() && ws.send(message).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}")).await?;
    let mut samples = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let started = Instant::now();
        ws.send(Message::Text(r#"{"action":"ping"}"#.into())).await?;
        ws.next().await.ok_or("echo closed")??;
        samples.push(ms(started.elapsed()));
    }
    Ok(samples)
}

async fn gateway_ping(stack: &Stack) -> Result<Vec<f64>, Error> {
    let session = stack.session("ping").await?;
    let mut ws = stack.connect(&session.token).await?;
    let mut samples = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let started = Instant::now();
        ws.send(Message::Text(r#"{"action":"ping"}"#.into())).await?;
        ws.next().await.ok_or("gateway closed")??;
        samples.push(ms(started.elapsed()));
    }
    Ok(samples)
}

/// A question as the message function stores it.
fn question(id: &str, text: &str) -> chat_wire::ChatMessage {
    chat_wire::ChatMessage {
        id: id.into(),
        msg: text.into(),
        timestamp: chat_core::store::now_rfc3339(),
        source: chat_wire::Source::User,
        status: ReplyStatus::Done,
        reply_to: None,
        model: None,
        next_seq: None,
    }
}

/// A reply to `question` as the worker stores it.
fn reply_to(question: &chat_wire::ChatMessage, text: &str, status: ReplyStatus) -> chat_wire::ChatMessage {
    chat_wire::ChatMessage {
        id: chat_wire::reply_id_for(&question.id),
        msg: text.into(),
        source: chat_wire::Source::Assistant,
        status,
        reply_to: Some(question.id.clone()),
        model: Some("stub".into()),
        ..question.clone()
    }
}

/// Each Redis step of a question's path to its first delta, timed from this process through the
/// product's own `Store` (one shared, multiplexed connection, as in the functions and the worker).
async fn store_steps(stack: &Stack) -> Result<Vec<(&'static str, Vec<f64>)>, Error> {
    let mut config = chat_core::Config::from_vars(&HashMap::from([("REDIS_URL".to_string(), stack.redis.url())]))?;
    config.rate_limits.messages_per_session = 0; // 300 questions in a row
    config.request_stream = "bench:steps".into(); // the stack's worker must not answer these
    let store = chat_core::Store::connect(&config)?;
    let session = store.create_session("steps").await?;
    let token = session.token.as_str();
    store.bind_connection("steps-connection=", token).await?;
    let names =
        ["touch connection", "accept message", "enqueue", "read context", "begin reply", "append delta", "store reply"];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for i in 0..300 {
        let id = format!("s{i}");
        let question = question(&id, "hello");
        let mut reply = reply_to(&question, "hello", ReplyStatus::Streaming);
        let request =
            chat_core::ReplyRequest { token: token.into(), message_id: id.clone(), endpoint: "http://unused".into() };
        let mut step = 0;
        let mut timed = |samples: &mut Vec<Vec<f64>>, started: Instant| {
            samples[step].push(ms(started.elapsed()));
            step += 1;
        };
        let t = Instant::now();
        store.touch_connection("steps-connection=").await?;
        timed(&mut samples, t);
        let t = Instant::now();
        let accepted = store.accept_user_message(token, &question).await?;
        timed(&mut samples, t);
        if accepted != chat_core::Accepted::Stored {
            return Err(format!("step timing: the question was not stored ({accepted:?})").into());
        }
        let t = Instant::now();
        store.enqueue(&request).await?;
        timed(&mut samples, t);
        let t = Instant::now();
        store.recent(token, 10).await?;
        timed(&mut samples, t);
        let t = Instant::now();
        store.begin_reply(token, &reply).await?;
        timed(&mut samples, t);
        let t = Instant::now();
        store.append_delta(token, &id, 0, "hello ").await?;
        timed(&mut samples, t);
        reply.status = ReplyStatus::Done;
        let t = Instant::now();
        store.store_reply(token, &reply, &id, 1).await?;
        timed(&mut samples, t);
    }
    Ok(names.into_iter().zip(samples).collect())
}

/// One frame posted to one of the session's connections through the worker's own Management API
/// client, as the worker does it for every delta.
async fn management_post_floor(stack: &Stack, token: &str) -> Result<Vec<f64>, Error> {
    let mut redis = redis::Client::open(stack.redis.url())?.get_multiplexed_async_connection().await?;
    let connections: Vec<String> =
        redis::cmd("SMEMBERS").arg(format!("chat:{{{token}}}:conns")).query_async(&mut redis).await?;
    let connection = connections.first().ok_or("the session has no connection")?;
    let api = chat_worker::ManagementApi::local();
    let endpoint = format!("{}/{}", stack.base, chat_local::gateway::STAGE);
    let frame = serde_json::to_vec(&ServerFrame::Pong)?;
    let mut samples = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let started = Instant::now();
        if api.post(&endpoint, connection, &frame).await != chat_worker::notify::Delivery::Sent {
            return Err("a post to a live connection failed".into());
        }
        samples.push(ms(started.elapsed()));
    }
    Ok(samples)
}

/// `n` conversations ask at the same moment (stub: 50 ms to first token, 50 tokens/s, 100-token
/// replies).
async fn concurrency_level(stack: &Stack, n: usize) -> Result<Value, Error> {
    stack.stub.set_pacing(Pacing {
        first_token: Duration::from_millis(50),
        between_tokens: Duration::from_millis(20),
        fixed_tokens: Some(100),
    });
    let mut reference = Vec::new();
    for _ in 0..10 {
        reference.push(ms(stub_first_token(&stack.http, &stack.stub).await?));
    }
    let stub_ttfb = percentile(&reference, 50.0);
    let conversations = stack.conversations(n).await?;
    let watch = Watch::start(stack.processes());
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let started = Instant::now();
    let tasks: Vec<_> = conversations
        .into_iter()
        .enumerate()
        .map(|(i, (token, mut ws))| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let reply = ask(&mut ws, &format!("c{n}-{i}"), "hello", Duration::from_secs(120)).await;
                let _ = ws.close(None).await;
                (token, reply)
            })
        })
        .collect();
    let mut replies = Vec::with_capacity(n);
    for task in tasks {
        replies.push(task.await?);
    }
    let wall = started.elapsed().as_secs_f64();
    let processes = watch.stop();
    let overhead: Vec<f64> =
        replies.iter().filter_map(|(_, r)| Some(ms(r.first_delta? - r.sent?) - stub_ttfb)).collect();
    let completed = replies.iter().filter(|(_, r)| r.status == Some(ReplyStatus::Done)).count();
    let duplicated_frames = replies.iter().filter(|(_, r)| r.dones > 1).count();
    let duplicated_stored = stored_duplicates(stack, replies.iter().map(|(t, _)| t.clone()).collect(), 2).await;
    Ok(json!({
        "conversations": n,
        "stub_first_token_ms": round3(stub_ttfb),
        "first_token_overhead_ms": stats_json(&overhead),
        "completed": completed,
        "lost": n - completed,
        "duplicated": duplicated_frames + duplicated_stored,
        "wall_s": round3(wall),
        "replies_per_s": round1(completed as f64 / wall),
        "processes": processes,
    }))
}

/// Reads each session's history: counts replies stored more than once (or sessions whose message
/// count is not `expected`).
async fn stored_duplicates(stack: &Stack, tokens: Vec<String>, expected: usize) -> usize {
    futures_util::stream::iter(tokens)
        .map(|token| async move {
            match stack.history(&token).await {
                Ok(session) => {
                    let ids: HashSet<_> = session.messages.iter().map(|m| m.id.clone()).collect();
                    usize::from(ids.len() != session.messages.len() || session.messages.len() > expected)
                }
                Err(_) => 0,
            }
        })
        .buffer_unordered(32)
        .fold(0, |sum, x| async move { sum + x })
        .await
}

async fn history_latency(stack: &Stack, n: usize) -> Result<(Vec<f64>, usize), Error> {
    let mut config = chat_core::Config::from_vars(&HashMap::from([("REDIS_URL".to_string(), stack.redis.url())]))?;
    config.max_history_messages = n.max(1000);
    config.rate_limits.messages_per_session = 0; // written directly, past the message rate
    let store = chat_core::Store::connect(&config)?;
    let session = stack.session(&format!("history-{n}")).await?;
    for i in 0..n / 2 {
        let question = question(&format!("q{i}"), &format!("Question number {i}: how does this part work, and why?"));
        if store.accept_user_message(&session.token, &question).await? != chat_core::Accepted::Stored {
            return Err("could not store a history message".into());
        }
        let answer = format!("Answer **{i}**: it works like this.\n\n- first point\n- second point with `code`\n\n```rust\nfn answer() -> u32 {{ {i} }}\n```");
        let reply = reply_to(&question, &answer, ReplyStatus::Done);
        store.store_reply(&session.token, &reply, &question.id, 0).await?;
    }
    let mut samples = Vec::with_capacity(200);
    let mut bytes = 0;
    for _ in 0..200 {
        let started = Instant::now();
        let body = stack
            .http
            .get(format!("{}/chat_history", stack.base))
            .query(&[("token", &session.token)])
            .send()
            .await?
            .bytes()
            .await?;
        samples.push(ms(started.elapsed()));
        bytes = body.len();
    }
    Ok((samples, bytes))
}

// ---------------------------------------------------------------------------------------------
// bench load
// ---------------------------------------------------------------------------------------------

async fn load() -> Result<(), Error> {
    let sessions: usize = std::env::var("LOAD_SESSIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let messages: usize = std::env::var("LOAD_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let kills: usize = std::env::var("LOAD_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let pacing = Pacing {
        first_token: Duration::from_millis(50),
        between_tokens: Duration::from_millis(20),
        fixed_tokens: None,
    };
    let stack = Stack::start(pacing.clone(), &[]).await?;
    let mut reference = Vec::new();
    for _ in 0..20 {
        reference.push(ms(stub_first_token(&stack.http, &stack.stub).await?));
    }
    let stub_ttfb = percentile(&reference, 50.0);
    println!("load: {sessions} sessions x {messages} messages (stub: 50 ms to first token, 50 tokens/s), then {kills} worker kills");
    let conversations = stack.conversations(sessions).await?;
    let watch = Watch::start(stack.processes());
    let started = Instant::now();
    let tasks: Vec<_> = conversations
        .into_iter()
        .enumerate()
        .map(|(s, (token, mut ws))| {
            tokio::spawn(async move {
                let mut replies = Vec::with_capacity(messages);
                for m in 0..messages {
                    let question = format!("session {s} message {m}: hello there");
                    let reply = ask(&mut ws, &format!("s{s}m{m}"), &question, Duration::from_secs(120)).await;
                    let whole = reply.text == format!("You said: {question}");
                    replies.push((reply, whole));
                }
                let _ = ws.close(None).await;
                (token, replies)
            })
        })
        .collect();
    let mut results = Vec::with_capacity(sessions);
    for task in tasks {
        results.push(task.await?);
    }
    let wall = started.elapsed().as_secs_f64();
    let processes = watch.stop();
    let sent = sessions * messages;
    let completed =
        results.iter().flat_map(|(_, r)| r).filter(|(r, whole)| r.status == Some(ReplyStatus::Done) && *whole).count();
    let overhead: Vec<f64> = results
        .iter()
        .flat_map(|(_, r)| r)
        .filter_map(|(r, _)| Some(ms(r.first_delta? - r.sent?) - stub_ttfb))
        .collect();
    let duplicated = results.iter().flat_map(|(_, r)| r).filter(|(r, _)| r.dones > 1).count()
        + stored_duplicates(&stack, results.iter().map(|(t, _)| t.clone()).collect(), 2 * messages).await;
    let lost_stored = lost_in_history(&stack, &results, messages).await;

    let mut rows = vec![
        ("messages sent".to_string(), sent.to_string(), String::new()),
        (
            "replies completed (whole text, status done)".into(),
            completed.to_string(),
            format!("{:.1} replies/s over {wall:.1} s", completed as f64 / wall),
        ),
        ("lost (no reply, or not in history)".into(), (sent - completed + lost_stored).to_string(), "target 0".into()),
        ("duplicated".into(), duplicated.to_string(), "target 0".into()),
        (
            "first-token overhead".into(),
            format!("p50 {:.1} / p99 {:.1} ms", percentile(&overhead, 50.0), percentile(&overhead, 99.0)),
            format!("stub's own first token {stub_ttfb:.1} ms subtracted; target p99 <= 50 ms"),
        ),
    ];
    for process in &processes {
        rows.push((
            format!("  {}", process["process"].as_str().unwrap_or_default()),
            format!("{}% CPU", process["cpu_percent_of_one_core"]),
            format!("peak RSS {} MiB", process["peak_rss_mib"]),
        ));
    }
    drop(stack);

    let crash = crash_rounds(kills).await?;
    rows.push((
        format!("worker SIGKILLed mid-reply, {kills} rounds"),
        format!("{} answered once", crash.answered_once),
        format!(
            "{} lost, {} duplicated, {} taken over by a restarted worker",
            crash.lost, crash.duplicated, crash.taken_over
        ),
    ));
    print_table("Load (this machine, one run)", &rows);
    let figures = json!({
        "sessions": sessions, "messages_per_session": messages, "sent": sent, "completed": completed,
        "lost": sent - completed + lost_stored, "duplicated": duplicated,
        "first_token_overhead_ms": stats_json(&overhead), "stub_first_token_ms": round3(stub_ttfb),
        "wall_s": round3(wall), "processes": processes,
        "crash": {"rounds": kills, "answered_once": crash.answered_once, "lost": crash.lost, "duplicated": crash.duplicated, "taken_over": crash.taken_over},
    });
    std::fs::create_dir_all("target/bench")?;
    std::fs::write("target/bench/load.json", serde_json::to_string_pretty(&figures)?)?;
    println!("figures written to target/bench/load.json");
    Ok(())
}

/// Questions acknowledged by the client's run but missing from the stored history.
async fn lost_in_history(stack: &Stack, results: &[(String, Vec<(ReplyTiming, bool)>)], messages: usize) -> usize {
    let mut lost = 0;
    for (token, _) in results {
        match stack.history(token).await {
            Ok(session) => lost += (2 * messages).saturating_sub(session.messages.len()),
            Err(_) => lost += 2 * messages,
        }
    }
    lost
}

struct CrashFigures {
    answered_once: usize,
    lost: usize,
    duplicated: usize,
    taken_over: usize,
}

/// Kills a `local worker` process mid-reply `rounds` times; a new one takes each reply over.
async fn crash_rounds(rounds: usize) -> Result<CrashFigures, Error> {
    let pacing = Pacing { first_token: Duration::ZERO, between_tokens: Duration::from_millis(15), fixed_tokens: None };
    let stack = Stack::start(pacing, &[("LOCAL_WORKER", "false"), ("WORKER_CLAIM_IDLE_MS", "600")]).await?;
    let env =
        stack_env(&stack.redis.url(), &stack.stub, &[("WORKER_CLAIM_IDLE_MS", "600"), ("WORKER_BLOCK_MS", "200")]);
    let spawn = |name: String| {
        Command::new(sibling_binary("local"))
            .arg("worker")
            .env_clear()
            .envs(env.clone())
            .env("WORKER_CONSUMER", name)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
    };
    let session = stack.session("crash").await?;
    let mut ws = stack.connect(&session.token).await?;
    let mut worker = spawn("crash-0".into())?;
    let (mut answered_once, mut taken_over) = (0, 0);
    for round in 0..rounds {
        let question = format!("round {round}: a question long enough to be killed in the middle of its reply");
        let id = format!("k{round}");
        ws.send(Message::Text(json!({"action": "sendMessage", "id": id, "content": question}).to_string().into()))
            .await?;
        let mut text = ReplyText::default();
        let mut deltas = 0;
        let mut done = 0;
        let mut killed = false;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, ws.next()).await {
            let Message::Text(body) = message else {
                continue;
            };
            match serde_json::from_str::<ServerFrame>(&body)? {
                ServerFrame::Delta { seq, text: piece, .. } => {
                    text.delta(seq, &piece);
                    deltas += 1;
                    if deltas == 2 && !killed {
                        worker.start_kill()?;
                        worker.wait().await?;
                        worker = spawn(format!("crash-{}", round + 1))?;
                        killed = true;
                    }
                }
                ServerFrame::Snapshot { next_seq, text: whole, .. } => {
                    text.snapshot(next_seq, &whole);
                    taken_over += 1;
                }
                ServerFrame::Done { .. } => {
                    done += 1;
                    break;
                }
                _ => {}
            }
        }
        if done == 1 && text.text() == format!("You said: {question}") {
            answered_once += 1;
        }
    }
    let history = stack.history(&session.token).await?;
    let ids: HashSet<_> = history.messages.iter().map(|m| m.id.as_str()).collect();
    let duplicated = history.messages.len() - ids.len();
    let replies_done =
        history.messages.iter().filter(|m| m.id.ends_with(".reply") && m.status == ReplyStatus::Done).count();
    Ok(CrashFigures { answered_once, lost: rounds.saturating_sub(replies_done), duplicated, taken_over })
}
