//! The worker: turns reply requests on the Redis stream into streamed model replies.
//!
//! Layout:
//! * [`worker`]: answering one entry: the session, the model's stream, the stored reply.
//! * [`outcome`]: how an entry ends, how a reply's generation ends, a refused step's meaning.
//! * `generate`: streaming the model's reply through the relay; `pacing`: when its pieces are
//!   posted (a pure `Pacer`).
//! * [`serve`]: the consumer-group loop of both modes: drain (a Lambda invocation), run (daemon).
//! * [`lease`]: a Lambda invocation's lease on its free slots, which spares needless wake-ups.
//! * [`relay`]: one reply's frames to every connection of its session, each delta logged first.
//! * [`title`]: a conversation's title from the model, kept only when it reads as a topic.
//! * [`context`]: the model's context for a reply.
//! * [`provider`]: the OpenAI-compatible Chat Completions client, streamed over SSE, with retries.
//! * [`notify`]: posting frames to WebSocket connections through the API Gateway Management API.
//!
//! `src/bin/worker.rs` is the Lambda (invoked by the message function and by a one-minute
//! schedule); `src/bin/worker_daemon.rs` is the same worker as a long-running process.

pub mod context;
mod generate;
mod lease;
pub mod outcome;
mod pacing;
pub mod provider;
mod relay;
pub mod serve;
pub mod title;
pub mod worker;

pub use chat_core::management as notify;
pub use chat_core::ManagementApi;
pub use outcome::Outcome;
pub use provider::{ContextMessage, ModelClient, ModelError, Piece};
pub use serve::INVOCATION_READ_BLOCK;
pub use worker::Worker;
