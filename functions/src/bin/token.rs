//! The token function: `POST /token` (API Gateway HTTP API).

use chat_functions::{http, AppState};
use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let state = AppState::from_env().await?;
    run(service_fn(|request: Request| {
        let state = state.clone();
        async move { Ok::<_, Error>(http::handle(&state, request).await) }
    }))
    .await
}
