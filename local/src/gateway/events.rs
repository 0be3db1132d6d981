//! The events API Gateway would send: an HTTP API (payload 2.0) request, a WebSocket route's
//! request with its connection id, their query maps; and the HTTP answer a route's
//! `ApiGatewayProxyResponse` makes.

use std::collections::HashMap;
use std::net::SocketAddr;

use aws_lambda_events::apigw::{
    ApiGatewayProxyResponse, ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContextHttpDescription,
    ApiGatewayWebsocketProxyRequest,
};
use aws_lambda_events::encodings::Body as EventBody;
use aws_lambda_events::query_map::QueryMap;
use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use base64::Engine;

use super::STAGE;

/// The HTTP API (payload 2.0) event API Gateway would send for this request (public so property
/// tests feed the handlers exactly what the gateway would).
pub fn http_event(
    method: &Method,
    uri: &Uri,
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

/// The query string as API Gateway parses it: every value of a repeated key, in order.
pub(super) fn query_map(query: Option<&str>) -> QueryMap {
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

/// A fresh connection id, shaped as API Gateway's.
pub(super) fn new_connection_id() -> String {
    // API Gateway's ids are 12 random bytes in base64, `=` included: the SDK must encode them.
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    format!("{}=", base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes))
}

/// The HTTP answer API Gateway makes of a route's response (a refused `$connect`).
pub(super) fn proxy_response(response: ApiGatewayProxyResponse) -> Response {
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
