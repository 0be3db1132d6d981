//! The local gateway protects itself as API Gateway's front door would: its Management API is
//! reachable only under the run's secret path and from loopback, a client that trickles its
//! headers is dropped, open connections are capped, and a WebSocket upgrade that never completes
//! leaves no connection behind.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use chat_wire::ServerFrame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use chat_testkit::{spawn_app, Options, Pacing, TestApp};

/// The gateway's `host:port`.
fn address(base: &str) -> String {
    base.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection or answers; `true` if that happens within `within`.
async fn server_gives_up_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(within, stream.read(&mut buffer)).await.is_ok()
}

/// This machine's address on its first non-loopback interface (the one a route out would use).
fn non_loopback_address() -> IpAddr {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    probe.connect("10.255.255.255:9").unwrap(); // no packet is sent: this only picks a route
    let ip = probe.local_addr().unwrap().ip();
    assert!(!ip.is_loopback(), "this machine needs a non-loopback address for this test: {ip}");
    ip
}

#[tokio::test]
async fn only_the_secret_path_from_loopback_reaches_the_management_api() {
    let app = spawn_app().await;
    let (session, mut ws) = app.signed_in("Ada").await;
    let mut redis = app.redis().await;
    let ids: Vec<String> =
        redis::AsyncCommands::smembers(&mut redis, chat_testkit::session_keys(&session.token).conns).await.unwrap();
    let id = ids.first().unwrap();
    let forged = r#"{"type":"delta","id":"x.reply","reply_to":"x","seq":0,"text":"injected"}"#;
    let encoded = id.replace('/', "%2F").replace('+', "%2B").replace('=', "%3D");

    // The stage path API Gateway uses, and any other guess, is not the Management API.
    for path in [format!("/local/@connections/{encoded}"), format!("/@connections/{encoded}")] {
        let status = app.http.post(format!("{}{path}", app.base)).body(forged).send().await.unwrap().status();
        assert_eq!(status.as_u16(), 404, "{path}");
    }
    // The secret path works from loopback, as the worker posts.
    let endpoint = app.config.ws_management_endpoint.clone().unwrap();
    let pong = r#"{"type":"pong"}"#;
    let status = app.http.post(format!("{endpoint}/@connections/{encoded}")).body(pong).send().await.unwrap().status();
    assert_eq!(status.as_u16(), 200);
    assert_eq!(ws.next_frame().await, ServerFrame::Pong);
    assert!(ws.frame_before(tokio::time::Instant::now() + Duration::from_millis(300)).await.is_none());
}

#[tokio::test]
async fn the_management_api_refuses_peers_off_this_machine() {
    // A gateway listening on every interface, reached through this machine's own network address:
    // the peer is not loopback, though it knows the secret path.
    let redis = chat_local::redis_server::RedisServer::start(&chat_testkit::TempDir::new("gw").path().join("r"), false)
        .await
        .unwrap();
    let stub = chat_testkit::StubModel::start(Pacing::default()).await;
    let config = chat_testkit::test_config(&redis.url(), &stub, &[]);
    let options = Options::default();
    let secret = options.management_secret.clone();
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(chat_local::run(listener, config, options, async {
        let _ = stopped.await;
    }));
    let outside = SocketAddr::new(non_loopback_address(), port);
    let url = format!("http://{outside}/{secret}/@connections/abc%3D");
    let http = reqwest::Client::new();
    let mut status = None;
    for _ in 0..200 {
        if let Ok(response) = http.post(&url).body("{}").send().await {
            status = Some(response.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, Some(403));
    // From loopback the same path answers as API Gateway would for an unknown connection.
    let inside = format!("http://127.0.0.1:{port}/{secret}/@connections/abc%3D");
    assert_eq!(http.post(&inside).body("{}").send().await.unwrap().status().as_u16(), 410);
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_dropped() {
    let app = TestApp::builder().vars(&[("LOCAL_HEADER_READ_TIMEOUT_SECONDS", "1")]).spawn().await;
    let mut slow = TcpStream::connect(address(&app.base)).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: local\r\nX-Slow: ").await.unwrap();
    // Never finished: the gateway answers or closes after its header-read timeout, not never.
    assert!(server_gives_up_within(&mut slow, Duration::from_secs(5)).await, "the connection is still held");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let app = TestApp::builder().vars(&[("LOCAL_MAX_CONNECTIONS", "3")]).spawn().await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(address(&app.base)).await.unwrap();
        // A whole request without closing: keep-alive holds the connection.
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: local\r\n\r\n").await.unwrap();
        let mut buffer = [0u8; 512];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    let fourth = reqwest::Client::builder().timeout(Duration::from_millis(700)).build().unwrap();
    assert!(fourth.get(format!("{}/health", app.base)).send().await.is_err(), "a fourth connection was served");
    drop(held.pop());
    let patient = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let response = patient.get(format!("{}/health", app.base)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn an_upgrade_the_client_abandons_leaves_no_connection_behind() {
    let app = spawn_app().await;
    let session = app.create_session("Ada").await;
    let mut redis = app.redis().await;
    // Writes wait for three seconds: the handshake's $connect is held while its client vanishes.
    let () = redis::cmd("CLIENT").arg("PAUSE").arg(3000).arg("WRITE").query_async(&mut redis).await.unwrap();
    let mut stream = TcpStream::connect(address(&app.base)).await.unwrap();
    let request = format!(
        "GET /chat?token={} HTTP/1.1\r\nHost: local\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        session.token
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // Time for the gateway to read the request and reach $connect (held by the pause).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Gone, with a reset: the handshake's answer will have nowhere to go.
    stream.set_zero_linger().unwrap();
    drop(stream);

    // Once writes resume, $connect binds the connection, and the failed upgrade unbinds it.
    let mut bound = 0;
    for _ in 0..500 {
        let stats: String = redis::cmd("INFO").arg("commandstats").query_async(&mut redis).await.unwrap();
        bound = stats
            .lines()
            .find_map(|line| line.strip_prefix("cmdstat_sadd:calls="))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |calls| calls.parse().unwrap());
        if bound > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(bound, 1, "the handshake bound its connection");
    let key = chat_testkit::session_keys(&session.token).conns;
    let mut left: Vec<String> = Vec::new();
    for _ in 0..200 {
        left = redis::AsyncCommands::smembers(&mut redis, &key).await.unwrap();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(left.is_empty(), "the abandoned connection is still bound: {left:?}");
    let mut ws = app.connect(&session.token).await;
    ws.send_text(r#"{"action":"ping"}"#).await;
    assert_eq!(ws.next_frame().await, ServerFrame::Pong);
}
