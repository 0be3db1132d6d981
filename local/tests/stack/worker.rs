//! The worker as a consumer group: entries a dead worker left pending are reclaimed and answered
//! exactly once, and a gone connection is forgotten.

use std::time::Duration;

use chat_core::Store;
use chat_local::Options;
use chat_wire::{ConversationId, ReplyStatus};
use chat_worker::{ManagementApi, Outcome, Worker};

use chat_testkit::TestApp;

#[tokio::test]
async fn a_dead_workers_entry_is_reclaimed_and_answered_once() {
    // No worker runs inside the stack: the test plays both the dead worker and the live one.
    let app = TestApp::builder()
        .vars(&[("WORKER_CLAIM_IDLE_MS", "100")])
        .options(Options { in_process_worker: false, ..Default::default() })
        .spawn()
        .await;
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "survive a crash").await;

    let mut config = app.config.clone();
    let store = Store::connect(&config).unwrap();
    store.ensure_group().await.unwrap();
    // The dead worker read the entry and vanished without acknowledging it.
    let taken = store.read_new("dead-worker", 10, None).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(store.pending_count().await.unwrap(), 1);

    tokio::time::sleep(Duration::from_millis(150)).await;
    config.worker.consumer = "rescuer".into();
    let connections = ManagementApi::local(&config);
    let worker = std::sync::Arc::new(Worker::new(config, store.clone(), connections));
    assert_eq!(worker.drain(&store, None).await.unwrap(), 1);
    assert_eq!(store.pending_count().await.unwrap(), 0);

    let reply = ws.read_reply().await;
    assert_eq!(reply.text, "You said: survive a crash");
    let history = app.session(&session.token).await;
    assert_eq!(history.messages.len(), 2);

    // Redelivered after the reply was stored but before XACK: answered once, not twice.
    let mut again = taken.into_iter().next().unwrap();
    again.deliveries = 2; // as XAUTOCLAIM hands it over
    assert_eq!(worker.process(&again).await.unwrap(), Outcome::AlreadyAnswered);
    assert_eq!(worker.drain(&store, None).await.unwrap(), 0);
    assert_eq!(app.session(&session.token).await.messages.len(), 2);
    assert_eq!(app.stub.requests().len(), 1, "the model was asked once");
}

#[tokio::test]
async fn a_gone_connection_is_dropped_and_the_reply_still_stored() {
    let app = TestApp::builder().options(Options { in_process_worker: false, ..Default::default() }).spawn().await;
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "anyone?").await;
    drop(ws);
    // A stale mapping, as if $disconnect never ran: the Management API answers 410 for it.
    let store = Store::connect(&app.config).unwrap();
    let token = chat_wire::Token::parse(&session.token).unwrap();
    let stale = chat_wire::ConnectionId::parse("stale=").unwrap();
    assert_eq!(store.bind_connection(&stale, &token).await.unwrap(), chat_core::Bound::Bound);

    let config = app.config.clone();
    let connections = ManagementApi::local(&config);
    let worker = std::sync::Arc::new(Worker::new(config, store.clone(), connections));
    assert_eq!(worker.drain(&store, None).await.unwrap(), 1);
    let history = app.session(&session.token).await;
    assert_eq!(history.messages[1].status, ReplyStatus::Done);
    assert!(store.session_connections(&token).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_management_api_says_gone_for_unknown_connections() {
    let app = TestApp::builder().spawn().await;
    let endpoint = app.config.ws_management_endpoint.clone().unwrap();
    let api = ManagementApi::local(&app.config);
    let unknown = chat_wire::ConnectionId::parse("no/such=connection").unwrap();
    assert_eq!(api.post(&endpoint, &unknown, b"{}").await, chat_worker::notify::Delivery::Gone);
}

#[tokio::test]
async fn a_restarted_reply_log_expires_with_its_session() {
    let app = chat_testkit::spawn_app().await;
    let session = app.create_session("Ada").await;
    let token = chat_wire::Token::parse(&session.token).unwrap();
    let store = Store::connect(&app.config).unwrap();
    let placeholder = chat_wire::ChatMessage {
        id: "m1.reply".into(),
        msg: String::new(),
        timestamp: chat_core::store::now_rfc3339(),
        source: chat_wire::Source::Assistant,
        status: ReplyStatus::Streaming,
        reply_to: Some("m1".into()),
        model: None,
        next_seq: None,
        usage: None,
        versions: None,
    };
    // The question first: a reply is begun only for a question its conversation holds.
    let question = chat_wire::ChatMessage {
        id: "m1".into(),
        msg: "hi".into(),
        source: chat_wire::Source::User,
        status: ReplyStatus::Done,
        reply_to: None,
        ..placeholder.clone()
    };
    assert_eq!(store.accept_user_message(&token, &ConversationId::main(), &question).await.unwrap(), Ok(()));
    assert!(!store.begin_reply(&token, &ConversationId::main(), &placeholder, false).await.unwrap().unwrap().restarted);
    // A second worker takes the reply over before the first logged anything: the log holds only
    // the restart entry, and must not outlive the session.
    assert!(store.begin_reply(&token, &ConversationId::main(), &placeholder, true).await.unwrap().unwrap().restarted);
    let ttl: i64 = redis::cmd("TTL")
        .arg(chat_testkit::main_keys(&session.token).log_of("m1.reply"))
        .query_async(&mut app.redis().await)
        .await
        .unwrap();
    assert!((1..=3600).contains(&ttl), "the log's TTL is the session's: {ttl}");
}

#[tokio::test]
async fn the_request_stream_sheds_only_what_the_workers_are_done_with() {
    let app = TestApp::builder()
        .vars(&[("REQUEST_STREAM_MAXLEN", "5")])
        .options(Options { in_process_worker: false, ..Default::default() })
        .spawn()
        .await;
    let session = app.create_session("Ada").await;
    let store = Store::connect(&app.config).unwrap();
    store.ensure_group().await.unwrap();
    for i in 0..250 {
        let request = chat_core::ReplyRequest {
            token: chat_wire::Token::parse(&session.token).unwrap(),
            conversation: ConversationId::main(),
            message_id: chat_wire::MessageId::parse(&format!("q{i}")).unwrap(),
            endpoint: app.config.ws_management_endpoint.clone().unwrap(),
        };
        store.enqueue(&request).await.unwrap();
    }
    assert_eq!(app.stream_len().await, 250, "nothing is trimmed on the way in: no worker has read these");
    let read = store.read_new("w", 100, None).await.unwrap();
    assert_eq!(read.len(), 100);
    for entry in &read[..50] {
        store.ack(&entry.entry_id).await.unwrap();
    }
    // Only the 50 acknowledged entries go: the 50 pending and the 150 unread stay.
    assert_eq!(store.trim_acknowledged().await.unwrap(), 50);
    assert_eq!(app.stream_len().await, 200);
    assert_eq!(store.pending_count().await.unwrap(), 50);
    assert_eq!(store.read_new("w", 500, None).await.unwrap().len(), 150);
}
