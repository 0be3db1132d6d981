//! The Management API: `POST /{secret}/@connections/{id}` sends a frame, `GET` describes the
//! connection, `DELETE` closes it; an unknown connection is 410 `GoneException`, and only this
//! machine may call it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::Message;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{Gateway, Handlers, Outbound};

/// How long a post may wait for a slow client before the connection counts as gone.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// The Management API: `POST` sends a frame, `GET` describes the connection, `DELETE` closes it.
pub(super) async fn serve<H: Handlers>(
    State(gateway): State<Arc<Gateway<H>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(connection_id): Path<String>,
    method: Method,
    body: Bytes,
) -> Response {
    if !peer.ip().is_loopback() && peer.ip() != gateway.config.own_ip {
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
                    gateway.forget(&connection_id);
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

/// API Gateway's answer for a connection it does not know (any longer).
fn gone() -> Response {
    let mut response = (StatusCode::GONE, r#"{"message":"Gone"}"#).into_response();
    let headers = response.headers_mut();
    headers.insert("x-amzn-ErrorType", HeaderValue::from_static("GoneException"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    response
}
