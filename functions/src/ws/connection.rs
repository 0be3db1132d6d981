//! A socket's life: `$connect` admits it for a live session, `$disconnect` forgets it.

use aws_lambda_events::apigw::{
    ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest, ApiGatewayWebsocketProxyRequestContext,
};
use chat_core::Bound;
use chat_wire::Token;
use http::StatusCode;

use super::{connection_of, management_endpoint, refusal, refusal_with, response};
use crate::error::ApiError;
use crate::state::AppState;

/// `$connect`: admits the connection only with a live session's token (`?token=`), and records
/// which session it belongs to. A missing token refuses the handshake with 401, an unknown or
/// expired one with 403, a session with `MAX_CONNECTIONS_PER_SESSION` open connections already
/// with 429 (those the Management API says are gone are forgotten first), an outage with 503.
pub async fn connect(state: &AppState, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let connection_id = match connection_of(&event.request_context) {
        Ok(id) => id,
        Err(error) => return refusal(&error),
    };
    let Some(token) = event.query_string_parameters.first("token") else {
        return refusal_with(StatusCode::UNAUTHORIZED, &ApiError::SessionExpired);
    };
    let Ok(token) = Token::parse(token) else {
        return refusal_with(StatusCode::FORBIDDEN, &ApiError::SessionExpired);
    };
    let mut bound = state.store.bind_connection(&connection_id, &token).await;
    if matches!(bound, Ok(Bound::Full)) && forget_gone_connections(state, &event.request_context, &token).await > 0 {
        bound = state.store.bind_connection(&connection_id, &token).await;
    }
    match bound {
        Ok(Bound::Bound) => {
            // Connection ids address sockets through the Management API: debug level only.
            tracing::debug!(connection_id = %connection_id, "connected");
            response(StatusCode::OK, None)
        }
        Ok(Bound::Expired) => refusal_with(StatusCode::FORBIDDEN, &ApiError::SessionExpired),
        Ok(Bound::Full) => refusal(&ApiError::TooManyConnections { limit: state.config.max_connections_per_session }),
        Err(error) => refusal(&ApiError::from(error)),
    }
}

/// Forgets the session's connections the Management API says are gone (their `$disconnect` never
/// came: API Gateway sends it best-effort), one `GET @connections/{id}` each, all at once; answers
/// how many. Asked only when the session's set is full, so at most
/// `MAX_CONNECTIONS_PER_SESSION` calls.
async fn forget_gone_connections(
    state: &AppState,
    context: &ApiGatewayWebsocketProxyRequestContext,
    token: &Token,
) -> usize {
    let endpoint = &management_endpoint(&state.config, context);
    let Ok(connections) = state.store.session_connections(token).await else { return 0 };
    let probes = connections.iter().map(|id| async move {
        (state.connections.describe(endpoint, id).await == chat_core::management::Delivery::Gone).then_some(id)
    });
    let mut forgotten = 0;
    for gone in futures_util::future::join_all(probes).await.into_iter().flatten() {
        if state.store.unbind_connection(gone, Some(token)).await.is_ok() {
            forgotten += 1;
        }
    }
    if forgotten > 0 {
        tracing::info!(session = %token.log_id(), forgotten, "connections gone without $disconnect forgotten");
    }
    forgotten
}

/// `$disconnect`: forgets the connection.
pub async fn disconnect(state: &AppState, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let connection_id = match connection_of(&event.request_context) {
        Ok(id) => id,
        Err(error) => return refusal(&error),
    };
    if let Err(error) = state.store.unbind_connection(&connection_id, None).await {
        // The mapping expires with the session anyway; a failed cleanup is not the client's problem.
        tracing::warn!(connection_id = %connection_id, error = %error, "could not forget a connection");
    }
    tracing::debug!(connection_id = %connection_id, "disconnected");
    response(StatusCode::OK, None)
}
