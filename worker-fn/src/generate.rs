//! Streaming the model's reply through a [`Relay`]: the first piece at once, later ones paced by a
//! [`Pacer`], the person's stop and `MAX_REPLY_SECONDS` heeded throughout.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chat_wire::Usage;
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::outcome::Ending;
use crate::pacing::Pacer;
use crate::provider::{DeltaStream, ModelError, Piece};
use crate::relay::{Relay, Relayed};
use crate::worker::Worker;

/// Counts a reply in [`Worker::generating`] while it lives.
pub(crate) struct Generating<'a>(&'a AtomicUsize);

impl<'a> Generating<'a> {
    fn start(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Generating(count)
    }
}

impl Drop for Generating<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Worker {
    /// Streams the model's reply through the relay: the first piece at once, later pieces at most
    /// one post per [`Worker::delta_interval`], each post carrying what arrived since the last.
    /// Returns the whole text and how it ended. A stop
    /// request drops the model's stream, which cancels the upstream request. `model_call` is the
    /// call in flight, or its outcome when it already came (`started_early`). The provider's token
    /// count, when it gives one, is put in `usage`.
    pub(crate) async fn generate(
        &self,
        mut model_call: std::pin::Pin<&mut impl Future<Output = Result<DeltaStream, ModelError>>>,
        started_early: Option<Result<DeltaStream, ModelError>>,
        relay: &mut Relay<'_>,
        usage: &mut Option<Usage>,
    ) -> (String, Ending) {
        let started_at = Instant::now();
        let mut text = String::new();
        let cut_at = started_at + self.config.worker.max_reply;
        let too_long = || ModelError::ReplyTooLong(self.config.worker.max_reply.as_secs());
        let started = match started_early {
            Some(started) => started,
            None => loop {
                let check_at = relay.next_check;
                tokio::select! {
                    started = &mut model_call => break started,
                    _ = tokio::time::sleep_until(check_at) => {
                        if relay.check().await {
                            return (text, Ending::Stopped);
                        }
                    }
                    // Retries of a slow or failing provider count against the bound too.
                    _ = tokio::time::sleep_until(cut_at) => return (text, Ending::Failed(too_long())),
                }
            },
        };
        let mut stream = match started {
            Ok(stream) => stream,
            Err(error) => return (text, Ending::Failed(error)),
        };
        let _generating = Generating::start(&self.generating);
        let mut pending = String::new();
        let mut pacer = Pacer::default();
        loop {
            let deadline = pacer.due();
            let check_at = relay.next_check;
            tokio::select! {
                _ = tokio::time::sleep_until(cut_at) => {
                    // Dropping the stream closes the model's HTTP response.
                    drop(stream);
                    return match relay.flush(&mut pending).await {
                        Relayed::Abandoned(outcome) => (text, Ending::Abandoned(outcome)),
                        Relayed::Continue | Relayed::StopRequested => (text, Ending::Failed(too_long())),
                    };
                }
                item = stream.next() => match item {
                    Some(Ok(Piece::Usage(counted))) => {
                        *usage = Some(counted);
                        continue;
                    }
                    Some(Ok(Piece::Text(piece))) => {
                        text.push_str(&piece);
                        pending.push_str(&piece);
                        if !pacer.arrived(Instant::now(), self.delta_interval()) {
                            continue;
                        }
                    }
                    end => {
                        let ending = match end {
                            Some(Err(error)) => Ending::Failed(error),
                            _ => Ending::Finished,
                        };
                        return match relay.flush(&mut pending).await {
                            Relayed::Abandoned(outcome) => (text, Ending::Abandoned(outcome)),
                            Relayed::Continue | Relayed::StopRequested => (text, ending),
                        };
                    }
                },
                _ = tokio::time::sleep_until(check_at) => {
                    if !relay.check().await {
                        continue;
                    }
                    // Dropping the stream closes the model's HTTP response: generation stops upstream.
                    drop(stream);
                    return match relay.flush(&mut pending).await {
                        Relayed::Abandoned(outcome) => (text, Ending::Abandoned(outcome)),
                        Relayed::Continue | Relayed::StopRequested => (text, Ending::Stopped),
                    };
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {}
            }
            pacer.posted(Instant::now(), !pending.is_empty());
            match relay.flush(&mut pending).await {
                Relayed::Continue => {}
                Relayed::StopRequested => return (text, Ending::Stopped),
                Relayed::Abandoned(outcome) => return (text, Ending::Abandoned(outcome)),
            }
        }
    }

    /// The shortest time between two posts of one reply, for as busy as this worker is now.
    pub(crate) fn delta_interval(&self) -> Duration {
        self.config.worker.delta_interval(self.generating.load(Ordering::Relaxed))
    }

    /// How often a reply in progress renews its claim on its entry: well within
    /// `WORKER_CLAIM_IDLE_MS`, so a live worker's long reply is never taken over.
    pub(crate) fn heartbeat_every(&self) -> Duration {
        (self.config.worker.claim_idle / 3).max(Duration::from_millis(50))
    }
}
