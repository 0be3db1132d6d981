//! End to end with the real embedded model (SmolLM2-135M-Instruct through llama.cpp): no API key,
//! no network.

use std::sync::OnceLock;

use chat_local::Options;
use chat_model::engine::{Engine, EngineSettings};
use chat_wire::{ReplyStatus, ServerFrame, Source};

use chat_testkit::{spawn_app_with_model, TestApp};

fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let config = chat_model::ModelServerConfig::from_env().expect("config");
            Engine::start(EngineSettings { context_tokens: 2048, ..config.engine() })
        })
        .clone()
}

async fn spawn_with_embedded_model(vars: &[(&str, &str)]) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let engine = engine();
    tokio::spawn(chat_model::server::serve(listener, engine.clone(), Default::default(), std::future::pending()));
    let options = Options { model_status: Some(chat_local::model_status(&engine)), ..Default::default() };
    spawn_app_with_model(&base, engine.name(), vars, options).await
}

#[tokio::test]
async fn a_real_question_gets_a_real_streamed_reply() {
    let app = spawn_with_embedded_model(&[("MAX_REPLY_TOKENS", "48")]).await;
    let session = app.create_session("Ada").await;
    let mut ws = app.connect(&session.token).await;
    ws.ask("m1", "What is the capital of France?").await;
    let reply = ws.read_reply().await;
    assert!(reply.deltas.len() > 1, "streamed in {} deltas", reply.deltas.len());
    assert!(!reply.text.trim().is_empty());
    match reply.end {
        ServerFrame::Done { status, model, .. } => {
            assert_eq!(status, ReplyStatus::Done);
            assert_eq!(model.as_deref(), Some(engine().name()));
        }
        other => panic!("expected done, got {other:?}"),
    }
    let history = app.session(&session.token).await;
    assert_eq!(history.messages.len(), 2);
    assert_eq!(history.messages[1].source, Source::Assistant);
    assert_eq!(history.messages[1].msg, reply.text);

    let health: serde_json::Value =
        app.http.get(format!("{}/health", app.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["model"], "ready");
}

#[tokio::test]
async fn temperature_zero_and_a_seed_give_the_same_reply_twice() {
    let app =
        spawn_with_embedded_model(&[("MAX_REPLY_TOKENS", "32"), ("MODEL_TEMPERATURE", "0"), ("MODEL_SEED", "7")]).await;
    let mut replies = Vec::new();
    for name in ["first", "second"] {
        let session = app.create_session(name).await;
        let mut ws = app.connect(&session.token).await;
        ws.ask("m1", "Name three colours.").await;
        replies.push(ws.read_reply().await.text);
    }
    assert!(!replies[0].is_empty());
    assert_eq!(replies[0], replies[1]);
}

#[tokio::test]
async fn four_simultaneous_chats_all_complete_separately() {
    let app = spawn_with_embedded_model(&[("MAX_REPLY_TOKENS", "24")]).await;
    let questions = ["What is 2 + 2?", "Name a fruit.", "What colour is the sky?", "Say hi."];
    let mut clients = Vec::new();
    for (i, question) in questions.iter().enumerate() {
        let session = app.create_session(&format!("user{i}")).await;
        let mut ws = app.connect(&session.token).await;
        ws.ask("m1", question).await;
        clients.push((session, ws));
    }
    for (session, ws) in clients.iter_mut() {
        let reply = ws.read_reply().await;
        assert!(matches!(reply.end, ServerFrame::Done { status: ReplyStatus::Done, .. }));
        assert!(!reply.text.trim().is_empty());
        let history = app.session(&session.token).await;
        assert_eq!(history.messages.len(), 2, "each session holds its own question and reply");
        assert_eq!(history.messages[1].msg, reply.text);
    }
}
