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

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
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
            .spawn(move || engine_thread(settings, queue, state_tx, &waiting))
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

fn engine_thread(
    settings: EngineSettings,
    queue: std::sync::mpsc::Receiver<Job>,
    state: watch::Sender<EngineState>,
    replies_waiting: &AtomicUsize,
) {
    let loaded = load(&settings, &state);
    let (backend, model) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            tracing::error!(error, "could not load the model");
            let _ = state.send(EngineState::Failed(error.clone()));
            for job in queue {
                let _ = job.events.send(Event::Failed(EngineError::Model(error.clone())));
            }
            return;
        }
    };
    let context_params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(settings.context_tokens))
        .with_n_batch(512)
        .with_n_threads(settings.threads)
        .with_n_threads_batch(settings.threads);
    let mut context = match model.new_context(backend, context_params) {
        Ok(context) => context,
        Err(error) => {
            let _ = state.send(EngineState::Failed(error.to_string()));
            return;
        }
    };
    let _ = state.send(EngineState::Ready);
    let template = model.chat_template(None).ok();
    let mut jobs = Jobs::default();
    while let Some(job) = jobs.next(&queue) {
        if !job.generation.background {
            replies_waiting.fetch_sub(1, Ordering::AcqRel);
        }
        if job.events.is_closed() {
            continue;
        }
        context.clear_kv_cache();
        let result = run_job(&model, &mut context, template.as_ref(), &job, settings.context_tokens, replies_waiting);
        if let Err(error) = result {
            let _ = job.events.send(Event::Failed(error));
        }
    }
}

/// The jobs the engine thread has taken off its channel: replies in arrival order first, then
/// background work in arrival order.
#[derive(Default)]
struct Jobs {
    replies: std::collections::VecDeque<Job>,
    background: std::collections::VecDeque<Job>,
}

impl Jobs {
    /// The next job to run, waiting for one when none is queued; `None` once the engine is gone.
    fn next(&mut self, queue: &std::sync::mpsc::Receiver<Job>) -> Option<Job> {
        loop {
            // Everything already sent, so that a reply sent after a title still goes first.
            while let Ok(job) = queue.try_recv() {
                self.take(job);
            }
            if let Some(job) = self.replies.pop_front().or_else(|| self.background.pop_front()) {
                return Some(job);
            }
            let job = queue.recv().ok()?;
            self.take(job);
        }
    }

    fn take(&mut self, job: Job) {
        if job.generation.background {
            self.background.push_back(job);
        } else {
            self.replies.push_back(job);
        }
    }
}

/// llama.cpp's backend may be initialised once per process; every engine shares it.
fn backend() -> Result<&'static LlamaBackend, String> {
    static BACKEND: std::sync::OnceLock<Result<LlamaBackend, String>> = std::sync::OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut backend = LlamaBackend::init().map_err(|e| e.to_string())?;
            backend.void_logs();
            Ok(backend)
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn load(
    settings: &EngineSettings,
    state: &watch::Sender<EngineState>,
) -> Result<(&'static LlamaBackend, LlamaModel), String> {
    let backend = backend()?;
    let progress = state.clone();
    let params = LlamaModelParams::default().with_progress_callback(move |fraction| {
        let _ = progress.send(EngineState::Loading { progress: fraction });
        true
    });
    if !settings.model_path.is_file() {
        return Err(format!("no model file at {}", settings.model_path.display()));
    }
    let model = LlamaModel::load_from_file(backend, &settings.model_path, &params).map_err(|e| e.to_string())?;
    Ok((backend, model))
}

fn render_prompt(
    model: &LlamaModel,
    template: Option<&llama_cpp_2::model::LlamaChatTemplate>,
    turns: &[Turn],
) -> Result<String, EngineError> {
    let messages = turns
        .iter()
        .map(|t| LlamaChatMessage::new(t.role.clone(), t.content.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EngineError::Invalid(e.to_string()))?;
    match template {
        Some(template) => {
            model.apply_chat_template(template, &messages, true).map_err(|e| EngineError::Model(e.to_string()))
        }
        // A GGUF without a template: ChatML, the most common format.
        None => {
            let mut prompt = String::new();
            for t in turns {
                prompt.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", t.role, t.content));
            }
            prompt.push_str("<|im_start|>assistant\n");
            Ok(prompt)
        }
    }
}

/// The prompt's tokens: the chat template's own text (its special tokens included) tokenized with
/// special-token parsing, each message's content without it. A person typing
/// `<|im_end|>\n<|im_start|>system\n...` into a message writes text, not a turn of their own.
///
/// The template is rendered with a marker in place of each content (a random nonce no client can
/// guess), and the rendered text is tokenized piece by piece around them.
fn prompt_tokens(
    model: &LlamaModel,
    template: Option<&llama_cpp_2::model::LlamaChatTemplate>,
    turns: &[Turn],
) -> Result<Vec<llama_cpp_2::token::LlamaToken>, EngineError> {
    use std::hash::{BuildHasher, Hasher};
    let nonce = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let markers: Vec<String> = (0..turns.len()).map(|i| format!("\u{1}{nonce:016x}:{i}\u{1}")).collect();
    let masked: Vec<Turn> = turns
        .iter()
        .zip(&markers)
        .map(|(turn, marker)| Turn { role: turn.role.clone(), content: marker.clone() })
        .collect();
    let prompt = render_prompt(model, template, &masked)?;
    let vocab = model.vocab();
    let mut tokens = Vec::new();
    let mut rest = prompt.as_str();
    for (turn, marker) in turns.iter().zip(&markers) {
        let Some(at) = rest.find(marker.as_str()) else {
            return Err(EngineError::Model("the chat template left out or reordered a message".into()));
        };
        vocab.tokenize_into(&rest.as_bytes()[..at], &mut tokens, false, true);
        vocab.tokenize_into(turn.content.as_bytes(), &mut tokens, false, false);
        rest = &rest[at + marker.len()..];
    }
    vocab.tokenize_into(rest.as_bytes(), &mut tokens, false, true);
    // BOS by hand, once, where the model wants it (a template may already have written it); never
    // an EOS between pieces, as tokenizing each piece with special tokens added would.
    if vocab.should_add_bos() && tokens.first() != Some(&vocab.bos()) {
        tokens.insert(0, vocab.bos());
    }
    Ok(tokens)
}

fn run_job(
    model: &LlamaModel,
    context: &mut llama_cpp_2::context::LlamaContext<'_>,
    template: Option<&llama_cpp_2::model::LlamaChatTemplate>,
    job: &Job,
    context_tokens: u32,
    replies_waiting: &AtomicUsize,
) -> Result<(), EngineError> {
    let generation = &job.generation;
    // Background work gives way as soon as a person's reply waits.
    let give_way = || generation.background && replies_waiting.load(Ordering::Acquire) > 0;
    let vocab = model.vocab();
    // Too long for the window with room for the reply: the oldest turns go first (never a system
    // turn, never the last), counted with the model's own tokenizer.
    let reserve = (generation.max_tokens as usize).clamp(1, (context_tokens as usize / 4).max(1));
    let mut turns = generation.turns.clone();
    let tokens = loop {
        let tokens = prompt_tokens(model, template, &turns)?;
        if tokens.len() + reserve <= context_tokens as usize {
            break tokens;
        }
        match turns.iter().position(|turn| turn.role != "system") {
            Some(oldest) if oldest + 1 < turns.len() => {
                turns.remove(oldest);
            }
            _ => break tokens,
        }
    };
    if tokens.is_empty() {
        return Err(EngineError::Invalid("the prompt is empty".into()));
    }
    if tokens.len() + 1 > context_tokens as usize {
        return Err(EngineError::ContextExceeded { prompt_tokens: tokens.len(), context_tokens });
    }
    let model_error = |e: &dyn std::fmt::Display| EngineError::Model(e.to_string());
    let mut batch = LlamaBatch::new(512, 1);
    let last = tokens.len() - 1;
    for (chunk_start, chunk) in tokens.chunks(512).enumerate().map(|(i, c)| (i * 512, c)) {
        if job.events.is_closed() {
            return Ok(()); // the client went away while its prompt was read
        }
        if give_way() {
            return Err(EngineError::Yielded);
        }
        batch.clear();
        for (offset, token) in chunk.iter().enumerate() {
            let position = chunk_start + offset;
            batch.add(*token, position as i32, &[0], position == last).map_err(|e| model_error(&e))?;
        }
        context.decode(&mut batch).map_err(|e| model_error(&e))?;
    }
    let mut sampler = if generation.temperature <= 0.0 {
        LlamaSampler::greedy()
    } else {
        LlamaSampler::chain_simple([
            LlamaSampler::top_p(generation.top_p.clamp(0.0, 1.0), 1),
            LlamaSampler::temp(generation.temperature),
            LlamaSampler::dist(generation.seed),
        ])
    };
    let budget = (generation.max_tokens as usize).min(context_tokens as usize - tokens.len());
    let mut text = TextAssembler::new(&generation.stop);
    let mut position = tokens.len() as i32;
    let mut generated = 0;
    let mut reason = FinishReason::Length;
    while generated < budget {
        // Every token, not only those that complete a piece of text: a held-back piece (a stop
        // sequence's prefix, half a character) sends nothing that could fail.
        if job.events.is_closed() {
            return Ok(());
        }
        if give_way() {
            return Err(EngineError::Yielded);
        }
        let token = sampler.sample(context, batch.n_tokens() - 1);
        sampler.accept(token);
        if vocab.is_eog(token) {
            reason = FinishReason::Stop;
            break;
        }
        generated += 1;
        let (piece, stopped) = text.push(&vocab.token_to_piece(token, false, None));
        if !piece.is_empty() && job.events.send(Event::Text(piece)).is_err() {
            return Ok(()); // the client went away: stop generating
        }
        if stopped {
            reason = FinishReason::Stop;
            break;
        }
        batch.clear();
        batch.add(token, position, &[0], true).map_err(|e| model_error(&e))?;
        position += 1;
        context.decode(&mut batch).map_err(|e| model_error(&e))?;
    }
    let rest = text.finish();
    if !rest.is_empty() {
        let _ = job.events.send(Event::Text(rest));
    }
    let _ = job.events.send(Event::Finished { reason, prompt_tokens: tokens.len(), completion_tokens: generated });
    Ok(())
}

/// Turns token bytes into text: holds back an incomplete UTF-8 character until its last byte
/// arrives, and holds back a tail that could be the start of a stop sequence until it is clear.
pub struct TextAssembler {
    bytes: Vec<u8>,
    held: String,
    stops: Vec<String>,
    stopped: bool,
}

impl TextAssembler {
    /// An assembler for these stop sequences (empty ones are ignored).
    pub fn new(stops: &[String]) -> Self {
        TextAssembler {
            bytes: Vec::new(),
            held: String::new(),
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            stopped: false,
        }
    }

    /// Adds a token's bytes; returns the text that is safe to send, and whether a stop sequence
    /// was reached (the text before it is returned, the stop sequence is not).
    pub fn push(&mut self, token_bytes: &[u8]) -> (String, bool) {
        if self.stopped {
            return (String::new(), true);
        }
        self.bytes.extend_from_slice(token_bytes);
        let valid = match std::str::from_utf8(&self.bytes) {
            Ok(text) => text.len(),
            Err(error) if error.error_len().is_none() => error.valid_up_to(),
            Err(_) => {
                // Invalid bytes (not merely incomplete): replace them rather than stall.
                let text = String::from_utf8_lossy(&self.bytes).into_owned();
                self.bytes.clear();
                self.held.push_str(&text);
                return self.release();
            }
        };
        let complete: Vec<u8> = self.bytes.drain(..valid).collect();
        self.held.push_str(std::str::from_utf8(&complete).expect("validated above"));
        self.release()
    }

    fn release(&mut self) -> (String, bool) {
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            self.stopped = true;
            let text = self.held[..at].to_string();
            self.held.clear();
            return (text, true);
        }
        let keep = self
            .stops
            .iter()
            .flat_map(|stop| (1..stop.len()).filter(|n| stop.is_char_boundary(*n)).map(move |n| &stop[..n]))
            .filter(|prefix| self.held.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let send = self.held.len() - keep;
        let text = self.held[..send].to_string();
        self.held.drain(..send);
        (text, false)
    }

    /// Whatever is still held when generation ends.
    pub fn finish(&mut self) -> String {
        if self.stopped {
            return String::new();
        }
        let mut rest = std::mem::take(&mut self.held);
        rest.push_str(&String::from_utf8_lossy(&std::mem::take(&mut self.bytes)));
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_characters_wait_for_their_last_byte() {
        let mut text = TextAssembler::new(&[]);
        let euro = "€".as_bytes();
        assert_eq!(text.push(&euro[..1]), (String::new(), false));
        assert_eq!(text.push(&euro[1..]), ("€".to_string(), false));
    }

    #[test]
    fn stop_sequences_end_the_text_and_are_not_returned() {
        let mut text = TextAssembler::new(&["\nUser:".to_string()]);
        assert_eq!(text.push(b"Hello"), ("Hello".to_string(), false));
        assert_eq!(text.push(b"\nUs"), (String::new(), false), "a possible stop start is held");
        assert_eq!(text.push(b"er: hi"), (String::new(), true));
        assert_eq!(text.finish(), "");
        let mut text = TextAssembler::new(&["\nUser:".to_string()]);
        assert_eq!(text.push(b"a\nU"), ("a".to_string(), false));
        assert_eq!(text.push(b"nicorn"), ("\nUnicorn".to_string(), false), "released once it is clear");
    }
}
