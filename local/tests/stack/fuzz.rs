//! Bad input, generated. Arbitrary frames through the real `$default` handler and arbitrary
//! requests through the real HTTP handler (as the gateway builds their events) never panic, always
//! answer with a clear error, and never change a session's history. Valid frames mixed in are
//! acknowledged, and an acknowledged question adds exactly itself to the history. 10,000 malformed
//! frames over a real WebSocket leave the session working.

use std::net::SocketAddr;

use chat_core::Store;
use chat_functions::{AppState, WorkerTrigger};
use chat_local::gateway::{http_event, websocket_event};
use chat_local::Options;
use chat_wire::{ChatSession, ClientFrame, ConversationId, ErrorBody, ErrorCode, MessageId, ServerFrame, Source};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::Value;

use chat_testkit::{spawn_app, TestApp};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        prop::sample::select(vec!["sendMessage", "stop", "ping", "resume", "regenerate", "dance", "", "m1"])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec(
                (prop::sample::select(vec!["action", "id", "content", "reply_to", "seq", "x"]), inner),
                0..6
            )
            .prop_map(|fields| Value::Object(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

/// Text a client could send as a frame: anything, with extra weight on what is nearly right.
fn frame_text() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any::<String>(),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        1 => json_value().prop_map(|v| v.to_string()),
        1 => (1usize..5000)
            .prop_map(|depth| format!(r#"{{"action":"sendMessage","id":"d","content":{}"#, "[".repeat(depth))),
        1 => "[0-9]{20,400}".prop_map(|n| format!(r#"{{"action":"stop","reply_to":{n}}}"#)),
        1 => Just(r#"{"action":"sendMessage","id":"x","content":"hi","seq":1e999}"#.to_string()),
        1 => "[\\PC ]{0,12}".prop_map(|id| format!(r#"{{"action":"sendMessage","id":"{id}","content":""}}"#)),
        7 => valid_frame(),
    ]
}

/// Frames a client could rightly send: questions (fresh ids and resent ones, with contents that
/// may still be refused), and stop, resume and regenerate naming those questions. `$LAST` stands
/// for the session's last question when the frame is sent (what regenerate accepts).
fn valid_frame() -> impl Strategy<Value = String> {
    let known = prop_oneof![(0..16u8).prop_map(|n| format!("v{n}")), Just("$LAST".to_string())];
    let fresh = "n[0-9]{8}";
    let contents = prop_oneof![
        4 => "[a-zA-Z0-9 ?!.,]{1,60}",
        1 => ".{0,30}",
        1 => Just("x".repeat(9000)),
    ];
    let question = |ids: BoxedStrategy<String>| {
        (ids, contents.clone()).prop_map(|(id, content)| {
            serde_json::json!({"action": "sendMessage", "id": id, "content": content}).to_string()
        })
    };
    let about = |action: &'static str| {
        known.clone().prop_map(move |id| serde_json::json!({"action": action, "reply_to": id}).to_string())
    };
    prop_oneof![
        4 => question(fresh.boxed()),
        3 => question(known.clone().boxed()),
        1 => about("stop"),
        2 => about("resume"),
        2 => about("regenerate"),
        1 => Just(r#"{"action":"ping"}"#.to_string()),
    ]
}

/// The codes a frame from a client can earn on a healthy stack without rate limits: the input's
/// own faults, and the session's state (PROTOCOL.md's table).
const CLIENT_CODES: [ErrorCode; 10] = [
    ErrorCode::InvalidJson,
    ErrorCode::InvalidFrame,
    ErrorCode::UnknownAction,
    ErrorCode::EmptyMessage,
    ErrorCode::MessageTooLarge,
    ErrorCode::InvalidContent,
    ErrorCode::InvalidId,
    ErrorCode::ReplyInProgress,
    ErrorCode::UnknownMessage,
    ErrorCode::NotLastQuestion,
];

/// What the handler's answers were, for the run's own checks.
#[derive(Debug, Default)]
struct Answers {
    questions_acknowledged: usize,
    resends_acknowledged: usize,
    regenerations_acknowledged: usize,
    stops: usize,
    snapshots: usize,
    pongs: usize,
    errors: usize,
}

/// A frame no healthy stack may refuse: a ping, or a new question with a fresh id and plain text
/// (the session takes its next question after each ack in this run).
fn certainly_accepted(frame: &ClientFrame, history: &ChatSession) -> bool {
    match frame {
        ClientFrame::Ping => true,
        ClientFrame::SendMessage { id, content, .. } => {
            id.starts_with('n')
                && !content.trim().is_empty()
                && content.len() <= 8192
                && content.chars().all(|c| c.is_ascii_alphanumeric() || " ?!.,".contains(c))
                && !history.messages.iter().any(|m| &m.id == id)
        }
        _ => false,
    }
}

fn same_history(a: &ChatSession, b: &ChatSession) -> bool {
    a.messages == b.messages
}

async fn state_and_session(app: &TestApp) -> (AppState, ChatSession, String) {
    // Thousands of frames on one connection: its frame limit would answer most of them.
    let mut config = app.config.clone();
    config.rate_limits.frames_per_connection = 0;
    let store = Store::connect(&config).unwrap();
    let state = AppState::new(config, store.clone(), WorkerTrigger::StreamReaders);
    let session = app.create_session("Fuzz").await;
    let connection = chat_wire::ConnectionId::parse("fuzz-connection=").unwrap();
    assert_eq!(
        store.bind_connection(&connection, &chat_wire::Token::parse(&session.token).unwrap()).await.unwrap(),
        chat_core::Bound::Bound
    );
    let before = app.session(&session.token).await;
    (state, before, session.token)
}

#[test]
fn arbitrary_frames_never_panic_and_change_history_only_when_acknowledged() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(
        TestApp::builder()
            .vars(
                // 600 cases, each reading the session's history: past its read rate otherwise.
                &[("MESSAGES_PER_SESSION_PER_WINDOW", "0"), ("HISTORY_READS_PER_SESSION_PER_WINDOW", "0")],
            )
            .options(
                // No worker: a frame that happens to be a valid question is stored and waits, so any
                // later change to the history is the handler's doing.
                Options { in_process_worker: false, ..Default::default() },
            )
            .spawn(),
    );
    let (state, before, token) = runtime.block_on(state_and_session(&app));
    let session_token = chat_wire::Token::parse(&token).unwrap();
    let before = std::cell::RefCell::new(before);
    let answers = std::cell::RefCell::new(Answers::default());
    let mut runner =
        TestRunner::new(ProptestConfig { cases: 600, failure_persistence: None, ..ProptestConfig::default() });
    runner
        .run(&(frame_text(), any::<bool>()), |(text, binary)| {
            let last_question =
                before.borrow().messages.iter().rev().find(|m| m.source == Source::User).map(|m| m.id.clone());
            let text = text.replace("$LAST", last_question.as_deref().unwrap_or("v0"));
            let mut event = websocket_event("$default", "fuzz-connection=", 0, "127.0.0.1", None);
            event.body = Some(text.clone());
            event.is_base64_encoded = binary;
            let response = runtime.block_on(chat_functions::ws::message(&state, event));
            prop_assert_eq!(response.status_code, 200);
            let sent = chat_functions::ws::decode_frame(Some(&text), binary).ok();
            let after = runtime.block_on(app.session(&token));
            let before_messages = before.borrow().messages.clone();
            let unchanged = same_history(&before.borrow(), &after);
            let mut answers = answers.borrow_mut();
            let body = match response.body {
                Some(aws_lambda_events::encodings::Body::Text(body)) => body,
                // A stop is answered by the worker's `done`, not by the handler.
                None if matches!(sent, Some(ClientFrame::Stop { .. })) => {
                    prop_assert!(unchanged, "{text:?} changed the history");
                    answers.stops += 1;
                    return Ok(());
                }
                other => return Err(TestCaseError::fail(format!("no frame for {text:?}: {other:?}"))),
            };
            let frame: ServerFrame =
                serde_json::from_str(&body).map_err(|e| TestCaseError::fail(format!("{body}: {e}")))?;
            if sent.as_ref().is_some_and(|sent| certainly_accepted(sent, &before.borrow())) {
                prop_assert!(
                    matches!(frame, ServerFrame::Ack { .. } | ServerFrame::Pong),
                    "{text:?} was refused: {frame:?}"
                );
            }
            match (frame, sent) {
                (ServerFrame::Error { code, message, .. }, sent) => {
                    prop_assert!(!message.is_empty());
                    prop_assert!(CLIENT_CODES.contains(&code), "{text:?} got {code:?}: {message}");
                    // And one its frame is declared to answer (PROTOCOL.md lists the same).
                    let declared = match &sent {
                        Some(frame) => chat_wire::answers::frame(action_of(frame)).unwrap(),
                        None => chat_wire::answers::ANY_FRAME.to_vec(),
                    };
                    prop_assert!(declared.contains(&code), "{text:?} got {code:?}, not declared for its frame");
                    prop_assert!(unchanged, "{text:?} changed the history");
                    answers.errors += 1;
                }
                (
                    ServerFrame::Ack { id, reply_id, .. },
                    Some(ClientFrame::SendMessage { id: sent_id, content, .. }),
                ) => {
                    prop_assert_eq!(&id, &sent_id);
                    prop_assert_eq!(reply_id, format!("{id}.reply"));
                    if before_messages.iter().any(|m| m.id == id) {
                        // A resend: acknowledged again, stored once.
                        prop_assert!(unchanged, "a resent {id} changed the history");
                        answers.resends_acknowledged += 1;
                    } else {
                        // The history before, plus exactly this question.
                        prop_assert_eq!(after.messages.len(), before_messages.len() + 1);
                        prop_assert_eq!(&after.messages[..before_messages.len()], &before_messages[..]);
                        let added = after.messages.last().unwrap();
                        prop_assert_eq!((&added.id, &added.msg, added.source), (&id, &content, Source::User));
                        answers.questions_acknowledged += 1;
                    }
                    // As a finished reply would: the session takes its next question.
                    let id = MessageId::parse(&id).unwrap();
                    runtime
                        .block_on(state.store.release_reply_lock(&session_token, &ConversationId::main(), &id))
                        .unwrap();
                }
                (ServerFrame::Ack { id, .. }, Some(ClientFrame::Regenerate { reply_to, .. })) => {
                    prop_assert_eq!(&id, &reply_to);
                    // No worker wrote a reply to replace: nothing else changes.
                    prop_assert!(unchanged, "regenerating {id} changed the history");
                    answers.regenerations_acknowledged += 1;
                    let id = MessageId::parse(&id).unwrap();
                    runtime
                        .block_on(state.store.release_reply_lock(&session_token, &ConversationId::main(), &id))
                        .unwrap();
                }
                (ServerFrame::Pong, Some(ClientFrame::Ping)) => {
                    prop_assert!(unchanged);
                    answers.pongs += 1;
                }
                (
                    ServerFrame::Snapshot { reply_to, text: shown, .. },
                    Some(ClientFrame::Resume { reply_to: asked, .. }),
                ) => {
                    prop_assert_eq!(&reply_to, &asked);
                    prop_assert!(
                        before_messages.iter().any(|m| m.id == reply_to),
                        "a snapshot of an unknown {reply_to}"
                    );
                    prop_assert_eq!(shown, "", "no worker wrote anything");
                    prop_assert!(unchanged);
                    answers.snapshots += 1;
                }
                (other, sent) => return Err(TestCaseError::fail(format!("{text:?} ({sent:?}) got {other:?}"))),
            }
            *before.borrow_mut() = after;
            Ok(())
        })
        .unwrap();
    let answers = answers.into_inner();
    println!("{answers:?}");
    // The valid frames reached every path: this run proved something about each.
    assert!(answers.questions_acknowledged >= 20, "{answers:?}");
    assert!(answers.resends_acknowledged > 0 && answers.regenerations_acknowledged > 0, "{answers:?}");
    assert!(answers.stops > 0 && answers.snapshots > 0 && answers.pongs > 0 && answers.errors > 100, "{answers:?}");
}

#[test]
fn arbitrary_http_requests_never_panic_and_always_get_a_json_answer() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(spawn_app());
    let (state, before, token) = runtime.block_on(state_and_session(&app));
    // The HTTP API as both HTTP Lambdas serve it.
    let http_api = chat_functions::http::service(state);
    let methods = prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]);
    let paths = prop::sample::select(vec![
        "/token",
        "/chat_history",
        "/health",
        "/test",
        "/openapi.json",
        "/docs",
        "/",
        "/x/../token",
        "/%00",
    ]);
    let queries =
        prop_oneof![Just(String::new()), ".{0,60}", Just(format!("token={token}x")), Just("token=".to_string())];
    let content_types = prop::sample::select(vec![
        "application/x-www-form-urlencoded",
        "application/json",
        "multipart/form-data; boundary=XYZ",
        "multipart/form-data",
        "text/plain",
        "",
    ]);
    let bodies = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        ".{0,80}".prop_map(|name: String| format!("name={name}").into_bytes()),
        ".{0,40}".prop_map(|name: String| format!(
            "--XYZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n--XYZ--\r\n"
        )
        .into_bytes()),
    ];
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let mut runner =
        TestRunner::new(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() });
    runner
        .run(&(methods, paths, queries, content_types, bodies), |(method, path, query, content_type, body)| {
            let uri: http::Uri = match format!("{path}?{}", urlencode(&query)).parse() {
                Ok(uri) => uri,
                Err(_) => return Ok(()),
            };
            let mut headers = http::HeaderMap::new();
            if let Ok(value) = content_type.parse() {
                headers.insert(http::header::CONTENT_TYPE, value);
            }
            let event = http_event(&method.parse().unwrap(), &uri, &headers, &body, peer);
            let request: lambda_http::Request = lambda_http::request::LambdaRequest::ApiGatewayV2(event).into();
            let (status, body) = runtime.block_on(async {
                let Ok(response) = tower::ServiceExt::oneshot(http_api.clone(), request).await;
                let status = response.status().as_u16();
                (status, axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap_or_default())
            });
            prop_assert!([200, 204, 400, 404, 405, 429].contains(&status), "{method} {uri}: {status}");
            if status >= 400 {
                let error: ErrorBody = serde_json::from_slice(&body)
                    .map_err(|e| TestCaseError::fail(format!("{method} {uri}: not an error body: {e}")))?;
                prop_assert!(!error.detail.is_empty());
                // A route answers only the codes declared for it (PROTOCOL.md lists the same).
                let route = format!("{method} {}", route_of(uri.path()));
                let declared =
                    chat_wire::answers::route(&route).unwrap_or_else(|| chat_wire::answers::ANY_ROUTE.to_vec());
                prop_assert!(
                    declared.contains(&error.code),
                    "{method} {uri}: {:?} is not declared for {route}",
                    error.code
                );
            }
            Ok(())
        })
        .unwrap();
    let after = runtime.block_on(app.session(&token));
    assert!(same_history(&before, &after), "no request changed the history");
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"=&-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn ten_thousand_malformed_frames_over_a_real_websocket_leave_the_session_working() {
    // Without its frame limit, which would close this connection after 120 (abuse.rs tests it).
    let app = TestApp::builder().vars(&[("FRAMES_PER_CONNECTION_PER_WINDOW", "0")]).spawn().await;
    let (session, mut ws) = app.signed_in("Ada").await;
    let deep = format!("{}1{}", "[".repeat(2000), "]".repeat(2000));
    let big = serde_json::json!({"action": "sendMessage", "id": "big", "content": "x".repeat(9000)}).to_string();
    let malformed: Vec<String> = vec![
        "hello".into(),
        "{".into(),
        "[]".into(),
        "null".into(),
        r#"{"action":7}"#.into(),
        r#"{"action":"dance"}"#.into(),
        r#"{"action":"sendMessage"}"#.into(),
        r#"{"action":"sendMessage","id":"a b","content":"x"}"#.into(),
        r#"{"action":"sendMessage","id":"e","content":"  "}"#.into(),
        r#"{"action":"stop","reply_to":12345678901234567890123}"#.into(),
        r#"{"action":"resume","reply_to":"nope"}"#.into(),
        r#"{"action":"regenerate","reply_to":""}"#.into(),
        "\u{0}\u{1}\u{fffd}".into(),
        deep,
        big,
    ];
    let total = 10_000;
    let batch = 200;
    let mut errors = 0;
    for start in (0..total).step_by(batch) {
        for i in start..start + batch {
            ws.send_text(&malformed[i % malformed.len()]).await;
        }
        for _ in 0..batch {
            match ws.next_frame().await {
                ServerFrame::Error { .. } => errors += 1,
                other => panic!("expected an error frame, got {other:?}"),
            }
        }
    }
    assert_eq!(errors, total);
    assert!(app.session(&session.token).await.messages.is_empty(), "nothing stored");
    assert_eq!(app.stream_len().await, 0, "nothing queued");
    ws.ask("ok", "still there?").await;
    assert_eq!(ws.read_reply().await.text, "You said: still there?");
}

/// The `action` of a frame, as the client sent it.
fn action_of(frame: &ClientFrame) -> &'static str {
    match frame {
        ClientFrame::SendMessage { .. } => chat_wire::ACTION_SEND_MESSAGE,
        ClientFrame::Stop { .. } => chat_wire::ACTION_STOP,
        ClientFrame::Ping => chat_wire::ACTION_PING,
        ClientFrame::Resume { .. } => chat_wire::ACTION_RESUME,
        ClientFrame::Regenerate { .. } => chat_wire::ACTION_REGENERATE,
    }
}

/// A request path as the routes name it: `/conversations/{id}` for any conversation's.
fn route_of(path: &str) -> String {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match segments.as_slice() {
        ["", "conversations", _] => "/conversations/{id}".to_string(),
        ["", "conversations", _, rest] => format!("/conversations/{{id}}/{rest}"),
        _ => path.trim_end_matches('/').to_string(),
    }
}
