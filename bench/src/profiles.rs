//! `bench profiles` (`scripts/bench-profiles.sh`): what the local runner's build profile costs a
//! person: the first-token overhead of `local` built with the `local` profile (what
//! `scripts/run.sh` builds: no LTO, parallel codegen) beside the same built with `fast` (thin LTO,
//! opt-level 3: what it built before), for a model that answers at once and one that takes
//! 50 ms, in rounds that alternate the two so the machine's drift falls on both.
//! Writes `target/bench/profiles.json`.

use std::time::Duration;

use chat_stub_model::Pacing;
use chat_testkit::Error;
use serde_json::json;

use crate::measure::ms;
use crate::report::{p50_p99, stats, Figure, Report};
use crate::stack::{local_binary_of, Settings, Stack};

const PROFILES: [&str; 2] = ["fast", "local"];
const ROUNDS: usize = 3;
const SAMPLES: usize = 50;

/// `bench profiles`.
pub async fn run() -> Result<(), Error> {
    let mut report = Report::new("First-token overhead by the build profile of `local` (alternating rounds)");
    let mut samples: Vec<[Vec<f64>; 2]> = PROFILES.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    for _ in 0..ROUNDS {
        for (p, profile) in PROFILES.iter().enumerate() {
            let stack =
                Stack::start_binary(&local_binary_of(profile), Settings::Lifted, Pacing::default(), &[]).await?;
            let session = stack.session("profiles").await?;
            let mut ws = stack.connect(&session.token).await?;
            for (m, first_token) in [0u64, 50].into_iter().enumerate() {
                stack.stub.set_pacing(Pacing {
                    first_token: Duration::from_millis(first_token),
                    between_tokens: Duration::from_millis(20),
                    fixed_tokens: Some(5),
                });
                for i in 0..SAMPLES {
                    let reply = ws
                        .timed_ask(&format!("p{m}-{i}-{}", samples[p][m].len()), "hello", Duration::from_secs(10))
                        .await;
                    let first = ms(reply.first_delta.ok_or("no delta")? - reply.sent.ok_or("not sent")?);
                    samples[p][m].push(first - first_token as f64);
                }
            }
            stack.shutdown().await;
        }
    }
    for (m, model) in ["instant model", "model 50 ms to first token"].into_iter().enumerate() {
        for (p, profile) in PROFILES.iter().enumerate() {
            let reference = if p == 0 {
                "reference (before)".to_string()
            } else {
                format!("beside fast: {}", p50_p99(&samples[0][m]))
            };
            report.add(
                format!("first-token overhead, {model}, profile {profile}"),
                p50_p99(&samples[p][m]),
                reference,
                Figure::Entry("overheads", json!({"profile": profile, "model": model, "ms": stats(&samples[p][m])})),
            );
        }
    }
    report.finish("target/bench/profiles.json")
}
