//! Reading a streamed Chat Completions reply: the chunks' shapes and the SSE reader that turns
//! them into [`Piece`]s under the first-token and idle deadlines.
//!
//! SSE framing is parsed by `eventsource-stream`; this module only reads the chunks. It tolerates
//! what real servers send: chunks with empty `choices`, a final usage chunk, a stream that ends at
//! `[DONE]` or at EOF after a `finish_reason`.

use std::pin::Pin;
use std::time::Duration;

use chat_wire::Usage;
use eventsource_stream::{Event, EventStreamError};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;

use super::{ModelError, Piece};

#[derive(Deserialize)]
pub(super) struct Chunk {
    #[serde(default)]
    pub(super) choices: Vec<ChunkChoice>,
    #[serde(default)]
    pub(super) error: Option<ApiErrorDetail>,
    /// Read leniently: a count the provider shapes oddly is dropped, never the reply.
    #[serde(default)]
    pub(super) usage: Option<serde_json::Value>,
}

#[derive(Deserialize)]
pub(super) struct ChunkChoice {
    #[serde(default)]
    pub(super) delta: Option<ChunkDelta>,
    #[serde(default)]
    pub(super) message: Option<ChunkDelta>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ChunkDelta {
    #[serde(default)]
    pub(super) content: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ApiErrorDetail {
    #[serde(default)]
    pub(super) message: String,
}

#[derive(Deserialize)]
pub(super) struct ApiErrorBody {
    pub(super) error: ApiErrorDetail,
}

type EventResult = Result<Event, EventStreamError<reqwest::Error>>;

pub(super) struct SseState {
    pub(super) events: Pin<Box<dyn Stream<Item = EventResult> + Send>>,
    /// Until the first piece of text: the first-token deadline; after it, `idle` per event.
    pub(super) first_text_by: Option<tokio::time::Instant>,
    pub(super) idle: Duration,
    pub(super) finished: bool,
    pub(super) saw_finish: bool,
    /// The provider's token count, sent after the text.
    pub(super) usage: Option<Usage>,
}

impl SseState {
    pub(super) async fn next_delta(&mut self) -> Option<Result<Piece, ModelError>> {
        while !self.finished {
            let deadline = self.first_text_by.unwrap_or_else(|| tokio::time::Instant::now() + self.idle);
            let event = match tokio::time::timeout_at(deadline, self.events.next()).await {
                Err(_) => return self.fail(ModelError::Timeout),
                Ok(None) if self.saw_finish => {
                    self.finished = true;
                    break;
                }
                Ok(None) => {
                    return self
                        .fail(ModelError::StreamInterrupted("the stream ended before the reply was complete".into()))
                }
                Ok(Some(Err(error))) => return self.fail(ModelError::StreamInterrupted(error.to_string())),
                Ok(Some(Ok(event))) => event,
            };
            let data = event.data.trim();
            if data == "[DONE]" {
                self.finished = true;
                break;
            }
            if data.is_empty() {
                continue;
            }
            let chunk: Chunk = match serde_json::from_str(data) {
                Ok(chunk) => chunk,
                Err(error) => return self.fail(ModelError::StreamInterrupted(format!("unreadable chunk: {error}"))),
            };
            if let Some(error) = chunk.error {
                return self.fail(ModelError::Unavailable(error.message));
            }
            let count = |usage: &serde_json::Value, name: &str| usage.get(name).and_then(serde_json::Value::as_u64);
            if let Some((prompt, completion)) =
                chunk.usage.and_then(|u| Some((count(&u, "prompt_tokens")?, count(&u, "completion_tokens")?)))
            {
                // The last count wins (some servers count in every chunk); it goes out at the end.
                self.usage = Some(Usage { prompt_tokens: prompt, completion_tokens: completion, cost_micro_usd: None });
            }
            let Some(choice) = chunk.choices.into_iter().next() else { continue };
            if choice.finish_reason.is_some() {
                self.saw_finish = true;
            }
            if let Some(text) = choice.delta.and_then(|d| d.content).filter(|t| !t.is_empty()) {
                self.first_text_by = None;
                return Some(Ok(Piece::Text(text)));
            }
        }
        // A finished stream's last item: the provider's count, if it gave one.
        self.usage.take().map(|usage| Ok(Piece::Usage(usage)))
    }

    fn fail(&mut self, error: ModelError) -> Option<Result<Piece, ModelError>> {
        self.finished = true;
        self.usage = None;
        Some(Err(error))
    }
}
