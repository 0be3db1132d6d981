//! The worker's OpenAI provider against the embedded server, with the real SmolLM2 model
//! (fetched by scripts/fetch-model.sh; `MODEL_PATH` picks another).

use std::collections::HashMap;
use std::sync::OnceLock;

use chat_core::Config;
use chat_model::engine::{Engine, EngineSettings};
use chat_model::server::{self, Defaults};
use chat_model::ModelServerConfig;
use chat_worker::{ContextMessage, ModelClient, ModelError};
use futures_util::StreamExt;

fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let config = ModelServerConfig::from_env().expect("config");
            assert!(
                config.model_path.is_file(),
                "no model at {}: run scripts/fetch-model.sh",
                config.model_path.display()
            );
            Engine::start(EngineSettings { context_tokens: 2048, ..config.engine() })
        })
        .clone()
}

/// Serves the shared engine on a free port for this test; returns a client for it.
async fn client(vars: &[(&str, &str)]) -> (ModelClient, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(server::serve(listener, engine(), Defaults::default(), std::future::pending()));
    let mut all: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    all.insert("OPENAI_BASE_URL".into(), base.clone());
    all.insert("MODEL_RETRIES".into(), "0".into());
    let config = Config::from_vars(&all).unwrap();
    (ModelClient::new(config.model), base)
}

fn ask(question: &str) -> Vec<ContextMessage> {
    vec![
        ContextMessage { role: "system".into(), content: "You are a helpful assistant.".into() },
        ContextMessage { role: "user".into(), content: question.into() },
    ]
}

#[tokio::test]
async fn streams_a_reply_in_several_pieces() {
    let (client, _) = client(&[("MAX_REPLY_TOKENS", "40")]).await;
    let mut stream = client.stream_chat(&ask("What is the capital of France?")).await.unwrap();
    let mut pieces = Vec::new();
    while let Some(piece) = stream.next().await {
        pieces.push(piece.unwrap());
    }
    assert!(pieces.len() > 1, "streamed in {} pieces", pieces.len());
    assert!(!pieces.concat().trim().is_empty());
}

#[tokio::test]
async fn answers_without_streaming() {
    let (client, _) = client(&[("MAX_REPLY_TOKENS", "30")]).await;
    let text = client.complete(&ask("Say hello.")).await.unwrap();
    assert!(!text.trim().is_empty());
}

#[tokio::test]
async fn honours_max_tokens() {
    let (_, base) = client(&[]).await;
    let body: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/chat/completions"))
        .json(&serde_json::json!({
            "messages": [{"role": "user", "content": "Write a long story about a dragon."}],
            "max_tokens": 5, "temperature": 0
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["usage"]["completion_tokens"], 5, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["object"], "chat.completion");
}

#[tokio::test]
async fn a_prompt_beyond_the_context_window_is_a_clear_error() {
    let (client, _) = client(&[]).await;
    let huge = "word ".repeat(4000);
    match client.stream_chat(&ask(&huge)).await {
        Err(ModelError::Rejected(message)) => assert!(message.contains("context window"), "{message}"),
        Err(other) => panic!("expected a rejection, got {other}"),
        Ok(_) => panic!("expected a rejection"),
    }
}

#[tokio::test]
async fn lists_the_model_and_reports_health() {
    let (_, base) = client(&[]).await;
    engine().ready().await.unwrap();
    let models: serde_json::Value = reqwest::get(format!("{base}/models")).await.unwrap().json().await.unwrap();
    assert_eq!(models["data"][0]["id"], engine().name());
    let health = reqwest::get(base.replace("/v1", "/health")).await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn a_request_sent_while_the_model_loads_waits_and_is_answered() {
    let config = ModelServerConfig::from_env().expect("config");
    let engine = Engine::start(EngineSettings { context_tokens: 512, ..config.engine() });
    assert!(matches!(engine.state(), chat_model::EngineState::Loading { .. }), "{:?}", engine.state());
    let mut events = engine.generate(chat_model::engine::Generation {
        turns: vec![chat_model::engine::Turn { role: "user".into(), content: "Hi!".into() }],
        max_tokens: 8,
        temperature: 0.0,
        top_p: 1.0,
        seed: 1,
        stop: Vec::new(),
    });
    let mut text = String::new();
    loop {
        match events.recv().await.expect("the engine answers") {
            chat_model::engine::Event::Text(piece) => text.push_str(&piece),
            chat_model::engine::Event::Finished { completion_tokens, .. } => {
                assert!(completion_tokens > 0);
                break;
            }
            chat_model::engine::Event::Failed(error) => panic!("{error}"),
        }
    }
    assert!(!text.is_empty());
    assert_eq!(engine.state(), chat_model::EngineState::Ready);
}
