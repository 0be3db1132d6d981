//! A worker process killed mid-reply (SIGKILL, no clean-up) loses nothing: another worker process
//! takes its entry over, clients drop the dead worker's text, and every question ends with exactly
//! one stored reply.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use chat_local::Options;
use chat_stub_model::Pacing;
use chat_testkit::{on_each_store, spawn_app_on_with, StoreKind, TestApp};
use chat_wire::{ReplyStatus, ReplyText, ServerFrame, Source};
use tokio::process::Child;

const CLAIM_IDLE_MS: &str = "600";

/// `local worker`: a worker in its own process, as on a second machine.
fn spawn_worker(app: &TestApp, name: &str) -> Child {
    app.spawn_worker(Path::new(env!("CARGO_BIN_EXE_local")), CLAIM_IDLE_MS, name)
}

async fn a_worker_killed_mid_reply_twenty_times_loses_and_duplicates_nothing(kind: StoreKind) {
    let pacing = Pacing { between_tokens: Duration::from_millis(15), ..Default::default() };
    let app = spawn_app_on_with(
        kind,
        &[("WORKER_CLAIM_IDLE_MS", CLAIM_IDLE_MS)],
        Options { in_process_worker: false, ..Default::default() },
        pacing,
    )
    .await;
    let session = app.create_session("Ada").await;
    let mut ws = app.connect(&session.token).await;
    let mut worker = spawn_worker(&app, "worker-0");
    let rounds = 20;
    let mut restarts_seen = 0;
    for round in 0..rounds {
        let id = format!("q{round}");
        let question = format!("round {round} of the crash test with enough words to stream for a while");
        ws.ask(&id, &question).await;
        // Mid-reply: some deltas are on screen.
        let mut text = ReplyText::default();
        for _ in 0..2 {
            match ws.next_frame().await {
                ServerFrame::Delta { seq, text: piece, .. } => text.delta(seq, &piece),
                other => panic!("round {round}: expected a delta, got {other:?}"),
            }
        }
        worker.start_kill().unwrap();
        worker.wait().await.unwrap();
        worker = spawn_worker(&app, &format!("worker-{}", round + 1));

        let reply = ws.read_reply_from(text).await;
        assert!(
            matches!(reply.end, ServerFrame::Done { status: ReplyStatus::Done, .. }),
            "round {round}: {:?}",
            reply.end
        );
        assert_eq!(reply.text, format!("You said: {question}"), "round {round}: the client shows the whole reply once");
        restarts_seen += reply.snapshots.len();
    }
    let history = app.session(&session.token).await;
    assert_eq!(history.messages.len(), 2 * rounds, "every question and one reply each");
    let ids: HashSet<_> = history.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), history.messages.len(), "no duplicated message");
    for (round, pair) in history.messages.chunks(2).enumerate() {
        assert_eq!((pair[0].source, pair[0].id.clone()), (Source::User, format!("q{round}")));
        assert_eq!((pair[1].source, pair[1].status), (Source::Assistant, ReplyStatus::Done));
        assert_eq!(pair[1].msg, format!("You said: {}", pair[0].msg));
    }
    assert!(restarts_seen >= rounds, "each taken-over reply told the client to start again ({restarts_seen})");
    // `done` goes out just before the entry's XACK.
    let mut redis = app.redis().await;
    let mut pending = usize::MAX;
    for _ in 0..100 {
        let reply: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
            .arg(&app.config.request_stream)
            .arg(&app.config.worker_group)
            .query_async(&mut redis)
            .await
            .unwrap();
        pending = reply.count();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pending, 0, "every entry acknowledged");
}

on_each_store!(a_worker_killed_mid_reply_twenty_times_loses_and_duplicates_nothing);
