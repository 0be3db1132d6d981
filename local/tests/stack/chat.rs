//! Chatting over the WebSocket API: the round trip, the protocol's errors, and what must not
//! change when a frame is refused.

use std::collections::HashSet;

use chat_wire::{ErrorCode, ReplyStatus, ServerFrame, Source};
use tokio_tungstenite::tungstenite::Error as WsError;

use chat_testkit::{on_each_store, spawn_app, StoreKind, TestApp};

async fn a_question_gets_a_streamed_reply_and_both_are_in_history(kind: StoreKind) {
    let app = TestApp::builder().on(kind).spawn().await;
    let (session, mut ws) = app.signed_in("Ada").await;

    ws.ask("m1", "What is Rust?").await;
    let reply = ws.read_reply().await;
    assert!(reply.deltas.len() > 1, "the reply streams in pieces: {}", reply.deltas.len());
    assert_eq!(reply.text, "You said: What is Rust?");
    match &reply.end {
        ServerFrame::Done { id, reply_to, status, model, next_seq, .. } => {
            assert_eq!(*next_seq, reply.deltas.len() as u64, "done names the seq after the last delta");
            assert_eq!(id, "m1.reply");
            assert_eq!(reply_to, "m1");
            assert_eq!(*status, ReplyStatus::Done);
            assert_eq!(model.as_deref(), Some("stub"));
        }
        other => panic!("expected done, got {other:?}"),
    }

    let history = app.session(&session.token).await;
    assert_eq!(history.messages.len(), 2);
    assert_eq!(history.messages[0].source, Source::User);
    assert_eq!(history.messages[0].msg, "What is Rust?");
    assert_eq!(history.messages[0].id, "m1");
    assert_eq!(history.messages[1].source, Source::Assistant);
    assert_eq!(history.messages[1].msg, reply.text, "deltas concatenate to the stored reply");
    assert_eq!(history.messages[1].reply_to.as_deref(), Some("m1"));

    // The model saw the system prompt and the question.
    let request = app.stub.requests().pop().unwrap();
    assert_eq!(request["stream"], true);
    assert_eq!(request["stream_options"]["include_usage"], true);
    assert_eq!(request["messages"][0]["role"], "system");
    assert_eq!(request["messages"][1]["content"], "What is Rust?");
}

async fn the_model_sees_the_last_ten_messages(kind: StoreKind) {
    let app = TestApp::builder().on(kind).spawn().await;
    let (session, mut ws) = app.signed_in("Ada").await;
    for i in 0..7 {
        ws.ask(&format!("q{i}"), &format!("question {i}")).await;
        assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));
    }
    let request = app.stub.requests().pop().unwrap();
    let messages = request["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 11, "system prompt + last 10 messages");
    assert_eq!(messages[1]["content"], "You said: question 1");
    assert_eq!(messages[10]["content"], "question 6");
    assert_eq!(app.session(&session.token).await.messages.len(), 14);
}

async fn every_connection_of_the_session_receives_the_reply(kind: StoreKind) {
    let app = TestApp::builder().on(kind).spawn().await;
    let (session, mut phone) = app.signed_in("Ada").await;
    let mut laptop = app.connect(&session.token).await;
    phone.ask("m1", "hello there").await;
    let on_phone = phone.read_reply().await;
    let on_laptop = laptop.read_reply().await;
    let stored = app.session(&session.token).await.messages.pop().unwrap();
    assert_eq!((stored.id.as_str(), stored.status), ("m1.reply", ReplyStatus::Done));
    assert_eq!(stored.msg, "You said: hello there");
    for (device, reply) in [("phone", on_phone), ("laptop", on_laptop)] {
        assert!(matches!(reply.end, ServerFrame::Done { status: ReplyStatus::Done, .. }), "{device}: {:?}", reply.end);
        assert_eq!(reply.text, stored.msg, "{device} shows the stored reply");
    }
}

#[tokio::test]
async fn a_bad_token_is_refused_at_the_handshake() {
    let app = spawn_app().await;
    let status = |result: Result<_, WsError>| match result {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("the handshake should fail"),
    };
    let missing = tokio_tungstenite::connect_async(app.ws_url.clone()).await;
    assert_eq!(status(missing), 401);
    let unknown = tokio_tungstenite::connect_async(format!("{}?token={}", app.ws_url, "A".repeat(43))).await;
    assert_eq!(status(unknown), 403);
    let garbage = tokio_tungstenite::connect_async(format!("{}?token=%00%ff", app.ws_url)).await;
    assert_eq!(status(garbage), 403);
}

#[tokio::test]
async fn bad_frames_get_a_clear_error_and_change_nothing() {
    let app = spawn_app().await;
    let (session, mut ws) = app.signed_in("Ada").await;
    let too_long = serde_json::json!({"action": "sendMessage", "id": "big", "content": "x".repeat(8193)}).to_string();
    let cases: Vec<(String, ErrorCode, Option<&str>)> = vec![
        ("hello".into(), ErrorCode::InvalidJson, None),
        ("[]".into(), ErrorCode::InvalidFrame, None),
        (r#"{"content":"hi"}"#.into(), ErrorCode::InvalidFrame, None),
        (r#"{"action":"dance"}"#.into(), ErrorCode::UnknownAction, None),
        (r#"{"action":"sendMessage","id":"m1"}"#.into(), ErrorCode::InvalidFrame, None),
        (r#"{"action":"sendMessage","id":"m1","content":"   "}"#.into(), ErrorCode::EmptyMessage, Some("m1")),
        (r#"{"action":"sendMessage","id":"bad id","content":"hi"}"#.into(), ErrorCode::InvalidId, None),
        // A question named like a reply would collide with the reply to `b`.
        (r#"{"action":"sendMessage","id":"b.reply","content":"hi"}"#.into(), ErrorCode::InvalidId, None),
        (r#"{"action":"regenerate","reply_to":"b.reply"}"#.into(), ErrorCode::InvalidId, None),
        (too_long, ErrorCode::MessageTooLarge, Some("big")),
        // Control characters other than newline, tab and carriage return (NUL included).
        (r#"{"action":"sendMessage","id":"c1","content":"a\u0000b"}"#.into(), ErrorCode::InvalidContent, Some("c1")),
        (r#"{"action":"sendMessage","id":"c2","content":"a\u000bb"}"#.into(), ErrorCode::InvalidContent, Some("c2")),
        (r#"{"action":"sendMessage","id":"c3","content":"a\u007fb"}"#.into(), ErrorCode::InvalidContent, Some("c3")),
    ];
    for (frame, expected, reply_to) in cases {
        ws.send_text(&frame).await;
        match ws.next_frame().await {
            ServerFrame::Error { code, reply_to: got, message, .. } => {
                assert_eq!(code, expected, "{frame}: {message}");
                assert_eq!(got.as_deref(), reply_to, "{frame}");
                assert!(!message.is_empty());
            }
            other => panic!("{frame}: expected an error, got {other:?}"),
        }
    }
    ws.stream.send(tokio_tungstenite::tungstenite::Message::Binary(vec![0xff, 0x00].into())).await.unwrap();
    assert!(matches!(ws.next_frame().await, ServerFrame::Error { code: ErrorCode::InvalidJson, .. }));

    assert_eq!(app.session(&session.token).await.messages.len(), 0, "history unchanged");
    assert_eq!(app.stream_len().await, 0, "nothing queued");

    // The connection still works.
    ws.send_text(r#"{"action":"ping"}"#).await;
    assert_eq!(ws.next_frame().await, ServerFrame::Pong);
    ws.ask("ok", "still there?\tIn two\r\nlines").await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));
}

use futures_util::SinkExt;

#[tokio::test]
async fn a_resent_message_is_not_stored_or_answered_twice() {
    let app = spawn_app().await;
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "once").await;
    ws.read_reply().await;
    ws.ask("m1", "once").await;
    ws.send_text(r#"{"action":"ping"}"#).await;
    assert_eq!(ws.next_frame().await, ServerFrame::Pong, "no second reply");
    assert_eq!(app.session(&session.token).await.messages.len(), 2);
    assert_eq!(app.stream_len().await, 1);
}

#[tokio::test]
async fn a_second_message_while_a_reply_streams_is_refused() {
    let app = spawn_app().await;
    // The reply's first token comes long after the second question is answered.
    app.stub.push([chat_stub_model::Scripted::SlowFirstToken(std::time::Duration::from_secs(3))]);
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "slow one").await;
    ws.send_message("m2", "impatient").await;
    match ws.next_frame().await {
        ServerFrame::Error { code, reply_to, .. } => {
            assert_eq!(code, ErrorCode::ReplyInProgress);
            assert_eq!(reply_to.as_deref(), Some("m2"));
        }
        other => panic!("expected reply_in_progress, got {other:?}"),
    }
    // Refused means neither stored nor queued.
    assert_eq!(app.stream_len().await, 1, "only m1's request is queued");
    let reply = ws.read_reply().await;
    assert!(matches!(reply.end, ServerFrame::Done { status: ReplyStatus::Done, .. }));
    assert_eq!(reply.text, "You said: slow one");
    let stored: Vec<_> = app.session(&session.token).await.messages.into_iter().map(|m| (m.id, m.msg)).collect();
    assert_eq!(stored, [("m1".to_string(), "slow one".to_string()), ("m1.reply".into(), "You said: slow one".into())]);
    ws.ask("m2", "now it is my turn").await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));
    let stored: Vec<_> = app.session(&session.token).await.messages.into_iter().map(|m| (m.id, m.msg)).collect();
    let expected = [("m1", "slow one"), ("m1.reply", "You said: slow one"), ("m2", "now it is my turn")];
    assert_eq!(stored[..3], expected.map(|(id, msg)| (id.to_string(), msg.to_string())));
    assert_eq!(stored[3], ("m2.reply".to_string(), "You said: now it is my turn".to_string()));
    assert_eq!(app.stream_len().await, 2, "m2 was queued once: when it was asked again and taken");
}

async fn a_closed_connection_is_forgotten(kind: StoreKind) {
    let app = TestApp::builder().on(kind).spawn().await;
    let (session, ws) = app.signed_in("Ada").await;
    drop(ws);
    let mut conn = app.redis().await;
    let key = chat_testkit::session_keys(&session.token).conns;
    let mut members: Vec<String> = Vec::new();
    for _ in 0..500 {
        members = redis::AsyncCommands::smembers(&mut conn, &key).await.unwrap();
        if members.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(members.is_empty(), "$disconnect removed the mapping");
}

async fn many_conversations_are_answered_at_once(kind: StoreKind) {
    let app = TestApp::builder().on(kind).spawn().await;
    // Each reply waits for the other four to be asked of the model: the five overlap however
    // slowly the worker's reads fall (a worker that wrote one at a time would wait 30 s each).
    app.stub.push((0..5).map(|_| chat_stub_model::Scripted::Together(5)));
    let mut sessions = Vec::new();
    for i in 0..5 {
        sessions.push(app.create_session(&format!("user{i}")).await);
    }
    if let Some(cluster) = app.redis.cluster() {
        // The sessions live on more than one shard (in the 1-in-81 case that all five landed on
        // one primary, the last is drawn again until it lands elsewhere).
        let key = |session: &chat_wire::ChatSession| chat_testkit::session_keys(&session.token).session;
        let mut primaries = HashSet::new();
        for session in &sessions {
            primaries.insert(cluster.primary_of(&key(session)).await.unwrap());
        }
        while primaries.len() < 2 {
            sessions[4] = app.create_session("user4").await;
            primaries.insert(cluster.primary_of(&key(&sessions[4])).await.unwrap());
        }
    }
    // Connected first, so the five questions go out back to back.
    let mut clients = Vec::new();
    for session in &sessions {
        clients.push(app.connect(&session.token).await);
    }
    for (i, ws) in clients.iter_mut().enumerate() {
        ws.ask("m1", &format!("question {i}")).await;
    }
    for (i, ws) in clients.iter_mut().enumerate() {
        assert_eq!(ws.read_reply().await.text, format!("You said: question {i}"));
    }
    assert_eq!(app.stub.max_in_flight(), 5, "the five replies were generated at the same time");
}

#[tokio::test]
async fn a_stream_that_ends_without_done_marker_still_completes() {
    let app = spawn_app().await;
    app.stub.push([chat_stub_model::Scripted::NoDoneMarker]);
    let (_, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "no marker").await;
    let reply = ws.read_reply().await;
    assert!(matches!(reply.end, ServerFrame::Done { status: ReplyStatus::Done, .. }));
    assert_eq!(reply.text, "You said: no marker");
}

async fn stop_ends_the_reply_upstream_and_keeps_what_was_sent(kind: StoreKind) {
    let pacing = chat_stub_model::Pacing { between_tokens: std::time::Duration::from_millis(40), ..Default::default() };
    let app = TestApp::builder().pacing(pacing).on(kind).spawn().await;
    let (session, mut ws) = app.signed_in("Ada").await;
    // Eight seconds of reply, stopped after its first piece arrived.
    let long = "word ".repeat(200);
    ws.ask("m1", long.trim()).await;
    let mut shown = chat_wire::ReplyText::default();
    match ws.next_frame().await {
        ServerFrame::Delta { seq, text, .. } => shown.delta(seq, &text),
        other => panic!("expected a delta, got {other:?}"),
    }
    ws.send_text(r#"{"action":"stop","reply_to":"m1"}"#).await;
    let reply = ws.read_reply_from(shown).await;
    let ServerFrame::Done { status, .. } = reply.end else { panic!("expected done, got {:?}", reply.end) };
    assert_eq!(status, ReplyStatus::Stopped);
    let shown = reply.text;
    assert!(!shown.is_empty());
    let full = format!("You said: {}", long.trim());
    assert!(shown.len() < full.len(), "stopped before the end");
    let history = app.session(&session.token).await;
    assert_eq!(history.messages[1].status, ReplyStatus::Stopped);
    assert_eq!(history.messages[1].msg, shown, "the stored reply is what was sent");
    // The model request was cancelled, not left running (it would run for seconds more).
    let cancelled = chat_testkit::wait::wait_until(
        std::time::Duration::from_secs(5),
        std::time::Duration::from_millis(10),
        || async { app.stub.in_flight() == 0 },
    )
    .await;
    assert!(cancelled, "the model's request was cancelled");
    // The session is free again.
    ws.ask("m2", "next").await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { status: ReplyStatus::Done, .. }));
}

on_each_store!(
    a_question_gets_a_streamed_reply_and_both_are_in_history,
    the_model_sees_the_last_ten_messages,
    every_connection_of_the_session_receives_the_reply,
    a_closed_connection_is_forgotten,
    many_conversations_are_answered_at_once,
    stop_ends_the_reply_upstream_and_keeps_what_was_sent,
);
