//! `bench stream` (`scripts/bench-stream.sh`): where the request stream saturates. One stream key
//! lives on one shard of a cluster, so every question of every session passes through one primary:
//! XADD (the message function's `enqueue`), XREADGROUP and XACK (the worker's `read_new` and
//! `ack`), each through the product's own store. Measured on one shard of a real Redis Cluster and
//! on a standalone redis-server side by side, against the 1,000 questions/s the product is sized
//! for. Writes `target/bench/stream.json`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_core::{ReplyRequest, Store};
use chat_testkit::{Error, StoreKind, TempDir, TestRedis, Vars};
use chat_wire::{ConversationId, MessageId, Token};
use serde_json::json;

use crate::measure::Watch;
use crate::report::{Figure, Report};

/// The load the product is sized for: 1,000 questions per second (and the sharding threshold:
/// build it if the ceiling is within 10x of that).
const TARGET_PER_S: f64 = 1_000.0;

/// The product's default request stream.
const STREAM: &str = "chat:requests";

/// `bench stream`.
pub async fn run() -> Result<(), Error> {
    let messages: usize = std::env::var("BENCH_STREAM_MESSAGES").ok().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let mut report = Report::new("the request stream: XADD + XREADGROUP + XACK through one key");
    for kind in [StoreKind::Cluster, StoreKind::Standalone] {
        let dir = TempDir::new("chat-bench-stream");
        let redis = TestRedis::start(kind, dir.path()).await;
        // The one redis-server that holds the stream: is it the limit, or this machine's cores?
        let primary = match &redis {
            TestRedis::Standalone(server) => server.pid(),
            TestRedis::Cluster(cluster) => cluster.pid(cluster.primary_of(STREAM).await?),
        };
        let watch =
            Watch::start(vec![("redis-server", primary.ok_or("redis-server runs")?), ("bench", std::process::id())]);
        let rate = saturate(&redis.url(), messages).await?;
        let processes = watch.stop();
        let cpu = |i: usize| processes[i]["cpu_percent_of_one_core"].as_f64().unwrap_or(f64::NAN);
        report.add(
            format!("{kind:?}: {messages} questions, 64 producers, 8 consumers"),
            format!("{rate:.0} questions/s"),
            format!(
                "{:.1}x the {TARGET_PER_S:.0}/s target; the stream's redis-server {:.0}% of a core, this client {:.0}%",
                rate / TARGET_PER_S,
                cpu(0),
                cpu(1)
            ),
            Figure::Entry(
                "stores",
                json!({"store": format!("{kind:?}"), "messages": messages, "per_s": rate, "processes": processes}),
            ),
        );
    }
    report.finish("target/bench/stream.json")
}

/// Questions per second through the stream at `redis_url`: 64 tasks enqueue, 8 consumers read in
/// batches of 100 and acknowledge each entry, as workers do.
async fn saturate(redis_url: &str, messages: usize) -> Result<f64, Error> {
    let config = Vars::default().set("REDIS_URL", redis_url).config()?;
    let store = Store::connect(&config)?;
    store.ensure_group().await?;
    let token = Token::parse(&"s".repeat(Token::LEN))?;
    let produced = Arc::new(AtomicUsize::new(0));
    let consumed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (store, produced, token) = (store.clone(), produced.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            while produced.fetch_add(1, Ordering::Relaxed) < messages {
                let request = ReplyRequest {
                    token: token.clone(),
                    conversation: ConversationId::main(),
                    message_id: MessageId::parse("m1").expect("an id"),
                    endpoint: "http://127.0.0.1:1/".into(),
                };
                store.enqueue(&request).await?;
            }
            Ok::<(), chat_core::StoreError>(())
        }));
    }
    for consumer in 0..8 {
        let reader = Store::connect_for_blocking_reads(&config, Duration::from_millis(100))?;
        let consumed = consumed.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("bench-{consumer}");
            while consumed.load(Ordering::Relaxed) < messages {
                for entry in reader.read_new(&name, 100, Some(Duration::from_millis(100))).await? {
                    reader.ack(&entry.entry_id).await?;
                    consumed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(messages as f64 / started.elapsed().as_secs_f64())
}
