//! The HTTP API's Lambda (API Gateway HTTP API): the token function and the history function are
//! both this binary, each with its own role and routes (`template.yaml`).

use chat_functions::{http, AppState};
use lambda_http::{run, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let state = AppState::from_env().await?;
    run(http::service(state)).await
}
