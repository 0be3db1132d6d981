//! End to end with the real embedded model (SmolLM2-135M-Instruct through llama.cpp): no API key,
//! no network.

use std::sync::OnceLock;

use chat_local::Options;
use chat_model::engine::{Engine, EngineSettings};
use chat_wire::{ReplyStatus, ServerFrame, Source};

use chat_testkit::TestApp;

fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let config = chat_model::ModelServerConfig::from_env().expect("config");
            Engine::start(EngineSettings { context_tokens: 2048, ..config.engine() })
        })
        .clone()
}

/// The stories take turns with the model: they share one engine, which answers one reply at a
/// time, and a story's reply queued behind another story's four, on a busy machine, waited past
/// the 30 s a frame may take (FRAME_WAIT). Each holds its turn until it ends.
static MODEL_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn spawn_with_embedded_model(vars: &[(&str, &str)]) -> (TestApp, tokio::sync::MutexGuard<'static, ()>) {
    let turn = MODEL_TURN.lock().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let engine = engine();
    tokio::spawn(chat_model::server::serve(listener, engine.clone(), Default::default(), std::future::pending()));
    let options = Options { model_status: Some(chat_local::model_status(&engine)), ..Default::default() };
    (TestApp::builder().vars(vars).options(options).model(&base, engine.name()).spawn().await, turn)
}

#[tokio::test]
async fn a_real_question_gets_a_real_streamed_reply() {
    let (app, _turn) = spawn_with_embedded_model(&[("MAX_REPLY_TOKENS", "48")]).await;
    let (session, mut ws) = app.signed_in("Ada").await;
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
    let (app, _turn) =
        spawn_with_embedded_model(&[("MAX_REPLY_TOKENS", "32"), ("MODEL_TEMPERATURE", "0"), ("MODEL_SEED", "7")]).await;
    let mut replies = Vec::new();
    for name in ["first", "second"] {
        let (_, mut ws) = app.signed_in(name).await;
        ws.ask("m1", "Name three colours.").await;
        replies.push(ws.read_reply().await.text);
    }
    assert!(!replies[0].is_empty());
    assert_eq!(replies[0], replies[1]);
}

#[tokio::test]
async fn four_simultaneous_chats_all_complete_separately() {
    let (app, _turn) = spawn_with_embedded_model(&[("MAX_REPLY_TOKENS", "24")]).await;
    let questions = ["What is 2 + 2?", "Name a fruit.", "What colour is the sky?", "Say hi."];
    let mut clients = Vec::new();
    for (i, question) in questions.iter().enumerate() {
        let (session, mut ws) = app.signed_in(&format!("user{i}")).await;
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

/// A conversation's first two questions, one after the other: the second's time to its first
/// delta, and the conversation's title once nothing more is written.
async fn two_questions(titles: &str) -> (std::time::Duration, chat_wire::Conversation) {
    let (app, _turn) = spawn_with_embedded_model(&[("MAX_REPLY_TOKENS", "24"), ("CONVERSATION_TITLES", titles)]).await;
    let (session, mut ws) = app.signed_in("Ada").await;
    let question = "How do I reverse a string in Rust?";
    ws.ask("q1", question).await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { status: ReplyStatus::Done, .. }));
    // At once, as a person who reads fast: the title (if any) is being written now.
    let asked = std::time::Instant::now();
    ws.ask("q2", "And in Python?").await;
    let mut waited = None;
    loop {
        match ws.next_frame().await {
            ServerFrame::Delta { .. } => {
                waited.get_or_insert_with(|| asked.elapsed());
            }
            ServerFrame::Done { .. } => break,
            ServerFrame::Snapshot { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // Whatever the title became, it has settled once its worker is idle again.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let list: chat_wire::ConversationList = app
        .http
        .get(format!("{}/conversations", app.base))
        .query(&[("token", &session.token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (waited.expect("the second reply streamed"), list.conversations[0].clone())
}

#[tokio::test]
async fn a_title_never_delays_the_next_reply_and_reads_as_a_topic() {
    let (without_titles, _) = two_questions("false").await;
    let (with_titles, conversation) = two_questions("true").await;
    // A figure, not a guarantee this machine's load could keep: `bench-model` measures it.
    println!(
        "second question's first delta: {:.0} ms with titles, {:.0} ms without ({:.2}x; target <= 1.2x)",
        with_titles.as_secs_f64() * 1000.0,
        without_titles.as_secs_f64() * 1000.0,
        with_titles.as_secs_f64() / without_titles.as_secs_f64()
    );
    // The title: the question's own words, or a short topic the worker judged one.
    let title = conversation.title;
    let from_question = chat_wire::text::title_from("How do I reverse a string in Rust?", 80);
    assert!(
        title == from_question || chat_worker::title::model_title(&title, 80).as_deref() == Some(title.as_str()),
        "{title:?} is neither the question's start nor a topic"
    );
}

#[tokio::test]
async fn the_embedded_model_leaves_a_conversation_its_question_as_title_unless_titles_are_asked_for() {
    let mut model = chat_model::ModelServerConfig::from_env().expect("config");
    model.port = 0;
    for (setting, from_model) in [(None, false), (Some("true"), true), (Some("false"), false)] {
        let vars = setting.map(|value| ("CONVERSATION_TITLES".to_string(), value.to_string())).into_iter().collect();
        let mut config = chat_core::Config::from_vars(&vars).unwrap();
        assert!(config.worker.titles_from_model() || setting == Some("false"), "with a provider, titles are on");
        chat_local::start_embedded_model(&mut config, &model, std::future::pending()).await.unwrap();
        assert_eq!(config.worker.titles_from_model(), from_model, "CONVERSATION_TITLES={setting:?}");
    }
}
