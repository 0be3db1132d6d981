//! Answering one reply request: read the session, stream the model's reply to the session's
//! connections through a [`Relay`](crate::relay::Relay), store it once, acknowledge.
//!
//! [`Worker::process`] handles one entry and is what tests drive; [`crate::serve`] runs the loop
//! that feeds it, as a Lambda invocation ([`Worker::drain`]) or a daemon ([`Worker::run`]).

use std::sync::atomic::AtomicUsize;

use chat_core::store::now_rfc3339;
use chat_core::{Config, Refusal, ReplyRequest, Store, StoreError, StreamEntry};
use chat_wire::{ChatMessage, ErrorCode, ReplyStatus, ServerFrame, Usage};

use crate::context::build_context;
use crate::notify::ManagementApi;
use crate::outcome::{refused, restart_snapshot, Ending, Outcome};
use crate::provider::ModelClient;
use crate::relay::{Relay, RelayContext};
use crate::title::TitleWanted;

/// The worker: the store, the model client and the Management API clients, shared by every task.
pub struct Worker {
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(crate) model: ModelClient,
    pub(crate) connections: ManagementApi,
    /// Replies being generated right now: how busy this worker is, for [`Worker::delta_interval`].
    pub(crate) generating: AtomicUsize,
    /// Titles to ask for once their entries are acknowledged, by entry id.
    title_wanted: std::sync::Mutex<std::collections::HashMap<String, TitleWanted>>,
}

impl Worker {
    /// What a reply's relay needs of this worker.
    pub(crate) fn relay_context(&self) -> RelayContext<'_> {
        RelayContext {
            store: &self.store,
            connections: &self.connections,
            consumer: &self.config.worker.consumer,
            heartbeat: self.heartbeat_every(),
        }
    }

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
            self.title(request, wanted).await;
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
            Err(refusal) => return self.end_refused(request, refusal).await,
        };
        let (next_seq, restarted) = (begun.next_seq, begun.restarted);
        let mut relay = Relay::start(self.relay_context(), entry_id, request, begun);
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
            Err(refusal) => return self.end_refused(request, refusal).await,
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
            if status == ReplyStatus::Done && !reply.msg.is_empty() && self.config.worker.titles_from_model() {
                self.title_wanted
                    .lock()
                    .expect("an unpoisoned lock")
                    .insert(entry_id.to_string(), TitleWanted { question: question.msg.clone() });
            }
        }
        Ok(if failed_empty { Outcome::Failed } else { Outcome::Answered { status } })
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
        ChatMessage::reply_placeholder(
            request.message_id.as_str(),
            Some(self.model.model_name().to_string()),
            now_rfc3339(),
        )
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
            Err(refusal) => return self.end_refused(request, refusal).await,
        };
        let (next_seq, restarted) = (begun.next_seq, begun.restarted);
        let mut relay = Relay::start(self.relay_context(), entry_id, request, begun);
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
            Err(refusal) => return self.end_refused(request, refusal).await,
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
    async fn end_refused(&self, request: &ReplyRequest, refusal: Refusal) -> Result<Outcome, StoreError> {
        let outcome = refused(refusal);
        if outcome != Outcome::AlreadyAnswered {
            return Ok(outcome);
        }
        let reply_id = request.message_id.reply_id();
        let stored = self.store.reply_snapshot(&request.token, &request.conversation, &reply_id).await;
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
        chat_core::management::broadcast(&self.store, &self.connections, &request.endpoint, &request.token, &done)
            .await;
        Ok(outcome)
    }
}
