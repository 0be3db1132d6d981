//! The WebSocket `$connect` function (API Gateway WebSocket API).

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use chat_functions::{ws, AppState};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let state = AppState::from_env().await?;
    run(service_fn(|event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
        let state = state.clone();
        async move { Ok::<_, Error>(ws::connect(&state, event.payload).await) }
    }))
    .await
}
