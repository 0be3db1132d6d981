//! Redis goes away and comes back (append-only persistence on, as production should run it): the
//! person gets clear errors meanwhile, nothing panics, every part reconnects by itself, and
//! everything acknowledged before the outage is still there.

use chat_wire::{ErrorCode, ReplyStatus, ServerFrame};

use chat_testkit::spawn_app;

#[tokio::test]
async fn a_redis_outage_gives_clear_errors_and_loses_nothing_acknowledged() {
    let mut app = spawn_app().await;
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "remember this").await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));

    // SIGKILL: no chance to flush anything more (what it acknowledged is in its append-only file:
    // the tests' servers write it before they answer, `appendfsync no`).
    app.redis.server().stop().await;
    let during =
        app.http.get(format!("{}/chat_history", app.base)).query(&[("token", &session.token)]).send().await.unwrap();
    // PROTOCOL.md: `unavailable`, 503, retry after `retry_after` seconds, in the header too.
    assert_eq!(during.status(), 503);
    let header: u64 = during.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(header >= 1, "{header}");
    let body: serde_json::Value = during.json().await.unwrap();
    assert_eq!((body["code"].as_str(), body["retry_after"].as_u64()), (Some("unavailable"), Some(header)));
    ws.send_message("m2", "are you there?").await;
    match ws.next_frame().await {
        ServerFrame::Error { code, reply_to, retry_after, message, .. } => {
            assert_eq!((code, reply_to.as_deref()), (ErrorCode::Unavailable, Some("m2")));
            assert!(retry_after.is_some_and(|seconds| seconds >= 1), "{retry_after:?}");
            assert!(!message.is_empty());
        }
        other => panic!("expected an error frame, got {other:?}"),
    }

    app.redis.server().restart().await.unwrap();
    let history = app.session(&session.token).await;
    let kept: Vec<_> = history.messages.iter().map(|m| (m.id.as_str(), m.msg.as_str(), m.status)).collect();
    assert_eq!(
        kept,
        [("m1", "remember this", ReplyStatus::Done), ("m1.reply", "You said: remember this", ReplyStatus::Done)]
    );
    // The same connection, the gateway and the worker carry on without a restart of their own.
    ws.ask("m2", "are you there?").await;
    let reply = ws.read_reply().await;
    assert!(matches!(reply.end, ServerFrame::Done { status: ReplyStatus::Done, .. }), "{:?}", reply.end);
    assert_eq!(app.session(&session.token).await.messages.len(), 4);
}

#[tokio::test]
async fn the_local_redis_can_put_every_acknowledged_write_on_disk_first() {
    let local = chat_testkit::Vars::default()
        .with(&[("LOCAL_REDIS_APPENDFSYNC", "always")])
        .local_config()
        .expect("local settings");
    let dir = chat_testkit::TempDir::new("fsync");
    let redis = chat_local::redis_server::RedisServer::start_persistent(dir.path(), local.redis_fsync).await.unwrap();
    let mut conn = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let setting: (String, String) =
        redis::cmd("CONFIG").arg("GET").arg("appendfsync").query_async(&mut conn).await.unwrap();
    assert_eq!(setting.1, "always");
    let append_only: (String, String) =
        redis::cmd("CONFIG").arg("GET").arg("appendonly").query_async(&mut conn).await.unwrap();
    assert_eq!(append_only.1, "yes");
    let refused = chat_testkit::Vars::default().with(&[("LOCAL_REDIS_APPENDFSYNC", "sometimes")]).local_config();
    assert!(refused.is_err(), "an unknown policy is refused");
}
