//! The WebSocket API (this product's is `/chat`): the `$connect` handshake, then each client
//! frame to `$default` (its route response back to the client) and the frames posted through the
//! Management API out, until the client, an idle or age limit, or a shutdown closes it; then
//! `$disconnect`.

use std::net::SocketAddr;
use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_lambda_events::encodings::Body as EventBody;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::events::{new_connection_id, proxy_response, query_map, websocket_event};
use super::{Connection, Gateway, Handlers, Outbound, MAX_FRAME_BYTES, MAX_MESSAGE_BYTES};

/// Frames queued for one connection before posts to it start waiting.
const OUTBOX_FRAMES: usize = 256;

/// The client end of a connection: what each of its events names.
#[derive(Clone)]
struct Client {
    connection_id: String,
    connected_at: i64,
    source_ip: String,
    domain: Option<String>,
}

impl Client {
    /// The event of `route` on this connection.
    fn event(&self, route: &str) -> ApiGatewayWebsocketProxyRequest {
        websocket_event(route, &self.connection_id, self.connected_at, &self.source_ip, self.domain.clone())
    }

    /// Forgets a connection that was admitted but never served: out of the gateway's table, and
    /// `$disconnect` as if it had closed.
    async fn forget<H: Handlers>(self, gateway: &Gateway<H>) {
        gateway.forget(&self.connection_id);
        gateway.handlers.disconnect(self.event("$disconnect")).await;
    }
}

/// `GET` on the WebSocket API's path: runs `$connect`, and upgrades the connection if it admits it.
pub(super) async fn upgrade<H: Handlers>(
    State(gateway): State<Arc<Gateway<H>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: WebSocketUpgrade,
) -> Response {
    let client = Client {
        connection_id: new_connection_id(),
        connected_at: chrono::Utc::now().timestamp_millis(),
        source_ip: peer.ip().to_string(),
        domain: headers.get("host").and_then(|h| h.to_str().ok()).map(str::to_string),
    };
    // Register the outbox before `$connect` runs, so a post racing the upgrade is queued, not lost.
    let (outbox, inbox) = mpsc::channel(OUTBOX_FRAMES);
    gateway.connections.lock().unwrap().insert(
        client.connection_id.clone(),
        Connection { outbox: outbox.clone(), connected_at: client.connected_at, source_ip: client.source_ip.clone() },
    );
    let mut event = client.event("$connect");
    event.query_string_parameters = query_map(uri.query());
    event.headers = headers;
    // $connect runs to its end in a task of its own: hyper drops this handler if the client
    // resets the connection meanwhile, and a $connect cut short could leave a binding nobody
    // removes. The task undoes an admission nobody is left to upgrade.
    let (answer, answered) = tokio::sync::oneshot::channel();
    let (pending_gateway, pending) = (gateway.clone(), client.clone());
    tokio::spawn(async move {
        let response = pending_gateway.handlers.connect(event).await;
        if answer.send(response).is_err() {
            tracing::debug!("a client left during its handshake");
            pending.forget(&pending_gateway).await;
        }
    });
    let Ok(response) = answered.await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if !(200..300).contains(&response.status_code) {
        gateway.forget(&client.connection_id);
        return proxy_response(response);
    }
    // A client that never completes the upgrade (it vanished after the handshake's answer)
    // leaves nothing behind either.
    let (abandoned_gateway, abandoned_client) = (gateway.clone(), client.clone());
    let abandoned = move |error: axum::Error| {
        tracing::debug!(error = %error, "a WebSocket upgrade never completed");
        tokio::spawn(async move { abandoned_client.forget(&abandoned_gateway).await });
    };
    upgrade
        .on_failed_upgrade(abandoned)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_frame_size(MAX_FRAME_BYTES)
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve_connection(gateway, socket, client, outbox, inbox))
}

/// Serves an upgraded connection until it closes, then runs `$disconnect`.
async fn serve_connection<H: Handlers>(
    gateway: Arc<Gateway<H>>,
    socket: WebSocket,
    client: Client,
    outbox: mpsc::Sender<Outbound>,
    mut inbox: mpsc::Receiver<Outbound>,
) {
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
    let idle_timeout = gateway.config.idle_timeout;
    let closes_at = Instant::now() + gateway.config.max_duration;
    let mut idle_until = Instant::now() + idle_timeout;
    let mut closing = gateway.closing.subscribe();
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            _ = async { let _ = closing.wait_for(|closing| *closing).await; } => {
                let _ = outbox.send(Outbound::Close).await;
                break;
            }
            _ = tokio::time::sleep_until(idle_until.min(closes_at)) => {
                let _ = outbox.send(Outbound::Close).await;
                break;
            }
        };
        let (body, is_base64_encoded) = match next {
            Some(Ok(Message::Text(text))) => (text.to_string(), false),
            Some(Ok(Message::Binary(bytes))) => (base64::engine::general_purpose::STANDARD.encode(bytes), true),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                idle_until = Instant::now() + idle_timeout;
                continue;
            }
            Some(Ok(Message::Close(_))) | None => break,
            Some(Err(error)) => {
                tracing::debug!(error = %error, "websocket read failed");
                break;
            }
        };
        idle_until = Instant::now() + idle_timeout;
        let mut event = client.event("$default");
        event.body = Some(body);
        event.is_base64_encoded = is_base64_encoded;
        let response = gateway.handlers.message(event).await;
        if let Some(EventBody::Text(text)) = response.body {
            if outbox.send(Outbound::Frame(Message::Text(text.into()))).await.is_err() {
                break;
            }
        }
    }
    gateway.forget(&client.connection_id);
    drop(outbox);
    let _ = writer.await;
    gateway.handlers.disconnect(client.event("$disconnect")).await;
}
