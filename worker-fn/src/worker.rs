//! Answering reply requests: read the stream as a consumer group, stream the model's reply to the
//! session's connections, store it once, acknowledge.
//!
//! [`Worker::process`] handles one entry and is what tests drive. [`Worker::drain`] is the Lambda
//! mode (reclaim stale entries, then read until the stream is empty); [`Worker::run`] is the daemon
//! mode (block on the stream until shutdown). Both process many conversations at once, bounded by
//! `WORKER_CONCURRENCY`.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chat_core::store::{now_rfc3339, STOP_POLL};
use chat_core::{Begun, Config, Refusal, ReplyRequest, Store, StoreError, StreamEntry};
use chat_wire::{ChatMessage, ConnectionId, ErrorCode, ReplyId, ReplyStatus, ServerFrame, Source};
use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::notify::{Delivery, ManagementApi};
use crate::provider::{ContextMessage, DeltaStream, ModelClient, ModelError};

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
    /// A reply with this id was already stored (the entry was retried after a crash).
    AlreadyAnswered,
    /// Another worker took the entry over while this one was writing (this one was thought dead):
    /// the entry is left to its new owner.
    TakenOver,
    /// A delta could not be logged (Redis failed mid-reply): nothing is stored and the entry is
    /// left pending, to be retried from the log's top.
    LeftForRetry,
    /// The session expired before the reply could be written.
    SessionExpired,
    /// The entry was not a reply request; dropped.
    Malformed,
    /// Delivered more than `WORKER_MAX_DELIVERIES` times (its workers kept dying on it): stored
    /// as an `error` reply, its clients told, acknowledged.
    GaveUp,
}

/// How a reply's generation ended.
enum Ending {
    Finished,
    Stopped,
    Failed(ModelError),
    /// The relay cannot go on: see [`Relayed`].
    Abandoned(Outcome),
}

/// The worker: the store, the model client and the Management API clients, shared by every task.
pub struct Worker {
    config: Config,
    store: Store,
    model: ModelClient,
    connections: ManagementApi,
}

impl Worker {
    /// Builds a worker from its parts.
    pub fn new(config: Config, store: Store, connections: ManagementApi) -> Self {
        let model = ModelClient::new(config.model.clone());
        Worker { config, store, model, connections }
    }

    /// Answers one stream entry, then acknowledges it. On a Redis failure the entry is left
    /// pending, to be reclaimed by whichever worker runs next.
    #[tracing::instrument(skip_all, fields(entry_id = %entry.entry_id, deliveries = entry.deliveries))]
    pub async fn process(&self, entry: &StreamEntry) -> Result<Outcome, StoreError> {
        let outcome = match &entry.request {
            None => {
                tracing::warn!(entry_id = entry.entry_id, "dropping a malformed stream entry");
                Outcome::Malformed
            }
            Some(request) if entry.deliveries > self.config.worker.max_deliveries => {
                self.give_up(entry, request).await?
            }
            Some(request) => self.answer(entry, request).await?,
        };
        if !matches!(outcome, Outcome::TakenOver | Outcome::LeftForRetry) {
            self.store.ack(&entry.entry_id).await?;
        }
        tracing::info!(outcome = ?outcome, "entry processed");
        Ok(outcome)
    }

    #[tracing::instrument(skip_all, fields(session = %request.token.log_id(), reply_id = %request.message_id.reply_id()))]
    async fn answer(&self, entry: &StreamEntry, request: &ReplyRequest) -> Result<Outcome, StoreError> {
        let entry_id = entry.entry_id.as_str();
        let token = &request.token;
        let reply_id = request.message_id.reply_id();
        let Some(session) = self.store.recent(token, self.config.context_messages).await? else {
            return Ok(Outcome::SessionExpired);
        };
        let context = build_context(&self.config.model.system_prompt, &session.messages, request.message_id.as_str());
        let model = Some(self.model.model_name().to_string());
        let mut reply = ChatMessage {
            id: reply_id.to_string(),
            msg: String::new(),
            timestamp: now_rfc3339(),
            source: Source::Assistant,
            status: ReplyStatus::Streaming,
            reply_to: Some(request.message_id.to_string()),
            model: model.clone(),
            next_seq: None,
        };
        // On a first delivery the model call starts while the reply is recorded: its first token
        // takes far longer than the Redis step, which so costs the first token nothing. A
        // redelivered entry may already be answered, so it checks first and never pays for a
        // model call it would cancel.
        let mut model_call = std::pin::pin!(self.model.stream_chat(&context));
        let mut started_early = None;
        let began = if entry.deliveries > 1 {
            self.store.begin_reply(token, &reply).await?
        } else {
            let mut begin = std::pin::pin!(self.store.begin_reply(token, &reply));
            loop {
                tokio::select! {
                    began = &mut begin => break began?,
                    started = &mut model_call, if started_early.is_none() => started_early = Some(started),
                }
            }
        };
        let begun = match began {
            Ok(begun) => begun,
            Err(refusal) => return Ok(refused(refusal)),
        };
        let (next_seq, restarted) = (begun.next_seq, begun.restarted);
        let mut relay = Relay::start(self, entry_id, request, begun);
        if restarted {
            tracing::info!("restarting a reply a dead worker had begun");
            relay.send(&restart_snapshot(request, next_seq)).await;
        }

        let (text, ending) = self.generate(model_call, started_early, &mut relay).await;
        let failed_empty = matches!(ending, Ending::Failed(_)) && text.is_empty();
        reply.status = match ending {
            Ending::Abandoned(outcome) => return Ok(outcome),
            Ending::Finished => ReplyStatus::Done,
            Ending::Stopped => ReplyStatus::Stopped,
            Ending::Failed(error) => {
                tracing::warn!(error = %error, "model call failed");
                relay
                    .send(&ServerFrame::Error {
                        reply_to: Some(request.message_id.to_string()),
                        code: error.code(),
                        message: error.to_string(),
                        retry_after: None,
                    })
                    .await;
                ReplyStatus::Error
            }
        };
        reply.msg = text;
        reply.timestamp = now_rfc3339();
        match self.store.store_reply(token, &reply, &request.message_id, relay.seq).await? {
            Ok(connections) => relay.connections = connections,
            Err(refusal) => return Ok(refused(refusal)),
        }
        let status = reply.status;
        relay
            .send(&ServerFrame::Done {
                id: reply_id.to_string(),
                reply_to: request.message_id.to_string(),
                status,
                model,
            })
            .await;
        Ok(if failed_empty { Outcome::Failed } else { Outcome::Answered { status } })
    }

    /// Ends an entry its workers keep dying on: an empty `error` reply (clients drop whatever a
    /// dead attempt showed), an error frame and `done` to its clients, and (by the caller) the
    /// acknowledgement. The person can regenerate it.
    async fn give_up(&self, entry: &StreamEntry, request: &ReplyRequest) -> Result<Outcome, StoreError> {
        tracing::error!(deliveries = entry.deliveries, "giving up on an entry its workers keep dying on");
        let reply_id = request.message_id.reply_id();
        let mut reply = ChatMessage {
            id: reply_id.to_string(),
            msg: String::new(),
            timestamp: now_rfc3339(),
            source: Source::Assistant,
            status: ReplyStatus::Streaming,
            reply_to: Some(request.message_id.to_string()),
            model: Some(self.model.model_name().to_string()),
            next_seq: None,
        };
        let begun = match self.store.begin_reply(&request.token, &reply).await? {
            Ok(begun) => begun,
            Err(refusal) => return Ok(refused(refusal)),
        };
        let (next_seq, restarted) = (begun.next_seq, begun.restarted);
        let mut relay = Relay::start(self, &entry.entry_id, request, begun);
        if restarted {
            relay.send(&restart_snapshot(request, next_seq)).await;
        }
        reply.status = ReplyStatus::Error;
        reply.timestamp = now_rfc3339();
        match self.store.store_reply(&request.token, &reply, &request.message_id, relay.seq).await? {
            Ok(connections) => relay.connections = connections,
            Err(refusal) => return Ok(refused(refusal)),
        }
        let reply_to = request.message_id.to_string();
        relay
            .send(&ServerFrame::Error {
                reply_to: Some(reply_to.clone()),
                code: ErrorCode::Internal,
                message: "this question could not be answered: the service failed on it repeatedly".into(),
                retry_after: None,
            })
            .await;
        relay.send(&ServerFrame::Done { id: reply.id, reply_to, status: ReplyStatus::Error, model: reply.model }).await;
        Ok(Outcome::GaveUp)
    }

    /// Streams the model's reply through the relay: the first piece at once, later pieces gathered
    /// for at most `DELTA_COALESCE_MS` per post. Returns the whole text and how it ended. A stop
    /// request drops the model's stream, which cancels the upstream request. `model_call` is the
    /// call in flight, or its outcome when it already came (`started_early`).
    async fn generate(
        &self,
        mut model_call: std::pin::Pin<&mut impl Future<Output = Result<DeltaStream, ModelError>>>,
        started_early: Option<Result<DeltaStream, ModelError>>,
        relay: &mut Relay<'_>,
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
        let coalesce = self.config.worker.coalesce;
        let mut pending = String::new();
        let mut flush_at: Option<Instant> = None;
        let mut first = true;
        loop {
            let deadline = flush_at;
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
                    Some(Ok(piece)) => {
                        text.push_str(&piece);
                        pending.push_str(&piece);
                        let due = first || flush_at.is_some_and(|at| Instant::now() >= at);
                        if !due {
                            flush_at.get_or_insert_with(|| Instant::now() + coalesce);
                            continue;
                        }
                        first = false;
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
            flush_at = None;
            match relay.flush(&mut pending).await {
                Relayed::Continue => {}
                Relayed::StopRequested => return (text, Ending::Stopped),
                Relayed::Abandoned(outcome) => return (text, Ending::Abandoned(outcome)),
            }
        }
    }

    /// How often a reply in progress renews its claim on its entry: well within
    /// `WORKER_CLAIM_IDLE_MS`, so a live worker's long reply is never taken over.
    fn heartbeat_every(&self) -> Duration {
        (self.config.worker.claim_idle / 3).max(Duration::from_millis(50))
    }

    /// Lambda mode: answers entries (a dead worker's first, then new ones) as they come, until
    /// the stream is empty with no reply in flight, or until too little of the invocation is left
    /// for another reply (`deadline`, minus `MAX_REPLY_SECONDS` and a margin); then finishes the
    /// replies in flight. While it takes entries it holds a lease on its free slots, so questions
    /// asked meanwhile wake no other invocation. Returns how many entries it processed.
    ///
    /// `reader` is a connection of its own for the stream reads, which block for a moment while
    /// replies are in flight (a multiplexed connection would hold their commands up meanwhile):
    /// [`Store::connect_for_blocking_reads`] with [`INVOCATION_READ_BLOCK`].
    pub async fn drain(self: &Arc<Self>, reader: &Store, deadline: Option<Instant>) -> Result<usize, StoreError> {
        let stop_taking = deadline.map(|at| {
            let keep = self.config.worker.max_reply + self.config.worker.deadline_margin();
            at.checked_sub(keep).unwrap_or_else(Instant::now)
        });
        self.serve(reader, Mode::Invocation { stop_taking }, std::future::pending()).await
    }

    /// Daemon mode: blocks on the stream and answers entries as they come, up to
    /// `WORKER_CONCURRENCY` at once, reclaiming stale entries periodically, until `shutdown`
    /// resolves; then waits (30 s at most) for replies in progress.
    pub async fn run(self: Arc<Self>, reader: Store, shutdown: impl Future<Output = ()>) {
        if let Err(error) = self.serve(&reader, Mode::Daemon, shutdown).await {
            tracing::error!(error = %error, "the worker stopped");
        }
        tracing::info!("worker stopped");
    }

    /// The one loop of both modes: a slot that frees takes the next entry at once.
    async fn serve(
        self: &Arc<Self>,
        reader: &Store,
        mode: Mode,
        shutdown: impl Future<Output = ()>,
    ) -> Result<usize, StoreError> {
        tokio::pin!(shutdown);
        let settings = &self.config.worker;
        let consumer = settings.consumer.clone();
        let permits = Arc::new(Semaphore::new(settings.concurrency));
        let processed = Arc::new(AtomicUsize::new(0));
        let claim_every = match mode {
            Mode::Daemon => (settings.claim_idle / 2).max(Duration::from_millis(100)),
            // An invocation lives minutes at most: it looks for a dead worker's entries as it starts.
            Mode::Invocation { .. } => Duration::MAX,
        };
        let lease = match mode {
            Mode::Invocation { .. } => {
                Some(Lease::start(self.store.clone(), &consumer, settings.lease, permits.clone()))
            }
            Mode::Daemon => None,
        };
        let mut next_claim = Instant::now();
        let mut failures: u32 = 0;
        // Created once, and again after a failure (a Redis that restarted without its data).
        let mut group_ready = false;
        loop {
            if let Mode::Invocation { stop_taking: Some(at) } = mode {
                if Instant::now() >= at {
                    tracing::info!("too little of the invocation left for another reply; finishing those in flight");
                    // The lease goes first; then what was queued while it was held (a question
                    // that saw this worker's free slots woke no one else) is still taken.
                    if let Some(lease) = &lease {
                        lease.release().await;
                    }
                    let room = permits.available_permits();
                    if room > 0 {
                        match reader.read_new(&consumer, room, None).await {
                            Ok(entries) => self.start_all(entries, None, &permits, &processed).await,
                            Err(error) => {
                                tracing::warn!(error = %error, "last stream read failed; the schedule reads it")
                            }
                        }
                    }
                    break;
                }
            }
            let first_permit = tokio::select! {
                _ = &mut shutdown => break,
                permit = permits.clone().acquire_owned() => permit.expect("semaphore open"),
            };
            let in_flight = settings.concurrency - 1 - permits.available_permits();
            let block = match mode {
                Mode::Daemon => Some(settings.block.min(claim_every)),
                // With replies in flight, wait a little for more (a slot frees meanwhile anyway).
                Mode::Invocation { stop_taking } if in_flight > 0 => {
                    let left = stop_taking.map_or(Duration::MAX, |at| at.saturating_duration_since(Instant::now()));
                    Some(INVOCATION_READ_BLOCK.min(left).max(Duration::from_millis(1)))
                }
                Mode::Invocation { .. } => None,
            };
            let read = async {
                if !group_ready {
                    self.store.ensure_group().await?;
                    group_ready = true;
                }
                if Instant::now() >= next_claim {
                    next_claim = Instant::now().checked_add(claim_every).unwrap_or_else(far_future);
                    let stale =
                        self.store.claim_stale(&consumer, settings.claim_idle, 1 + permits.available_permits()).await?;
                    if !stale.is_empty() {
                        return Ok(stale);
                    }
                }
                reader.read_new(&consumer, 1 + permits.available_permits(), block).await
            };
            let entries = tokio::select! {
                _ = &mut shutdown => break,
                entries = read => entries,
            };
            let mut entries = match entries {
                Ok(entries) => {
                    failures = 0;
                    entries
                }
                Err(error) => {
                    failures += 1;
                    group_ready = false;
                    if failures > 5 && matches!(mode, Mode::Invocation { .. }) {
                        // The schedule invokes a worker again within a minute.
                        drop(first_permit);
                        finish(&permits, settings.concurrency, None).await;
                        if let Some(lease) = lease {
                            lease.release().await;
                        }
                        return Err(error);
                    }
                    let backoff = Duration::from_millis(100 * 2u64.pow(failures.min(5)));
                    tracing::warn!(error = %error, backoff_ms = backoff.as_millis() as u64, "stream read failed; retrying");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            if entries.is_empty() && in_flight == 0 {
                if let (Mode::Invocation { .. }, Some(lease)) = (mode, &lease) {
                    // Nothing queued, nothing in flight: give the lease up, then look once more,
                    // so that a question queued meanwhile is either read here or wakes a worker.
                    lease.release().await;
                    entries = reader.read_new(&consumer, 1 + permits.available_permits(), None).await?;
                    if entries.is_empty() {
                        break;
                    }
                    lease.resume().await;
                }
            }
            self.start_all(entries, Some(first_permit), &permits, &processed).await;
        }
        if let Some(lease) = &lease {
            lease.release().await;
        }
        let wait = match mode {
            // Each reply ends within MAX_REPLY_SECONDS, before the deadline.
            Mode::Invocation { .. } => None,
            // After 30 s the rest are left to a takeover.
            Mode::Daemon => Some(Duration::from_secs(30)),
        };
        finish(&permits, settings.concurrency, wait).await;
        Ok(processed.load(Ordering::Relaxed))
    }
}

impl Worker {
    /// Answers each entry in a task of its own, holding a slot (`first`, then one from `permits`
    /// each) until it ends.
    async fn start_all(
        self: &Arc<Self>,
        entries: Vec<StreamEntry>,
        first: Option<tokio::sync::OwnedSemaphorePermit>,
        permits: &Arc<Semaphore>,
        processed: &Arc<AtomicUsize>,
    ) {
        let mut first = first;
        for entry in entries {
            let permit = match first.take() {
                Some(permit) => permit,
                None => permits.clone().acquire_owned().await.expect("semaphore open"),
            };
            let worker = self.clone();
            let processed = processed.clone();
            tokio::spawn(async move {
                match worker.process(&entry).await {
                    Ok(_) => {
                        processed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => tracing::error!(entry_id = entry.entry_id, error = %error, "entry left pending"),
                }
                drop(permit);
            });
        }
    }
}

/// The longest a Lambda invocation's stream read waits while its replies are in flight.
pub const INVOCATION_READ_BLOCK: Duration = Duration::from_millis(500);

/// How long the loop runs.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Until shutdown.
    Daemon,
    /// A Lambda invocation: until the stream is empty, taking no new entry after `stop_taking`.
    Invocation { stop_taking: Option<Instant> },
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// Waits until every reply in flight ended (all permits back), or `within`.
async fn finish(permits: &Semaphore, concurrency: usize, within: Option<Duration>) {
    let all = permits.acquire_many(concurrency as u32);
    match within {
        None => drop(all.await),
        Some(limit) => {
            if tokio::time::timeout(limit, all).await.is_err() {
                tracing::warn!("stopping with replies still in flight; another worker takes them over");
            }
        }
    }
}

/// A Lambda worker's lease on its free slots, renewed in the background while the worker takes
/// entries. Renewal and release hold one lock, so no renewal lands after a release.
struct Lease {
    taking: Arc<tokio::sync::Mutex<bool>>,
    store: Store,
    id: String,
    renewer: tokio::task::JoinHandle<()>,
}

impl Lease {
    fn start(store: Store, consumer: &str, lease: Duration, permits: Arc<Semaphore>) -> Lease {
        let taking = Arc::new(tokio::sync::Mutex::new(true));
        // Each invocation is its own holder, even when Lambda reuses the process.
        let id = format!("{consumer}-{}", uuid_like());
        let renewer = {
            let (store, id, taking) = (store.clone(), id.clone(), taking.clone());
            tokio::spawn(async move {
                loop {
                    {
                        let taking = taking.lock().await;
                        if *taking {
                            if let Err(error) = store.renew_worker_lease(&id, lease, permits.available_permits()).await
                            {
                                tracing::warn!(error = %error, "could not renew the worker's lease");
                            }
                        }
                    }
                    tokio::time::sleep((lease / 3).min(Duration::from_millis(250))).await;
                }
            })
        };
        Lease { taking, store, id, renewer }
    }

    /// Takes no more entries: the lease goes, and new questions wake another invocation.
    async fn release(&self) {
        let mut taking = self.taking.lock().await;
        *taking = false;
        if let Err(error) = self.store.release_worker_lease(&self.id).await {
            // It expires by itself within WORKER_LEASE_SECONDS.
            tracing::warn!(error = %error, "could not release the worker's lease");
        }
    }

    /// Takes entries again (one arrived after the lease was given up).
    async fn resume(&self) {
        *self.taking.lock().await = true;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// A process-unique suffix for a lease holder.
fn uuid_like() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{nanos:x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The model's context: the system prompt, then the session's recent messages up to and including
/// the one being answered (empty replies left out).
pub fn build_context(system_prompt: &str, history: &[ChatMessage], answering: &str) -> Vec<ContextMessage> {
    let end = history.iter().position(|m| m.id == answering).map_or(history.len(), |i| i + 1);
    let mut context = Vec::with_capacity(end + 1);
    if !system_prompt.is_empty() {
        context.push(ContextMessage { role: "system".into(), content: system_prompt.into() });
    }
    context.extend(history[..end].iter().filter(|m| !m.msg.is_empty()).map(|m| ContextMessage {
        role: match m.source {
            Source::User => "user".into(),
            Source::Assistant => "assistant".into(),
        },
        content: m.msg.clone(),
    }));
    context
}

/// What clients get when a reply starts again: an empty snapshot voids a dead worker's text.
fn restart_snapshot(request: &ReplyRequest, next_seq: u64) -> ServerFrame {
    ServerFrame::Snapshot {
        id: request.message_id.reply_id().to_string(),
        reply_to: request.message_id.to_string(),
        next_seq,
        text: String::new(),
        status: ReplyStatus::Streaming,
    }
}

/// The reply's outcome when a refused store step ends it.
fn refused(refusal: Refusal) -> Outcome {
    match refusal {
        Refusal::AlreadyStored => Outcome::AlreadyAnswered,
        Refusal::TakenOver => Outcome::TakenOver,
        Refusal::SessionExpired => Outcome::SessionExpired,
        // The worker's steps answer no other refusal; were one to come, leave the entry to a retry.
        other => {
            tracing::error!(refusal = ?other, "unexpected refusal of a worker step");
            Outcome::LeftForRetry
        }
    }
}

/// What one relay step found.
enum Relayed {
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
struct Relay<'a> {
    worker: &'a Worker,
    entry_id: &'a str,
    request: &'a ReplyRequest,
    reply_id: ReplyId,
    connections: Vec<ConnectionId>,
    seq: u64,
    /// When to ask Redis about a stop request if no delta has asked since.
    next_check: Instant,
    /// When to tell the group this entry is still being worked on.
    next_heartbeat: Instant,
    stop_requested: bool,
}

impl<'a> Relay<'a> {
    /// The relay of a reply that `begun` allows to be written.
    fn start(worker: &'a Worker, entry_id: &'a str, request: &'a ReplyRequest, begun: Begun) -> Relay<'a> {
        let now = Instant::now();
        Relay {
            worker,
            entry_id,
            request,
            reply_id: request.message_id.reply_id(),
            connections: begun.connections,
            seq: begun.next_seq,
            next_check: now + STOP_POLL,
            next_heartbeat: now + worker.heartbeat_every(),
            stop_requested: false,
        }
    }

    /// Checks for a stop request (and keeps the entry claimed); true if the person asked to stop.
    async fn check(&mut self) -> bool {
        self.next_check = Instant::now() + STOP_POLL;
        self.keep_claimed().await;
        match self.worker.store.stop_requested(&self.request.token, &self.request.message_id).await {
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
        self.next_heartbeat = Instant::now() + self.worker.heartbeat_every();
        let store = &self.worker.store;
        let (claimed, locked) = tokio::join!(
            store.keep_claimed(&self.worker.config.worker.consumer, self.entry_id),
            // The session stays busy as long as its reply is written, however long it takes.
            store.renew_reply_lock(&self.request.token, &self.request.message_id)
        );
        if let Err(error) = claimed.and(locked) {
            tracing::warn!(error = %error, "could not renew the claim on an entry");
        }
    }

    /// Sends what is pending as one delta (if anything is), and says how the reply stands.
    async fn flush(&mut self, pending: &mut String) -> Relayed {
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
        };
        let bytes = serde_json::to_vec(&frame).expect("frames always serialize");
        let known = std::mem::take(&mut self.connections);
        let store = &self.worker.store;
        let (appended, gone) = tokio::join!(
            store.append_delta(&self.request.token, &self.request.message_id, self.seq, &text),
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
        let api = &self.worker.connections;
        let deliveries = futures_util::future::join_all(
            connections.iter().map(|id| async move { (id, api.post(endpoint, id, bytes).await) }),
        )
        .await;
        let mut gone = Vec::new();
        for (connection_id, delivery) in deliveries {
            if delivery == Delivery::Gone {
                if let Err(error) = self.worker.store.unbind_connection(connection_id, Some(&self.request.token)).await
                {
                    // The mapping expires with the session; until then posts to it answer Gone again.
                    tracing::warn!(error = %error, "could not forget a gone connection");
                }
                gone.push(connection_id.clone());
            }
        }
        gone
    }

    async fn send(&mut self, frame: &ServerFrame) {
        let bytes = serde_json::to_vec(frame).expect("frames always serialize");
        let gone = self.post_all(&self.connections, &bytes).await;
        self.connections.retain(|c| !gone.contains(c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, source: Source, msg: &str) -> ChatMessage {
        ChatMessage {
            id: id.into(),
            msg: msg.into(),
            timestamp: String::new(),
            source,
            status: ReplyStatus::Done,
            reply_to: None,
            model: None,
            next_seq: None,
        }
    }

    #[test]
    fn context_ends_at_the_message_being_answered() {
        let history = vec![
            message("a", Source::User, "hi"),
            message("a.reply", Source::Assistant, "hello"),
            message("b", Source::User, "how are you?"),
            message("c", Source::User, "later"),
        ];
        let context = build_context("be nice", &history, "b");
        let roles: Vec<_> = context.iter().map(|m| (m.role.as_str(), m.content.as_str())).collect();
        assert_eq!(roles, [("system", "be nice"), ("user", "hi"), ("assistant", "hello"), ("user", "how are you?")]);
    }
}
