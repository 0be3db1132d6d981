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
//! after [`GatewayConfig::idle_timeout`] and every connection after
//! [`GatewayConfig::max_duration`]; the `$default` route's response body goes back to the client
//! (a route response).
//!
//! The emulator knows no product: it calls whatever [`Handlers`] it is given.
//!
//! Layout:
//! * this module: the [`Handlers`] it calls, the [`Gateway`] with its connection table, and the
//!   [`router`] (the HTTP API is served here);
//! * `events`: the events API Gateway would send, and the HTTP answer of a route's response;
//! * `websocket`: the WebSocket API, from the `$connect` handshake through the frames to `$disconnect`;
//! * `management`: `POST/GET/DELETE /{secret}/@connections/{id}`.

mod events;
mod management;
mod websocket;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use axum::body::to_bytes;
use axum::extract::ws::Message;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use tokio::sync::mpsc;

pub use events::{http_event, websocket_event};

/// API Gateway's hard limit on one WebSocket frame.
pub const MAX_FRAME_BYTES: usize = 32 * 1024;
/// API Gateway's hard limit on one WebSocket message.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;
/// The stage name the emulator puts in events and in the Management API path.
pub const STAGE: &str = "local";

/// The handlers behind the gateway, as the Lambdas behind API Gateway: the HTTP API and the
/// WebSocket API's three routes.
pub trait Handlers: Send + Sync + 'static {
    /// The HTTP API (payload 2.0): the request `lambda_http` would hand its handler.
    fn http(&self, request: lambda_http::Request) -> impl Future<Output = Response> + Send;

    /// `$connect`: a status outside 2xx refuses the handshake with that response.
    fn connect(&self, event: ApiGatewayWebsocketProxyRequest) -> impl Future<Output = ApiGatewayProxyResponse> + Send;

    /// `$default`, for every frame the client sends: a text body goes back to the client.
    fn message(&self, event: ApiGatewayWebsocketProxyRequest) -> impl Future<Output = ApiGatewayProxyResponse> + Send;

    /// `$disconnect`, once a connection is gone (its response is ignored, as API Gateway does).
    fn disconnect(
        &self,
        event: ApiGatewayWebsocketProxyRequest,
    ) -> impl Future<Output = ApiGatewayProxyResponse> + Send;
}

/// What the gateway is told besides its handlers.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The WebSocket API's path (this product's is `/chat`).
    pub websocket_path: String,
    /// The secret path segment of the Management API (`/{secret}/@connections/{id}`).
    pub management_secret: String,
    /// The address the gateway listens on: a peer with it is this machine too.
    pub own_ip: IpAddr,
    /// Idle WebSocket connections are closed after this long.
    pub idle_timeout: Duration,
    /// WebSocket connections are closed after this long.
    pub max_duration: Duration,
}

enum Outbound {
    Frame(Message),
    Close,
}

struct Connection {
    outbox: mpsc::Sender<Outbound>,
    connected_at: i64,
    source_ip: String,
}

/// The emulator's state: the handlers and the live connections.
pub struct Gateway<H> {
    handlers: H,
    config: GatewayConfig,
    connections: Mutex<HashMap<String, Connection>>,
    closing: tokio::sync::watch::Sender<bool>,
}

impl<H: Handlers> Gateway<H> {
    /// Wraps the handlers.
    pub fn new(handlers: H, config: GatewayConfig) -> Arc<Self> {
        Arc::new(Gateway {
            handlers,
            config,
            connections: Mutex::new(HashMap::new()),
            closing: tokio::sync::watch::channel(false).0,
        })
    }

    /// Closes every WebSocket connection with 1001 "Going away" (as API Gateway does when a
    /// stage is redeployed), so a shutdown does not wait on open sockets.
    pub fn close_all(&self) {
        let _ = self.closing.send(true);
    }

    /// Takes `connection_id` out of the table: the Management API answers 410 for it from now on.
    fn forget(&self, connection_id: &str) {
        self.connections.lock().unwrap().remove(connection_id);
    }
}

/// The emulator's routes: the WebSocket API's path, `/{secret}/@connections/{id}` and the HTTP API.
pub fn router<H: Handlers>(gateway: Arc<Gateway<H>>) -> Router {
    let management_path = format!("/{}/@connections/{{connection_id}}", gateway.config.management_secret);
    Router::new()
        .route(&gateway.config.websocket_path, get(websocket::upgrade::<H>))
        .route(&management_path, any(management::serve::<H>))
        .fallback(http_api::<H>)
        .with_state(gateway)
}

async fn http_api<H: Handlers>(
    State(gateway): State<Arc<Gateway<H>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, 1024 * 1024).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    let event = http_event(&parts.method, &parts.uri, &parts.headers, &body, peer);
    let request: lambda_http::Request = lambda_http::request::LambdaRequest::ApiGatewayV2(event).into();
    gateway.handlers.http(request).await
}
