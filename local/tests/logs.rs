//! What must never leak: session tokens and the model key stay out of every log line, at every
//! level (`trace` included, every crate's), through a happy path, the model failing and a Redis
//! outage; and a token opens only its own session.
//!
//! A test binary of its own: `tracing` caches each log call site's interest process-wide, and a
//! call site first reached by a parallel test while this test's thread-local subscriber is being
//! installed can be cached as uninteresting, which loses lines from the capture.

use std::io::Write;
use std::sync::{Arc, Mutex};

use chat_stub_model::Scripted;
use chat_wire::{ErrorCode, ServerFrame};

use chat_testkit::TestApp;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads a reply to its end and answers the error code, if it ended with one (then `done`).
async fn reply_error(ws: &mut chat_testkit::WsClient) -> Option<ErrorCode> {
    match ws.read_reply().await.end {
        ServerFrame::Error { code, .. } => {
            assert!(matches!(ws.next_frame().await, ServerFrame::Done { .. }));
            Some(code)
        }
        _ => None,
    }
}

// One thread: the stack's tasks run where this test's log subscriber is installed.
#[tokio::test(flavor = "current_thread")]
async fn tokens_and_the_model_key_never_reach_the_logs_even_at_trace() {
    let captured = Captured::default();
    let writer = captured.clone();
    // Everything every crate logs, the product's and its dependencies' (HTTP, WebSocket, Redis),
    // those that log through the `log` crate included (reqwest, tungstenite): forwarded here.
    tracing_log::LogTracer::init().expect("the only logger of this test binary");
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let key = "sk-test-never-log-this-9f8e7d";
    let vars = [("OPENAI_API_KEY", key), ("MODEL_RETRIES", "1"), ("MODEL_RETRY_BASE_MS", "10")];
    let mut app = TestApp::builder().vars(&vars).spawn().await;
    let session = app.create_session("Ada").await;
    let mut ws = app.connect(&session.token).await;

    // A happy path, a resume, a history read, a forged token.
    ws.ask("m1", "hello").await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));
    ws.send_text(r#"{"action":"resume","reply_to":"m1"}"#).await;
    ws.next_frame().await;
    app.session(&session.token).await;
    assert_eq!(app.history(&format!("{}x", session.token)).await.0, 400);
    let refused = tokio_tungstenite::connect_async(format!("{}?token={}x", app.ws_url, session.token)).await;
    assert!(refused.is_err());

    // The model failing every way it can: a refused key, 5xx after every retry, a cut stream.
    app.stub.push([Scripted::Status(401), Scripted::Status(500), Scripted::Status(500), Scripted::CutAfter(2)]);
    ws.ask("m2", "key?").await;
    assert_eq!(reply_error(&mut ws).await, Some(ErrorCode::ModelUnauthorized));
    ws.ask("m3", "5xx?").await;
    assert_eq!(reply_error(&mut ws).await, Some(ErrorCode::ModelUnavailable));
    ws.ask("m4", "cut me off after two words").await;
    assert_eq!(reply_error(&mut ws).await, Some(ErrorCode::ModelStreamInterrupted));

    // Redis gone and back: refused reads, frames and handshakes, then the same connection goes on.
    // Killed with its append-only file holding everything it acknowledged (the tests' servers
    // write it before they answer).
    app.redis.server().stop().await;
    assert_eq!(app.history(&session.token).await.0, 503);
    ws.send_message("m5", "outage?").await;
    assert!(matches!(ws.next_frame().await, ServerFrame::Error { code: ErrorCode::Unavailable, .. }));
    let refused = tokio_tungstenite::connect_async(format!("{}?token={}", app.ws_url, session.token)).await;
    assert!(refused.is_err());
    app.redis.server().restart().await.unwrap();
    ws.ask("m5", "outage?").await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));
    assert_eq!(app.stub.authorizations().last().unwrap().as_deref(), Some(format!("Bearer {key}").as_str()));

    // The worker logs the entry's end after acknowledging it, which can come after `done`.
    let read_logs = || String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while read_logs().matches("entry processed").count() < 5 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let logs = read_logs();
    assert!(logs.contains("session created") && logs.contains("entry processed"), "the story was logged");
    assert!(logs.contains("TRACE"), "trace lines were captured");
    assert!(logs.contains("model call failed; retrying"), "the failures were logged");
    // The test's own WebSocket client logs its request line (the URL with `?token=`, as the web
    // app connects) at trace: that is this test's client, not the product, which is never a
    // WebSocket client. Every other line counts.
    let leaks: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(&session.token) || l.contains(key))
        .filter(|l| !l.contains(r#"log.target="tungstenite::handshake::client""#))
        .collect();
    assert!(leaks.is_empty(), "{} lines hold the token or the key:\n{}", leaks.len(), leaks.join("\n"));
}
