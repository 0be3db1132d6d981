//! `bench`: what the pipeline adds to the model's own speed, and how it holds under load.
//!
//! * `bench pipeline` (`scripts/bench.sh`): floors (Redis PING, WebSocket echo, a ping through the
//!   gateway), first-token overhead against the stub's own time to first token measured side by
//!   side (a model that answers at once, and one that takes 50 ms), token delivery at 200
//!   tokens/s with every delta's arrival, posts per reply, 1/10/100/1,000 simultaneous
//!   conversations, history reads and the AWS cost of 1,000 replies; prints a table and writes
//!   `target/bench/bench.json`.
//! * `bench load` (`scripts/load.sh`): 1,000 sessions each sending 5 messages, then 100 rounds of
//!   killing a worker process mid-reply; prints what was sent, answered, lost and duplicated, and
//!   writes `target/bench/load.json`.
//! * `bench workers`: the same simultaneous conversations against a worker with 64, 256 and
//!   1,024 slots, side by side (how `WORKER_CONCURRENCY`'s default was chosen).
//! * `bench lambda` (`scripts/bench-lambda.sh`): the worker's real binary on the emulated Lambda
//!   under steady traffic, by `WORKER_LINGER_MS`, on a quiet and a busy machine: invocations,
//!   first-token overhead and GB-seconds per 100 questions (how the linger's default was chosen).
//! * `bench profiles` (`scripts/bench-profiles.sh`): the first-token overhead of `local` built with
//!   the `local` profile (what the run command builds) beside the `fast` one.
//! * `bench stream` (`scripts/bench-stream.sh`): the request stream's ceiling on one shard of a
//!   Redis Cluster and on a standalone server, against the 1,000 questions/s target.
//!
//! Both start a redis-server (append-only, as production), the scripted stub model (real HTTP +
//! SSE) in this process, and the product as a separate `local` process (gateway, functions and
//! worker), so each process's CPU and memory are its own.
//!
//! Layout:
//! * `stack`: starts what is measured, and talks to it as clients do.
//! * `measure`: percentiles, the stub model's own timings, each process's CPU and memory.
//! * `report`: the printed table and the JSON figures, a row and its figure added together.
//! * `pipeline`: `bench pipeline`, part by part.
//! * `load`: many conversations at once: the concurrency levels and `bench load`.
//! * `cost`: what a reply costs on AWS, from what the services would count.
//! * `crash`: worker processes killed mid-reply.
//! * `workers`: `bench workers`.
//! * `lambda`: `bench lambda`.
//! * `profiles`: `bench profiles`.
//! * `stream`: `bench stream`.
//! * `steps`: all that calls the product's store (`chat_core::Store`) directly.

mod cost;
mod crash;
mod lambda;
mod load;
mod measure;
mod pipeline;
mod profiles;
mod report;
mod stack;
mod steps;
mod stream;
mod workers;

use chat_testkit::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    match std::env::args().nth(1).as_deref() {
        Some("pipeline") => pipeline::run().await,
        Some("load") => load::run().await,
        Some("workers") => workers::run().await,
        Some("stream") => stream::run().await,
        Some("lambda") => lambda::run().await,
        Some("profiles") => profiles::run().await,
        _ => {
            eprintln!(
                "usage: bench pipeline | bench load | bench workers | bench lambda | bench profiles | bench stream   (see scripts/bench*.sh, scripts/load.sh)"
            );
            std::process::exit(2);
        }
    }
}
