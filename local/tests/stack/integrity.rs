//! Nothing acknowledged goes unanswered: a question stored but never queued (the message function
//! died between the two steps, or only the queueing failed) is queued by its resend; a reply
//! found already stored sends its `done` again; a question queued twice is answered once.

use std::time::Duration;

use chat_core::{ReplyRequest, Store};
use chat_wire::{ChatMessage, ConversationId, ErrorCode, MessageId, ReplyStatus, ServerFrame, Token};

use chat_testkit::{on_each_store, Pacing, StoreKind, TestApp};

/// Runs one command on every Redis node of the app (each primary and replica of a cluster).
async fn on_every_node(app: &TestApp, args: &[&str]) {
    let urls: Vec<String> = match app.redis.cluster() {
        Some(cluster) => cluster.ports().iter().map(|port| format!("redis://127.0.0.1:{port}")).collect(),
        None => vec![app.redis.url()],
    };
    for url in urls {
        let mut node = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
        let () = redis::cmd(args[0]).arg(&args[1..]).query_async(&mut node).await.unwrap();
    }
}

/// The request the message function queues for `message_id`.
fn request(app: &TestApp, token: &str, message_id: &str) -> ReplyRequest {
    ReplyRequest {
        token: Token::parse(token).unwrap(),
        conversation: ConversationId::main(),
        message_id: MessageId::parse(message_id).unwrap(),
        endpoint: app.config.ws_management_endpoint.clone().unwrap(),
    }
}

fn ids_and_texts(messages: &[ChatMessage]) -> Vec<(&str, &str, ReplyStatus)> {
    messages.iter().map(|m| (m.id.as_str(), m.msg.as_str(), m.status)).collect()
}

async fn a_question_stored_by_a_function_that_died_is_answered_when_resent(kind: StoreKind) {
    let app = TestApp::builder().on(kind).spawn().await;
    let session = app.create_session("Ada").await;
    let token = Token::parse(&session.token).unwrap();
    let mut ws = app.connect(&session.token).await;

    // The message function stored the question and died before queueing it.
    let store = Store::connect(&app.config).unwrap();
    let question = ChatMessage::question("m1", "are you there?", chat_core::store::now_rfc3339());
    assert_eq!(store.accept_user_message(&token, &ConversationId::main(), &question).await.unwrap(), Ok(()));
    assert_eq!(app.stream_len().await, 0, "nothing was queued");

    // The client heard nothing and resends the same id, as PROTOCOL.md says.
    ws.ask("m1", "are you there?").await;
    let reply = ws.read_reply().await;
    assert!(matches!(reply.end, ServerFrame::Done { status: ReplyStatus::Done, .. }), "{:?}", reply.end);
    assert_eq!(reply.text, "You said: are you there?");
    let history = app.session(&session.token).await;
    assert_eq!(
        ids_and_texts(&history.messages),
        [("m1", "are you there?", ReplyStatus::Done), ("m1.reply", "You said: are you there?", ReplyStatus::Done)]
    );

    // A second resend, now answered: acknowledged, not answered again.
    ws.ask("m1", "are you there?").await;
    assert!(ws.frame_before(tokio::time::Instant::now() + Duration::from_millis(500)).await.is_none());
    assert_eq!(app.stub.requests().len(), 1, "the model was asked once");
    assert_eq!(app.stream_len().await, 1, "queued once");
}

async fn a_question_whose_queueing_failed_is_answered_when_resent(kind: StoreKind) {
    let app = TestApp::builder().on(kind).spawn().await;
    let (session, mut ws) = app.signed_in("Ada").await;

    // Only XADD fails: the question is stored, its request is not queued.
    on_every_node(&app, &["ACL", "SETUSER", "default", "-xadd"]).await;
    ws.send_message("m1", "queue me").await;
    match ws.next_frame().await {
        ServerFrame::Error { code, reply_to, .. } => {
            assert_eq!((code, reply_to.as_deref()), (ErrorCode::Unavailable, Some("m1")));
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    let stored = app.session(&session.token).await;
    assert_eq!(ids_and_texts(&stored.messages), [("m1", "queue me", ReplyStatus::Done)], "stored, maybe");

    // Redis is whole again; the web app resends `unavailable` questions under the same id.
    on_every_node(&app, &["ACL", "SETUSER", "default", "+xadd"]).await;
    ws.ask("m1", "queue me").await;
    let reply = ws.read_reply().await;
    assert!(matches!(reply.end, ServerFrame::Done { status: ReplyStatus::Done, .. }), "{:?}", reply.end);
    let history = app.session(&session.token).await;
    assert_eq!(
        ids_and_texts(&history.messages),
        [("m1", "queue me", ReplyStatus::Done), ("m1.reply", "You said: queue me", ReplyStatus::Done)]
    );
}

async fn a_reply_found_already_stored_sends_done_again(kind: StoreKind) {
    let app = TestApp::builder().on(kind).spawn().await;
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "hello").await;
    let first = ws.read_reply().await;
    let ServerFrame::Done { next_seq, status, .. } = first.end else { panic!("expected done, got {:?}", first.end) };
    assert_eq!(next_seq, first.deltas.len() as u64);

    // The worker crashed between storing the reply and sending `done`; its entry comes again.
    let store = Store::connect(&app.config).unwrap();
    store.enqueue(&request(&app, &session.token, "m1")).await.unwrap();
    match ws.next_frame().await {
        ServerFrame::Done { id, reply_to, status: again, next_seq: seq_again, .. } => {
            assert_eq!((id.as_str(), reply_to.as_str()), ("m1.reply", "m1"));
            assert_eq!((again, seq_again), (status, next_seq), "the stored reply's ending");
        }
        other => panic!("expected done again, got {other:?}"),
    }
    // A first delivery starts its model call while it records the reply; told the reply
    // exists, it drops that call: nothing more reaches the client, nothing more is stored.
    assert!(ws.frame_before(tokio::time::Instant::now() + Duration::from_millis(500)).await.is_none());
    let history = app.session(&session.token).await;
    assert_eq!(
        ids_and_texts(&history.messages),
        [("m1", "hello", ReplyStatus::Done), ("m1.reply", first.text.as_str(), ReplyStatus::Done)]
    );
}

async fn a_question_queued_twice_is_answered_once(kind: StoreKind) {
    let pacing = Pacing { between_tokens: Duration::from_millis(20), fixed_tokens: Some(40), ..Pacing::default() };
    let app = TestApp::builder().pacing(pacing).on(kind).spawn().await;
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "long one").await;
    let first = ws.next_frame().await;
    assert!(matches!(first, ServerFrame::Delta { seq: 0, .. }), "{first:?}");

    // A resend queued the question again while its reply streams.
    let store = Store::connect(&app.config).unwrap();
    store.enqueue(&request(&app, &session.token, "m1")).await.unwrap();
    let mut text = chat_wire::ReplyText::default();
    let ServerFrame::Delta { seq, text: piece, .. } = &first else { unreachable!() };
    text.delta(*seq, piece);
    let reply = ws.read_reply_from(text).await;
    assert!(reply.snapshots.is_empty(), "the reply was not restarted: {:?}", reply.snapshots);
    assert!(matches!(reply.end, ServerFrame::Done { status: ReplyStatus::Done, .. }), "{:?}", reply.end);
    let history = app.session(&session.token).await;
    assert_eq!(history.messages[1].msg, reply.text);
    // The second entry's worker may have started its (early, optimistic) model call before the
    // store said the reply was begun; it dropped it: no restart reached the client (above), and
    // no third call was made.
    assert!(app.stub.requests().len() <= 2, "{} model calls", app.stub.requests().len());
    // Both entries end acknowledged.
    for _ in 0..50 {
        if store.pending_count().await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(store.pending_count().await.unwrap(), 0);
}

on_each_store!(
    a_question_stored_by_a_function_that_died_is_answered_when_resent,
    a_question_whose_queueing_failed_is_answered_when_resent,
    a_reply_found_already_stored_sends_done_again,
    a_question_queued_twice_is_answered_once,
);
