//! Worker processes killed mid-reply: `local` runs no worker of its own, a `local worker` process
//! answers, and is SIGKILLed after its second delta each round while a new one takes over.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chat_stub_model::Pacing;
use chat_testkit::reply::{Read, Reading};
use chat_testkit::Error;
use chat_wire::{ReplyStatus, ServerFrame};

use crate::stack::Stack;

pub struct CrashFigures {
    pub answered_once: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub taken_over: usize,
}

/// Kills a `local worker` process mid-reply `rounds` times; a new one takes each reply over.
pub async fn crash_rounds(rounds: usize) -> Result<CrashFigures, Error> {
    let pacing = Pacing { first_token: Duration::ZERO, between_tokens: Duration::from_millis(15), fixed_tokens: None };
    let stack = Stack::start(pacing, &[("LOCAL_WORKER", "false"), ("WORKER_CLAIM_IDLE_MS", "600")]).await?;
    let worker_env = [("WORKER_CLAIM_IDLE_MS", "600"), ("WORKER_BLOCK_MS", "200")];
    let session = stack.session("crash").await?;
    let mut ws = stack.connect(&session.token).await?;
    let mut worker = stack.spawn_worker(&worker_env, "crash-0")?;
    let (mut answered_once, mut taken_over) = (0, 0);
    for round in 0..rounds {
        let question = format!("round {round}: a question long enough to be killed in the middle of its reply");
        ws.try_send_message(&format!("k{round}"), &question).await?;
        let mut reading = Reading::default();
        let (mut done, mut killed) = (false, false);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while let Some(frame) = ws.frame_before(deadline).await {
            match reading.take(frame, Instant::now()) {
                Read::Delta if reading.deltas.len() == 2 && !killed => {
                    worker.start_kill()?;
                    worker.wait().await?;
                    worker = stack.spawn_worker(&worker_env, &format!("crash-{}", round + 1))?;
                    killed = true;
                }
                Read::End(ServerFrame::Done { .. }) => {
                    done = true;
                    break;
                }
                _ => {}
            }
        }
        taken_over += reading.snapshots.len();
        if done && reading.text.text() == format!("You said: {question}") {
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
