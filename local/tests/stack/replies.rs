//! Replies survive the client: a reload or reconnect mid-reply resumes from the session's reply
//! log, and the last reply can be written again.

use std::time::Duration;

use chat_stub_model::{Pacing, Scripted};
use chat_wire::{ErrorCode, ReplyStatus, ReplyText, ServerFrame, Source};

use chat_testkit::{on_each_store, spawn_app, StoreKind, TestApp};

fn slow() -> Pacing {
    Pacing { between_tokens: Duration::from_millis(30), ..Default::default() }
}

async fn a_client_that_reconnects_mid_reply_gets_the_rest_and_history_shows_it_streaming(kind: StoreKind) {
    let app = TestApp::builder().pacing(slow()).on(kind).spawn().await;
    let session = app.create_session("Ada").await;
    let question = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen";
    let full = format!("You said: {question}");
    let mut first = app.connect(&session.token).await;
    // Ten of its sixteen pieces, then a pause far longer than a reload takes: the reply is
    // still being written when the new page looks.
    app.stub.push([Scripted::StallAfter(10, Duration::from_secs(3))]);
    first.ask("m1", question).await;
    for _ in 0..3 {
        assert!(matches!(first.next_frame().await, ServerFrame::Delta { .. }));
    }
    drop(first); // the tab is reloaded

    // The history has the reply in progress, with its text so far.
    let history = app.session(&session.token).await;
    assert_eq!(history.messages.len(), 2);
    let partial = &history.messages[1];
    assert_eq!(
        (partial.id.as_str(), partial.source, partial.status),
        ("m1.reply", Source::Assistant, ReplyStatus::Streaming)
    );
    assert!(
        !partial.msg.is_empty() && full.starts_with(&partial.msg) && partial.msg.len() < full.len(),
        "{:?}",
        partial.msg
    );
    let next_seq = partial.next_seq.expect("a streaming reply says where it continues");

    // The new page asks for the rest and rebuilds exactly the whole reply.
    let mut second = app.connect(&session.token).await;
    second.send_text(r#"{"action":"resume","reply_to":"m1"}"#).await;
    let reply = second.read_reply_from(ReplyText::from_snapshot(next_seq, partial.msg.clone())).await;
    assert!(matches!(reply.end, ServerFrame::Done { status: ReplyStatus::Done, .. }), "{:?}", reply.end);
    assert_eq!(reply.snapshots.len(), 1, "the resume was answered with a snapshot");
    assert_eq!(reply.text, full);

    let ServerFrame::Done { next_seq: ended_at, .. } = reply.end else { unreachable!() };
    let stored = &app.session(&session.token).await.messages[1];
    // A finished reply keeps the seq after its last delta, as its `done` said.
    assert_eq!(
        (stored.status, stored.msg.as_str(), stored.next_seq),
        (ReplyStatus::Done, full.as_str(), Some(ended_at))
    );
    // Resuming a finished reply gives it whole.
    second.send_text(r#"{"action":"resume","reply_to":"m1"}"#).await;
    match second.next_frame().await {
        ServerFrame::Snapshot { text, status, .. } => {
            assert_eq!((text.as_str(), status), (full.as_str(), ReplyStatus::Done))
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

#[tokio::test]
async fn resume_and_regenerate_only_reach_the_connections_own_session() {
    let app = spawn_app().await;
    let ada = app.create_session("Ada").await;
    let bob = app.create_session("Bob").await;
    let mut ada_ws = app.connect(&ada.token).await;
    ada_ws.ask("secret", "my secret question").await;
    ada_ws.read_reply().await;

    let mut bob_ws = app.connect(&bob.token).await;
    for frame in [r#"{"action":"resume","reply_to":"secret"}"#, r#"{"action":"regenerate","reply_to":"secret"}"#] {
        bob_ws.send_text(frame).await;
        match bob_ws.next_frame().await {
            ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::UnknownMessage, "{frame}"),
            other => panic!("{frame}: expected an error, got {other:?}"),
        }
    }
    assert!(app.session(&bob.token).await.messages.is_empty());
    assert_eq!(app.session(&ada.token).await.messages.len(), 2);
}

async fn a_failed_reply_keeps_the_question_and_regenerate_answers_it(kind: StoreKind) {
    let app = TestApp::builder().on(kind).spawn().await;
    app.stub.push([Scripted::Status(500), Scripted::Status(500), Scripted::Status(500)]);
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "are you there?").await;
    let failed = ws.read_reply().await;
    assert!(matches!(failed.end, ServerFrame::Error { code: ErrorCode::ModelUnavailable, .. }), "{:?}", failed.end);
    assert!(matches!(ws.next_frame().await, ServerFrame::Done { status: ReplyStatus::Error, .. }));
    let history = app.session(&session.token).await;
    assert_eq!(history.messages[0].msg, "are you there?");
    assert_eq!((history.messages[1].status, history.messages[1].msg.as_str()), (ReplyStatus::Error, ""));

    ws.send_text(r#"{"action":"regenerate","reply_to":"m1"}"#).await;
    assert_eq!(
        ws.next_frame().await,
        ServerFrame::Ack { id: "m1".into(), reply_id: "m1.reply".into(), conversation: Some("main".into()) }
    );
    let retried = ws.read_reply().await;
    assert!(matches!(retried.end, ServerFrame::Done { status: ReplyStatus::Done, .. }));
    assert_eq!(retried.text, "You said: are you there?");
    let history = app.session(&session.token).await;
    let summary: Vec<_> = history.messages.iter().map(|m| (m.id.as_str(), m.status)).collect();
    assert_eq!(summary, [("m1", ReplyStatus::Done), ("m1.reply", ReplyStatus::Done)], "the reply was replaced");
    assert_eq!(history.messages[1].msg, retried.text);
}

async fn stop_then_regenerate_replaces_the_partial_reply_and_only_the_last_question_qualifies(kind: StoreKind) {
    let app = TestApp::builder().pacing(slow()).on(kind).spawn().await;
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "first").await;
    ws.read_reply().await;
    let long = "word ".repeat(40);
    ws.ask("m2", long.trim()).await;
    let mut shown = ReplyText::default();
    match ws.next_frame().await {
        ServerFrame::Delta { seq, text, .. } => shown.delta(seq, &text),
        other => panic!("expected a delta, got {other:?}"),
    }
    ws.send_text(r#"{"action":"stop","reply_to":"m2"}"#).await;
    let stopped = ws.read_reply_from(shown).await;
    assert!(matches!(stopped.end, ServerFrame::Done { status: ReplyStatus::Stopped, .. }));

    ws.send_text(r#"{"action":"regenerate","reply_to":"m1"}"#).await;
    assert!(matches!(ws.next_frame().await, ServerFrame::Error { code: ErrorCode::NotLastQuestion, .. }));

    ws.send_text(r#"{"action":"regenerate","reply_to":"m2"}"#).await;
    assert!(matches!(ws.next_frame().await, ServerFrame::Ack { .. }));
    // While it is written, a second regenerate is refused.
    ws.send_text(r#"{"action":"regenerate","reply_to":"m2"}"#).await;
    let mut text = ReplyText::default();
    let mut refused = false;
    loop {
        match ws.next_frame().await {
            ServerFrame::Delta { seq, text: piece, .. } => text.delta(seq, &piece),
            ServerFrame::Error { code: ErrorCode::ReplyInProgress, .. } => refused = true,
            ServerFrame::Done { status, .. } => {
                assert_eq!(status, ReplyStatus::Done);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(refused, "the second regenerate was refused");

    let history = app.session(&session.token).await;
    let ids: Vec<_> = history.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["m1", "m1.reply", "m2", "m2.reply"]);
    assert_eq!(history.messages[3].status, ReplyStatus::Done);
    assert_eq!(history.messages[3].msg, format!("You said: {}", long.trim()));
    assert_eq!(text.text(), history.messages[3].msg);
}

on_each_store!(
    a_client_that_reconnects_mid_reply_gets_the_rest_and_history_shows_it_streaming,
    a_failed_reply_keeps_the_question_and_regenerate_answers_it,
    stop_then_regenerate_replaces_the_partial_reply_and_only_the_last_question_qualifies,
);
