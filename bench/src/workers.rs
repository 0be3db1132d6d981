//! `bench workers`: what a worker's number of slots (`WORKER_CONCURRENCY`) costs the first token
//! when more conversations than slots ask at once: the same 200 simultaneous conversations (stub:
//! 50 ms to first token, 50 tokens/s, 100-token replies) against one worker process with 64,
//! 256 and 1,024 slots, side by side. Writes `target/bench/workers.json`.

use serde_json::json;

use chat_stub_model::Pacing;
use chat_testkit::Error;

use crate::load::concurrency_level;
use crate::report::{Figure, Report};
use crate::stack::Stack;

/// `bench workers`.
pub async fn run() -> Result<(), Error> {
    let conversations = std::env::var("BENCH_WORKER_CONVERSATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(200);
    let mut report = Report::new(&format!("{conversations} simultaneous conversations, by worker slots"));
    for slots in ["64", "256", "1024"] {
        let stack = Stack::start(Pacing::default(), &[("WORKER_CONCURRENCY", slots)]).await?;
        let level = concurrency_level(&stack, conversations).await?;
        stack.shutdown().await;
        let overhead = &level["first_token_overhead_ms"];
        report.add(
            format!("WORKER_CONCURRENCY={slots}"),
            format!(
                "first-token overhead p50 {:.1} / p99 {:.1} ms",
                overhead["p50"].as_f64().unwrap_or(f64::NAN),
                overhead["p99"].as_f64().unwrap_or(f64::NAN)
            ),
            format!("{} lost, {} duplicated, {} replies/s", level["lost"], level["duplicated"], level["replies_per_s"]),
            Figure::Entry("levels", json!({"worker_concurrency": slots, "level": level})),
        );
    }
    report.finish("target/bench/workers.json")
}
