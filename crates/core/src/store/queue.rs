//! The request stream: the message function appends a request per reply (XADD); workers read it
//! as one consumer group (XREADGROUP), take over what a dead worker left pending (XAUTOCLAIM), and
//! acknowledge an entry once its reply is stored (XACK).

use std::time::Duration;

use chat_wire::{ConversationId, MessageId, Token};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamPendingReply, StreamReadOptions, StreamReadReply,
};
use redis::AsyncCommands;

use super::scripts::{self, Leases};
use super::{keys, Store, StoreError, Write};

/// One request for a reply, as the message function appends it to the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyRequest {
    /// The session.
    pub token: Token,
    /// The conversation the question is in (`main` for an entry written before conversations).
    pub conversation: ConversationId,
    /// The user message to answer.
    pub message_id: MessageId,
    /// The Management API endpoint that reaches the session's WebSocket connections.
    pub endpoint: String,
}

/// A stream entry: its id (for XACK) and the request it carries, or `None` if it was malformed.
#[derive(Debug, Clone)]
pub struct StreamEntry {
    /// The stream entry id.
    pub entry_id: String,
    /// The request, or `None` when the entry is not one this code wrote.
    pub request: Option<ReplyRequest>,
    /// How many times the entry was delivered (1 on a first read).
    pub deliveries: usize,
}

impl Store {
    /// Appends a reply request to the stream; with `REDIS_WAIT_REPLICAS`, only once the stream's
    /// replicas have it. Never trimmed here: [`Store::trim_acknowledged`] trims only what the
    /// workers are done with.
    pub async fn enqueue(&self, request: &ReplyRequest) -> Result<String, StoreError> {
        let mut conn = self.connection().await?;
        let append = redis::Cmd::xadd(
            &self.stream,
            "*",
            &[
                ("token", request.token.expose()),
                ("message_id", request.message_id.as_str()),
                ("endpoint", request.endpoint.as_str()),
                ("conversation", request.conversation.as_str()),
            ],
        );
        self.write_replicated(&mut conn, Write::Command(append)).await
    }

    /// Trims the stream, once it holds more than `REQUEST_STREAM_MAXLEN` entries, of entries
    /// before the oldest pending one (never one not yet read). Answers how many were trimmed.
    pub async fn trim_acknowledged(&self) -> Result<usize, StoreError> {
        let mut conn = self.connection().await?;
        let call = scripts::TrimAcknowledged { stream: &self.stream, group: &self.group, max: self.stream_maxlen };
        let trimmed: usize = call.invocation().invoke_async(&mut conn).await?;
        Ok(trimmed)
    }

    /// Creates the consumer group (and the stream) if they do not exist yet.
    pub async fn ensure_group(&self) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        let created: Result<(), redis::RedisError> = conn.xgroup_create_mkstream(&self.stream, &self.group, "0").await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// New entries for `consumer` (XREADGROUP `>`), waiting up to `block` if there are none.
    pub async fn read_new(
        &self,
        consumer: &str,
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<StreamEntry>, StoreError> {
        let mut options = StreamReadOptions::default().group(&self.group, consumer).count(count);
        if let Some(block) = block {
            options = options.block(block.as_millis() as usize);
        }
        let mut conn = self.connection().await?;
        let reply: Option<StreamReadReply> = conn.xread_options(&[&self.stream], &[">"], &options).await?;
        Ok(reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids).map(|entry| parse_entry(entry, 1)).collect())
    }

    /// Takes over entries pending on any consumer for longer than `min_idle` (a dead worker's).
    pub async fn claim_stale(
        &self,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<StreamEntry>, StoreError> {
        let mut conn = self.connection().await?;
        let reply: StreamAutoClaimReply = conn
            .xautoclaim_options(
                &self.stream,
                &self.group,
                consumer,
                min_idle.as_millis() as u64,
                "0-0",
                StreamAutoClaimOptions::default().count(count),
            )
            .await?;
        let mut entries: Vec<StreamEntry> = reply.claimed.into_iter().map(|entry| parse_entry(entry, 2)).collect();
        // XAUTOCLAIM does not say how often an entry was delivered; XPENDING does.
        for entry in &mut entries {
            let pending: redis::Value = redis::cmd("XPENDING")
                .arg(&self.stream)
                .arg(&self.group)
                .arg(&entry.entry_id)
                .arg(&entry.entry_id)
                .arg(1)
                .query_async(&mut conn)
                .await?;
            if let Some(deliveries) = deliveries_of(&pending) {
                entry.deliveries = deliveries;
            }
        }
        Ok(entries)
    }

    /// Records that worker `id` is running with `free` slots, for `lease` from now (Redis's
    /// clock). Renewed while the worker takes new entries. Answers whether it should yield: a
    /// live lease ordered before it has a free slot (it then advertises none itself).
    pub async fn renew_worker_lease(&self, id: &str, lease: Duration, free: usize) -> Result<bool, StoreError> {
        let (leases, slots) = keys::worker_leases(&self.stream);
        let mut conn = self.connection().await?;
        let call = scripts::WorkerLease {
            keys: Leases { leases: &leases, free: &slots },
            id,
            lease_ms: lease.as_millis() as u64,
            free_slots: free,
        };
        let yields: i32 = call.invocation().invoke_async(&mut conn).await?;
        Ok(yields == 1)
    }

    /// Gives up worker `id`'s lease: it takes no more entries.
    pub async fn release_worker_lease(&self, id: &str) -> Result<(), StoreError> {
        let (leases, slots) = keys::worker_leases(&self.stream);
        let mut conn = self.connection().await?;
        let call = scripts::WorkerRelease { keys: Leases { leases: &leases, free: &slots }, id };
        let _: i32 = call.invocation().invoke_async(&mut conn).await?;
        Ok(())
    }

    /// Whether a new entry needs a worker woken: no running worker's live lease offers a free slot.
    pub async fn wake_needed(&self) -> Result<bool, StoreError> {
        let (leases, slots) = keys::worker_leases(&self.stream);
        let mut conn = self.connection().await?;
        let call = scripts::WakeNeeded { keys: Leases { leases: &leases, free: &slots } };
        let needed: i32 = call.invocation().invoke_async(&mut conn).await?;
        Ok(needed == 1)
    }

    /// Acknowledges an entry: its reply is stored (or it can never be answered).
    pub async fn ack(&self, entry_id: &str) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        let _acknowledged: usize = conn.xack(&self.stream, &self.group, &[entry_id]).await?;
        Ok(())
    }

    /// Resets an entry's idle time, so a reply that takes longer than `WORKER_CLAIM_IDLE_MS` is not
    /// taken over while its worker is alive.
    pub async fn keep_claimed(&self, consumer: &str, entry_id: &str) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        let _claimed: redis::Value = redis::cmd("XCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(consumer)
            .arg(0)
            .arg(entry_id)
            .arg("JUSTID")
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Entries delivered to a consumer and not yet acknowledged, across the group.
    pub async fn pending_count(&self) -> Result<usize, StoreError> {
        let mut conn = self.connection().await?;
        let reply: StreamPendingReply = conn.xpending(&self.stream, &self.group).await?;
        Ok(reply.count())
    }
}

/// The delivery count in an extended XPENDING answer for one entry: `[[id, consumer, idle, n]]`.
fn deliveries_of(pending: &redis::Value) -> Option<usize> {
    let redis::Value::Array(rows) = pending else { return None };
    let redis::Value::Array(fields) = rows.first()? else { return None };
    match fields.get(3)? {
        redis::Value::Int(n) => usize::try_from(*n).ok(),
        _ => None,
    }
}

fn parse_entry(entry: StreamId, deliveries: usize) -> StreamEntry {
    let field = |name: &str| entry.get::<String>(name);
    let conversation = match field("conversation") {
        Some(id) => ConversationId::parse(&id).ok(),
        None => Some(ConversationId::main()),
    };
    let request = match (field("token"), field("message_id"), field("endpoint"), conversation) {
        (Some(token), Some(message_id), Some(endpoint), Some(conversation)) => {
            match (Token::parse(&token), MessageId::parse(&message_id)) {
                (Ok(token), Ok(message_id)) => Some(ReplyRequest { token, conversation, message_id, endpoint }),
                _ => None,
            }
        }
        _ => None,
    };
    StreamEntry { entry_id: entry.id, request, deliveries: entry.delivered_count.unwrap_or(deliveries) }
}
