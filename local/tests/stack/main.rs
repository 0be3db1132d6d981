//! The local stack against a real redis-server, a real WebSocket client and the scripted stub
//! model: each test is a user story.

mod chat;
mod embedded;
mod failures;
mod http_api;
mod support;
mod tls;
mod worker;
