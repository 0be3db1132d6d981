//! Sending one reply's frames to every live connection of its session, each delta logged first.

use std::time::Duration;

use chat_core::store::STOP_POLL;
use chat_core::{Begun, ManagementApi, ReplyRequest, Store};
use chat_wire::{ConnectionId, ReplyId, ServerFrame};
use tokio::time::Instant;

use crate::notify::Delivery;
use crate::outcome::{refused, Outcome};

/// What a relay needs of its worker: the store, the Management API, the worker's name in the
/// consumer group, and how often to renew its claim.
#[derive(Clone, Copy)]
pub(crate) struct RelayContext<'a> {
    pub(crate) store: &'a Store,
    pub(crate) connections: &'a ManagementApi,
    pub(crate) consumer: &'a str,
    pub(crate) heartbeat: Duration,
}

/// What one relay step found.
pub(crate) enum Relayed {
    /// Go on streaming.
    Continue,
    /// The person asked to stop this reply.
    StopRequested,
    /// This attempt must end without storing or acknowledging anything
    /// ([`Outcome::TakenOver`] or [`Outcome::LeftForRetry`]).
    Abandoned(Outcome),
}

/// Sends one reply's frames to every live connection of its session. Each delta is first appended
/// to the reply's log, which in the same round trip says whether to stop and which connections
/// are live; connections the Management API reports gone are forgotten.
pub(crate) struct Relay<'a> {
    context: RelayContext<'a>,
    entry_id: &'a str,
    request: &'a ReplyRequest,
    reply_id: ReplyId,
    pub(crate) connections: Vec<ConnectionId>,
    pub(crate) seq: u64,
    /// When to ask Redis about a stop request if no delta has asked since.
    pub(crate) next_check: Instant,
    /// When to tell the group this entry is still being worked on.
    next_heartbeat: Instant,
    stop_requested: bool,
}

impl<'a> Relay<'a> {
    /// The relay of a reply that `begun` allows to be written.
    pub(crate) fn start(
        context: RelayContext<'a>,
        entry_id: &'a str,
        request: &'a ReplyRequest,
        begun: Begun,
    ) -> Relay<'a> {
        let now = Instant::now();
        Relay {
            context,
            entry_id,
            request,
            reply_id: request.message_id.reply_id(),
            connections: begun.connections,
            seq: begun.next_seq,
            next_check: now + STOP_POLL,
            next_heartbeat: now + context.heartbeat,
            stop_requested: false,
        }
    }

    /// Checks for a stop request (and keeps the entry claimed); true if the person asked to stop.
    pub(crate) async fn check(&mut self) -> bool {
        self.next_check = Instant::now() + STOP_POLL;
        self.keep_claimed().await;
        match self
            .context
            .store
            .stop_requested(&self.request.token, &self.request.conversation, &self.request.message_id)
            .await
        {
            Ok(requested) => self.stop_requested |= requested,
            // The next check, or the next delta's append, asks again.
            Err(error) => tracing::warn!(error = %error, "could not check for a stop request"),
        }
        self.stop_requested
    }

    /// Renews the claim on the entry when due, whether the model is silent or streaming.
    async fn keep_claimed(&mut self) {
        if Instant::now() < self.next_heartbeat {
            return;
        }
        self.next_heartbeat = Instant::now() + self.context.heartbeat;
        let store = &self.context.store;
        let (claimed, locked) = tokio::join!(
            store.keep_claimed(self.context.consumer, self.entry_id),
            // The session stays busy as long as its reply is written, however long it takes.
            store.renew_reply_lock(&self.request.token, &self.request.conversation, &self.request.message_id)
        );
        if let Err(error) = claimed.and(locked) {
            tracing::warn!(error = %error, "could not renew the claim on an entry");
        }
    }

    /// Sends what is pending as one delta (if anything is), and says how the reply stands.
    pub(crate) async fn flush(&mut self, pending: &mut String) -> Relayed {
        if !pending.is_empty() {
            let relayed = self.delta(std::mem::take(pending)).await;
            if !matches!(relayed, Relayed::Continue) {
                return relayed;
            }
        }
        if self.stop_requested {
            Relayed::StopRequested
        } else {
            Relayed::Continue
        }
    }

    /// Logs a delta and posts it. The post to the connections already known runs while the
    /// append is in flight (the first delta of a reply pays one round trip, not two); connections
    /// the append reports that were not known get the delta right after, so every connection bound
    /// before the append still receives it live.
    async fn delta(&mut self, text: String) -> Relayed {
        self.keep_claimed().await;
        let frame = ServerFrame::Delta {
            id: self.reply_id.to_string(),
            reply_to: self.request.message_id.to_string(),
            seq: self.seq,
            text: text.clone(),
            conversation: Some(self.request.conversation.to_string()),
        };
        let bytes = serde_json::to_vec(&frame).expect("frames always serialize");
        let known = std::mem::take(&mut self.connections);
        let store = &self.context.store;
        let (appended, gone) = tokio::join!(
            store.append_delta(
                &self.request.token,
                &self.request.conversation,
                &self.request.message_id,
                self.seq,
                &text
            ),
            self.post_all(&known, &bytes)
        );
        let logged = match appended {
            Ok(Ok(logged)) => logged,
            Ok(Err(refusal)) => {
                self.connections = known;
                return Relayed::Abandoned(refused(refusal));
            }
            // A delta that is not in the log would make the log and the screens disagree: end
            // this attempt without storing or acknowledging. The entry is retried from the log's
            // top (a restart that voids the unlogged delta on every screen).
            Err(error) => {
                tracing::warn!(error = %error, "could not log a delta; leaving the reply to a retry");
                self.connections = known;
                return Relayed::Abandoned(Outcome::LeftForRetry);
            }
        };
        self.seq += 1;
        self.stop_requested |= logged.stop_requested;
        self.next_check = Instant::now() + STOP_POLL;
        let fresh: Vec<ConnectionId> = logged.connections.iter().filter(|c| !known.contains(c)).cloned().collect();
        let gone_fresh = self.post_all(&fresh, &bytes).await;
        let mut live = logged.connections;
        live.retain(|c| !gone.contains(c) && !gone_fresh.contains(c));
        self.connections = live;
        if self.stop_requested {
            Relayed::StopRequested
        } else {
            Relayed::Continue
        }
    }

    /// Posts one frame to `connections`; returns those the Management API reports gone (and
    /// forgets them).
    async fn post_all(&self, connections: &[ConnectionId], bytes: &[u8]) -> Vec<ConnectionId> {
        let endpoint = &self.request.endpoint;
        let api = &self.context.connections;
        let deliveries = futures_util::future::join_all(
            connections.iter().map(|id| async move { (id, api.post(endpoint, id, bytes).await) }),
        )
        .await;
        let mut gone = Vec::new();
        for (connection_id, delivery) in deliveries {
            if delivery == Delivery::Gone {
                if let Err(error) = self.context.store.unbind_connection(connection_id, Some(&self.request.token)).await
                {
                    // The mapping expires with the session; until then posts to it answer Gone again.
                    tracing::warn!(error = %error, "could not forget a gone connection");
                }
                gone.push(connection_id.clone());
            }
        }
        gone
    }

    pub(crate) async fn send(&mut self, frame: &ServerFrame) {
        let bytes = serde_json::to_vec(frame).expect("frames always serialize");
        let gone = self.post_all(&self.connections, &bytes).await;
        self.connections.retain(|c| !gone.contains(c));
    }
}
