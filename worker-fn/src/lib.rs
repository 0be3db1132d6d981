//! The worker: turns reply requests on the Redis stream into streamed model replies.
//!
//! Layout:
//! * [`worker`]: the consumer-group loop: process one entry, drain (Lambda), run (daemon).
//! * [`provider`]: the OpenAI-compatible Chat Completions client, streamed over SSE, with retries.
//! * [`notify`]: posting frames to WebSocket connections through the API Gateway Management API.
//!
//! `src/bin/worker.rs` is the Lambda (invoked by the message function and by a one-minute
//! schedule); `src/bin/worker_daemon.rs` is the same worker as a long-running process.

pub mod notify;
pub mod provider;
pub mod worker;

pub use notify::ManagementApi;
pub use provider::{ContextMessage, ModelClient, ModelError};
pub use worker::{Outcome, Worker, INVOCATION_READ_BLOCK};
