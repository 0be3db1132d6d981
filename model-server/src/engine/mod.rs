//! The llama.cpp engine: loads a GGUF model on its own thread and generates replies one request at
//! a time, streaming each piece of text as it is decoded.
//!
//! One thread owns the model and one context: requests queue in arrival order (simultaneous
//! requests are all answered, never interleaved), at most `max_queue` of them waiting or running
//! (more are refused with [`EngineError::Busy`]). A request whose receiver is dropped (the client
//! went away, or retried) is skipped if it waits, and stops at its next prompt batch or token if
//! it runs: a retry replaces its earlier attempt instead of queueing behind it.
//!
//! A background generation (a conversation's title) never delays a person's reply: it waits
//! while any reply is queued, and one that runs gives way ([`EngineError::Yielded`]) at its next
//! token when a reply arrives.
//!
//! Layout: this module is the handle the server holds ([`Engine`]) and what it sends and receives;
//! `llama` is the engine thread (loading, the queue, generating); `text` turns tokens into text.

mod llama;
mod text;

pub use text::TextAssembler;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
/// How to load and run the model.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// The GGUF file.
    pub model_path: PathBuf,
    /// Context window in tokens (prompt + reply).
    pub context_tokens: u32,
    /// CPU threads for decoding.
    pub threads: i32,
    /// Requests waiting or running at once; more are refused (`EMBEDDED_MAX_QUEUE`).
    pub max_queue: usize,
}

/// Where the engine stands.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineState {
    /// Loading the model; `progress` goes from 0 to 1.
    Loading {
        /// Fraction loaded.
        progress: f32,
    },
    /// Ready to generate.
    Ready,
    /// The model could not be loaded.
    Failed(String),
}

/// One chat turn of a request.
#[derive(Debug, Clone)]
pub struct Turn {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The conversation, rendered with the chat template stored in the GGUF.
    pub turns: Vec<Turn>,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// 0 means greedy decoding.
    pub temperature: f32,
    /// Nucleus sampling threshold (1 disables it).
    pub top_p: f32,
    /// Sampling seed: the same seed, prompt and settings give the same reply.
    pub seed: u32,
    /// Generation stops before any of these strings (which are not returned).
    pub stop: Vec<String>,
    /// Work no person waits on (a title): served after every reply, and stopped for one.
    pub background: bool,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn, or a stop sequence was reached.
    Stop,
    /// `max_tokens` was reached.
    Length,
}

impl FinishReason {
    /// The OpenAI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// What a request receives, in order: pieces of text, then `Finished` (or one `Failed`).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A piece of the reply (valid UTF-8; a character split across tokens waits for its end).
    Text(String),
    /// Generation ended normally.
    Finished {
        /// Why.
        reason: FinishReason,
        /// Tokens in the rendered prompt.
        prompt_tokens: usize,
        /// Tokens generated.
        completion_tokens: usize,
    },
    /// The request could not be served.
    Failed(EngineError),
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// The prompt does not fit the context window.
    #[error("the prompt is {prompt_tokens} tokens; this model's context window is {context_tokens} tokens")]
    ContextExceeded {
        /// Tokens in the prompt.
        prompt_tokens: usize,
        /// The context window.
        context_tokens: u32,
    },
    /// The request itself is unusable (for example: a message with a NUL byte).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The model failed to load or to decode.
    #[error("model failure: {0}")]
    Model(String),
    /// `max_queue` requests are waiting or running already.
    #[error("the model is busy with {0} requests; try again shortly")]
    Busy(usize),
    /// A background generation gave way to a person's reply.
    #[error("the model is answering a person; background work was stopped")]
    Yielded,
}

struct Job {
    generation: Generation,
    events: mpsc::UnboundedSender<Event>,
    slot: Arc<QueueSlot>,
}

impl Drop for Job {
    fn drop(&mut self) {
        self.slot.release();
    }
}

/// One place in the engine's queue, given back once: when its job is done (or skipped), or when
/// its caller stops listening, whichever comes first. A request whose client went away holds no
/// place while it waits to be skipped.
struct QueueSlot {
    queued: Arc<AtomicUsize>,
    released: std::sync::atomic::AtomicBool,
}

impl QueueSlot {
    fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A generation's events, in order; dropping this cancels the generation.
pub struct Events {
    receiver: mpsc::UnboundedReceiver<Event>,
    slot: Arc<QueueSlot>,
}

impl Events {
    /// The next event; `None` once the engine has sent the last one.
    pub async fn recv(&mut self) -> Option<Event> {
        self.receiver.recv().await
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.slot.release();
    }
}

/// A handle to the engine thread. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    jobs: std::sync::mpsc::Sender<Job>,
    state: watch::Receiver<EngineState>,
    name: Arc<str>,
    queued: Arc<AtomicUsize>,
    /// Replies (not background work) sent to the engine thread and not yet started.
    replies_waiting: Arc<AtomicUsize>,
    max_queue: usize,
}

impl Engine {
    /// Starts loading the model on a new thread and returns at once; requests sent before the
    /// model is ready wait for it.
    pub fn start(settings: EngineSettings) -> Engine {
        let name: Arc<str> = settings
            .model_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "embedded".into())
            .into();
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let (state_tx, state) = watch::channel(EngineState::Loading { progress: 0.0 });
        let max_queue = settings.max_queue.max(1);
        let replies_waiting = Arc::new(AtomicUsize::new(0));
        let waiting = replies_waiting.clone();
        std::thread::Builder::new()
            .name("llama-engine".into())
            .spawn(move || llama::engine_thread(settings, queue, state_tx, &waiting))
            .expect("spawn the engine thread");
        Engine { jobs, state, name, queued: Arc::new(AtomicUsize::new(0)), replies_waiting, max_queue }
    }

    /// The model's name (its file name without the extension).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current state.
    pub fn state(&self) -> EngineState {
        self.state.borrow().clone()
    }

    /// Waits until the model is loaded (or failed to load).
    pub async fn ready(&self) -> Result<(), String> {
        let mut state = self.state.clone();
        let settled = state.wait_for(|s| !matches!(s, EngineState::Loading { .. })).await.map(|s| s.clone());
        match settled {
            Ok(EngineState::Failed(error)) => Err(error),
            Ok(_) => Ok(()),
            Err(_) => Err("the engine thread stopped".into()),
        }
    }

    /// Requests waiting or running now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// A receiver that sees every state change (load progress).
    pub fn watch_state(&self) -> watch::Receiver<EngineState> {
        self.state.clone()
    }

    /// Queues a generation; its events arrive on the returned receiver. Dropping the receiver
    /// cancels the generation.
    pub fn generate(&self, generation: Generation) -> Events {
        let (events, receiver) = mpsc::unbounded_channel();
        let waiting = self.queued.fetch_add(1, Ordering::AcqRel);
        let slot = Arc::new(QueueSlot { queued: self.queued.clone(), released: false.into() });
        if waiting >= self.max_queue {
            slot.release();
            let _ = events.send(Event::Failed(EngineError::Busy(waiting)));
            return Events { receiver, slot };
        }
        let reply = !generation.background;
        if reply {
            self.replies_waiting.fetch_add(1, Ordering::AcqRel);
        }
        if let Err(failed) = self.jobs.send(Job { generation, events, slot: slot.clone() }) {
            if reply {
                self.replies_waiting.fetch_sub(1, Ordering::AcqRel);
            }
            let _ = failed.0.events.send(Event::Failed(EngineError::Model("the engine thread stopped".into())));
        }
        Events { receiver, slot }
    }
}
