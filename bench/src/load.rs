//! Many conversations at once: the simultaneous-conversation levels of `bench pipeline`, and
//! `bench load` (LOAD_SESSIONS sessions each sending LOAD_MESSAGES messages, then LOAD_KILLS
//! crash rounds), with what was lost or duplicated, read back from the stored histories.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_stub_model::Pacing;
use chat_testkit::{Error, TimedReply, WsClient};
use chat_wire::ReplyStatus;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::crash::crash_rounds;
use crate::measure::{ms, percentile, round1, round3, stub_first_token_p50, Watch};
use crate::report::{stats, Figure, Report};
use crate::stack::{Settings, Stack};

/// Runs `each` on every conversation at once, a task each, and returns what each returned beside
/// its session token, in the conversations' order.
async fn all_at_once<T, F, Fut>(conversations: Vec<(String, WsClient)>, each: F) -> Result<Vec<(String, T)>, Error>
where
    F: Fn(usize, WsClient) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = conversations
        .into_iter()
        .enumerate()
        .map(|(i, (token, ws))| {
            let run = each(i, ws);
            tokio::spawn(async move { (token, run.await) })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await?);
    }
    Ok(results)
}

/// How long past the stub's own first token the first delta reached the client.
fn overhead(reply: &TimedReply, stub_ttfb: f64) -> Option<f64> {
    Some(ms(reply.first_delta? - reply.sent?) - stub_ttfb)
}

/// `n` conversations ask at the same moment (stub: 50 ms to first token, 50 tokens/s, 100-token
/// replies).
pub async fn concurrency_level(stack: &Stack, n: usize) -> Result<Value, Error> {
    stack.stub.set_pacing(Pacing {
        first_token: Duration::from_millis(50),
        between_tokens: Duration::from_millis(20),
        fixed_tokens: Some(100),
    });
    let stub_ttfb = stub_first_token_p50(&stack.http, &stack.stub, 10).await?;
    let conversations = stack.conversations(n).await?;
    let watch = Watch::start(stack.processes());
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let started = Instant::now();
    let replies = all_at_once(conversations, |i, mut ws| {
        let barrier = barrier.clone();
        async move {
            barrier.wait().await;
            let reply = ws.timed_ask(&format!("c{n}-{i}"), "hello", Duration::from_secs(120)).await;
            ws.close().await;
            reply
        }
    })
    .await?;
    let wall = started.elapsed().as_secs_f64();
    let processes = watch.stop();
    let overhead: Vec<f64> = replies.iter().filter_map(|(_, r)| overhead(r, stub_ttfb)).collect();
    let completed = replies.iter().filter(|(_, r)| r.status == Some(ReplyStatus::Done)).count();
    let duplicated_frames = replies.iter().filter(|(_, r)| r.dones > 1).count();
    let duplicated_stored = stored_duplicates(stack, replies.iter().map(|(t, _)| t.clone()).collect(), 2).await;
    Ok(json!({
        "conversations": n,
        "stub_first_token_ms": round3(stub_ttfb),
        "first_token_overhead_ms": stats(&overhead),
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

/// Questions acknowledged by the client's run but missing from the stored history.
async fn lost_in_history(stack: &Stack, tokens: &[String], messages: usize) -> usize {
    let mut lost = 0;
    for token in tokens {
        match stack.history(token).await {
            Ok(session) => lost += (2 * messages).saturating_sub(session.messages.len()),
            Err(_) => lost += 2 * messages,
        }
    }
    lost
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `bench load`.
pub async fn run() -> Result<(), Error> {
    let sessions = env_or("LOAD_SESSIONS", 1000);
    let messages = env_or("LOAD_MESSAGES", 5);
    let kills = env_or("LOAD_KILLS", 100);
    let pacing = Pacing {
        first_token: Duration::from_millis(50),
        between_tokens: Duration::from_millis(20),
        fixed_tokens: None,
    };
    // README's defaults: only the per-address session limit is lifted (every session comes from
    // this one address).
    let stack = Stack::start_with(Settings::RunCommandDefaults, pacing.clone(), &[]).await?;
    let stub_ttfb = stub_first_token_p50(&stack.http, &stack.stub, 20).await?;
    println!("load: {sessions} sessions x {messages} messages (stub: 50 ms to first token, 50 tokens/s), then {kills} worker kills");
    let conversations = stack.conversations(sessions).await?;
    let watch = Watch::start(stack.processes());
    let started = Instant::now();
    let results = all_at_once(conversations, |s, mut ws| async move {
        let mut replies = Vec::with_capacity(messages);
        for m in 0..messages {
            let question = format!("session {s} message {m}: hello there");
            let reply = ws.timed_ask(&format!("s{s}m{m}"), &question, Duration::from_secs(120)).await;
            let whole = reply.text == format!("You said: {question}");
            replies.push((reply, whole));
        }
        ws.close().await;
        replies
    })
    .await?;
    let wall = started.elapsed().as_secs_f64();
    let processes = watch.stop();
    let sent = sessions * messages;
    let replies = || results.iter().flat_map(|(_, r)| r);
    let completed = replies().filter(|(r, whole)| r.status == Some(ReplyStatus::Done) && *whole).count();
    let overhead: Vec<f64> = replies().filter_map(|(r, _)| overhead(r, stub_ttfb)).collect();
    let tokens: Vec<String> = results.iter().map(|(t, _)| t.clone()).collect();
    let duplicated =
        replies().filter(|(r, _)| r.dones > 1).count() + stored_duplicates(&stack, tokens.clone(), 2 * messages).await;
    let lost = sent - completed + lost_in_history(&stack, &tokens, messages).await;

    let mut report = Report::new("Load (this machine, one run)");
    report.figure("sessions", json!(sessions));
    report.figure("messages_per_session", json!(messages));
    report.add("messages sent", sent.to_string(), "", Figure::Field("sent", json!(sent)));
    report.add(
        "replies completed (whole text, status done)",
        completed.to_string(),
        format!("{:.1} replies/s over {wall:.1} s", completed as f64 / wall),
        Figure::Field("completed", json!(completed)),
    );
    report.add("lost (no reply, or not in history)", lost.to_string(), "target 0", Figure::Field("lost", json!(lost)));
    report.add("duplicated", duplicated.to_string(), "target 0", Figure::Field("duplicated", json!(duplicated)));
    report.add(
        "first-token overhead",
        format!("p50 {:.1} / p99 {:.1} ms", percentile(&overhead, 50.0), percentile(&overhead, 99.0)),
        format!("stub's own first token {stub_ttfb:.1} ms subtracted; target p99 <= 50 ms"),
        Figure::Field("first_token_overhead_ms", stats(&overhead)),
    );
    report.figure("stub_first_token_ms", json!(round3(stub_ttfb)));
    report.figure("wall_s", json!(round3(wall)));
    report.processes(&processes);
    report.figure("processes", json!(processes));
    drop(stack);

    let crash = crash_rounds(kills).await?;
    report.add(
        format!("worker SIGKILLed mid-reply, {kills} rounds"),
        format!("{} answered once", crash.answered_once),
        format!(
            "{} lost, {} duplicated, {} taken over by a restarted worker",
            crash.lost, crash.duplicated, crash.taken_over
        ),
        Figure::Field(
            "crash",
            json!({"rounds": kills, "answered_once": crash.answered_once, "lost": crash.lost, "duplicated": crash.duplicated, "taken_over": crash.taken_over}),
        ),
    );
    report.finish("target/bench/load.json")
}
