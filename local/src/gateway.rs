//! An API Gateway emulator: the HTTP API, the WebSocket API and the Management API on one port.
//!
//! It turns each HTTP request into the `ApiGatewayV2httpRequest` event API Gateway's HTTP API
//! sends and each WebSocket event into an `ApiGatewayWebsocketProxyRequest`, then calls the very
//! handlers the Lambda binaries wrap. It serves `POST/GET/DELETE /{secret}/@connections/{id}` as
//! the Management API does (410 with `x-amzn-ErrorType: GoneException` for an unknown connection),
//! so the worker's AWS SDK client works against it unchanged. API Gateway checks the caller's IAM
//! signature; the emulator serves the Management API only under the run's secret path and only to
//! loopback peers, so nobody else can post frames to, or close, a person's socket.
//!
//! Like API Gateway: frames are capped at 32 KiB and messages at 128 KiB, idle connections close
//! after `LOCAL_WS_IDLE_TIMEOUT_SECONDS` and every connection after `LOCAL_WS_MAX_SECONDS`; the
//! `$default` route's response body goes back to the client (a route response).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::apigw::{
    ApiGatewayProxyResponse, ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContextHttpDescription,
    ApiGatewayWebsocketProxyRequest,
};
use aws_lambda_events::encodings::Body as EventBody;
use aws_lambda_events::query_map::QueryMap;
use axum::body::{to_bytes, Body, Bytes};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use base64::Engine;
use chat_functions::{http as api, ws, AppState};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// API Gateway's hard limit on one WebSocket frame.
pub const MAX_FRAME_BYTES: usize = 32 * 1024;
/// API Gateway's hard limit on one WebSocket message.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;
/// The stage name the emulator puts in events and in the Management API path.
pub const STAGE: &str = "local";
/// Frames queued for one connection before posts to it start waiting.
const OUTBOX_FRAMES: usize = 256;
/// How long a post may wait for a slow client before the connection counts as gone.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

enum Outbound {
    Frame(Message),
    Close,
}

struct Connection {
    outbox: mpsc::Sender<Outbound>,
    connected_at: i64,
    source_ip: String,
}

/// The emulator's state: the handlers' state and the live connections.
pub struct Gateway {
    state: AppState,
    management_secret: String,
    /// The address the gateway listens on: a peer with it is this machine too.
    own_ip: std::net::IpAddr,
    connections: Mutex<HashMap<String, Connection>>,
    idle_timeout: Duration,
    max_duration: Duration,
    closing: tokio::sync::watch::Sender<bool>,
}

impl Gateway {
    /// Closes every WebSocket connection with 1001 "Going away" (as API Gateway does when a
    /// stage is redeployed), so a shutdown does not wait on open sockets.
    pub fn close_all(&self) {
        let _ = self.closing.send(true);
    }

    /// Wraps the handlers' state.
    pub fn new(
        state: AppState,
        limits: crate::WebSocketLimits,
        management_secret: &str,
        own_ip: std::net::IpAddr,
    ) -> Arc<Self> {
        Arc::new(Gateway {
            state,
            management_secret: management_secret.to_string(),
            own_ip,
            connections: Mutex::new(HashMap::new()),
            idle_timeout: limits.idle_timeout,
            max_duration: limits.max_duration,
            closing: tokio::sync::watch::channel(false).0,
        })
    }
}

/// The emulator's routes: `/chat` (WebSocket), `/{secret}/@connections/{id}` and the HTTP API.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let management_path = format!("/{}/@connections/{{connection_id}}", gateway.management_secret);
    Router::new()
        .route("/chat", get(websocket))
        .route(&management_path, any(management))
        .fallback(http_api)
        .with_state(gateway)
}

async fn http_api(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, 1024 * 1024).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    let event = http_event(&parts.method, &parts.uri, &parts.headers, &body, peer);
    let request: lambda_http::Request = lambda_http::request::LambdaRequest::ApiGatewayV2(event).into();
    let response = api::handle(&gateway.state, request).await;
    let (parts, body) = response.into_parts();
    let bytes = match body {
        lambda_http::Body::Empty => Bytes::new(),
        lambda_http::Body::Text(text) => Bytes::from(text),
        lambda_http::Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    Response::from_parts(parts, Body::from(bytes))
}

/// The HTTP API (payload 2.0) event API Gateway would send for this request (public so property
/// tests feed the handlers exactly what the gateway would).
pub fn http_event(
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
    peer: SocketAddr,
) -> ApiGatewayV2httpRequest {
    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".into());
    event.route_key = Some("$default".into());
    event.raw_path = Some(uri.path().to_string());
    event.raw_query_string = uri.query().map(str::to_string);
    event.query_string_parameters = query_map(uri.query());
    event.headers = headers.clone();
    event.cookies = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|c| c.to_str().ok())
        .flat_map(|c| c.split("; ").map(str::to_string))
        .map(Some)
        .collect::<Option<Vec<_>>>()
        .filter(|c| !c.is_empty());
    let context = &mut event.request_context;
    context.route_key = Some("$default".into());
    context.stage = Some("$default".into());
    context.apiid = Some("local".into());
    context.domain_name = headers.get("host").and_then(|h| h.to_str().ok()).map(str::to_string);
    context.request_id = Some(uuid::Uuid::new_v4().to_string());
    context.time_epoch = chrono::Utc::now().timestamp_millis();
    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = method.clone();
    http.path = Some(uri.path().to_string());
    http.protocol = Some("HTTP/1.1".into());
    http.source_ip = Some(peer.ip().to_string());
    http.user_agent = headers.get("user-agent").and_then(|h| h.to_str().ok()).map(str::to_string);
    context.http = http;
    if !body.is_empty() {
        match std::str::from_utf8(body) {
            Ok(text) => event.body = Some(text.to_string()),
            Err(_) => {
                event.body = Some(base64::engine::general_purpose::STANDARD.encode(body));
                event.is_base64_encoded = true;
            }
        }
    }
    event
}

fn query_map(query: Option<&str>) -> QueryMap {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for (key, value) in url_pairs(query.unwrap_or_default()) {
        map.entry(key).or_default().push(value);
    }
    QueryMap::from(map)
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default()
}

/// The WebSocket event API Gateway would send for `route` on `connection_id`.
pub fn websocket_event(
    route: &str,
    connection_id: &str,
    connected_at: i64,
    source_ip: &str,
    domain: Option<String>,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    let (event_type, direction) = match route {
        "$connect" => ("CONNECT", "IN"),
        "$disconnect" => ("DISCONNECT", "IN"),
        _ => ("MESSAGE", "IN"),
    };
    let context = &mut event.request_context;
    context.route_key = Some(route.into());
    context.event_type = Some(event_type.into());
    context.message_direction = Some(direction.into());
    context.connection_id = Some(connection_id.into());
    context.connected_at = connected_at;
    context.domain_name = domain;
    context.stage = Some(STAGE.into());
    context.apiid = Some("local".into());
    context.request_id = Some(uuid::Uuid::new_v4().to_string());
    context.request_time_epoch = chrono::Utc::now().timestamp_millis();
    context.identity.source_ip = Some(source_ip.into());
    event
}

fn new_connection_id() -> String {
    // API Gateway's ids are 12 random bytes in base64, `=` included: the SDK must encode them.
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    format!("{}=", base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes))
}

async fn websocket(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    upgrade: WebSocketUpgrade,
) -> Response {
    let connection_id = new_connection_id();
    let connected_at = chrono::Utc::now().timestamp_millis();
    let source_ip = peer.ip().to_string();
    let domain = headers.get("host").and_then(|h| h.to_str().ok()).map(str::to_string);
    // Register the outbox before `$connect` runs, so a post racing the upgrade is queued, not lost.
    let (outbox, inbox) = mpsc::channel(OUTBOX_FRAMES);
    gateway.connections.lock().unwrap().insert(
        connection_id.clone(),
        Connection { outbox: outbox.clone(), connected_at, source_ip: source_ip.clone() },
    );
    let mut event = websocket_event("$connect", &connection_id, connected_at, &source_ip, domain.clone());
    event.query_string_parameters = query_map(uri.query());
    event.headers = headers;
    // $connect runs to its end in a task of its own: hyper drops this handler if the client
    // resets the connection meanwhile, and a $connect cut short could leave a binding nobody
    // removes. The task undoes an admission nobody is left to upgrade.
    let (answer, answered) = tokio::sync::oneshot::channel();
    let forget = Forget {
        gateway: gateway.clone(),
        connection_id: connection_id.clone(),
        connected_at,
        source_ip: source_ip.clone(),
        domain: domain.clone(),
    };
    let pending = forget.clone();
    tokio::spawn(async move {
        let response = ws::connect(&pending.gateway.state, event).await;
        if answer.send(response).is_err() {
            tracing::debug!("a client left during its handshake");
            pending.run().await;
        }
    });
    let Ok(response) = answered.await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if !(200..300).contains(&response.status_code) {
        gateway.connections.lock().unwrap().remove(&connection_id);
        return proxy_response(response);
    }
    // A client that never completes the upgrade (it vanished after the handshake's answer)
    // leaves nothing behind either.
    let abandoned = move |error: axum::Error| {
        tracing::debug!(error = %error, "a WebSocket upgrade never completed");
        tokio::spawn(async move { forget.run().await });
    };
    upgrade
        .on_failed_upgrade(abandoned)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_frame_size(MAX_FRAME_BYTES)
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            let link = Link { connection_id, connected_at, source_ip, domain, outbox };
            serve_connection(gateway, socket, link, inbox).await
        })
}

/// Forgets a connection that was admitted but never served: out of the gateway's table, and
/// `$disconnect` as if it had closed.
#[derive(Clone)]
struct Forget {
    gateway: Arc<Gateway>,
    connection_id: String,
    connected_at: i64,
    source_ip: String,
    domain: Option<String>,
}

impl Forget {
    async fn run(self) {
        self.gateway.connections.lock().unwrap().remove(&self.connection_id);
        let event =
            websocket_event("$disconnect", &self.connection_id, self.connected_at, &self.source_ip, self.domain);
        ws::disconnect(&self.gateway.state, event).await;
    }
}

struct Link {
    connection_id: String,
    connected_at: i64,
    source_ip: String,
    domain: Option<String>,
    outbox: mpsc::Sender<Outbound>,
}

async fn serve_connection(gateway: Arc<Gateway>, socket: WebSocket, link: Link, mut inbox: mpsc::Receiver<Outbound>) {
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(outbound) = inbox.recv().await {
            match outbound {
                Outbound::Frame(message) => {
                    if sink.send(message).await.is_err() {
                        break;
                    }
                }
                Outbound::Close => {
                    let _ =
                        sink.send(Message::Close(Some(CloseFrame { code: 1001, reason: "Going away".into() }))).await;
                    break;
                }
            }
        }
    });
    let closes_at = Instant::now() + gateway.max_duration;
    let mut idle_until = Instant::now() + gateway.idle_timeout;
    let mut closing = gateway.closing.subscribe();
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            _ = async { let _ = closing.wait_for(|closing| *closing).await; } => {
                let _ = link.outbox.send(Outbound::Close).await;
                break;
            }
            _ = tokio::time::sleep_until(idle_until.min(closes_at)) => {
                let _ = link.outbox.send(Outbound::Close).await;
                break;
            }
        };
        let (body, is_base64_encoded) = match next {
            Some(Ok(Message::Text(text))) => (text.to_string(), false),
            Some(Ok(Message::Binary(bytes))) => (base64::engine::general_purpose::STANDARD.encode(bytes), true),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                idle_until = Instant::now() + gateway.idle_timeout;
                continue;
            }
            Some(Ok(Message::Close(_))) | None => break,
            Some(Err(error)) => {
                tracing::debug!(error = %error, "websocket read failed");
                break;
            }
        };
        idle_until = Instant::now() + gateway.idle_timeout;
        let mut event =
            websocket_event("$default", &link.connection_id, link.connected_at, &link.source_ip, link.domain.clone());
        event.body = Some(body);
        event.is_base64_encoded = is_base64_encoded;
        let response = ws::message(&gateway.state, event).await;
        if let Some(EventBody::Text(text)) = response.body {
            if link.outbox.send(Outbound::Frame(Message::Text(text.into()))).await.is_err() {
                break;
            }
        }
    }
    gateway.connections.lock().unwrap().remove(&link.connection_id);
    drop(link.outbox);
    let _ = writer.await;
    let event = websocket_event("$disconnect", &link.connection_id, link.connected_at, &link.source_ip, link.domain);
    ws::disconnect(&gateway.state, event).await;
}

/// The Management API: `POST` sends a frame, `GET` describes the connection, `DELETE` closes it.
async fn management(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(connection_id): Path<String>,
    method: Method,
    body: Bytes,
) -> Response {
    if !peer.ip().is_loopback() && peer.ip() != gateway.own_ip {
        return (StatusCode::FORBIDDEN, r#"{"message":"Forbidden"}"#).into_response();
    }
    let (outbox, connected_at, source_ip) = {
        let connections = gateway.connections.lock().unwrap();
        match connections.get(&connection_id) {
            Some(c) => (c.outbox.clone(), c.connected_at, c.source_ip.clone()),
            None => return gone(),
        }
    };
    match method {
        Method::POST => {
            let message = match String::from_utf8(body.to_vec()) {
                Ok(text) => Message::Text(text.into()),
                Err(bytes) => Message::Binary(bytes.into_bytes().into()),
            };
            match tokio::time::timeout(POST_TIMEOUT, outbox.send(Outbound::Frame(message))).await {
                Ok(Ok(())) => StatusCode::OK.into_response(),
                _ => {
                    // A client that stopped reading is treated as API Gateway treats a dead one.
                    let _ = outbox.try_send(Outbound::Close);
                    gateway.connections.lock().unwrap().remove(&connection_id);
                    gone()
                }
            }
        }
        Method::GET => {
            let connected = chrono::DateTime::from_timestamp_millis(connected_at).unwrap_or_default();
            let body = serde_json::json!({
                "connectedAt": connected.to_rfc3339(),
                "identity": {"sourceIp": source_ip},
                "lastActiveAt": chrono::Utc::now().to_rfc3339(),
            });
            (StatusCode::OK, [("content-type", "application/json")], body.to_string()).into_response()
        }
        Method::DELETE => {
            let _ = outbox.try_send(Outbound::Close);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

fn gone() -> Response {
    let mut response = (StatusCode::GONE, r#"{"message":"Gone"}"#).into_response();
    let headers = response.headers_mut();
    headers.insert("x-amzn-ErrorType", HeaderValue::from_static("GoneException"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    response
}

fn proxy_response(response: ApiGatewayProxyResponse) -> Response {
    let status = StatusCode::from_u16(response.status_code as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match response.body {
        Some(EventBody::Text(text)) => Body::from(text),
        Some(EventBody::Binary(bytes)) => Body::from(bytes),
        _ => Body::empty(),
    };
    let mut out = Response::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = response.headers;
    out
}
