//! When the model fails: the person reads a clear error, the question stays in history, and the
//! session can go on.

use std::time::Duration;

use chat_stub_model::Scripted;
use chat_wire::{ErrorCode, ReplyStatus, ServerFrame, Source};

use chat_testkit::{spawn_app, TestApp};

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
    let (_, mut ws) = app.signed_in("Ada").await;
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
    let (_, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "hello").await;
    assert_eq!(error_code(&ws.read_reply().await.end), ErrorCode::ModelUnauthorized);
    assert_eq!(app.stub.requests().len(), 1);
}

#[tokio::test]
async fn the_providers_own_words_stay_in_the_log_and_the_person_reads_a_clear_message() {
    let app = spawn_app().await;
    app.stub.push([Scripted::Status(400), Scripted::Status(401)]);
    let (_, mut ws) = app.signed_in("Ada").await;
    for (id, code) in [("m1", ErrorCode::ModelRejected), ("m2", ErrorCode::ModelUnauthorized)] {
        ws.ask(id, "hello").await;
        match ws.read_reply().await.end {
            ServerFrame::Error { code: got, message, .. } => {
                assert_eq!(got, code);
                // The stub's error body says "scripted 4xx" (type "stub_error"): PROTOCOL.md
                // promises a sentence for the person, not the provider's words.
                assert!(!message.contains("scripted") && !message.contains("stub_error"), "{message}");
                assert!(!message.trim().is_empty());
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
    let (session, mut ws) = app.signed_in("Ada").await;
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

/// A stack whose model may take `first_token` seconds to its first piece of text and then fall
/// silent for at most `idle` seconds, without retries.
async fn timed_app(first_token: &str, idle: &str) -> chat_testkit::TestApp {
    let vars = [
        ("MODEL_FIRST_TOKEN_TIMEOUT_SECONDS", first_token),
        ("MODEL_IDLE_TIMEOUT_SECONDS", idle),
        ("MODEL_RETRIES", "0"),
    ];
    TestApp::builder().vars(&vars).spawn().await
}

#[tokio::test]
async fn the_first_token_timeout_bounds_the_wait_for_the_first_text_headers_or_not() {
    // The idle timeout (1 s) is shorter than each wait below: only the first-token one (3 s)
    // applies.
    let app = timed_app("3", "1").await;
    app.stub.push([
        // Headers at once, first text after 1.5 s (a server reading a long prompt): waited for.
        Scripted::SlowFirstToken(Duration::from_millis(1500)),
        // No headers for 1.5 s (a queueing proxy): waited for.
        Scripted::SlowHeaders(Duration::from_millis(1500)),
        // Headers at once, first text after 5 s: past the first-token timeout.
        Scripted::SlowFirstToken(Duration::from_secs(5)),
        // No headers for 5 s: past it too.
        Scripted::SlowHeaders(Duration::from_secs(5)),
    ]);
    let (session, mut ws) = app.signed_in("Ada").await;
    for (id, question) in [("m1", "take your time"), ("m2", "take yours too")] {
        ws.ask(id, question).await;
        let reply = ws.read_reply().await;
        assert!(matches!(reply.end, ServerFrame::Done { status: ReplyStatus::Done, .. }), "{id}: {:?}", reply.end);
        assert_eq!(reply.text, format!("You said: {question}"));
    }
    for id in ["m3", "m4"] {
        ws.ask(id, "too slow").await;
        let reply = ws.read_reply().await;
        assert_eq!(error_code(&reply.end), ErrorCode::ModelTimeout, "{id}");
        assert_eq!(reply.text, "", "{id}: nothing was shown");
        assert!(matches!(ws.next_frame().await, ServerFrame::Done { status: ReplyStatus::Error, .. }));
    }
    let history = app.session(&session.token).await;
    let last: Vec<_> = history.messages[4..].iter().map(|m| (m.id.as_str(), m.status, m.msg.as_str())).collect();
    assert_eq!(
        last,
        [
            ("m3", ReplyStatus::Done, "too slow"),
            ("m3.reply", ReplyStatus::Error, ""),
            ("m4", ReplyStatus::Done, "too slow"),
            ("m4.reply", ReplyStatus::Error, "")
        ],
        "the questions stay; the replies say they failed"
    );
    assert_eq!(app.stub.requests().len(), 4, "MODEL_RETRIES=0: one request each");
}

#[tokio::test]
async fn a_model_that_falls_silent_mid_reply_times_out_and_keeps_the_text_sent() {
    // The first-token timeout (10 s) is longer than the silence: only the idle one (2 s) applies.
    let app = timed_app("10", "2").await;
    // Three pieces ("You said: one "), then four seconds of silence before the rest; then a
    // pause of half a second, well within the idle timeout.
    app.stub
        .push([Scripted::StallAfter(3, Duration::from_secs(4)), Scripted::StallAfter(3, Duration::from_millis(500))]);
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "one two three four five").await;
    let reply = ws.read_reply().await;
    assert_eq!(error_code(&reply.end), ErrorCode::ModelTimeout);
    assert_eq!(reply.text, "You said: one ");
    assert!(matches!(ws.next_frame().await, ServerFrame::Done { status: ReplyStatus::Error, .. }));
    let history = app.session(&session.token).await;
    let stored = &history.messages[1];
    assert_eq!(
        (stored.status, stored.msg.as_str()),
        (ReplyStatus::Error, "You said: one "),
        "the partial text is kept"
    );
    // A pause shorter than the idle timeout is no failure.
    ws.ask("m2", "one two three four five").await;
    let reply = ws.read_reply().await;
    assert!(matches!(reply.end, ServerFrame::Done { status: ReplyStatus::Done, .. }), "{:?}", reply.end);
    assert_eq!(reply.text, "You said: one two three four five");
}

#[tokio::test]
async fn a_model_that_keeps_rate_limiting_gives_model_rate_limited_after_waiting_its_retry_after() {
    let app = TestApp::builder()
        .vars(
            // A base backoff far shorter than the provider's Retry-After: the wait is the provider's.
            &[("MODEL_RETRIES", "2"), ("MODEL_RETRY_BASE_MS", "10")],
        )
        .spawn()
        .await;
    app.stub.push([Scripted::RateLimitedFor(1), Scripted::RateLimitedFor(1), Scripted::RateLimitedFor(1)]);
    let (_, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "hello").await;
    let reply = ws.read_reply().await;
    match &reply.end {
        ServerFrame::Error { code, reply_to, message, .. } => {
            assert_eq!((*code, reply_to.as_deref()), (ErrorCode::ModelRateLimited, Some("m1")));
            assert!(!message.is_empty());
        }
        other => panic!("expected model_rate_limited, got {other:?}"),
    }
    assert!(matches!(ws.next_frame().await, ServerFrame::Done { status: ReplyStatus::Error, .. }));
    let arrivals = app.stub.arrivals();
    assert_eq!(arrivals.len(), 3, "the first request and MODEL_RETRIES=2 retries");
    for pair in arrivals.windows(2) {
        let waited = pair[1] - pair[0];
        assert!(waited >= Duration::from_secs(1), "a retry came {waited:?} after a Retry-After of 1 s");
    }
    // The session goes on.
    ws.ask("m2", "and now?").await;
    assert_eq!(ws.read_reply().await.text, "You said: and now?");
}

#[tokio::test]
async fn an_unreachable_provider_gives_model_unavailable_and_the_session_goes_on() {
    // The discard port: below the ephemeral range the tests' own servers bind in, nothing listens.
    let app = TestApp::builder()
        .vars(&[("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"), ("MODEL_RETRIES", "1"), ("MODEL_RETRY_BASE_MS", "10")])
        .spawn()
        .await;
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "anyone home?").await;
    let reply = ws.read_reply().await;
    assert_eq!(error_code(&reply.end), ErrorCode::ModelUnavailable);
    assert!(matches!(ws.next_frame().await, ServerFrame::Done { status: ReplyStatus::Error, .. }));
    let history = app.session(&session.token).await;
    let kept: Vec<_> = history.messages.iter().map(|m| (m.id.as_str(), m.status)).collect();
    assert_eq!(kept, [("m1", ReplyStatus::Done), ("m1.reply", ReplyStatus::Error)]);
    // Not locked: the next question is taken (and fails the same way).
    ws.ask("m2", "still nobody?").await;
    assert_eq!(error_code(&ws.read_reply().await.end), ErrorCode::ModelUnavailable);
}
