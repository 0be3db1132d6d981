//! A scripted OpenAI-compatible model server for tests and benchmarks: real HTTP, real SSE.
//!
//! By default it answers every chat with `You said: <last user message>`, one word per chunk,
//! with configurable pacing. Tests queue [`Scripted`] behaviours (an HTTP error, a stream that
//! breaks off, a slow first token) that the next requests consume in order, and read back every
//! request body it received.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// Pacing of the default replies.
#[derive(Debug, Clone)]
pub struct Pacing {
    /// Delay before the first chunk.
    pub first_token: Duration,
    /// Delay between chunks.
    pub between_tokens: Duration,
    /// When set, replies are this many tokens (`tok0 tok1 ...`) instead of an echo.
    pub fixed_tokens: Option<usize>,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing { first_token: Duration::ZERO, between_tokens: Duration::from_millis(2), fixed_tokens: None }
    }
}

/// One scripted behaviour, consumed by one request.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// Answer with this HTTP status and an OpenAI-style error body.
    Status(u16),
    /// Stream this text (split into words), with the default pacing.
    Reply(String),
    /// Stream the default reply but wait this long before the first chunk.
    SlowFirstToken(Duration),
    /// Stream this many pieces of the default reply, then break the connection.
    CutAfter(usize),
    /// Stream the default reply with a `finish_reason` but end at EOF, without `data: [DONE]`.
    NoDoneMarker,
    /// Send nothing, not even the response's headers, for this long; then stream the default reply.
    SlowHeaders(Duration),
    /// Stream this many pieces of the default reply, then fall silent for this long before the rest.
    StallAfter(usize, Duration),
    /// Answer `429` with this `Retry-After` (seconds) and an OpenAI-style error body.
    RateLimitedFor(u64),
    /// Stream the default reply once this many streamed requests have been in flight at once
    /// (this one included; at most 30 s): a story about replies written together holds whatever
    /// the speed.
    Together(usize),
}

#[derive(Default)]
struct Shared {
    pacing: Mutex<Pacing>,
    script: Mutex<VecDeque<Scripted>>,
    requests: Mutex<Vec<Value>>,
    arrivals: Mutex<Vec<std::time::Instant>>,
    authorizations: Mutex<Vec<Option<String>>>,
    in_flight: std::sync::atomic::AtomicUsize,
    max_in_flight: std::sync::atomic::AtomicUsize,
}

/// Counts a request in flight until its response body is finished or dropped.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn new(shared: Arc<Shared>) -> Self {
        use std::sync::atomic::Ordering::SeqCst;
        let now = shared.in_flight.fetch_add(1, SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A running stub server. Dropping it does not stop it; it lives as long as the runtime.
#[derive(Clone)]
pub struct StubModel {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
}

impl StubModel {
    /// Starts the server on `listener`.
    pub fn serve(listener: TcpListener, pacing: Pacing) -> StubModel {
        let addr = listener.local_addr().expect("bound listener");
        let shared = Arc::new(Shared { pacing: Mutex::new(pacing), ..Shared::default() });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/models", get(models))
            .with_state(AppState { shared: shared.clone() });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StubModel { addr, shared }
    }

    /// Starts the server on a free loopback port.
    pub async fn start(pacing: Pacing) -> StubModel {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
        Self::serve(listener, pacing)
    }

    /// The OpenAI base URL to configure (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Changes the pacing of the replies to come (a benchmark moves from one measurement to the
    /// next without restarting what points at this server).
    pub fn set_pacing(&self, pacing: Pacing) {
        *self.shared.pacing.lock().unwrap() = pacing;
    }

    /// Forgets the requests recorded so far (long benchmark runs).
    pub fn clear_requests(&self) {
        self.shared.requests.lock().unwrap().clear();
        self.shared.arrivals.lock().unwrap().clear();
        self.shared.authorizations.lock().unwrap().clear();
    }

    /// Queues behaviours for the next requests, in order.
    pub fn push(&self, scripted: impl IntoIterator<Item = Scripted>) {
        self.shared.script.lock().unwrap().extend(scripted);
    }

    /// How many requests it is answering now (a cancelled request drops out at once).
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The largest number of requests it was answering at the same moment.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The `Authorization` header of every request received so far.
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.shared.authorizations.lock().unwrap().clone()
    }

    /// Every request body received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// When each request arrived, in order.
    pub fn arrivals(&self) -> Vec<std::time::Instant> {
        self.shared.arrivals.lock().unwrap().clone()
    }
}

async fn models() -> Json<Value> {
    // It answers whatever model a request names; these are the ones it says it serves.
    let served = ["stub", "stub-large", "other-model"];
    let data: Vec<Value> = served.iter().map(|id| json!({"id": id, "object": "model", "owned_by": "tests"})).collect();
    Json(json!({"object": "list", "data": data}))
}

async fn chat(State(state): State<AppState>, headers: axum::http::HeaderMap, Json(request): Json<Value>) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    state.shared.authorizations.lock().unwrap().push(authorization);
    state.shared.requests.lock().unwrap().push(request.clone());
    state.shared.arrivals.lock().unwrap().push(std::time::Instant::now());
    let scripted = state.shared.script.lock().unwrap().pop_front();
    let mut pacing = state.shared.pacing.lock().unwrap().clone();
    let mut text = default_reply(&request, &pacing);
    let mut cut_after = None;
    let mut stall = None;
    let mut done_marker = true;
    let mut together = None;
    match scripted {
        Some(Scripted::Status(code)) => return error_response(code),
        Some(Scripted::RateLimitedFor(seconds)) => {
            let mut response = error_response(429);
            response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
            return response;
        }
        Some(Scripted::SlowHeaders(delay)) => tokio::time::sleep(delay).await,
        Some(Scripted::StallAfter(pieces, silence)) => stall = Some((pieces, silence)),
        Some(Scripted::Reply(reply)) => text = reply,
        Some(Scripted::SlowFirstToken(delay)) => pacing.first_token = delay,
        Some(Scripted::CutAfter(pieces)) => cut_after = Some(pieces),
        Some(Scripted::NoDoneMarker) => done_marker = false,
        Some(Scripted::Together(n)) => together = Some(n),
        None => {}
    }
    let prompt_tokens = prompt_tokens(&request);
    let mut pieces = split_words(&text);
    if let Some(max) = request["max_tokens"].as_u64() {
        pieces.truncate(max as usize);
    }
    if request["stream"].as_bool() != Some(true) {
        tokio::time::sleep(pacing.first_token).await;
        return Json(json!({
            "id": "chatcmpl-stub", "object": "chat.completion", "model": "stub",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": pieces.concat()}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": pieces.len(), "total_tokens": pieces.len() + prompt_tokens}
        }))
        .into_response();
    }
    let in_flight = InFlight::new(state.shared.clone());
    if let Some(n) = together {
        let company = tokio::time::Instant::now() + Duration::from_secs(30);
        // Until the group has formed once (not "while it is whole": the first to stream may end
        // before the last has looked).
        while state.shared.max_in_flight.load(std::sync::atomic::Ordering::SeqCst) < n
            && tokio::time::Instant::now() < company
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    stream_response(pieces, Ending { pacing, cut_after, stall, done_marker, prompt_tokens }, in_flight)
}

/// The prompt tokens this server counts for `request`: the words of every message's content
/// (what its usage reports, one word a token, as it writes replies).
pub fn prompt_tokens(request: &Value) -> usize {
    request["messages"]
        .as_array()
        .map(|messages| {
            messages.iter().filter_map(|m| m["content"].as_str()).map(|c| c.split_whitespace().count()).sum()
        })
        .unwrap_or(0)
}

/// How a streamed reply is paced and how it ends.
struct Ending {
    pacing: Pacing,
    /// Break the connection before this piece.
    cut_after: Option<usize>,
    /// Fall silent before this piece, for this long.
    stall: Option<(usize, Duration)>,
    /// End with `data: [DONE]`.
    done_marker: bool,
    /// What the usage chunk reports for the prompt.
    prompt_tokens: usize,
}

fn default_reply(request: &Value, pacing: &Pacing) -> String {
    if let Some(n) = pacing.fixed_tokens {
        return (0..n).map(|i| format!("tok{i} ")).collect();
    }
    let last_user = request["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    format!("You said: {last_user}")
}

/// Splits text into pieces that concatenate back to it exactly (each word keeps its trailing space).
fn split_words(text: &str) -> Vec<String> {
    text.split_inclusive(' ').map(str::to_string).collect()
}

fn error_response(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"error": {"message": format!("scripted {code}"), "type": "stub_error"}});
    (status, Json(body)).into_response()
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    let chunk = json!({
        "id": "chatcmpl-stub", "object": "chat.completion.chunk", "model": "stub",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    });
    format!("data: {chunk}\n\n")
}

fn stream_response(pieces: Vec<String>, ending: Ending, in_flight: InFlight) -> Response {
    let events = async_events(pieces, ending).map(move |event| {
        let _counted = &in_flight;
        event
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(events))
        .expect("valid response")
}

fn async_events(
    pieces: Vec<String>,
    ending: Ending,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> {
    let total = pieces.len();
    let Ending { pacing, cut_after, stall, done_marker, prompt_tokens } = ending;
    // States: 0 = role chunk, 1..=total = content, then finish, usage, [DONE]. Tokens are due on
    // a steady clock from the first one (as a real model's), not a pause after each: a model at
    // 100 tokens/s writes 1,000 tokens in 10 s, however late the stream was polled.
    let first_content = std::sync::Arc::new(std::sync::OnceLock::<tokio::time::Instant>::new());
    futures_util::stream::unfold(0usize, move |step| {
        let pieces = pieces.clone();
        let pacing = pacing.clone();
        let first_content = first_content.clone();
        async move {
            if step == 0 {
                tokio::time::sleep(pacing.first_token).await;
                return Some((Ok(chunk(json!({"role": "assistant", "content": ""}), None)), 1));
            }
            if step == usize::MAX {
                return None;
            }
            let index = step - 1;
            if cut_after == Some(index) {
                // Let what was sent reach the client before the connection drops.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Some((Err(std::io::Error::other("scripted cut")), usize::MAX));
            }
            if index < total {
                let first = *first_content.get_or_init(tokio::time::Instant::now);
                let mut due = first + pacing.between_tokens * index as u32;
                if let Some((_, silence)) = stall.filter(|(at, _)| index >= *at) {
                    due += silence;
                }
                if index > 0 {
                    tokio::time::sleep_until(due).await;
                }
                return Some((Ok(chunk(json!({"content": pieces[index]}), None)), step + 1));
            }
            match index - total {
                0 => Some((Ok(chunk(json!({}), Some("stop"))), step + 1)),
                1 => {
                    let usage = json!({"id": "chatcmpl-stub", "object": "chat.completion.chunk", "choices": [],
                        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": total, "total_tokens": total + prompt_tokens}});
                    Some((Ok(format!("data: {usage}\n\n")), step + 1))
                }
                2 if done_marker => Some((Ok("data: [DONE]\n\n".to_string()), step + 1)),
                _ => None,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_concatenate_to_the_text() {
        let text = "You said:  two  spaces ";
        assert_eq!(split_words(text).concat(), text);
    }
}
