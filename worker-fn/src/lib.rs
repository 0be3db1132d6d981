//! The worker: turns reply requests on the Redis stream into streamed model replies.
//!
//! Layout:
//! * [`worker`]: answering one entry: the session, the model's stream, the stored reply.
//! * [`serve`]: the consumer-group loop of both modes: drain (a Lambda invocation), run (daemon).
//! * [`lease`]: a Lambda invocation's lease on its free slots, which spares needless wake-ups.
//! * [`relay`]: one reply's frames to every connection of its session, each delta logged first.
//! * [`context`]: the model's context for a reply.
//! * [`provider`]: the OpenAI-compatible Chat Completions client, streamed over SSE, with retries.
//! * [`notify`]: posting frames to WebSocket connections through the API Gateway Management API.
//!
//! `src/bin/worker.rs` is the Lambda (invoked by the message function and by a one-minute
//! schedule); `src/bin/worker_daemon.rs` is the same worker as a long-running process.

pub mod context;
mod lease;
pub mod provider;
mod relay;
pub mod serve;
pub mod worker;

pub use chat_core::management as notify;
pub use chat_core::ManagementApi;
pub use provider::{ContextMessage, ModelClient, ModelError, Piece};
pub use serve::INVOCATION_READ_BLOCK;
pub use worker::{Outcome, Worker};
