//! What docs/architecture.md and PROTOCOL.md promise about replies in flight and sessions over time, each told
//! as a story: a live worker's long reply is never taken over, Redis lost in the middle of a reply
//! loses nothing, a resend or a resume mid-reply starts nothing new, a stop after the end changes
//! nothing, and a session lives as long as it is used and then goes all at once.

use std::path::Path;
use std::time::Duration;

use chat_stub_model::{Pacing, Scripted};
use chat_testkit::{TestApp, WsClient};
use chat_wire::{ErrorCode, ReplyStatus, ReplyText, ServerFrame, Source};
use tokio_tungstenite::tungstenite::Error as WsError;

/// A reply read to its `done`, with the snapshots and acks met on the way.
struct Seen {
    text: String,
    snapshots: usize,
    acks: usize,
    status: ReplyStatus,
}

/// Reads frames to the reply's `done`, from `text` on; an `error` frame fails the test.
async fn read_to_done(ws: &mut WsClient, mut text: ReplyText) -> Seen {
    let (mut snapshots, mut acks) = (0, 0);
    loop {
        match ws.next_frame().await {
            ServerFrame::Delta { seq, text: piece, .. } => text.delta(seq, &piece),
            ServerFrame::Snapshot { next_seq, text: shown, .. } => {
                text.snapshot(next_seq, &shown);
                snapshots += 1;
            }
            ServerFrame::Ack { .. } => acks += 1,
            ServerFrame::Done { status, next_seq, .. } => {
                assert!(!text.has_gap(), "a delta never arrived");
                assert_eq!(text.next_seq(), next_seq);
                return Seen { text: text.text().to_string(), snapshots, acks, status };
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads the reply's first delta (the reply is under way) and answers the text so far.
async fn first_delta(ws: &mut WsClient) -> ReplyText {
    let mut text = ReplyText::default();
    match ws.next_frame().await {
        ServerFrame::Delta { seq, text: piece, .. } => text.delta(seq, &piece),
        other => panic!("expected a delta, got {other:?}"),
    }
    text
}

/// Sends a ping and expects the pong as the very next frame: nothing else was on its way.
async fn nothing_more(ws: &mut WsClient) {
    ws.send_text(r#"{"action":"ping"}"#).await;
    assert_eq!(ws.next_frame().await, ServerFrame::Pong, "no frame before the pong");
}

/// The words `tok0 tok1 ...` the stub writes for `Pacing::fixed_tokens`.
fn tokens(n: usize) -> String {
    (0..n).map(|i| format!("tok{i} ")).collect()
}

#[tokio::test]
async fn a_live_worker_writing_a_reply_longer_than_its_claim_and_lock_is_never_taken_over() {
    // A six-second reply against a 2 s claim idle and a 3 s reply lock, while a second worker
    // process with the same settings looks for stale entries to reclaim (every second, half the
    // claim idle). Either may take the question; the other polls. The live worker renews its
    // claim every 0.67 s: only a stall of more than 1.3 s could lose it, which is not this story.
    let pacing = Pacing { between_tokens: Duration::from_millis(100), fixed_tokens: Some(60), ..Default::default() };
    let app = TestApp::builder()
        .vars(&[("WORKER_CLAIM_IDLE_MS", "2000"), ("RECLAIM_INTERVAL_SECONDS", "1"), ("REPLY_LOCK_SECONDS", "3")])
        .pacing(pacing)
        .spawn()
        .await;
    let poller_env = chat_testkit::Vars::stack(&app.redis.url(), &app.stub, "test-key").with(&[
        ("WORKER_CLAIM_IDLE_MS", "2000"),
        ("RECLAIM_INTERVAL_SECONDS", "1"),
        ("REPLY_LOCK_SECONDS", "3"),
        ("WORKER_BLOCK_MS", "200"),
        ("RUST_LOG", "warn"),
    ]);
    let mut poller = chat_testkit::process::spawn_worker(Path::new(env!("CARGO_BIN_EXE_local")), &poller_env, "poller")
        .expect("the local binary runs as a worker");
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "talk for six seconds").await;
    // Past the first lock's three seconds, the session is still busy: its worker renewed the lock.
    let mut text = ReplyText::default();
    let asked_again = tokio::time::Instant::now() + Duration::from_millis(3600);
    while tokio::time::Instant::now() < asked_again {
        match ws.next_frame().await {
            ServerFrame::Delta { seq, text: piece, .. } => text.delta(seq, &piece),
            other => panic!("expected a delta, got {other:?}"),
        }
    }
    ws.send_message("m2", "me too").await;
    loop {
        match ws.next_frame().await {
            ServerFrame::Delta { seq, text: piece, .. } => text.delta(seq, &piece),
            ServerFrame::Error { code, reply_to, .. } => {
                assert_eq!((code, reply_to.as_deref()), (ErrorCode::ReplyInProgress, Some("m2")));
                break;
            }
            other => panic!("expected reply_in_progress, got {other:?}"),
        }
    }
    let seen = read_to_done(&mut ws, text).await;
    assert_eq!(seen.status, ReplyStatus::Done);
    assert_eq!(seen.snapshots, 0, "no restart: nobody took the reply over");
    assert_eq!(seen.text, tokens(60));
    assert_eq!(app.stub.requests().len(), 1, "one model call");
    let stored: Vec<_> = app.session(&session.token).await.messages.into_iter().map(|m| (m.id, m.status)).collect();
    assert_eq!(stored, [("m1".to_string(), ReplyStatus::Done), ("m1.reply".to_string(), ReplyStatus::Done)]);
    nothing_more(&mut ws).await;
    poller.start_kill().unwrap();
    poller.wait().await.unwrap();
}

#[tokio::test]
async fn redis_lost_in_the_middle_of_a_reply_leaves_it_to_a_retry_that_stores_it_once() {
    let pacing = Pacing { between_tokens: Duration::from_millis(50), ..Default::default() };
    let mut app = TestApp::builder().vars(&[("WORKER_CLAIM_IDLE_MS", "600")]).pacing(pacing).spawn().await;
    let first: String = (0..200).map(|i| format!("first{i} ")).collect();
    let second: String = (0..10).map(|i| format!("second{i} ")).collect();
    app.stub.push([Scripted::Reply(first.clone()), Scripted::Reply(second.clone())]);
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "a long answer, please").await;
    let text = first_delta(&mut ws).await;
    // The question and its request are in the append-only file (the tests' servers write it
    // before they answer).
    app.redis.server().stop().await; // SIGKILL, mid-reply (ten seconds of text)
    let refused = tokio_tungstenite::connect_async(format!("{}?token={}", app.ws_url, session.token)).await;
    match refused {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 503),
        Err(other) => panic!("expected a 503 handshake, got {other}"),
        Ok(_) => panic!("a handshake succeeded without Redis"),
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.redis.server().restart().await.unwrap();

    let seen = read_to_done(&mut ws, text).await;
    assert_eq!(seen.status, ReplyStatus::Done);
    assert_eq!(seen.text, second, "the client ends with the retry's text alone");
    assert_eq!(seen.snapshots, 1, "one restart snapshot voided what the first attempt showed");
    let history = app.session(&session.token).await;
    let kept: Vec<_> = history.messages.iter().map(|m| (m.id.as_str(), m.source, m.status)).collect();
    assert_eq!(kept, [("m1", Source::User, ReplyStatus::Done), ("m1.reply", Source::Assistant, ReplyStatus::Done)]);
    assert_eq!(history.messages[1].msg, second, "one stored reply: the retry's");
    assert_eq!(app.stub.requests().len(), 2, "the first attempt and its retry");
    nothing_more(&mut ws).await;
}

#[tokio::test]
async fn a_question_resent_while_its_reply_streams_is_only_acknowledged() {
    // Three seconds of reply: the resend's ack comes long before its end.
    let pacing = Pacing { between_tokens: Duration::from_millis(100), fixed_tokens: Some(30), ..Default::default() };
    let app = TestApp::builder().pacing(pacing).spawn().await;
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "hello").await;
    let text = first_delta(&mut ws).await;
    // As the web app resends after a dropped connection.
    ws.send_message("m1", "hello").await;
    let seen = read_to_done(&mut ws, text).await;
    assert_eq!(seen.acks, 1, "the resend was acknowledged");
    assert_eq!((seen.status, seen.text.as_str()), (ReplyStatus::Done, tokens(30).as_str()));
    assert_eq!(seen.snapshots, 0);
    nothing_more(&mut ws).await;
    assert_eq!(app.stub.requests().len(), 1, "no second model request");
    assert_eq!(app.session(&session.token).await.messages.len(), 2, "stored once");
}

#[tokio::test]
async fn resume_before_the_first_delta_answers_an_empty_snapshot() {
    let app = TestApp::builder().spawn().await;
    app.stub.push([Scripted::SlowFirstToken(Duration::from_millis(1000))]);
    let (_, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "think first").await;
    ws.send_text(r#"{"action":"resume","reply_to":"m1"}"#).await;
    match ws.next_frame().await {
        ServerFrame::Snapshot { id, reply_to, next_seq, text, status, .. } => {
            assert_eq!((id.as_str(), reply_to.as_str()), ("m1.reply", "m1"));
            assert_eq!((next_seq, text.as_str(), status), (0, "", ReplyStatus::Streaming));
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
    let seen = read_to_done(&mut ws, ReplyText::default()).await;
    assert_eq!((seen.status, seen.text.as_str()), (ReplyStatus::Done, "You said: think first"));
}

#[tokio::test]
async fn stop_on_a_finished_reply_changes_nothing() {
    let app = TestApp::builder().spawn().await;
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "quick one").await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { status: ReplyStatus::Done, .. }));
    let before = app.session(&session.token).await;
    ws.send_text(r#"{"action":"stop","reply_to":"m1"}"#).await;
    nothing_more(&mut ws).await;
    assert_eq!(app.session(&session.token).await.messages, before.messages, "the reply is as it was");
    // Nor does the stop linger for the same question answered again.
    ws.send_text(r#"{"action":"regenerate","reply_to":"m1"}"#).await;
    let reply = ws.read_reply().await;
    assert!(matches!(reply.end, ServerFrame::Done { status: ReplyStatus::Done, .. }), "{:?}", reply.end);
    assert_eq!(reply.text, "You said: quick one");
}

/// Every key this stack's Redis holds but the request stream (the workers' own).
async fn session_keys_left(app: &TestApp) -> Vec<String> {
    let mut redis = app.redis().await;
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut redis).await.unwrap();
    // Not a session's: the request stream, and the models the provider serves (workers list them).
    keys.into_iter()
        .filter(|k| k != &app.config.request_stream && k != chat_core::store::keys::PROVIDER_MODELS)
        .collect()
}

#[tokio::test]
async fn a_session_lives_while_it_is_used_and_then_expires_whole() {
    const TTL: u64 = 4;
    let app = TestApp::builder()
        .vars(
            // Rate windows shorter than the session: their counters are gone before it is.
            &[("SESSION_TTL_SECONDS", "4"), ("RATE_LIMIT_WINDOW_SECONDS", "1")],
        )
        .spawn()
        .await;
    let (session, mut ws) = app.signed_in("Ada").await;
    // Four questions 1.5 s apart: six seconds, past the four-second TTL of the first.
    for i in 0..4 {
        let asked = tokio::time::Instant::now();
        ws.ask(&format!("m{i}"), &format!("question {i}")).await;
        assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { status: ReplyStatus::Done, .. }));
        // Every key of the session, its connection's mapping included, was renewed to the TTL by
        // this question: it expires no sooner than TTL after the question was asked, and the
        // conversations kept alive with it at most a tenth of the TTL later.
        let mut redis = app.redis().await;
        let keys = session_keys_left(&app).await;
        assert!(keys.iter().any(|k| k.starts_with("chat:conn:")), "the connection's mapping: {keys:?}");
        for key in &keys {
            if key.ends_with(":rate")
                || key.ends_with(":reads")
                || key.ends_with(":frames")
                || key.starts_with("chat:ip:")
                || key.ends_with(":extended")
            {
                continue; // rate windows' counters, and the mark of the conversations' extension
            }
            let pttl: i64 = redis::cmd("PTTL").arg(key).query_async(&mut redis).await.unwrap();
            let since_asked = asked.elapsed().as_millis() as i64;
            let full = TTL as i64 * 1000;
            assert!(
                pttl <= full + full / 10 && pttl + since_asked >= full,
                "question {i}: {key} has PTTL {pttl} ms, {since_asked} ms after the question"
            );
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    assert_eq!(app.session(&session.token).await.messages.len(), 8, "alive after six seconds of use");

    // Then nothing for longer than the TTL: everything goes, together.
    tokio::time::sleep(Duration::from_secs(TTL) + Duration::from_millis(500)).await;
    assert_eq!(session_keys_left(&app).await, Vec::<String>::new(), "no key of the session is left");
    assert_eq!(app.history(&session.token).await.0, 400);
    let refused = tokio_tungstenite::connect_async(format!("{}?token={}", app.ws_url, session.token)).await;
    match refused {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 403),
        Err(other) => panic!("expected a 403 handshake, got {other}"),
        Ok(_) => panic!("an expired session's handshake succeeded"),
    }
    // The open connection's frames are told to reconnect (which the handshake then refuses).
    ws.send_message("m4", "still there?").await;
    match ws.next_frame().await {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::Reconnect),
        other => panic!("expected reconnect, got {other:?}"),
    }
}
