//! This product's handlers behind the gateway: `chat_functions`' HTTP API and its `$connect`,
//! `$default` and `$disconnect` routes, the very code the Lambda binaries run.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use axum::response::Response;
use chat_functions::{http as api, ws, AppState};
use tower::ServiceExt;

use crate::gateway::Handlers;

/// The chatbot's Lambda handlers, as the gateway calls them.
pub struct ChatHandlers {
    state: AppState,
    /// The HTTP API, as its Lambdas serve it.
    http: api::HttpApi,
}

impl ChatHandlers {
    /// Wraps the handlers' state.
    pub fn new(state: AppState) -> Self {
        ChatHandlers { http: api::service(state.clone()), state }
    }
}

impl Handlers for ChatHandlers {
    async fn http(&self, request: lambda_http::Request) -> Response {
        let Ok(response) = self.http.clone().oneshot(request).await;
        response
    }

    async fn connect(&self, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        ws::connect(&self.state, event).await
    }

    async fn message(&self, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        ws::message(&self.state, event).await
    }

    async fn disconnect(&self, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        ws::disconnect(&self.state, event).await
    }
}
