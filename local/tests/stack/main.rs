//! The local stack against a real redis-server, a real WebSocket client and the scripted stub
//! model: each test is a user story.

mod abuse;
mod chat;
mod config;
mod conversations;
mod crash;
mod embedded;
mod failover;
mod failures;
mod fuzz;
mod gateway;
mod http_api;
mod iam;
mod integrity;
mod lambda_worker;
mod limits;
mod openapi_contract;
mod outage;
mod promises;
mod replies;
mod tls;
mod usage;
mod worker;
