//! A reply rebuilt from the frames that carry it, as the web app rebuilds it: [`Reading`] takes
//! the frames one by one; [`Reply`] is what a test checks, [`TimedReply`] what a bench measures.

use std::time::Instant;

use chat_wire::{ReplyStatus, ReplyText, ServerFrame};

/// A reply as the client saw it.
pub struct Reply {
    pub deltas: Vec<ServerFrame>,
    pub snapshots: Vec<ServerFrame>,
    pub text: String,
    pub end: ServerFrame,
}

/// A reply as a measuring client saw it, with when each step arrived; a timeout or a closed
/// connection leaves the steps not seen at `None`.
#[derive(Debug, Default)]
pub struct TimedReply {
    pub sent: Option<Instant>,
    pub ack: Option<Instant>,
    pub first_delta: Option<Instant>,
    pub last_delta: Option<Instant>,
    pub done: Option<Instant>,
    pub deltas: usize,
    /// When each delta arrived, in order.
    pub delta_times: Vec<Instant>,
    pub dones: usize,
    pub status: Option<ReplyStatus>,
    pub text: String,
    /// The message of an `error` frame that ended the reply.
    pub error: Option<String>,
}

/// What one frame did to the reply being read.
pub enum Read {
    Delta,
    Snapshot,
    Ack,
    /// `done` or `error`: the reply is over.
    End(ServerFrame),
    /// Not a frame of this reply.
    Other(ServerFrame),
}

/// A reply being read: its text so far and the frames that made it.
#[derive(Debug, Default)]
pub struct Reading {
    pub text: ReplyText,
    pub deltas: Vec<ServerFrame>,
    pub snapshots: Vec<ServerFrame>,
    pub ack: Option<Instant>,
    pub first_delta: Option<Instant>,
    pub last_delta: Option<Instant>,
    /// When each delta arrived, in order.
    pub delta_times: Vec<Instant>,
}

impl Reading {
    /// For a client that already holds part of the reply.
    pub fn from_text(text: ReplyText) -> Reading {
        Reading { text, ..Reading::default() }
    }

    /// Takes `frame`, read at `at`.
    pub fn take(&mut self, frame: ServerFrame, at: Instant) -> Read {
        match &frame {
            ServerFrame::Delta { seq, text, .. } => {
                self.text.delta(*seq, text);
                self.first_delta.get_or_insert(at);
                self.last_delta = Some(at);
                self.delta_times.push(at);
                self.deltas.push(frame);
                Read::Delta
            }
            ServerFrame::Snapshot { next_seq, text, .. } => {
                self.text.snapshot(*next_seq, text);
                self.snapshots.push(frame);
                Read::Snapshot
            }
            ServerFrame::Ack { .. } => {
                self.ack = Some(at);
                Read::Ack
            }
            ServerFrame::Done { .. } | ServerFrame::Error { .. } => Read::End(frame),
            _ => Read::Other(frame),
        }
    }
}
