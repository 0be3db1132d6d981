//! The WebSocket API's routes, as API Gateway invokes them: `$connect`, `$default` (every client
//! frame) and `$disconnect`.
//!
//! Each takes the real `ApiGatewayWebsocketProxyRequest` event and returns an
//! `ApiGatewayProxyResponse`. For `$connect` a non-2xx status refuses the handshake. For `$default`
//! the body is a [`ServerFrame`] that API Gateway's route response sends back to the client (an
//! `ack`, a `pong` or an `error`); replies themselves come from the worker via the Management API.
//!
//! Layout: [`connection`] admits and forgets sockets (`$connect`, `$disconnect`); [`frame`] decodes
//! and routes what a client sends (`$default`); [`question`] carries out the frames that ask for a
//! reply (a question, an edit, a regeneration, a resume).

mod connection;
mod frame;
mod question;

pub use connection::{connect, disconnect};
pub use frame::{decode_frame, message};

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequestContext};
use aws_lambda_events::encodings::Body;
use chat_core::Config;
use chat_wire::ConnectionId;
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::error::ApiError;

/// The event's connection id, which API Gateway always sets.
fn connection_of(context: &ApiGatewayWebsocketProxyRequestContext) -> Result<ConnectionId, ApiError> {
    let raw = context.connection_id.as_deref().unwrap_or_default();
    ConnectionId::parse(raw).map_err(|e| ApiError::Internal(format!("the WebSocket event carries {e}: {raw:?}")))
}

/// The API Gateway Management API endpoint for this event's connections: `WS_MANAGEMENT_ENDPOINT`
/// when set (the local gateway, a custom domain), otherwise `https://{domainName}/{stage}`, the
/// form AWS documents for `@connections`.
pub fn management_endpoint(config: &Config, context: &ApiGatewayWebsocketProxyRequestContext) -> String {
    if let Some(endpoint) = &config.ws_management_endpoint {
        return endpoint.clone();
    }
    format!(
        "https://{}/{}",
        context.domain_name.as_deref().unwrap_or_default(),
        context.stage.as_deref().unwrap_or_default()
    )
}

/// Refuses a handshake with the error's own status.
fn refusal(error: &ApiError) -> ApiGatewayProxyResponse {
    error.log();
    refusal_with(error.status(), error)
}

/// Refuses a handshake: API Gateway answers the client with `status`.
fn refusal_with(status: StatusCode, error: &ApiError) -> ApiGatewayProxyResponse {
    let body = serde_json::to_string(&error.body()).expect("error bodies always serialize");
    tracing::info!(status = status.as_u16(), "connection refused");
    response(status, Some(body))
}

fn response(status: StatusCode, body: Option<String>) -> ApiGatewayProxyResponse {
    let mut headers = HeaderMap::new();
    if body.is_some() {
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status.as_u16());
    response.headers = headers;
    response.body = body.map(Body::Text);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_management_endpoint_follows_the_event() {
        let config = Config::from_vars(&Default::default()).unwrap();
        let mut context = ApiGatewayWebsocketProxyRequestContext::default();
        context.domain_name = Some("abc123.execute-api.eu-west-1.amazonaws.com".into());
        context.stage = Some("prod".into());
        assert_eq!(management_endpoint(&config, &context), "https://abc123.execute-api.eu-west-1.amazonaws.com/prod");
        let mut local = config.clone();
        local.ws_management_endpoint = Some("http://127.0.0.1:3500/local".into());
        assert_eq!(management_endpoint(&local, &context), "http://127.0.0.1:3500/local");
    }
}
