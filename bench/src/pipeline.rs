//! `bench pipeline`: floors, first-token overhead, token delivery, simultaneous conversations
//! and history reads on one stack, and the figures the Lambda and web app benches wrote just
//! before (scripts/bench.sh), in one table and `target/bench/bench.json`. BENCH_PARTS picks parts.

use std::time::{Duration, Instant};

use chat_stub_model::Pacing;
use chat_testkit::Error;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::load::concurrency_level;
use crate::measure::{ms, percentile, round1, round3, stub_first_token, stub_rate};
use crate::report::{p50_p99, stats, Figure, Report};
use crate::stack::Stack;
use crate::steps::{conversation_reads, history_latency, management_post_floor, store_steps};

pub async fn run() -> Result<(), Error> {
    let mut report = Report::new("Pipeline, Lambda and web app figures (this machine, one run)");
    let stack = Stack::start(Pacing::default(), &[]).await?;
    println!(
        "bench: stack up at {} (local pid {:?}, redis pid {:?})",
        stack.base,
        stack.local_pid(),
        stack.redis.pid()
    );

    let parts = std::env::var("BENCH_PARTS")
        .unwrap_or_else(|_| "floors,first-token,delivery,cost,concurrency,history,conversations".into());
    let part = |name: &str| parts.split(',').any(|p| p.trim() == name);
    if part("floors") {
        floors(&stack, &mut report).await?;
    }
    if part("first-token") {
        first_token(&stack, &mut report).await?;
    }
    if part("delivery") {
        delivery(&stack, &mut report).await?;
    }
    if part("cost") {
        crate::cost::cost(&stack, &mut report).await?;
    }
    if part("concurrency") {
        concurrency(&stack, &mut report).await?;
    }
    if part("history") {
        history(&stack, &mut report).await?;
    }
    if part("conversations") {
        conversations(&stack, &mut report).await?;
    }
    other_benches(&mut report);

    stack.shutdown().await;
    report.finish("target/bench/bench.json")
}

async fn floors(stack: &Stack, report: &mut Report) -> Result<(), Error> {
    let redis_ping = redis_ping_floor(&stack.redis.url()).await?;
    let ws_echo = websocket_echo_floor().await?;
    let gateway_ping = gateway_ping(stack).await?;
    report.latency("Redis PING round trip", &redis_ping, "floor", "redis_ping_ms");
    report.latency("WebSocket echo round trip (loopback)", &ws_echo, "floor", "websocket_echo_ms");
    report.latency(
        "ping through the gateway ($default)",
        &gateway_ping,
        "floor: handler + frame count",
        "gateway_ping_ms",
    );
    Ok(())
}

/// First-token overhead at one conversation, side by side with the stub's own first token, for a
/// model that answers at once and for one that takes 50 ms (a fast first token is where a socket
/// that waits for a delayed ACK shows: about 40 ms).
async fn first_token(stack: &Stack, report: &mut Report) -> Result<(), Error> {
    let session = stack.session("first-token").await?;
    let mut ws = stack.connect(&session.token).await?;
    for (label, key, first_token) in [("instant model", "instant", 0), ("model 50 ms to first token", "50ms", 50)] {
        stack.stub.set_pacing(Pacing {
            first_token: Duration::from_millis(first_token),
            between_tokens: Duration::from_millis(20),
            fixed_tokens: Some(5),
        });
        let (mut direct, mut through, mut overhead, mut acked) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..100 {
            let reference = ms(stub_first_token(&stack.http, &stack.stub).await?);
            let reply = ws.timed_ask(&format!("ft{key}{i}"), "hello", Duration::from_secs(10)).await;
            let first = ms(reply.first_delta.ok_or("no delta")? - reply.sent.unwrap());
            direct.push(reference);
            through.push(first);
            overhead.push(first - reference);
            acked.push(ms(reply.ack.ok_or("no ack")? - reply.sent.unwrap()));
        }
        report.latency(
            &format!("ack on the WebSocket, {label}"),
            &acked,
            "message stored and queued",
            &format!("ack_{key}_ms"),
        );
        report.latency(
            &format!("stub first token, direct HTTP client, {label}"),
            &direct,
            "reference",
            &format!("stub_first_token_{key}_ms"),
        );
        report.latency(
            &format!("first delta on the WebSocket, {label}"),
            &through,
            "a client that sets nothing on its socket",
            &format!("first_delta_{key}_ms"),
        );
        report.latency(
            &format!("first-token overhead, {label}"),
            &overhead,
            "target p50 <= 1 ms, p99 <= 5 ms",
            &format!("first_token_overhead_{key}_ms"),
        );
    }
    let posts = management_post_floor(stack, &session.token).await?;
    for (name, samples) in store_steps(stack).await? {
        let key = format!("store_{}_ms", name.replace(' ', "_"));
        report.latency(&format!("  store: {name}"), &samples, "one step of the first-token path", &key);
    }
    report.latency(
        "Management API post (signed, reqwest -> gateway)",
        &posts,
        "part of the overhead, once per delta",
        "management_post_ms",
    );
    let signing = signing_cost();
    report.latency("  of which SigV4 signing", &signing, "CPU only, per post", "sigv4_sign_ms");
    Ok(())
}

/// Token delivery at 200 tokens/s, with the time between consecutive deltas at the client; and
/// the posts a 1,000-token reply at 100 tokens/s takes.
async fn delivery(stack: &Stack, report: &mut Report) -> Result<(), Error> {
    let session = stack.session("delivery").await?;
    let mut ws = stack.connect(&session.token).await?;
    stack.stub.set_pacing(Pacing {
        first_token: Duration::ZERO,
        between_tokens: Duration::from_millis(5),
        fixed_tokens: Some(400),
    });
    let (mut emitted, mut delivered, mut posts, mut gaps) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..5 {
        let (rate, _) = stub_rate(&stack.http, &stack.stub).await?;
        let reply = ws.timed_ask(&format!("rate{i}"), "go", Duration::from_secs(30)).await;
        let tokens = reply.text.split_inclusive(' ').count();
        let span = (reply.last_delta.ok_or("no delta")? - reply.first_delta.unwrap()).as_secs_f64();
        emitted.push(rate);
        delivered.push((tokens.saturating_sub(1)) as f64 / span);
        posts.push(reply.deltas as f64);
        gaps.extend(reply.delta_times.windows(2).map(|pair| ms(pair[1] - pair[0])));
    }
    let (emitted_rate, delivered_rate) = (percentile(&emitted, 50.0), percentile(&delivered, 50.0));
    let posts_per_reply = percentile(&posts, 50.0);
    report.add(
        "token delivery at 200 tokens/s (400-token replies)",
        format!("{delivered_rate:.1} of {emitted_rate:.1} tok/s"),
        format!("{:.3} of the emitted rate (target >= 0.98)", delivered_rate / emitted_rate),
        Figure::Field(
            "token_delivery",
            json!({"emitted_tokens_per_s": round1(emitted_rate), "delivered_tokens_per_s": round1(delivered_rate),
                   "ratio": round3(delivered_rate / emitted_rate), "posts_per_reply": posts_per_reply, "tokens_per_reply": 400}),
        ),
    );
    report.add(
        "  gap between consecutive deltas at the client, 200 tokens/s",
        format!("{} / max {:.1} ms", p50_p99(&gaps), percentile(&gaps, 100.0)),
        format!("{} gaps of 5 replies; target p99 <= 120 ms", gaps.len()),
        Figure::Field("delta_gap_ms", stats(&gaps)),
    );

    stack.stub.set_pacing(Pacing {
        first_token: Duration::ZERO,
        between_tokens: Duration::from_millis(10),
        fixed_tokens: Some(1000),
    });
    let mut long_posts = Vec::new();
    for i in 0..2 {
        let reply = ws.timed_ask(&format!("long{i}"), "go", Duration::from_secs(60)).await;
        if reply.status != Some(chat_wire::ReplyStatus::Done) {
            return Err("a 1,000-token reply did not finish".into());
        }
        long_posts.push(reply.deltas as f64);
    }
    let long_posts = percentile(&long_posts, 50.0);
    report.add(
        "Management API posts per reply",
        format!("{posts_per_reply:.0} for 400 tokens at 200 tok/s; {long_posts:.0} for 1,000 at 100 tok/s"),
        format!(
            "{:.3} posts per token at 100 tok/s (target <= 0.1); first post at once, then one per DELTA_INTERVAL_MS",
            long_posts / 1000.0
        ),
        Figure::Field("posts_per_1000_token_reply", json!(long_posts)),
    );
    Ok(())
}

/// 1/10/100/1,000 simultaneous conversations (BENCH_LEVELS).
async fn concurrency(stack: &Stack, report: &mut Report) -> Result<(), Error> {
    // The list is in the figures even when BENCH_LEVELS names no level.
    report.figure("concurrency", json!([]));
    let wanted = std::env::var("BENCH_LEVELS").unwrap_or_else(|_| "1,10,100,1000".into());
    for n in wanted.split(',').filter_map(|n| n.trim().parse::<usize>().ok()) {
        let level = concurrency_level(stack, n).await?;
        let processes = level["processes"].as_array().cloned().unwrap_or_default();
        report.add(
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
            Figure::Entry("concurrency", level),
        );
        report.processes(&processes);
    }
    Ok(())
}

/// History reads of 10, 100 and 1,000 messages.
async fn history(stack: &Stack, report: &mut Report) -> Result<(), Error> {
    for n in [10usize, 100, 1000] {
        let (samples, bytes) = history_latency(stack, n).await?;
        report.add(
            format!("GET /chat_history, {n} messages"),
            p50_p99(&samples),
            format!("{} KB, {:.1} µs per message (p50)", bytes / 1024, 1000.0 * percentile(&samples, 50.0) / n as f64),
            Figure::Entry("history", json!({"messages": n, "latency_ms": stats(&samples), "bytes": bytes})),
        );
    }
    Ok(())
}

/// A session of 100 conversations of 100 messages beside one of a single conversation of 100:
/// the list, one conversation's history and a search over all.
async fn conversations(stack: &Stack, report: &mut Report) -> Result<(), Error> {
    for (conversations, messages) in [(1usize, 100usize), (100, 100)] {
        let reads = conversation_reads(stack, conversations, messages).await?;
        let shape = format!("{conversations} x {messages} messages");
        report.add(
            format!("GET /conversations, {shape}"),
            p50_p99(&reads.list),
            format!("{} KB", reads.list_bytes / 1024),
            Figure::Entry("conversations", json!({"conversations": conversations, "messages": messages, "list_ms": stats(&reads.list), "list_bytes": reads.list_bytes, "history_ms": stats(&reads.history), "history_bytes": reads.history_bytes, "search_ms": stats(&reads.search)})),
        );
        report.add(
            format!("GET /chat_history of one, {shape}"),
            p50_p99(&reads.history),
            format!("{} KB", reads.history_bytes / 1024),
            Figure::None,
        );
        report.add(
            format!("GET /search over all, {shape}"),
            p50_p99(&reads.search),
            "a word one message holds: every message scanned",
            Figure::None,
        );
    }
    Ok(())
}

/// Figures of the other benches, run just before by scripts/bench.sh, in the same table.
fn other_benches(report: &mut Report) {
    match read_json("target/bench-lambdas.json") {
        Some(Value::Object(lambdas)) => {
            for (binary, figures) in &lambdas {
                let size = figures["arm64_bootstrap_bytes"]
                    .as_f64()
                    .map_or("size: run check-deploy".to_string(), |b| format!("arm64 {:.2} MB", b / 1e6));
                report.add(
                    format!("Lambda {binary}"),
                    format!(
                        "init {:.1} ms, first event {:.1} ms",
                        figures["init_ms"].as_f64().unwrap_or(f64::NAN),
                        figures["first_event_ms"].as_f64().unwrap_or(f64::NAN)
                    ),
                    format!("{size} (targets: <= 50 ms, <= 8 MB)"),
                    Figure::None,
                );
            }
            report.figure("lambdas", Value::Object(lambdas));
        }
        _ => report.add("Lambda binaries", "not measured", "scripts/bench-lambdas.sh", Figure::None),
    }
    match read_json("target/bench-frontend.json") {
        Some(frontend) => {
            report.add(
                "web app download (wasm + JS + CSS, gzip)",
                format!("{:.1} KB", frontend["gzip_total_bytes"].as_f64().unwrap_or(f64::NAN) / 1024.0),
                "target <= 250 KB",
                Figure::None,
            );
            report.add(
                "web app: render 1,000 restored messages",
                format!("{:.1} ms", frontend["render_1000_restored_messages_ms"].as_f64().unwrap_or(f64::NAN)),
                format!(
                    "navigation to interactive {:.1} ms (target render <= 100 ms)",
                    frontend["navigation_to_interactive_ms"].as_f64().unwrap_or(f64::NAN)
                ),
                Figure::Field("frontend", frontend),
            );
        }
        None => report.add("web app", "not measured", "scripts/bench-frontend.sh", Figure::None),
    }
}

/// 10,000 SigV4 signatures of a delta-sized post, one after another.
fn signing_cost() -> Vec<f64> {
    let credentials =
        aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", Some("token".into()), None, "bench");
    let url = "https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod/@connections/L0SM9cOFvHcCIhw%3D";
    let body = br#"{"type":"delta","id":"m1.reply","reply_to":"m1","seq":3,"text":"a few words of a reply"}"#;
    (0..10_000)
        .map(|_| {
            let started = Instant::now();
            let signed = chat_core::management::signed_request(
                &http::Method::POST,
                url,
                body,
                &credentials,
                "eu-west-1",
                std::time::SystemTime::now(),
            );
            std::hint::black_box(signed.expect("signs"));
            ms(started.elapsed())
        })
        .collect()
}

fn read_json(path: &str) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
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
    ping_round_trips(&mut ws, "echo closed").await
}

async fn gateway_ping(stack: &Stack) -> Result<Vec<f64>, Error> {
    let session = stack.session("ping").await?;
    let mut ws = stack.connect(&session.token).await?;
    ping_round_trips(&mut ws.stream, "gateway closed").await
}

/// 2,000 round trips of a ping frame, one after another.
async fn ping_round_trips(
    ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>,
    closed: &'static str,
) -> Result<Vec<f64>, Error> {
    let mut samples = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let started = Instant::now();
        ws.send(Message::Text(r#"{"action":"ping"}"#.into())).await?;
        ws.next().await.ok_or(closed)??;
        samples.push(ms(started.elapsed()));
    }
    Ok(samples)
}
