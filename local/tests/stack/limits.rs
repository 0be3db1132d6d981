//! Every limit is configurable and answers with a clear error: message rate per session, session
//! creation per address, stored history, the model's context, reply length, idle connections.

use std::time::Duration;

use chat_wire::{ErrorCode, ServerFrame};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use chat_testkit::{on_each_store, StoreKind, TestApp};

async fn a_session_over_its_message_rate_waits_for_the_window(kind: StoreKind) {
    let app = TestApp::builder()
        .vars(
            // A window long enough for three round trips on a busy machine: the window starts with the
            // first question, and the fourth must land inside it.
            &[("MESSAGES_PER_SESSION_PER_WINDOW", "3"), ("RATE_LIMIT_WINDOW_SECONDS", "5")],
        )
        .on(kind)
        .spawn()
        .await;
    let (session, mut ws) = app.signed_in("Ada").await;
    for i in 0..3 {
        ws.ask(&format!("m{i}"), "hi").await;
        ws.read_reply().await;
    }
    ws.send_message("m3", "one too many").await;
    let retry_after = match ws.next_frame().await {
        ServerFrame::Error { code: ErrorCode::RateLimited, reply_to, retry_after, message, .. } => {
            assert_eq!(reply_to.as_deref(), Some("m3"));
            assert!(!message.is_empty());
            retry_after.expect("a rate limit says when to retry")
        }
        other => panic!("expected rate_limited, got {other:?}"),
    };
    assert!((1..=5).contains(&retry_after), "{retry_after}");
    assert_eq!(app.session(&session.token).await.messages.len(), 6, "the refused message is not stored");
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    ws.ask("m3", "now?").await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));
}

#[tokio::test]
async fn an_address_over_its_session_rate_gets_429_with_retry_after() {
    let app = TestApp::builder().vars(&[("SESSIONS_PER_IP_PER_WINDOW", "2")]).spawn().await;
    app.create_session("one").await;
    app.create_session("two").await;
    let refused = app.http.post(format!("{}/token", app.base)).form(&[("name", "three")]).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let header: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&header), "{header}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["retry_after"].as_u64(), Some(header));
    // The address is the connection's, as API Gateway's sourceIp: headers a client writes itself
    // name any address they like and change nothing.
    for (i, forged) in ["203.0.113.7", "198.51.100.1, 127.0.0.1", "2001:db8::1"].into_iter().enumerate() {
        let response = app
            .http
            .post(format!("{}/token", app.base))
            .header("X-Forwarded-For", forged)
            .header("X-Real-IP", forged)
            .header("Forwarded", format!("for={forged}"))
            .form(&[("name", format!("forger{i}"))])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429, "X-Forwarded-For: {forged}");
    }
}

async fn history_is_capped_the_model_sees_the_last_n_and_replies_are_bounded(kind: StoreKind) {
    let app = TestApp::builder()
        .vars(&[("MAX_HISTORY_MESSAGES", "4"), ("CONTEXT_MESSAGES", "3"), ("MAX_REPLY_TOKENS", "3")])
        .on(kind)
        .spawn()
        .await;
    let (session, mut ws) = app.signed_in("Ada").await;
    for i in 0..4 {
        ws.ask(&format!("m{i}"), &format!("question {i} is long enough")).await;
        let reply = ws.read_reply().await;
        // The stub honours max_tokens, one word a token: three words.
        assert_eq!(reply.text, format!("You said: question "));
    }
    // The bound is the product's: every request it sent asked for at most MAX_REPLY_TOKENS.
    let requests = app.stub.requests();
    assert_eq!(requests.len(), 4);
    assert!(requests.iter().all(|r| r["max_tokens"] == 3), "{requests:?}");
    let history = app.session(&session.token).await;
    let ids: Vec<_> = history.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["m2", "m2.reply", "m3", "m3.reply"], "the oldest are trimmed");
    // Trimmed from storage, not only from the order the history reads: the messages hash holds
    // the four kept.
    let keys = chat_testkit::main_keys(&session.token);
    let mut redis = app.redis().await;
    let mut stored: Vec<String> = redis::AsyncCommands::hkeys(&mut redis, &keys.messages).await.unwrap();
    stored.sort();
    assert_eq!(stored, ["m2", "m2.reply", "m3", "m3.reply"], "the messages hash is trimmed too");
    let last = requests.last().unwrap();
    let contents: Vec<_> = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] != "system")
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(contents, ["question 2 is long enough", "You said: question ", "question 3 is long enough"]);
}

#[tokio::test]
async fn idle_connections_close_like_api_gateway_and_pings_keep_them_open() {
    const IDLE: Duration = Duration::from_secs(2);
    const MAX_AGE: Duration = Duration::from_secs(8);
    let app =
        TestApp::builder().vars(&[("LOCAL_WS_IDLE_TIMEOUT_SECONDS", "2"), ("LOCAL_WS_MAX_SECONDS", "8")]).spawn().await;
    let session = app.create_session("Ada").await;
    // Taken before either connects: the gateway's clocks start later, so no close can come
    // sooner than its timeout after this.
    let started = tokio::time::Instant::now();
    let mut idle = app.connect(&session.token).await;
    let mut pinging = app.connect(&session.token).await;
    let mut idle_closed = None;
    let mut pong_after_idle_closed = false;
    let mut pinging_closed = None;
    let mut ping = tokio::time::interval(Duration::from_millis(400));
    let watched = tokio::time::timeout(Duration::from_secs(60), async {
        while pinging_closed.is_none() {
            tokio::select! {
                message = idle.stream.next(), if idle_closed.is_none() => match message {
                    Some(Ok(Message::Close(frame))) => idle_closed = Some((started.elapsed(), frame.map(|f| u16::from(f.code)))),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => idle_closed = Some((started.elapsed(), None)),
                },
                message = pinging.stream.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        assert_eq!(serde_json::from_str::<ServerFrame>(&text).unwrap(), ServerFrame::Pong);
                        pong_after_idle_closed |= idle_closed.is_some();
                    }
                    Some(Ok(Message::Close(frame))) => pinging_closed = Some((started.elapsed(), frame.map(|f| u16::from(f.code)))),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => pinging_closed = Some((started.elapsed(), None)),
                },
                _ = ping.tick() => {
                    let _ = pinging.try_send_text(r#"{"action":"ping"}"#).await;
                }
            }
        }
    })
    .await;
    assert!(watched.is_ok(), "the pinging connection closed within a minute");
    let (idle_for, idle_code) = idle_closed.expect("the idle connection closed");
    assert_eq!(idle_code, Some(1001), "Going away");
    assert!(idle_for >= IDLE, "not before LOCAL_WS_IDLE_TIMEOUT_SECONDS: {idle_for:?}");
    // Pinging kept the other open past the idle timeout, until the connection's maximum age.
    assert!(pong_after_idle_closed, "the pinging connection answered after the idle one closed");
    let (pinging_for, pinging_code) = pinging_closed.unwrap();
    assert_eq!(pinging_code, Some(1001));
    assert!(pinging_for >= MAX_AGE, "not before LOCAL_WS_MAX_SECONDS: {pinging_for:?}");
}

#[tokio::test]
async fn an_oversized_message_stays_out_of_the_next_questions_context() {
    // A 2,048-token window with 1,024 for the reply, as the embedded model runs: an 8 KB message
    // alone is over the context's share.
    let app = TestApp::builder().vars(&[("MODEL_CONTEXT_TOKENS", "2048"), ("MAX_REPLY_TOKENS", "1024")]).spawn().await;
    let (_, mut ws) = app.signed_in("Ada").await;
    let huge = "lorem ipsum ".repeat(680);
    assert!(huge.len() <= 8192);
    ws.ask("m1", &huge).await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));
    // Its own question is sent whatever its size: the model may refuse that one.
    let first = app.stub.requests().pop().unwrap();
    assert_eq!(first["messages"].as_array().unwrap().last().unwrap()["content"], huge.as_str());

    ws.ask("m2", "and now a short one").await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));
    let next = app.stub.requests().pop().unwrap();
    let contents: Vec<&str> =
        next["messages"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(contents.first(), Some(&app.config.model.system_prompt.as_str()), "the system prompt stays");
    assert_eq!(contents.last(), Some(&"and now a short one"));
    assert!(!contents.contains(&huge.as_str()), "the oversized message left the context");
    let estimated: usize = contents.iter().map(|c| chat_worker::context::estimated_tokens(c)).sum();
    assert!(estimated <= 1024, "within the context's share: {estimated}");
}

async fn history_is_capped_in_bytes_and_read_in_pages(kind: StoreKind) {
    let app = TestApp::builder()
        .vars(&[
            ("MAX_CONVERSATION_BYTES", "20000"),
            ("HISTORY_PAGE_BYTES", "6000"),
            ("MESSAGES_PER_SESSION_PER_WINDOW", "0"),
        ])
        .on(kind)
        .spawn()
        .await;
    let (session, mut ws) = app.signed_in("Ada").await;
    for i in 0..10 {
        ws.ask(&format!("q{i}"), &format!("{i} {}", "x".repeat(1500))).await;
        assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));
    }
    // Twenty messages of ~1.6 KB of JSON each: the oldest went, the stored bytes stay under the cap
    // and the session's count of them is exact.
    let keys = chat_testkit::main_keys(&session.token);
    let mut redis = app.redis().await;
    let stored: Vec<String> = redis::AsyncCommands::hvals(&mut redis, &keys.messages).await.unwrap();
    let total: usize = stored.iter().map(String::len).sum();
    let counted: usize = redis::AsyncCommands::hget(&mut redis, &keys.meta, "bytes").await.unwrap();
    assert!(total <= 20000 && total > 15000, "{total} bytes stored");
    assert_eq!(counted, total);
    let token = chat_wire::Token::parse(&session.token).unwrap();
    let whole = chat_core::Store::connect(&app.config)
        .unwrap()
        .history(&token, &chat_wire::ConversationId::main())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(whole.messages.last().unwrap().id, "q9.reply");
    assert!(whole.messages.len() < 20 && whole.messages.len() >= 10, "{} kept", whole.messages.len());

    // Pages of at most 6,000 bytes, newest first, until `has_more` is gone: together, the history.
    let page = |query: Vec<(&'static str, String)>| {
        let mut query = query;
        query.push(("token", session.token.clone()));
        app.http.get(format!("{}/chat_history", app.base)).query(&query).send()
    };
    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let query = before.iter().map(|id| ("before", id.clone())).collect();
        let body: serde_json::Value = page(query).await.unwrap().json().await.unwrap();
        let ids: Vec<String> =
            body["messages"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().into()).collect();
        let bytes: usize = body["messages"].as_array().unwrap().iter().map(|m| m.to_string().len()).sum();
        assert!(bytes <= 6000 + 500 && !ids.is_empty(), "a page of {bytes} bytes: {ids:?}");
        before = ids.first().cloned();
        pages.insert(0, ids);
        if body.get("has_more") != Some(&serde_json::Value::Bool(true)) {
            break;
        }
        assert!(pages.len() < 20, "pages never end");
    }
    assert!(pages.len() >= 3, "{} pages", pages.len());
    let paged: Vec<String> = pages.concat();
    let all: Vec<String> = whole.messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(paged, all);

    // `limit`, and the errors of both parameters.
    let one: serde_json::Value = page(vec![("limit", "1".into())]).await.unwrap().json().await.unwrap();
    assert_eq!(one["messages"].as_array().unwrap().len(), 1);
    assert_eq!(one["has_more"], true);
    for (name, value, code) in [
        ("limit", "0", "invalid_parameter"),
        ("limit", "x", "invalid_parameter"),
        ("before", "nope", "unknown_message"),
    ] {
        let response = page(vec![(name, value.into())]).await.unwrap();
        assert_eq!(response.status().as_u16(), 400);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], code, "{name}={value}");
    }
}

#[tokio::test]
async fn history_reads_are_rate_limited_per_session() {
    let app = TestApp::builder().vars(&[("HISTORY_READS_PER_SESSION_PER_WINDOW", "3")]).spawn().await;
    let session = app.create_session("Ada").await;
    let other = app.create_session("Bob").await;
    for _ in 0..3 {
        assert_eq!(app.history(&session.token).await.0, 200);
    }
    let response =
        app.http.get(format!("{}/chat_history", app.base)).query(&[("token", &session.token)]).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    // Counted per session: another one reads on.
    assert_eq!(app.history(&other.token).await.0, 200);
}

on_each_store!(
    history_is_capped_in_bytes_and_read_in_pages,
    a_session_over_its_message_rate_waits_for_the_window,
    history_is_capped_the_model_sees_the_last_n_and_replies_are_bounded,
);
