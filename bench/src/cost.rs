//! What a reply costs on AWS: the bench counts, per reply, what each billed service would see
//! (Lambda invocations and GB-seconds, gateway messages and connection-minutes, Redis commands
//! and bytes), measured on the local stack, and prices 1,000 replies of 300 tokens, next to the
//! same replies posted one token at a time (what the closest AWS sample does).

use std::time::Duration;

use chat_stub_model::Pacing;
use chat_testkit::Error;
use chat_wire::ReplyStatus;
use serde_json::json;

use crate::measure::{ms, round3};
use crate::report::{Figure, Report};
use crate::stack::Stack;

/// AWS list prices, us-east-1, as published on the services' pricing pages in 2025 (checked for
/// this code on 2026-11-25 from the copies we hold: no newer ones reached this machine). Check
/// them before quoting the figures as today's.
mod price {
    /// Lambda, arm64: per GB-second of duration.
    pub const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
    /// Lambda: per request.
    pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
    /// API Gateway WebSocket: per message (sent or received, in 32 KB units).
    pub const WS_MESSAGE: f64 = 1.00 / 1e6;
    /// API Gateway WebSocket: per connection-minute.
    pub const WS_CONNECTION_MINUTE: f64 = 0.25 / 1e6;
    /// ElastiCache Serverless for Redis OSS: per ECPU (a simple command costs one ECPU per KB
    /// moved; scripts and larger commands more, in proportion to the vCPU time they take).
    pub const ECPU: f64 = 0.0034 / 1e6;
}

/// Memory the template gives each function (template.yaml `MemorySize`).
const MESSAGE_FUNCTION_GB: f64 = 128.0 / 1024.0;
const WORKER_FUNCTION_GB: f64 = 256.0 / 1024.0;

const REPLIES: usize = 20;
const REPLY_TOKENS: usize = 300;

pub async fn cost(stack: &Stack, report: &mut Report) -> Result<(), Error> {
    stack.stub.set_pacing(Pacing {
        first_token: Duration::from_millis(50),
        between_tokens: Duration::from_millis(10),
        fixed_tokens: Some(REPLY_TOKENS),
    });
    let conversations = stack.conversations(REPLIES).await?;
    let before = redis_counters(stack).await?;
    let tasks: Vec<_> = conversations
        .into_iter()
        .enumerate()
        .map(|(i, (_, mut ws))| {
            tokio::spawn(async move {
                let reply = ws.timed_ask(&format!("cost{i}"), "hello", Duration::from_secs(60)).await;
                ws.close().await;
                reply
            })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await?);
    }
    let after = redis_counters(stack).await?;
    if replies.iter().any(|r| r.status != Some(ReplyStatus::Done)) {
        return Err("a reply of the cost run did not finish".into());
    }
    let n = REPLIES as f64;
    let mean = |f: &dyn Fn(&chat_testkit::TimedReply) -> f64| replies.iter().map(f).sum::<f64>() / n;
    let posts = mean(&|r| (r.deltas + r.dones) as f64);
    let ack_ms = mean(&|r| ms(r.ack.unwrap() - r.sent.unwrap()));
    let reply_s = mean(&|r| (r.done.unwrap() - r.sent.unwrap()).as_secs_f64());
    let commands = (after.0 - before.0) as f64 / n;
    let bytes = (after.1 - before.1) as f64 / n;

    // Per reply: the question in and its ack out are two messages, then every post is one; each
    // post beyond the measured ones is also one more delta logged in Redis.
    let per_reply = |with_posts: f64| {
        let messages = 2.0 + with_posts;
        let commands = commands + (with_posts - posts).max(0.0);
        // Billed per ms: the message function's invocation, and the worker's for the whole reply
        // (as when an invocation writes one reply at a time; busy, one writes many at once).
        let gb_seconds = MESSAGE_FUNCTION_GB * ack_ms.ceil() / 1000.0 + WORKER_FUNCTION_GB * reply_s;
        // One ECPU per command plus one per KB moved: an upper bound of ElastiCache's count.
        let ecpus = commands + bytes / 1024.0;
        let dollars = 2.0 * price::LAMBDA_REQUEST
            + gb_seconds * price::LAMBDA_GB_SECOND
            + messages * price::WS_MESSAGE
            + reply_s / 60.0 * price::WS_CONNECTION_MINUTE
            + ecpus * price::ECPU;
        (messages, gb_seconds, dollars * 1000.0)
    };
    let (messages, gb_seconds, thousand) = per_reply(posts);
    let (token_messages, _, thousand_per_token) = per_reply(REPLY_TOKENS as f64 + 1.0);
    report.add(
        format!("per reply of {REPLY_TOKENS} tokens (100 tok/s)"),
        format!("{messages:.0} gateway messages, {commands:.0} Redis commands, {:.1} KB to/from Redis", bytes / 1024.0),
        format!("2 Lambda invocations, {gb_seconds:.3} GB-s, {:.3} connection-minutes", reply_s / 60.0),
        Figure::None,
    );
    report.add(
        format!("AWS cost of 1,000 replies of {REPLY_TOKENS} tokens"),
        format!("${thousand:.4}"),
        format!("one post per token: {token_messages:.0} messages a reply, ${thousand_per_token:.4} (us-east-1 list prices, 2025)"),
        Figure::Field(
            "cost",
            json!({
                "replies_measured": REPLIES, "tokens_per_reply": REPLY_TOKENS,
                "gateway_messages_per_reply": round3(messages), "posts_per_reply": round3(posts),
                "redis_commands_per_reply": round3(commands), "redis_bytes_per_reply": round3(bytes),
                "lambda_invocations_per_reply": 2, "lambda_gb_seconds_per_reply": round3(gb_seconds),
                "connection_minutes_per_reply": round3(reply_s / 60.0),
                "dollars_per_1000_replies": round3(thousand * 1000.0) / 1000.0,
                "dollars_per_1000_replies_one_post_per_token": round3(thousand_per_token * 1000.0) / 1000.0,
            }),
        ),
    );
    Ok(())
}

/// Commands processed and bytes in and out, from `INFO stats`.
async fn redis_counters(stack: &Stack) -> Result<(u64, u64), Error> {
    let mut conn = redis::Client::open(stack.redis.url())?.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO").arg("stats").query_async(&mut conn).await?;
    let field = |name: &str| {
        info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse::<u64>().ok()).unwrap_or(0)
    };
    Ok((field("total_commands_processed"), field("total_net_input_bytes") + field("total_net_output_bytes")))
}
