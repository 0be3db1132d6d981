//! When the model fails: the person reads a clear error, the question stays in history, and the
//! session can go on.

use std::time::Duration;

use chat_local::Options;
use chat_stub_model::{Pacing, Scripted};
use chat_wire::{ErrorCode, ReplyStatus, ServerFrame, Source};

use chat_testkit::{spawn_app, spawn_app_with};

fn error_code(frame: &ServerFrame) -> ErrorCode {
    match frame {
        ServerFrame::Error { code, .. } => *code,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

#[tokio::test]
async fn a_429_then_success_is_retried_and_answered() {
    let app = spawn_app().await;
    app.stub.push([Scripted::Status(429), Scripted::Status(503)]);
    let session = app.create_session("Ada").await;
    let mut ws = app.connect(&session.token).await;
    ws.ask("m1", "try again").await;
    let reply = ws.read_reply().await;
    assert!(matches!(reply.end, ServerFrame::Done { status: ReplyStatus::Done, .. }));
    assert_eq!(reply.text, "You said: try again");
    assert_eq!(app.stub.requests().len(), 3, "two failures, then the answer");
}

// A model that keeps failing (500 after every retry): see
// `replies::a_failed_reply_keeps_the_question_and_regenerate_answers_it`.

#[tokio::test]
async fn a_refused_key_is_not_retried() {
    let app = spawn_app().await;
    app.stub.push([Scripted::Status(401)]);
    let session = app.create_session("Ada").await;
    let mut ws = app.connect(&session.token).await;
    ws.ask("m1", "hello").await;
    assert_eq!(error_code(&ws.read_reply().await.end), ErrorCode::ModelUnauthorized);
    assert_eq!(app.stub.requests().len(), 1);
}

#[tokio::test]
async fn the_providers_own_words_stay_in_the_log_and_the_person_reads_a_clear_message() {
    let app = spawn_app().await;
    app.stub.push([Scripted::Status(400), Scripted::Status(401)]);
    let session = app.create_session("Ada").await;
    let mut ws = app.connect(&session.token).await;
    for (id, code) in [("m1", ErrorCode::ModelRejected), ("m2", ErrorCode::ModelUnauthorized)] {
        ws.ask(id, "hello").await;
        match ws.read_reply().await.end {
            ServerFrame::Error { code: got, message, .. } => {
                assert_eq!(got, code);
                // The stub's error body says "scripted 4xx" (type "stub_error").
                assert!(!message.contains("scripted") && !message.contains("stub_error"), "{message}");
                assert!(message.starts_with("the model"), "{message}");
            }
            other => panic!("{id}: expected an error, got {other:?}"),
        }
        assert!(matches!(ws.next_frame().await, ServerFrame::Done { status: ReplyStatus::Error, .. }));
    }
}

#[tokio::test]
async fn a_stream_cut_mid_reply_keeps_what_was_sent() {
    let app = spawn_app().await;
    app.stub.push([Scripted::CutAfter(3)]);
    let session = app.create_session("Ada").await;
    let mut ws = app.connect(&session.token).await;
    ws.ask("m1", "one two three four five").await;
    let reply = ws.read_reply().await;
    assert_eq!(error_code(&reply.end), ErrorCode::ModelStreamInterrupted);
    assert_eq!(reply.text, "You said: one ");
    // `done` with status error follows the error frame.
    match ws.next_frame().await {
        ServerFrame::Done { status, .. } => assert_eq!(status, ReplyStatus::Error),
        other => panic!("expected done, got {other:?}"),
    }
    let history = app.session(&session.token).await;
    assert_eq!(history.messages.len(), 2);
    assert_eq!(history.messages[1].source, Source::Assistant);
    assert_eq!(history.messages[1].msg, reply.text);
    assert_eq!(history.messages[1].status, ReplyStatus::Error);
}

#[tokio::test]
async fn a_slow_first_token_waits_and_a_silent_model_times_out() {
    let app = spawn_app_with(
        &[("MODEL_FIRST_TOKEN_TIMEOUT_SECONDS", "5"), ("MODEL_IDLE_TIMEOUT_SECONDS", "1"), ("MODEL_RETRIES", "0")],
        Options::default(),
        Pacing::default(),
    )
    .await;
    app.stub
        .push([Scripted::SlowFirstToken(Duration::from_millis(300)), Scripted::SlowFirstToken(Duration::from_secs(3))]);
    let session = app.create_session("Ada").await;
    let mut ws = app.connect(&session.token).await;
    ws.ask("m1", "take your time").await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));
    ws.ask("m2", "too slow").await;
    assert_eq!(error_code(&ws.read_reply().await.end), ErrorCode::ModelTimeout);
    let history = app.session(&session.token).await;
    let last: Vec<_> = history.messages[2..].iter().map(|m| (m.id.as_str(), m.status, m.msg.as_str())).collect();
    assert_eq!(
        last,
        [("m2", ReplyStatus::Done, "too slow"), ("m2.reply", ReplyStatus::Error, "")],
        "the question stays; the reply says it failed"
    );
}
