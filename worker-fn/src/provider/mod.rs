//! The model: OpenAI's Chat Completions API, or any server that speaks it (llama.cpp, vLLM, the
//! embedded model), streamed over server-sent events.
//!
//! Layout: this module asks (the request, retries with backoff, titles, the model list);
//! [`sse`] reads a streamed reply; [`error`] says why a call failed.

mod error;
mod sse;

pub use error::ModelError;

use std::pin::Pin;
use std::time::Duration;

use chat_core::ModelConfig;
use chat_wire::Usage;
use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use sse::{ApiErrorBody, Chunk, SseState};

/// One message of the model's context, in Chat Completions form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// What the model's stream carries: the reply's text piece by piece, and (from providers that
/// count, after the text) the tokens it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A piece of the reply's text.
    Text(String),
    /// The provider's count of the request's tokens (no price yet).
    Usage(Usage),
}

/// The reply as it arrives.
pub type DeltaStream = Pin<Box<dyn Stream<Item = Result<Piece, ModelError>> + Send>>;

/// A Chat Completions client. Holds one pooled HTTP client: build it once per process.
#[derive(Clone)]
pub struct ModelClient {
    http: reqwest::Client,
    config: ModelConfig,
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [ContextMessage],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<&'static [&'static str]>,
}

/// What a request asks the provider for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A person's reply, streamed: `MAX_REPLY_TOKENS`, the configured sampling.
    Reply,
    /// A conversation's title: one line of a few tokens, greedy, marked as background work
    /// ([`PURPOSE_HEADER`]) so a server that queues (the embedded one) serves replies first.
    Title,
}

/// The most tokens a title may take.
const TITLE_MAX_TOKENS: u32 = 24;

/// The request header that tells a server which requests no person waits on
/// (`chat_model::server::PURPOSE_HEADER`); other servers ignore it.
pub const PURPOSE_HEADER: &str = "x-chat-purpose";

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

impl ModelClient {
    /// Builds the client (connection pool, timeouts) from the model settings.
    pub fn new(config: ModelConfig) -> Self {
        chat_core::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .expect("the TLS backend initialises");
        ModelClient { http, config }
    }

    /// The model name sent with each request.
    pub fn model_name(&self) -> &str {
        &self.config.model
    }

    /// Starts a streamed reply. Returns once the first piece of text (or, for an empty reply, the
    /// provider's count) has arrived, so that a 429, a 5xx, a timeout or a stream that breaks
    /// before any text is retried with backoff (`MODEL_RETRIES`, `MODEL_RETRY_BASE_MS`, or the
    /// provider's `Retry-After`) and the person never sees a half-started reply twice.
    pub async fn stream_chat(&self, messages: &[ContextMessage]) -> Result<DeltaStream, ModelError> {
        self.stream_chat_as(&self.config.model, messages).await
    }

    /// [`ModelClient::stream_chat`] with another model of the same provider (a conversation's).
    pub async fn stream_chat_as(&self, model: &str, messages: &[ContextMessage]) -> Result<DeltaStream, ModelError> {
        let mut attempt = 0;
        loop {
            let started = self.try_stream(model, messages).await;
            let error = match started {
                Ok(mut stream) => match stream.next().await {
                    Some(Ok(first)) => {
                        return Ok(Box::pin(futures_util::stream::once(async { Ok(first) }).chain(stream)))
                    }
                    None => return Ok(Box::pin(futures_util::stream::empty())),
                    Some(Err(error)) => error,
                },
                Err(error) => error,
            };
            if !error.is_retryable() || attempt >= self.config.retries {
                return Err(error);
            }
            let backoff = match &error {
                ModelError::RateLimited { retry_after: Some(seconds) } => {
                    Duration::from_secs(*seconds).min(Duration::from_secs(30))
                }
                _ => self.config.retry_base * 2u32.saturating_pow(attempt),
            };
            tracing::warn!(error = %error, attempt, backoff_ms = backoff.as_millis() as u64, "model call failed; retrying");
            tokio::time::sleep(backoff).await;
            attempt += 1;
        }
    }

    /// A conversation's title: one non-streamed line of at most a few tokens, asked as
    /// background work (never retried: a title that does not come leaves the question's words).
    pub async fn title(&self, messages: &[ContextMessage]) -> Result<String, ModelError> {
        let deadline = tokio::time::Instant::now() + self.config.first_token_timeout;
        let response = self.send(&self.config.model, messages, Purpose::Title, deadline).await?;
        // The whole text is the first text: the same deadline bounds reading it.
        let body: Chunk = tokio::time::timeout_at(deadline, response.json())
            .await
            .map_err(|_| ModelError::Timeout)?
            .map_err(|e| ModelError::Unavailable(e.to_string()))?;
        Ok(body.choices.into_iter().next().and_then(|c| c.message.and_then(|m| m.content)).unwrap_or_default())
    }

    /// The models the provider serves (`GET /models`), by id.
    pub async fn list_models(&self) -> Result<Vec<String>, ModelError> {
        #[derive(Deserialize)]
        struct Listed {
            data: Vec<ListedModel>,
        }
        #[derive(Deserialize)]
        struct ListedModel {
            id: String,
        }
        let mut request = self.http.get(format!("{}/models", self.config.base_url));
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        // One bound for the headers and the body: a provider stalling mid-body ends here too.
        let listed = tokio::time::timeout(self.config.first_token_timeout, async {
            let response = request.send().await.map_err(|e| ModelError::Unavailable(without_url(&e)))?;
            if !response.status().is_success() {
                return Err(ModelError::Unavailable(format!("GET /models answered {}", response.status())));
            }
            response.json::<Listed>().await.map_err(|e| ModelError::Unavailable(without_url(&e)))
        })
        .await
        .map_err(|_| ModelError::Timeout)??;
        Ok(listed.data.into_iter().map(|model| model.id).collect())
    }

    async fn try_stream(&self, model: &str, messages: &[ContextMessage]) -> Result<DeltaStream, ModelError> {
        // `MODEL_FIRST_TOKEN_TIMEOUT_SECONDS` runs until the first piece of text, headers or not:
        // servers answer the headers at once and then read the whole prompt before writing.
        let first_text_by = tokio::time::Instant::now() + self.config.first_token_timeout;
        let response = self.send(model, messages, Purpose::Reply, first_text_by).await?;
        let events = response.bytes_stream().eventsource();
        let state = SseState {
            events: Box::pin(events),
            first_text_by: Some(first_text_by),
            idle: self.config.idle_timeout,
            finished: false,
            saw_finish: false,
            usage: None,
        };
        Ok(Box::pin(futures_util::stream::unfold(state, |mut state| async move {
            let item = state.next_delta().await?;
            Some((item, state))
        })))
    }

    async fn send(
        &self,
        model: &str,
        messages: &[ContextMessage],
        purpose: Purpose,
        deadline: tokio::time::Instant,
    ) -> Result<reqwest::Response, ModelError> {
        let stream = purpose == Purpose::Reply;
        let body = ChatRequest {
            model,
            messages,
            stream,
            stream_options: stream.then_some(StreamOptions { include_usage: true }),
            max_tokens: if stream { self.config.max_reply_tokens } else { TITLE_MAX_TOKENS },
            temperature: if stream { self.config.temperature } else { Some(0.0) },
            seed: self.config.seed,
            stop: (!stream).then_some(&["\n"][..]),
        };
        let mut request = self.http.post(format!("{}/chat/completions", self.config.base_url)).json(&body);
        if purpose == Purpose::Title {
            request = request.header(PURPOSE_HEADER, "title");
        }
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response = tokio::time::timeout_at(deadline, request.send())
            .await
            .map_err(|_| ModelError::Timeout)?
            .map_err(|e| if e.is_timeout() { ModelError::Timeout } else { ModelError::Unavailable(without_url(&e)) })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let text = response.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<ApiErrorBody>(&text)
            .map(|b| b.error.message)
            .unwrap_or_else(|_| text.chars().take(200).collect());
        let detail = if detail.is_empty() { status.to_string() } else { detail };
        Err(match status.as_u16() {
            401 | 403 => ModelError::Unauthorized(status.to_string()),
            429 => ModelError::RateLimited { retry_after },
            500..=599 => ModelError::Unavailable(status.to_string()),
            _ => ModelError::Rejected(detail),
        })
    }
}

fn without_url(error: &reqwest::Error) -> String {
    // reqwest's messages embed the URL; keep logs and frames free of endpoints.
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    let mut message = if error.is_connect() { "connection failed".to_string() } else { "request failed".to_string() };
    while let Some(inner) = source {
        message = format!("{message}: {inner}");
        source = inner.source();
        if source.is_none() {
            break;
        }
    }
    message
}
