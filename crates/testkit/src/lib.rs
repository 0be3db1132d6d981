//! Layout of `chat-testkit`, what the local stack's tests and the benches share (one job a
//! module):
//!
//! * [`app`]: the local stack in this process ([`TestApp`], signed in with
//!   [`TestApp::signed_in`]), on a standalone redis-server or a Redis Cluster ([`StoreKind`],
//!   [`on_each_store!`]).
//! * [`builder`]: how a story sets that stack up ([`TestApp::builder`], [`AppBuilder`];
//!   [`spawn_app`] for the default).
//! * [`env`]: the settings a stack runs with ([`Vars`], [`test_config`]).
//! * [`process`]: stack processes started as children (`local worker`, as on a second machine).
//! * [`api`]: the HTTP API as a client calls it (a session through `POST /token`, a history).
//! * [`ws`]: a WebSocket client ([`WsClient`]) that sends questions and reads the frames back.
//! * [`reply`]: a reply rebuilt from its frames as the web app does ([`Reply`], [`TimedReply`]).
//! * [`lambda_service`]: one function on an emulated Lambda (Invoke API, Runtime API with real
//!   deadlines and timeouts), to run the worker binary as Lambda does.
//! * [`lambda_stack`]: the stack with its worker binary on that emulated Lambda ([`LambdaStack`]).
//! * [`wait`]: waiting for a port or a health check to answer.
//! * [`temp`]: a temp dir that removes itself ([`TempDir`]).
//!
//! Tests (`chat-local`'s dev-dependency) and `bench/` use it; no product crate depends on it.

pub mod api;
pub mod app;
pub mod builder;
pub mod env;
pub mod lambda_service;
pub mod lambda_stack;
pub mod process;
pub mod reply;
pub mod temp;
pub mod wait;
pub mod ws;

pub use app::{main_keys, session_keys, StoreKind, TestApp, TestRedis};
pub use builder::{spawn_app, AppBuilder};
pub use chat_local::Options;
pub use chat_stub_model::{Pacing, StubModel};
pub use env::{test_config, Vars};
pub use lambda_stack::LambdaStack;
pub use reply::{Reply, TimedReply};
pub use temp::TempDir;
pub use ws::WsClient;

/// Any error, for the fallible helpers the benches call with `?`.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
