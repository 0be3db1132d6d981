//! What must never leak: session tokens and the model key stay out of every log line, and a token
//! opens only its own session.
//!
//! A test binary of its own: `tracing` caches each log call site's interest process-wide, and a
//! call site first reached by a parallel test while this test's thread-local subscriber is being
//! installed can be cached as uninteresting, which loses lines from the capture.

use std::io::Write;
use std::sync::{Arc, Mutex};

use chat_local::Options;
use chat_stub_model::Pacing;
use chat_wire::ServerFrame;

use chat_testkit::spawn_app_with;

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

// One thread: the stack's tasks run where this test's log subscriber is installed.
#[tokio::test(flavor = "current_thread")]
async fn tokens_and_the_model_key_never_reach_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_env_filter("info").with_writer(move || writer.clone()).finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let key = "sk-test-never-log-this-9f8e7d";
    let app = spawn_app_with(&[("OPENAI_API_KEY", key)], Options::default(), Pacing::default()).await;
    let session = app.create_session("Ada").await;
    let mut ws = app.connect(&session.token).await;
    ws.ask("m1", "hello").await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));
    ws.send_text(r#"{"action":"resume","reply_to":"m1"}"#).await;
    ws.next_frame().await;
    app.session(&session.token).await;
    assert_eq!(app.history(&format!("{}x", session.token)).await.0, 400);
    let refused = tokio_tungstenite::connect_async(format!("{}?token={}x", app.ws_url, session.token)).await;
    assert!(refused.is_err());
    assert_eq!(app.stub.authorizations().last().unwrap().as_deref(), Some(format!("Bearer {key}").as_str()));

    // The worker logs the entry's end after acknowledging it, which can come after `done`.
    let read_logs = || String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !read_logs().contains("entry processed") && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let logs = read_logs();
    assert!(logs.contains("session created") && logs.contains("entry processed"), "the story was logged:\n{logs}");
    assert!(!logs.contains(&session.token), "a token reached the logs:\n{logs}");
    assert!(!logs.contains(key), "the model key reached the logs");
}
