//! `bench lambda` (`scripts/bench-lambda.sh`): what a Lambda invocation's linger
//! (`WORKER_LINGER_MS`) buys and costs under steady traffic. 1, 8 and 50 people each ask one
//! question after another (a 3 s reply, then a pause) against the worker's real binary on the
//! emulated Lambda (60 s timeout, 256 MB), for each linger, on a quiet machine and with both
//! cores kept busy by two spinning processes; each row gives the invocations per 100 questions,
//! the first-token overhead (every reply's first delta, past the stub's own first token) and the
//! GB-seconds billed (invocations plus inits) per 100 questions, beside the linger-0 reference
//! (an invocation that ends the moment the stream is empty, as before the linger).
//! Writes `target/bench/lambda.json`.

use std::path::Path;
use std::time::{Duration, Instant};

use chat_stub_model::Pacing;
use chat_testkit::{Error, LambdaStack};
use chat_wire::ReplyStatus;
use serde_json::{json, Value};

use crate::measure::{ms, percentile, round1, round3};
use crate::report::{stats, Figure, Report};

/// The function's timeout and memory in this bench (the template's memory; a shorter timeout
/// than its 900 s, so that hand-overs between invocations happen within a run).
const TIMEOUT: Duration = Duration::from_secs(60);
const MEMORY_MB: u32 = 256;
/// The stub's time to first token, subtracted from what a person waits.
const FIRST_TOKEN: Duration = Duration::from_millis(50);

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name).unwrap_or_else(|_| default.into()).split(',').filter_map(|v| v.trim().parse().ok()).collect()
}

/// `bench lambda`.
pub async fn run() -> Result<(), Error> {
    let seconds: u64 = setting("BENCH_LAMBDA_SECONDS", 45);
    let pause_ms: u64 = setting("BENCH_LAMBDA_PAUSE_MS", 1000);
    let lingers = list("BENCH_LAMBDA_LINGERS_MS", "0,1000,2000,5000");
    let crowds = list("BENCH_LAMBDA_PEOPLE", "1,8,50");
    let worker = chat_testkit::lambda_stack::worker_binary(Path::new(env!("CARGO_MANIFEST_DIR")), "fast");
    let mut report = Report::new(&format!(
        "Worker invocations under steady traffic: {seconds} s, each person asks again {pause_ms} ms after a 3 s reply \
         (timeout {} s, {MEMORY_MB} MB)",
        TIMEOUT.as_secs()
    ));
    report.figure(
        "settings",
        json!({"seconds": seconds, "pause_ms": pause_ms, "timeout_s": TIMEOUT.as_secs(), "memory_mb": MEMORY_MB}),
    );
    for busy in [false, true] {
        let burners = if busy { Burners::start(2)? } else { Burners::none() };
        for &people in &crowds {
            let mut reference: Option<Value> = None;
            for &linger in &lingers {
                let figures = steady_traffic(&worker, people as usize, linger, seconds, pause_ms).await;
                let machine = if busy { "busy" } else { "quiet" };
                eprintln!("bench lambda: {machine}, {people} people, linger {linger} ms: {figures}");
                let beside = reference.as_ref().map_or_else(String::new, |r| {
                    format!(
                        " (linger 0: {:.1} inv, {:.2} GB-s, p50 {:.0} ms)",
                        r["invocations_per_100"].as_f64().unwrap_or(f64::NAN),
                        r["gb_seconds_per_100"].as_f64().unwrap_or(f64::NAN),
                        r["first_token_overhead_ms"]["p50"].as_f64().unwrap_or(f64::NAN),
                    )
                });
                report.add(
                    format!("{machine}, {people} people, WORKER_LINGER_MS={linger}"),
                    format!(
                        "{:.1} invocations, {:.2} GB-s per 100 questions",
                        figures["invocations_per_100"].as_f64().unwrap_or(f64::NAN),
                        figures["gb_seconds_per_100"].as_f64().unwrap_or(f64::NAN)
                    ),
                    format!(
                        "first token +p50 {:.0} / p99 {:.0} / max {:.0} ms; {} questions, {} timed out{beside}",
                        figures["first_token_overhead_ms"]["p50"].as_f64().unwrap_or(f64::NAN),
                        figures["first_token_overhead_ms"]["p99"].as_f64().unwrap_or(f64::NAN),
                        figures["first_token_overhead_ms"]["max"].as_f64().unwrap_or(f64::NAN),
                        figures["questions"],
                        figures["timed_out"],
                    ),
                    Figure::Entry(
                        "runs",
                        json!({"machine": machine, "people": people, "linger_ms": linger, "figures": figures}),
                    ),
                );
                if linger == 0 {
                    reference = Some(figures);
                }
            }
        }
        drop(burners);
    }
    report.finish("target/bench/lambda.json")
}

/// `people` ask one question after another for `seconds` against a fresh stack whose worker
/// lingers `linger_ms`; then every invocation is let end, and what it cost is read.
async fn steady_traffic(worker: &Path, people: usize, linger_ms: u64, seconds: u64, pause_ms: u64) -> Value {
    let pacing =
        Pacing { first_token: FIRST_TOKEN, between_tokens: Duration::from_millis(100), fixed_tokens: Some(30) };
    let linger = linger_ms.to_string();
    let vars = [("WORKER_LINGER_MS", linger.as_str()), ("MAX_REPLY_SECONDS", "10"), ("RUST_LOG", "warn")];
    let stack = LambdaStack::start(worker.to_path_buf(), pacing, &vars, TIMEOUT, 10).await;
    let started = Instant::now();
    let traffic = Duration::from_secs(seconds);
    let crowd = (0..people).map(|person| {
        let stack = &stack;
        async move {
            let (_, mut ws) = stack.person(&format!("P{person}")).await;
            // People arrive over the first second, not all at one instant.
            tokio::time::sleep(Duration::from_millis((1000 * person / people.max(1)) as u64)).await;
            let mut replies = Vec::new();
            let mut asked = 0;
            while started.elapsed() < traffic {
                let reply = ws.timed_ask(&format!("q{asked}"), "a question", Duration::from_secs(60)).await;
                replies.push(reply);
                asked += 1;
                tokio::time::sleep(Duration::from_millis(pause_ms)).await;
            }
            replies
        }
    });
    let replies: Vec<_> = futures_util::future::join_all(crowd).await.into_iter().flatten().collect();
    let settled = stack.settle(TIMEOUT + Duration::from_millis(linger_ms)).await;
    let counts = stack.lambda.counts();
    let questions = replies.len();
    let answered = replies.iter().filter(|r| r.status == Some(ReplyStatus::Done)).count();
    let overhead: Vec<f64> =
        replies.iter().filter_map(|r| Some(ms(r.first_delta? - r.sent?) - ms(FIRST_TOKEN))).collect();
    let per_100 = |x: f64| round3(100.0 * x / questions.max(1) as f64);
    let mut overhead_stats = stats(&overhead);
    overhead_stats["max"] = json!(round1(percentile(&overhead, 100.0)));
    json!({
        "questions": questions,
        "answered": answered,
        "settled": settled,
        "invocations": counts.invoked,
        "environments": counts.environments,
        "timed_out": counts.timed_out,
        "invocations_per_100": per_100(counts.invoked as f64),
        "invocation_seconds": round3(counts.invocation_time.as_secs_f64()),
        "init_seconds": round3(counts.init_time.as_secs_f64()),
        "gb_seconds_per_100": per_100(counts.gb_seconds(MEMORY_MB)),
        "first_token_overhead_ms": overhead_stats,
    })
}

/// Processes that keep cores busy (a machine doing something else), stopped when dropped.
struct Burners(Vec<std::process::Child>);

impl Burners {
    fn start(n: usize) -> Result<Burners, Error> {
        let mut children = Vec::new();
        for _ in 0..n {
            children.push(std::process::Command::new("sh").args(["-c", "while :; do :; done"]).spawn()?);
        }
        Ok(Burners(children))
    }

    fn none() -> Burners {
        Burners(Vec::new())
    }
}

impl Drop for Burners {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
