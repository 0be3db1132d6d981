//! An OpenAI-compatible HTTP server over the [`Engine`]: `POST /v1/chat/completions` (streamed
//! over SSE or not), `GET /v1/models`, and `GET /health` (503 while the model loads, as
//! llama.cpp's own server does). The worker talks to it exactly as it talks to OpenAI.

use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::engine::{Engine, EngineError, EngineState, Event, Generation, Turn};

/// The request body: the subset of Chat Completions the engine supports; other fields are ignored.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<RequestMessage>,
    /// Stream the reply as server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// `{"include_usage": true}` adds a final usage chunk to a stream.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Most tokens to generate.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// The newer name of `max_tokens`.
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    /// Sampling temperature; 0 is greedy.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Sampling seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// One stop string or a list of them.
    #[serde(default)]
    pub stop: Option<Stop>,
}

/// `stream_options`.
#[derive(Debug, Deserialize)]
pub struct StreamOptions {
    /// Send a usage chunk before `[DONE]`.
    #[serde(default)]
    pub include_usage: bool,
}

/// `stop`: a string or an array of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One stop string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// One message: `content` is a string or an array of `{"type":"text","text":...}` parts.
#[derive(Debug, Deserialize)]
pub struct RequestMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: Value,
}

/// Defaults applied when a request leaves a setting out, and the bounds a request must keep.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// Most `stop` sequences in one request (`EMBEDDED_MAX_STOP_SEQUENCES`).
    pub max_stops: usize,
    /// Longest `stop` sequence, in bytes (`EMBEDDED_MAX_STOP_BYTES`).
    pub max_stop_bytes: usize,
    /// `max_tokens` when absent.
    pub max_tokens: u32,
    /// `temperature` when absent.
    pub temperature: f32,
    /// `top_p` when absent.
    pub top_p: f32,
    /// `seed` when absent.
    pub seed: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults { max_stops: 4, max_stop_bytes: 256, max_tokens: 512, temperature: 0.7, top_p: 0.95, seed: 42 }
    }
}

#[derive(Clone)]
struct AppState {
    engine: Engine,
    defaults: Defaults,
}

/// The server's routes.
pub fn router(engine: Engine, defaults: Defaults) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .with_state(AppState { engine, defaults })
}

/// Serves on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    engine: Engine,
    defaults: Defaults,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(engine, defaults)).with_graceful_shutdown(shutdown).await
}

fn error(status: StatusCode, kind: &str, code: &str, message: String) -> Response {
    (status, Json(json!({"error": {"message": message, "type": kind, "code": code}}))).into_response()
}

fn engine_error(failure: EngineError) -> Response {
    match failure {
        EngineError::ContextExceeded { .. } => {
            error(StatusCode::BAD_REQUEST, "invalid_request_error", "context_length_exceeded", failure.to_string())
        }
        EngineError::Invalid(_) => {
            error(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_request", failure.to_string())
        }
        EngineError::Busy(_) => {
            let mut response =
                error(StatusCode::SERVICE_UNAVAILABLE, "server_error", "model_busy", failure.to_string());
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("2"));
            response
        }
        EngineError::Model(_) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "model_failure", failure.to_string())
        }
        EngineError::Yielded => {
            error(StatusCode::SERVICE_UNAVAILABLE, "server_error", "yielded_to_a_reply", failure.to_string())
        }
    }
}

async fn health(State(state): State<AppState>) -> Response {
    match state.engine.state() {
        EngineState::Ready => Json(json!({"status": "ok"})).into_response(),
        EngineState::Loading { progress } => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "loading", "progress": progress}))).into_response()
        }
        EngineState::Failed(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "failed", "error": reason}))).into_response()
        }
    }
}

async fn models(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"object": "list", "data": [{"id": state.engine.name(), "object": "model", "owned_by": "local"}]}))
}

fn text_of(content: &Value) -> Option<String> {
    match content {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => {
            Some(parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(""))
        }
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// The request header that marks work no person waits on (`title`): it waits behind every reply
/// and gives way to one (see [`crate::engine`]).
pub const PURPOSE_HEADER: &str = "x-chat-purpose";

async fn chat_completions(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Result<Json<ChatRequest>, JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => {
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_json", rejection.body_text())
        }
    };
    if request.messages.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_request",
            "`messages` must not be empty".into(),
        );
    }
    let mut turns = Vec::with_capacity(request.messages.len());
    for message in &request.messages {
        let Some(content) = text_of(&message.content) else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request",
                "`content` must be a string or text parts".into(),
            );
        };
        turns.push(Turn { role: message.role.clone(), content });
    }
    let defaults = &state.defaults;
    let stop = match request.stop {
        None => Vec::new(),
        Some(Stop::One(stop)) => vec![stop],
        Some(Stop::Many(stops)) => stops,
    };
    // Every token is checked against every stop sequence: both are bounded.
    if stop.len() > defaults.max_stops || stop.iter().any(|s| s.len() > defaults.max_stop_bytes) {
        let why = format!(
            "`stop` takes at most {} sequences of at most {} bytes each",
            defaults.max_stops, defaults.max_stop_bytes
        );
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_request", why);
    }
    let generation = Generation {
        turns,
        max_tokens: request.max_completion_tokens.or(request.max_tokens).unwrap_or(defaults.max_tokens).max(1),
        temperature: request.temperature.unwrap_or(defaults.temperature),
        top_p: request.top_p.unwrap_or(defaults.top_p),
        seed: request.seed.map(|s| s as u32).unwrap_or(defaults.seed),
        stop,
        background: headers
            .get(PURPOSE_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|purpose| purpose.eq_ignore_ascii_case("title")),
    };
    let mut events = state.engine.generate(generation);
    // Wait for the first event so a request the engine refuses gets a real HTTP error status.
    let first = match events.recv().await {
        Some(Event::Failed(failure)) => return engine_error(failure),
        Some(event) => event,
        None => return engine_error(EngineError::Model("the engine stopped".into())),
    };
    let id = format!("chatcmpl-{}", SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos());
    let created = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let model = state.engine.name().to_string();
    if !request.stream {
        return complete(first, events, &id, created, &model).await;
    }
    let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let opening = futures_util::stream::once({
        let role = chunk(json!({"role": "assistant", "content": ""}), None);
        async move { role }
    });
    let rest =
        futures_util::stream::unfold(events, |mut events| async move { events.recv().await.map(|e| (e, events)) });
    let body = opening
        .chain(futures_util::stream::once(async move { first }).chain(rest).flat_map(move |event| {
            let items: Vec<Value> = match event {
                Event::Text(text) => vec![chunk(json!({"content": text}), None)],
                Event::Finished { reason, prompt_tokens, completion_tokens } => {
                    let mut items = vec![chunk(json!({}), Some(reason.as_str()))];
                    if include_usage {
                        items.push(json!({"object": "chat.completion.chunk", "choices": [], "usage": {
                            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                            "total_tokens": prompt_tokens + completion_tokens}}));
                    }
                    items
                }
                Event::Failed(failure) => {
                    vec![json!({"error": {"message": failure.to_string(), "type": "server_error"}})]
                }
            };
            futures_util::stream::iter(items)
        }))
        .map(|value| Ok::<_, std::convert::Infallible>(format!("data: {value}\n\n")))
        .chain(futures_util::stream::once(async { Ok("data: [DONE]\n\n".to_string()) }));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(axum::body::Body::from_stream(body))
        .expect("valid response")
}

async fn complete(first: Event, mut events: crate::engine::Events, id: &str, created: u64, model: &str) -> Response {
    let mut text = String::new();
    let mut next = Some(first);
    while let Some(event) = next {
        match event {
            Event::Text(piece) => text.push_str(&piece),
            Event::Finished { reason, prompt_tokens, completion_tokens } => {
                return Json(json!({
                    "id": id, "object": "chat.completion", "created": created, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason.as_str()}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                              "total_tokens": prompt_tokens + completion_tokens}
                }))
                .into_response()
            }
            Event::Failed(failure) => return engine_error(failure),
        }
        next = events.recv().await;
    }
    engine_error(EngineError::Model("the engine stopped".into()))
}
