//! Answering one reply request: read the session, stream the model's reply to the session's
//! connections through a [`Relay`](crate::relay::Relay), store it once, acknowledge.
//!
//! [`Worker::process`] handles one entry and is what tests drive; [`crate::serve`] runs the loop
//! that feeds it, as a Lambda invocation ([`Worker::drain`]) or a daemon ([`Worker::run`]).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chat_core::store::now_rfc3339;
use chat_core::store::title_from;
use chat_core::{Config, Refusal, ReplyRequest, Store, StoreError, StreamEntry};
use chat_wire::{ChatMessage, ErrorCode, ReplyStatus, ServerFrame, Source, TitleSource, Usage};
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::context::build_context;
use crate::notify::ManagementApi;
use crate::provider::{ContextMessage, DeltaStream, ModelClient, ModelError, Piece};
use crate::relay::{Relay, Relayed};

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
    /// The relay cannot go on: see [`Relayed`].
    Abandoned(Outcome),
}

/// The longest a conversation's title may take the model.
const TITLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A conversation to title once its first reply's entry is acknowledged.
struct TitleWanted {
    question: String,
    /// The reply's start.
    answer: String,
}

/// The worker: the store, the model client and the Management API clients, shared by every task.
pub struct Worker {
    pub(crate) config: Config,
    pub(crate) store: Store,
    model: ModelClient,
    pub(crate) connections: ManagementApi,
    /// Replies being generated right now: how busy this worker is, for [`Worker::delta_interval`].
    generating: AtomicUsize,
    /// Titles to ask for once their entries are acknowledged, by entry id.
    title_wanted: std::sync::Mutex<std::collections::HashMap<String, TitleWanted>>,
}

/// Counts a reply in [`Worker::generating`] while it lives.
struct Generating<'a>(&'a AtomicUsize);

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
    /// Builds a worker from its parts.
    pub fn new(config: Config, store: Store, connections: ManagementApi) -> Self {
        let model = ModelClient::new(config.model.clone());
        Worker { config, store, model, connections, generating: AtomicUsize::new(0), title_wanted: Default::default() }
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
            Some(request) if !self.connections.accepts(&self.config, &request.endpoint) => {
                // Its question goes unanswered: a custom domain needs WS_MANAGEMENT_ENDPOINT.
                tracing::error!(endpoint = request.endpoint, "dropping an entry naming an endpoint not allowed");
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
        // After the acknowledgement: a slow title never holds the entry or delays the reply.
        let wanted = self.title_wanted.lock().expect("an unpoisoned lock").remove(&entry.entry_id);
        if let (Some(wanted), Some(request)) = (wanted, &entry.request) {
            self.title(entry, request, wanted).await;
        }
        tracing::info!(outcome = ?outcome, "entry processed");
        Ok(outcome)
    }

    #[tracing::instrument(skip_all, fields(session = %request.token.log_id(), reply_id = %request.message_id.reply_id()))]
    async fn answer(&self, entry: &StreamEntry, request: &ReplyRequest) -> Result<Outcome, StoreError> {
        let entry_id = entry.entry_id.as_str();
        let token = &request.token;
        let conversation = &request.conversation;
        let reply_id = request.message_id.reply_id();
        let (session, settings) = tokio::join!(
            self.store.recent(token, conversation, self.config.context_messages),
            self.store.conversation(token, conversation)
        );
        let Some(session) = session? else {
            return Ok(Outcome::SessionExpired);
        };
        let settings = settings?;
        // The conversation's own model (while the deployment still allows it) and instructions.
        let chosen = settings.as_ref().and_then(|c| c.model.clone());
        let allowed = self.config.model.allowed_models();
        let model_name = chosen.filter(|m| allowed.contains(m)).unwrap_or_else(|| self.model.model_name().to_string());
        let instructions = settings.as_ref().and_then(|c| c.instructions.as_deref());
        let context = build_context(
            instructions.unwrap_or(&self.config.model.system_prompt),
            &session.messages,
            request.message_id.as_str(),
            self.config.model.prompt_budget(),
        );
        let mut reply = self.placeholder(request);
        reply.model = Some(model_name.clone());
        let model = reply.model.clone();
        // On a first delivery the model call starts while the reply is recorded: its first token
        // takes far longer than the Redis step, which so costs the first token nothing. A
        // redelivered entry may already be answered, so it checks first and never pays for a
        // model call it would cancel.
        let mut model_call = std::pin::pin!(self.model.stream_chat_as(&model_name, &context));
        let mut started_early = None;
        let began = if entry.deliveries > 1 {
            self.store.begin_reply(token, conversation, &reply, true).await?
        } else {
            let mut begin = std::pin::pin!(self.store.begin_reply(token, conversation, &reply, false));
            loop {
                tokio::select! {
                    began = &mut begin => break began?,
                    started = &mut model_call, if started_early.is_none() => started_early = Some(started),
                }
            }
        };
        let begun = match began {
            Ok(begun) => begun,
            Err(refusal) => return self.end_refused(entry_id, request, refusal).await,
        };
        let (next_seq, restarted) = (begun.next_seq, begun.restarted);
        let mut relay = Relay::start(self, entry_id, request, begun);
        if restarted {
            tracing::info!("restarting a reply a dead worker had begun");
            relay.send(&restart_snapshot(request, next_seq)).await;
        } else if let Some(conversation) = settings {
            // Every open tab's list moves this conversation up (and shows the question's title),
            // while the model reads the prompt.
            relay.send(&ServerFrame::Conversation { conversation }).await;
        }

        let mut usage = None;
        let (text, ending) = self.generate(model_call, started_early, &mut relay, &mut usage).await;
        let failed_empty = matches!(ending, Ending::Failed(_)) && text.is_empty();
        reply.status = match ending {
            Ending::Abandoned(Outcome::ConversationDeleted) => {
                // The person deleted it mid-reply: every tab drops it (`main`, emptied, stays).
                if !conversation.is_main() {
                    relay.send(&ServerFrame::ConversationDeleted { id: conversation.to_string() }).await;
                }
                return Ok(Outcome::ConversationDeleted);
            }
            Ending::Abandoned(outcome) => return Ok(outcome),
            Ending::Finished => ReplyStatus::Done,
            Ending::Stopped => ReplyStatus::Stopped,
            Ending::Failed(error) => {
                tracing::warn!(error = %error, "model call failed");
                relay
                    .send(&ServerFrame::Error {
                        reply_to: Some(request.message_id.to_string()),
                        code: error.code(),
                        message: error.public_message(),
                        retry_after: None,
                        conversation: Some(conversation.to_string()),
                    })
                    .await;
                ReplyStatus::Error
            }
        };
        reply.msg = text;
        reply.timestamp = now_rfc3339();
        reply.usage = usage.map(|usage| self.priced(&model_name, usage));
        // Kept with the stored reply: a `done` sent again after a crash carries it too.
        reply.next_seq = Some(relay.seq);
        match self.store.store_reply(token, conversation, &reply, &request.message_id, relay.seq).await? {
            Ok(connections) => relay.connections = connections,
            Err(refusal) => return self.end_refused(entry_id, request, refusal).await,
        }
        let status = reply.status;
        relay
            .send(&ServerFrame::Done {
                id: reply_id.to_string(),
                reply_to: request.message_id.to_string(),
                status,
                model,
                next_seq: relay.seq,
                usage: reply.usage,
                conversation: Some(conversation.to_string()),
            })
            .await;
        // The reply keeps the other conversations alive as long as the session.
        if let Err(error) = self.store.extend_conversations(token).await {
            tracing::warn!(error = %error, "could not extend the session's conversations");
        }
        if let [question] = session.messages.as_slice() {
            if status == ReplyStatus::Done && !reply.msg.is_empty() && self.config.worker.titles {
                self.title_wanted.lock().expect("an unpoisoned lock").insert(
                    entry_id.to_string(),
                    TitleWanted { question: question.msg.clone(), answer: reply.msg.chars().take(600).collect() },
                );
            }
        }
        Ok(if failed_empty { Outcome::Failed } else { Outcome::Answered { status } })
    }

    /// Names a conversation after its first exchange: one small non-streamed call, bounded by
    /// [`TITLE_TIMEOUT`], once the reply's entry is acknowledged. A failure keeps the question's
    /// start.
    async fn title(&self, entry: &StreamEntry, request: &ReplyRequest, wanted: TitleWanted) {
        let TitleWanted { question, answer } = wanted;
        let max_chars = self.config.max_title_chars;
        let prompt = [
            ContextMessage {
                role: "system".into(),
                content: "You name conversations. Answer with a title of at most six words for the conversation \
                          below: no quotes, no final period, nothing else."
                    .into(),
            },
            ContextMessage {
                role: "user".into(),
                content: format!("Question: {}\n\nAnswer: {answer}", question.chars().take(600).collect::<String>()),
            },
        ];
        let title = match tokio::time::timeout(TITLE_TIMEOUT, self.model.complete(&prompt)).await {
            Ok(Ok(text)) => clean_title(&text, max_chars),
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "the model gave no title; the question's start stays");
                return;
            }
            Err(_) => {
                tracing::warn!("the model took too long to title a conversation; the question's start stays");
                return;
            }
        };
        if title.is_empty() {
            return;
        }
        let titled =
            self.store.title_conversation(&request.token, &request.conversation, &title, TitleSource::Model).await;
        let conversation = match titled {
            Ok(Ok(conversation)) => conversation,
            Ok(Err(_)) => return,
            Err(error) => return tracing::warn!(error = %error, "could not store a conversation's title"),
        };
        let connections = match self.store.session_connections(&request.token).await {
            Ok(connections) => connections,
            Err(error) => return tracing::warn!(error = %error, "could not read where to announce a title"),
        };
        let begun = chat_core::Begun { next_seq: 0, restarted: false, connections };
        Relay::start(self, &entry.entry_id, request, begun).send(&ServerFrame::Conversation { conversation }).await;
    }

    /// Records which models the provider serves (`GET /models` filters `ALLOWED_MODELS` by them),
    /// unless a worker did within the hour. A provider that cannot list leaves the allow-list
    /// as configured.
    pub(crate) async fn list_provider_models(&self) {
        if let Ok(Some(_)) = self.store.provider_models().await {
            return;
        }
        match self.model.list_models().await {
            Ok(models) => {
                if let Err(error) = self.store.record_provider_models(&models).await {
                    tracing::warn!(error = %error, "could not record the provider's models");
                }
            }
            Err(error) => tracing::info!(error = %error, "the provider did not list its models"),
        }
    }

    /// `usage` with its cost, when `MODEL_PRICES` prices this worker's model.
    fn priced(&self, model: &str, usage: Usage) -> Usage {
        let cost = self.config.model.price_of(model);
        Usage {
            cost_micro_usd: cost.map(|price| price.cost_micro_usd(usage.prompt_tokens, usage.completion_tokens)),
            ..usage
        }
    }

    /// The reply to `request` as it starts: empty, `streaming`, by this worker's model.
    fn placeholder(&self, request: &ReplyRequest) -> ChatMessage {
        ChatMessage {
            id: request.message_id.reply_id().to_string(),
            msg: String::new(),
            timestamp: now_rfc3339(),
            source: Source::Assistant,
            status: ReplyStatus::Streaming,
            reply_to: Some(request.message_id.to_string()),
            model: Some(self.model.model_name().to_string()),
            next_seq: None,
            usage: None,
            versions: None,
        }
    }

    /// Ends an entry its workers keep dying on: an empty `error` reply (clients drop whatever a
    /// dead attempt showed), an error frame and `done` to its clients, and (by the caller) the
    /// acknowledgement. The person can regenerate it.
    async fn give_up(&self, entry: &StreamEntry, request: &ReplyRequest) -> Result<Outcome, StoreError> {
        tracing::error!(deliveries = entry.deliveries, "giving up on an entry its workers keep dying on");
        let entry_id = entry.entry_id.as_str();
        let mut reply = self.placeholder(request);
        let begun = match self.store.begin_reply(&request.token, &request.conversation, &reply, true).await? {
            Ok(begun) => begun,
            Err(refusal) => return self.end_refused(entry_id, request, refusal).await,
        };
        let (next_seq, restarted) = (begun.next_seq, begun.restarted);
        let mut relay = Relay::start(self, entry_id, request, begun);
        if restarted {
            relay.send(&restart_snapshot(request, next_seq)).await;
        }
        reply.status = ReplyStatus::Error;
        reply.timestamp = now_rfc3339();
        reply.next_seq = Some(relay.seq);
        match self
            .store
            .store_reply(&request.token, &request.conversation, &reply, &request.message_id, relay.seq)
            .await?
        {
            Ok(connections) => relay.connections = connections,
            Err(refusal) => return self.end_refused(entry_id, request, refusal).await,
        }
        let reply_to = request.message_id.to_string();
        relay
            .send(&ServerFrame::Error {
                reply_to: Some(reply_to.clone()),
                code: ErrorCode::Internal,
                message: "this question could not be answered: the service failed on it repeatedly".into(),
                retry_after: None,
                conversation: Some(request.conversation.to_string()),
            })
            .await;
        let done = ServerFrame::Done {
            id: reply.id,
            reply_to,
            status: ReplyStatus::Error,
            model: reply.model,
            next_seq: relay.seq,
            usage: None,
            conversation: Some(request.conversation.to_string()),
        };
        relay.send(&done).await;
        Ok(Outcome::GaveUp)
    }

    /// The outcome of a refused store step; a reply found already stored has its `done` sent
    /// again, as a crash between storing it and sending `done` would otherwise leave its clients
    /// waiting (its `next_seq` tells a client that missed deltas to ask for a snapshot).
    async fn end_refused(
        &self,
        entry_id: &str,
        request: &ReplyRequest,
        refusal: Refusal,
    ) -> Result<Outcome, StoreError> {
        let outcome = refused(refusal);
        if outcome != Outcome::AlreadyAnswered {
            return Ok(outcome);
        }
        let reply_id = request.message_id.reply_id();
        let (stored, connections) = tokio::join!(
            self.store.reply_snapshot(&request.token, &request.conversation, &reply_id),
            self.store.session_connections(&request.token)
        );
        // A regenerate may have replaced it meanwhile: only a finished reply is `done`.
        let Some(stored) = stored?.filter(|reply| reply.status.is_final()) else { return Ok(outcome) };
        let done = ServerFrame::Done {
            id: stored.id,
            reply_to: request.message_id.to_string(),
            status: stored.status,
            model: stored.model,
            next_seq: stored.next_seq.unwrap_or(0),
            usage: stored.usage,
            conversation: Some(request.conversation.to_string()),
        };
        let begun = chat_core::Begun { next_seq: 0, restarted: false, connections: connections? };
        Relay::start(self, entry_id, request, begun).send(&done).await;
        Ok(outcome)
    }

    /// Streams the model's reply through the relay: the first piece at once, later pieces at most
    /// one post per [`Worker::delta_interval`], each post carrying what arrived since the last. Returns the whole text and how it ended. A stop
    /// request drops the model's stream, which cancels the upstream request. `model_call` is the
    /// call in flight, or its outcome when it already came (`started_early`). The provider's token
    /// count, when it gives one, is put in `usage`.
    async fn generate(
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
        let mut flush_at: Option<Instant> = None;
        // None until the first post, which goes at once.
        let mut last_post: Option<Instant> = None;
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
                    Some(Ok(Piece::Usage(counted))) => {
                        *usage = Some(counted);
                        continue;
                    }
                    Some(Ok(Piece::Text(piece))) => {
                        text.push_str(&piece);
                        pending.push_str(&piece);
                        if let Some(posted) = last_post {
                            let next = posted + self.delta_interval();
                            if Instant::now() < next {
                                flush_at.get_or_insert(next);
                                continue;
                            }
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
            flush_at = None;
            if !pending.is_empty() {
                last_post = Some(Instant::now());
            }
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

/// A model's title made fit to show: its first non-empty line, without the quotes, markup and
/// label models like to add, cut to `max_chars`.
pub(crate) fn clean_title(text: &str, max_chars: usize) -> String {
    let line = text.lines().map(str::trim).find(|line| !line.is_empty()).unwrap_or_default();
    let strip = |text: &'_ str| -> String {
        text.trim_matches(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '*' | '#' | '`' | '.')).to_string()
    };
    let line = strip(line);
    let line = match line.strip_prefix("Title:").or_else(|| line.strip_prefix("title:")) {
        Some(rest) => strip(rest),
        None => line,
    };
    title_from(&line, max_chars)
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

#[cfg(test)]
mod tests {
    use super::clean_title;

    #[test]
    fn model_titles_lose_their_decoration() {
        assert_eq!(clean_title("\n  \"Rust lifetimes explained.\"\nMore text", 80), "Rust lifetimes explained");
        assert_eq!(clean_title("**Title:** Trip to Oslo", 80), "Trip to Oslo");
        assert_eq!(clean_title("Title: Trip to Oslo", 80), "Trip to Oslo");
        assert_eq!(clean_title("   ", 80), "");
        assert!(clean_title(&"word ".repeat(40), 20).chars().count() <= 20);
    }
}
