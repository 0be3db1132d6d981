//! What the Lambda functions, the worker and the local runner share, beyond the wire types.
//!
//! Layout:
//! * [`config`]: every setting, read from the environment in one place.
//! * [`secrets`]: the Redis URL and the OpenAI key from AWS Secrets Manager, once per cold start.
//! * [`store`]: the Redis store (sessions, history, connection mappings, the request stream), in
//!   modules with their Lua scripts in `.lua` files; its own `//! Layout` lists them.
//! * [`management`]: the API Gateway Management API (posts to connections, closes), signed.
//! * [`token`]: session token issuance (the shape check is `chat_wire::Token`'s).
//! * [`telemetry`]: `tracing` set-up, JSON on Lambda.
//! * [`shutdown`]: Ctrl-C / SIGTERM for the long-running binaries.

pub mod config;
pub mod management;
pub mod secrets;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod token;

pub use config::{Config, ConfigError, ModelConfig, ModelPrice, RateLimits, ReplicaWait, WorkerConfig};
pub use management::ManagementApi;

/// Makes aws-lc (the AWS SDK's TLS back end) rustls's back end for this process, for `rediss://`
/// and the HTTPS clients alike: one TLS stack in every binary. Idempotent.
pub fn install_crypto_provider() {
    // An error only means a provider is installed already.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
pub use store::{Begun, Bound, Frame, Logged, Refusal, ReplyRequest, Step, Store, StoreError, StreamEntry};
