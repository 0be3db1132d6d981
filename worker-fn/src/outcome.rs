//! How one entry ends ([`Outcome`]), how a reply's generation ends ([`Ending`]), and what a
//! refused store step means for the entry.

use chat_core::{Refusal, ReplyRequest};
use chat_wire::{ReplyStatus, ServerFrame};

use crate::provider::ModelError;

/// How one entry ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The reply was streamed and stored.
    Answered {
        /// How the reply ended.
        status: ReplyStatus,
    },
    /// The model failed before writing anything; the person got an error frame and the reply is
    /// stored as `error` (empty), ready to be regenerated.
    Failed,
    /// A reply with this id was already stored (the entry was retried after a crash): its `done`
    /// is sent again, for clients that missed it.
    AlreadyAnswered,
    /// The reply was begun from another entry for the same question (one queued twice), which
    /// answers it: nothing to do.
    BeingAnswered,
    /// Another worker took the entry over while this one was writing (this one was thought dead):
    /// the entry is left to its new owner.
    TakenOver,
    /// A delta could not be logged (Redis failed mid-reply): nothing is stored and the entry is
    /// left pending, to be retried from the log's top.
    LeftForRetry,
    /// The session expired before the reply could be written.
    SessionExpired,
    /// The conversation was deleted (with its question) before or while the reply was written.
    ConversationDeleted,
    /// The entry was not a reply request, or named a Management API endpoint that is not this
    /// deployment's; dropped.
    Malformed,
    /// Delivered more than `WORKER_MAX_DELIVERIES` times (its workers kept dying on it): stored
    /// as an `error` reply, its clients told, acknowledged.
    GaveUp,
}

/// How a reply's generation ended.
pub(crate) enum Ending {
    Finished,
    Stopped,
    Failed(ModelError),
    /// The relay cannot go on (see `crate::relay::Relayed`).
    Abandoned(Outcome),
}

/// What clients get when a reply starts again: an empty snapshot voids a dead worker's text.
pub(crate) fn restart_snapshot(request: &ReplyRequest, next_seq: u64) -> ServerFrame {
    ServerFrame::Snapshot {
        id: request.message_id.reply_id().to_string(),
        reply_to: request.message_id.to_string(),
        next_seq,
        text: String::new(),
        status: ReplyStatus::Streaming,
        conversation: Some(request.conversation.to_string()),
    }
}

/// The reply's outcome when a refused store step ends it.
pub(crate) fn refused(refusal: Refusal) -> Outcome {
    match refusal {
        Refusal::AlreadyStored => Outcome::AlreadyAnswered,
        Refusal::BeingAnswered => Outcome::BeingAnswered,
        Refusal::TakenOver => Outcome::TakenOver,
        Refusal::SessionExpired => Outcome::SessionExpired,
        Refusal::ConversationDeleted => Outcome::ConversationDeleted,
        // The worker's steps answer no other refusal; were one to come, leave the entry to a retry.
        other => {
            tracing::error!(refusal = ?other, "unexpected refusal of a worker step");
            Outcome::LeftForRetry
        }
    }
}
