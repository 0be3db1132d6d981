//! One user must not hurt others, and a second device must not be logged out: connections per
//! session are capped, frames per connection are counted (and a flooding connection is closed),
//! and every frame keeps its connection known for the session's lifetime.

use std::time::Duration;

use chat_wire::{ErrorCode, ReplyStatus, ServerFrame};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use chat_testkit::{on_each_store, StoreKind, TestApp, WsClient};

const PING: &str = r#"{"action":"ping"}"#;

/// Reads until the server closes the connection; `false` if it is still open after `within`.
async fn closed_within(ws: &mut WsClient, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.stream.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

async fn a_session_holds_at_most_ten_connections(kind: StoreKind) {
    let app = TestApp::builder().on(kind).spawn().await;
    assert_eq!(app.config.max_connections_per_session, 10, "the default");
    let session = app.create_session("Ada").await;
    let mut open = Vec::new();
    for _ in 0..10 {
        open.push(app.connect(&session.token).await);
    }
    match WsClient::connect(&app.ws_url, &session.token).await {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429);
            let body: serde_json::Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["code"], "too_many_connections", "{body}");
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("an eleventh connection was admitted"),
    }
    // Another session is not affected, and a closed connection frees its place.
    let (_, _bob) = app.signed_in("Bob").await;
    open.pop().unwrap().close().await;
    let mut admitted = None;
    for _ in 0..200 {
        if let Ok(ws) = WsClient::connect(&app.ws_url, &session.token).await {
            admitted = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut again = admitted.expect("a place freed by $disconnect");
    again.send_text(PING).await;
    assert_eq!(again.next_frame().await, ServerFrame::Pong);
}

async fn connections_gone_without_disconnect_do_not_hold_a_sessions_places(kind: StoreKind) {
    let app = TestApp::builder().on(kind).spawn().await;
    let session = app.create_session("Ada").await;
    let token = chat_wire::Token::parse(&session.token).unwrap();
    // Ten connections whose `$disconnect` never came: bound to the session, unknown to the gateway.
    let store = chat_core::Store::connect(&app.config).unwrap();
    for n in 0..10 {
        let gone = chat_wire::ConnectionId::parse(&format!("gone{n}=")).unwrap();
        assert!(matches!(store.bind_connection(&gone, &token).await.unwrap(), chat_core::Bound::Bound));
    }
    // An eleventh is admitted: the gateway said the ten were gone, and they are forgotten.
    let mut eleventh = app.connect(&session.token).await;
    eleventh.send_text(PING).await;
    assert_eq!(eleventh.next_frame().await, ServerFrame::Pong);
    let held = store.session_connections(&token).await.unwrap();
    assert_eq!(held.len(), 1, "only the live connection is held: {held:?}");
}

async fn a_flooding_connection_is_refused_then_closed_and_others_go_on(kind: StoreKind) {
    let app = TestApp::builder().vars(&[("FRAMES_PER_CONNECTION_PER_WINDOW", "5")]).on(kind).spawn().await;
    let (session, mut flood) = app.signed_in("Ada").await;
    let mut calm = app.connect(&session.token).await;
    for _ in 0..5 {
        flood.send_text(PING).await;
        assert_eq!(flood.next_frame().await, ServerFrame::Pong);
    }
    // Over the limit: every kind of frame is refused, a question included (and not stored).
    flood.send_message("m1", "let me in").await;
    match flood.next_frame().await {
        ServerFrame::Error { code, reply_to, retry_after, .. } => {
            assert_eq!((code, reply_to.as_deref()), (ErrorCode::RateLimited, Some("m1")));
            assert!(retry_after.is_some_and(|s| (1..=60).contains(&s)), "{retry_after:?}");
        }
        other => panic!("expected rate_limited, got {other:?}"),
    }
    assert!(app.session(&session.token).await.messages.is_empty());
    // It keeps going: once as many again are refused, the server closes it.
    for _ in 0..4 {
        flood.send_text(PING).await;
        assert!(matches!(flood.next_frame().await, ServerFrame::Error { code: ErrorCode::RateLimited, .. }));
    }
    flood.send_text(PING).await;
    assert!(closed_within(&mut flood, Duration::from_secs(5)).await, "the flooding connection was closed");

    // The session's other connection is counted on its own.
    calm.ask("m2", "still here").await;
    let reply = calm.read_reply().await;
    assert!(matches!(reply.end, ServerFrame::Done { status: ReplyStatus::Done, .. }), "{:?}", reply.end);
}

async fn a_lost_connection_mapping_asks_the_client_to_reconnect(kind: StoreKind) {
    let app = TestApp::builder().on(kind).spawn().await;
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.send_text(PING).await;
    assert_eq!(ws.next_frame().await, ServerFrame::Pong);
    // Every mapping is lost (an eviction, a flushed replica promoted): even a ping says so.
    let mut redis = app.redis().await;
    let keys: Vec<String> = match app.redis.cluster() {
        Some(_) => {
            // KEYS does not span a cluster; the one connection's mapping is found through the
            // session's set of connections.
            let ids: Vec<String> =
                redis::AsyncCommands::smembers(&mut redis, chat_testkit::session_keys(&session.token).conns)
                    .await
                    .unwrap();
            ids.iter().map(|id| format!("chat:conn:{{{id}}}")).collect()
        }
        None => redis::AsyncCommands::keys(&mut redis, "chat:conn:*").await.unwrap(),
    };
    assert_eq!(keys.iter().filter(|k| !k.ends_with(":frames")).count(), 1, "{keys:?}");
    for key in keys {
        let _: usize = redis::AsyncCommands::del(&mut redis, key).await.unwrap();
    }
    ws.send_text(PING).await;
    assert!(matches!(ws.next_frame().await, ServerFrame::Error { code: ErrorCode::Reconnect, .. }));
    // A new connection with the same token carries on: the session was alive all along.
    let mut again = app.connect(&session.token).await;
    again.ask("m1", "hello again").await;
    assert!(matches!(again.read_reply().await.end, ServerFrame::Done { status: ReplyStatus::Done, .. }));
}

async fn a_second_device_stays_connected_while_the_first_keeps_the_session_alive(kind: StoreKind) {
    let app = TestApp::builder().vars(&[("SESSION_TTL_SECONDS", "8")]).on(kind).spawn().await;
    let (session, mut phone) = app.signed_in("Ada").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The laptop joins late: its mapping gets the session's remaining four seconds or so.
    let mut laptop = app.connect(&session.token).await;
    let before = app.connection_mappings_pttl(&session.token).await;
    assert_eq!(before.len(), 2, "two connections: {before:?}");
    let first_lifetime = *before.iter().max().unwrap();
    let measured = tokio::time::Instant::now();
    // The phone keeps chatting (the session lives on); the laptop only pings.
    phone.ask("m1", "keep the session alive").await;
    let on_phone = phone.read_reply().await;
    laptop.send_text(PING).await;
    let mut pong = false;
    while !pong {
        match laptop.next_frame().await {
            ServerFrame::Pong => pong = true,
            ServerFrame::Delta { .. } | ServerFrame::Done { .. } => {}
            other => panic!("expected pong, got {other:?}"),
        }
    }
    // Each connection's own frames renew its mapping, to the session's lifetime (which the
    // phone's question renewed): the laptop's ping moved its mapping's end past its first one.
    let after = app.connection_mappings_pttl(&session.token).await;
    assert!(
        after.iter().all(|&pttl| pttl > first_lifetime),
        "the question and the ping renewed both mappings: {before:?} -> {after:?}"
    );
    // Past the laptop's first mapping lifetime, inside the renewed one: still known.
    tokio::time::sleep_until(measured + Duration::from_millis(first_lifetime + 500)).await;
    laptop.send_text(r#"{"action":"resume","reply_to":"m1"}"#).await;
    match laptop.next_frame().await {
        ServerFrame::Snapshot { text, status, .. } => {
            assert_eq!((text.as_str(), status), (on_phone.text.as_str(), ReplyStatus::Done));
        }
        other => panic!("the laptop was logged out: {other:?}"),
    }
}

async fn new_chat_revokes_the_old_token_everywhere(kind: StoreKind) {
    let app = TestApp::builder().on(kind).spawn().await;
    let (session, mut laptop) = app.signed_in("Ada").await;
    laptop.ask("m1", "something private").await;
    assert!(matches!(laptop.read_reply().await.end, ServerFrame::Done { .. }));
    let mut phone = app.connect(&session.token).await;

    let revoke = |token: &str| app.http.delete(format!("{}/token", app.base)).query(&[("token", token)]).send();
    let response = revoke(&session.token).await.unwrap();
    assert_eq!(response.status().as_u16(), 204);
    // Gone from the store: history, connections, every key of the session.
    let (status, body) = app.history(&session.token).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("session_expired")));
    let keys = chat_testkit::session_keys(&session.token);
    let main = chat_testkit::main_keys(&session.token);
    let mut redis = app.redis().await;
    for key in
        [keys.session, keys.convs, keys.conns, keys.rate, main.meta, main.order, main.messages, main.lock, main.queued]
    {
        let exists: bool = redis::AsyncCommands::exists(&mut redis, &key).await.unwrap();
        assert!(!exists, "{key} outlived the revocation");
    }
    // Every device still connected has its socket closed by the revocation, and a reconnection
    // is refused.
    assert!(closed_within(&mut phone, Duration::from_secs(5)).await, "the phone's socket was closed");
    assert!(closed_within(&mut laptop, Duration::from_secs(5)).await, "the laptop's socket was closed");
    match WsClient::connect(&app.ws_url, &session.token).await {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 403),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a revoked token opened a connection"),
    }
    // Revoking again, or an unknown token, is no error; no token is.
    assert_eq!(revoke(&session.token).await.unwrap().status().as_u16(), 204);
    let missing = app.http.delete(format!("{}/token", app.base)).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 400);
}

on_each_store!(
    a_session_holds_at_most_ten_connections,
    connections_gone_without_disconnect_do_not_hold_a_sessions_places,
    a_flooding_connection_is_refused_then_closed_and_others_go_on,
    a_lost_connection_mapping_asks_the_client_to_reconnect,
    a_second_device_stays_connected_while_the_first_keeps_the_session_alive,
    new_chat_revokes_the_old_token_everywhere,
);
