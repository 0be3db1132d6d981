//! The Lambda functions of the chat API, as plain async handlers over real API Gateway events.
//!
//! Layout:
//! * [`http`]: the HTTP API as one axum router: `/token`, `/chat_history`, `/chat_export`,
//!   the conversation routes, `/search`, `/models`, `/health`, `/openapi.json`, `/docs`.
//! * [`ws`]: the WebSocket API routes (`$connect`, `$default`, `$disconnect`).
//! * [`error`]: the one error type and its mapping to HTTP responses and error frames.
//! * [`state`]: configuration, the Redis store and the worker trigger, built once per cold start.
//! * [`trigger`]: how a stored message wakes the worker (Lambda async invoke, or nothing when a
//!   daemon reads the stream).
//! * [`openapi`]: the OpenAPI document and the docs page.
//! * [`export`]: a conversation as a file: a Markdown transcript or JSON (`GET /chat_export`).
//!
//! The binaries in `src/bin/` are a few lines each: build [`state::AppState`], then hand the
//! router (`http`, both HTTP Lambdas) or the handler (`ws-*`) to `lambda_http::run` or
//! `lambda_runtime::run`. The local gateway calls the same with the same event types.

pub mod error;
pub mod export;
pub mod http;
pub mod openapi;
pub mod state;
pub mod trigger;
pub mod ws;

pub use error::ApiError;
pub use state::{AppState, ModelStatus};
pub use trigger::WorkerTrigger;
