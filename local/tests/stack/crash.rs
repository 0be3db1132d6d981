//! A worker process killed mid-reply (SIGKILL, no clean-up) loses nothing: another worker process
//! takes its entry over, clients drop the dead worker's text, and every question ends with exactly
//! one stored reply. A worker paused past its claim (SIGSTOP) and woken after the takeover
//! (SIGCONT) is a zombie: nothing it writes after that reaches a client or the history.
//!
//! Each attempt at a reply gets its own text from the model, so a restart is told from a
//! continuation: the client must end with the second attempt's text alone.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use chat_local::Options;
use chat_stub_model::{Pacing, Scripted};
use chat_testkit::{on_each_store, StoreKind, TestApp, WsClient};
use chat_wire::{ReplyStatus, ReplyText, ServerFrame, Source};
use tokio::process::Child;

// A live worker renews its claim every third of this: only a stall of two thirds of it could lose
// a claim, which a busy machine's scheduling does not come near.
const CLAIM_IDLE_MS: &str = "1000";

/// `local worker`: a worker in its own process, as on a second machine.
fn spawn_worker(app: &TestApp, name: &str) -> Child {
    app.spawn_worker(Path::new(env!("CARGO_BIN_EXE_local")), CLAIM_IDLE_MS, name)
}

/// Sends `signal` (`STOP`, `CONT`) to a worker process.
async fn signal(worker: &Child, signal: &str) {
    let pid = worker.id().expect("the worker runs").to_string();
    let sent = tokio::process::Command::new("kill").args([&format!("-{signal}"), &pid]).status().await.unwrap();
    assert!(sent.success(), "kill -{signal} {pid}");
}

/// What the model writes at attempt `attempt` of round `round`, `words` long (15 ms a word),
/// different from the first word on.
fn attempt_text(round: usize, attempt: &str, words: usize) -> String {
    let words: Vec<String> = (0..words).map(|i| format!("r{round}{attempt}{i}")).collect();
    format!("{attempt} attempt: {}", words.join(" "))
}

/// Whether the process `pid` is stopped (SIGSTOP), as /proc shows its state.
fn stopped(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // "pid (name) S ...": the state follows the name's closing parenthesis.
    stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('T'))
}

/// Reads a reply's first two deltas (the worker is mid-reply).
async fn two_deltas(ws: &mut WsClient, round: usize) -> ReplyText {
    let mut text = ReplyText::default();
    for _ in 0..2 {
        match ws.next_frame().await {
            ServerFrame::Delta { seq, text: piece, .. } => text.delta(seq, &piece),
            other => panic!("round {round}: expected a delta, got {other:?}"),
        }
    }
    text
}

/// Reads the rest of a reply, waking `paused` (SIGCONT) as soon as the restart snapshot shows the
/// takeover happened. Answers the text and the number of snapshots.
async fn rest_of_reply(
    ws: &mut WsClient,
    mut text: ReplyText,
    paused: Option<&Child>,
    round: usize,
) -> (String, usize) {
    let mut snapshots = 0;
    loop {
        match ws.next_frame().await {
            ServerFrame::Delta { seq, text: piece, .. } => text.delta(seq, &piece),
            ServerFrame::Snapshot { next_seq, text: shown, status, .. } => {
                assert_eq!(status, ReplyStatus::Streaming, "round {round}");
                text.snapshot(next_seq, &shown);
                snapshots += 1;
                if let Some(zombie) = paused.filter(|_| snapshots == 1) {
                    signal(zombie, "CONT").await;
                }
            }
            ServerFrame::Done { status, next_seq, .. } => {
                assert_eq!(status, ReplyStatus::Done, "round {round}");
                assert!(!text.has_gap(), "round {round}: a delta never arrived");
                assert_eq!(text.next_seq(), next_seq, "round {round}");
                return (text.text().to_string(), snapshots);
            }
            other => panic!("round {round}: unexpected {other:?}"),
        }
    }
}

async fn workers_killed_or_paused_mid_reply_lose_and_duplicate_nothing(kind: StoreKind) {
    let pacing = Pacing { between_tokens: Duration::from_millis(15), ..Default::default() };
    let app = TestApp::builder()
        .vars(&[("WORKER_CLAIM_IDLE_MS", CLAIM_IDLE_MS), ("MESSAGES_PER_SESSION_PER_WINDOW", "0")])
        .options(Options { in_process_worker: false, ..Default::default() })
        .pacing(pacing)
        .on(kind)
        .spawn()
        .await;
    let (session, mut ws) = app.signed_in("Ada").await;
    let mut worker = spawn_worker(&app, "worker-0");
    // Rounds 0-19 kill the worker; rounds 20-24 pause it past its claim and wake it afterwards.
    let (killed, paused) = (20, 5);
    let rounds = killed + paused;
    let mut answers = Vec::new();
    for round in 0..rounds {
        // The first attempt runs for three seconds: it is cut (killed or paused) long before its
        // end, however slow this machine is.
        let (first, second) = (attempt_text(round, "first", 200), attempt_text(round, "second", 40));
        app.stub.push([Scripted::Reply(first.clone()), Scripted::Reply(second.clone())]);
        let id = format!("q{round}");
        ws.ask(&id, &format!("round {round}")).await;
        let shown = two_deltas(&mut ws, round).await;
        assert!(first.starts_with(shown.text()), "round {round}: the first attempt is on screen");
        let next = format!("worker-{}", round + 1);
        let zombie = if round < killed {
            worker.start_kill().unwrap();
            worker.wait().await.unwrap();
            worker = spawn_worker(&app, &next);
            None
        } else {
            signal(&worker, "STOP").await;
            Some(std::mem::replace(&mut worker, spawn_worker(&app, &next)))
        };
        let (text, snapshots) = rest_of_reply(&mut ws, shown, zombie.as_ref(), round).await;
        assert_eq!(text, second, "round {round}: the client shows the second attempt alone");
        assert_eq!(snapshots, 1, "round {round}: one restart snapshot voids the first attempt's text");
        assert_eq!(app.stub.requests().len(), 2 * (round + 1), "round {round}: exactly two model requests");
        if let Some(mut zombie) = zombie {
            // The woken worker runs again, with its model stream in its socket to use: give it
            // time to try.
            let pid = zombie.id().expect("the zombie runs");
            assert!(!stopped(pid), "round {round}: the zombie was woken");
            tokio::time::sleep(Duration::from_millis(800)).await;
            ws.send_text(r#"{"action":"ping"}"#).await;
            assert_eq!(ws.next_frame().await, ServerFrame::Pong, "round {round}: the zombie sent nothing more");
            let stored = app.session(&session.token).await.messages.pop().unwrap();
            assert_eq!((stored.msg.as_str(), stored.status), (second.as_str(), ReplyStatus::Done), "round {round}");
            zombie.start_kill().unwrap();
            zombie.wait().await.unwrap();
        }
        answers.push(second);
    }
    let history = app.session(&session.token).await;
    assert_eq!(history.messages.len(), 2 * rounds, "every question and one reply each");
    let ids: HashSet<_> = history.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), history.messages.len(), "no duplicated message");
    for (round, pair) in history.messages.chunks(2).enumerate() {
        assert_eq!((pair[0].source, pair[0].id.clone()), (Source::User, format!("q{round}")));
        assert_eq!((pair[1].source, pair[1].status), (Source::Assistant, ReplyStatus::Done));
        assert_eq!(pair[1].msg, answers[round], "round {round}: the second attempt is stored");
    }
    assert_eq!(app.stub.requests().len(), 2 * rounds);
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

on_each_store!(workers_killed_or_paused_mid_reply_lose_and_duplicate_nothing);
